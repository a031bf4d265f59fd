"""The MMRM rows of make bench: their shape and the nlme run / stored / skip paths (no timing asserted)."""

import json

import pytest

from analysis.studies import bench_mmrm


@pytest.fixture
def fake_timings(monkeypatch, tmp_path):
    store = tmp_path / "nlme.json"
    monkeypatch.setattr(bench_mmrm, "NLME_STORE", store)
    bcva = {"seconds": 2.0, "all_seconds": [3.0, 2.0, 4.0], "neg2_reml": 32071.03, "n_subjects": 1000,
            "n_obs": 8605, "n_theta": 55, "converged": True}

    def time_mmrm(path, repeat, with_r):
        return bcva | ({"nlme_seconds": 600.0, "nlme_neg2_reml": 32071.03} if with_r else {})

    monkeypatch.setattr(bench_mmrm, "time_mmrm", time_mmrm)
    monkeypatch.setattr(bench_mmrm, "time_fev", lambda path, repeat: {
        "seconds": [0.028, 0.03, 0.032], "neg2_reml": 3429.0, "n_obs": 537, "n_subjects": 197})
    return store


def test_run_measures_nlme_and_stores_it(fake_timings):
    rows = bench_mmrm.mmrm_rows("run")
    ours, nlme, fev, published = rows
    assert (ours["engine"], ours["data_set"], ours["model"]) == ("mmrm", "bcva_data", "mmrm us+KR")
    assert ours["seconds_median"] == 3.0 and ours["ratio"] == pytest.approx(3.0 / 600.0)
    assert nlme["engine"] == "nlme" and nlme["seconds_median"] == 600.0
    assert "measured in this run" in nlme["note"]
    assert fev["ratio"] == pytest.approx(0.03 / 0.056)
    assert published["seconds_median"] == 0.056
    assert json.loads(fake_timings.read_text())["seconds"] == 600.0


def test_stored_reuses_the_time_with_its_date(fake_timings):
    fake_timings.write_text(json.dumps({"date": "2026-11-30", "seconds": 596.0, "neg2_reml": 1.0}))
    ours, nlme = bench_mmrm.mmrm_rows("stored")[:2]
    assert ours["ratio"] == pytest.approx(3.0 / 596.0)
    assert "measured on 2026-11-30" in nlme["note"]


def test_skip_leaves_out_nlme(fake_timings):
    rows = bench_mmrm.mmrm_rows("skip")
    assert [r["engine"] for r in rows] == ["mmrm", "mmrm", "mmrm (R, published)"]
    assert rows[0]["ratio"] is None


def test_bad_option():
    with pytest.raises(ValueError, match="run, stored or skip"):
        bench_mmrm.mmrm_rows("sometimes")


def test_stored_without_a_store_says_so(fake_timings):
    ours, nlme = bench_mmrm.mmrm_rows("stored")[:2]
    assert ours["ratio"] is None and nlme["seconds_median"] is None
    assert "no stored time" in nlme["note"]
