"""Tests of the synthetic-log generator (src/analysis/studies/simulate.py).

Three kinds, kept apart:
- format and reproducibility: bytes, schema, ranges, visit structure;
- parameter recovery (correctness): simple estimators, written here independently of the
  generator, recover the truth JSON's numbers from large simulated logs;
- regression: the bundled example still equals what its recorded command produces.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis.errors import ConfigError
from analysis.run import cli
from analysis.studies.simulate import simulate_log, write_simulation
from analysis.studies.truth import Truth

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "data" / "example"
# The data contract's columns, in order (docs/data-contract.md), written out rather than imported.
CONTRACT = ["patient_id", "clinic_id", "visit_date", "intervention", "pain_score", "episodes",
            "exposure_days", "strength", "foot_posture_index", "age_band", "sex"]
INTERVENTIONS = {"foot_massage", "deep_tissue_massage", "orthotics", "strength_training",
                 "patella_taping", "gait_retraining", "usual_care"}


@pytest.fixture(scope="module")
def big():
    """One large log (4000 patients) shared by the recovery checks."""
    return simulate_log(4000, 8, seed=7)


def _with_visit_structure(log: pd.DataFrame) -> pd.DataFrame:
    """Add visit index, day since baseline, visit count and the majority intervention (arm)."""
    log = log.copy()
    by = log.groupby("patient_id", sort=False)
    date = pd.to_datetime(log["visit_date"], format="%Y-%m-%d")
    log["visit"] = by.cumcount()
    log["day"] = (date - date.groupby(log["patient_id"]).transform("first")).dt.days
    log["n_visits"] = by["patient_id"].transform("size")
    # Majority intervention: the last row per patient after a stable sort by count.
    counts = log.groupby(["patient_id", "intervention"]).size().sort_values(kind="stable")
    majority = counts.reset_index().drop_duplicates("patient_id", keep="last")
    log["arm"] = log["patient_id"].map(majority.set_index("patient_id")["intervention"])
    return log


# --- format and reproducibility -------------------------------------------------------------

def test_same_seed_gives_identical_bytes(tmp_path):
    a = write_simulation(tmp_path / "a" / "log.csv", n_patients=150, n_clinics=4, seed=42, weeks=12)
    b = write_simulation(tmp_path / "b" / "log.csv", n_patients=150, n_clinics=4, seed=42, weeks=12)
    assert [p.name for p in a] == ["log.csv", "log.truth.json"]
    for first, second in zip(a, b):
        assert first.read_bytes() == second.read_bytes()


def test_different_seed_gives_a_different_log(tmp_path):
    a, _ = write_simulation(tmp_path / "a.csv", n_patients=150, n_clinics=4, seed=42, weeks=12)
    b, _ = write_simulation(tmp_path / "b.csv", n_patients=150, n_clinics=4, seed=43, weeks=12)
    assert a.read_bytes() != b.read_bytes()


def test_csv_bytes_follow_the_format(tmp_path):
    log_path, truth_path = write_simulation(tmp_path / "log.csv", n_patients=80, n_clinics=3,
                                            seed=5)
    raw = log_path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n") and not raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8").splitlines()
    assert lines[0] == ",".join(CONTRACT)
    strength = [line.split(",")[7] for line in lines[1:]]
    assert all(re.fullmatch(r"\d+\.\d|", s) for s in strength)
    assert "" in strength and "" in [line.split(",")[4] for line in lines[1:]]
    text = truth_path.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_schema_ranges_and_visit_structure():
    n = 2000
    log, truth = simulate_log(n, 6, seed=3)
    assert list(log.columns) == CONTRACT
    assert log["patient_id"].str.fullmatch(r"P\d{4}").all()
    assert sorted(log["patient_id"].unique()) == [f"P{i:04d}" for i in range(1, n + 1)]
    assert log["clinic_id"].str.fullmatch(r"C\d{2}").all()
    assert log["visit_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert set(log["intervention"]) <= set(truth["arms"]) <= INTERVENTIONS

    pain = log["pain_score"].dropna()
    assert ((pain >= 0) & (pain <= 10)).all() and (pain == pain.round()).all()
    assert log["episodes"].dtype.kind == "i" and (log["episodes"] >= 0).all()
    assert (log["exposure_days"] > 0).all()
    assert (log["strength"].dropna() > 0).all()
    assert log["foot_posture_index"].between(-12, 12).all()
    assert set(log["age_band"]) <= {"18-34", "35-54", "55-74", "75+"}
    assert set(log["sex"]) <= {"F", "M"}
    per_patient = log.groupby("patient_id")[["clinic_id", "foot_posture_index", "age_band", "sex"]]
    assert (per_patient.nunique() == 1).all().all()

    log = _with_visit_structure(log)
    base = log[log["visit"] == 0]
    assert len(base) == n
    assert (base["exposure_days"] == 14).all()
    assert base["pain_score"].notna().all() and base["strength"].notna().all()
    later = log[log["visit"] > 0]
    gap = log.groupby("patient_id")["day"].diff()[later.index]
    assert (gap > 0).all(), "visit dates must increase within a patient"
    assert (later["exposure_days"] == gap).all()
    assert later["day"].max() <= 7 * truth["weeks"]
    # Pain missing only after baseline, about 5 %; strength about every other visit.
    assert 0.03 < later["pain_score"].isna().mean() < 0.07
    assert later.loc[later["visit"] % 2 == 1, "strength"].isna().all()

    visits = log.groupby("patient_id").size()
    assert 6.5 < visits.mean() < 8.5
    assert 0 < (visits == 1).mean() < 0.08
    # Switchers: about 8 % get another intervention on 1-2 visits, so the arm stays the majority.
    distinct = log.groupby("patient_id")["intervention"].nunique()
    assert 0.04 < (distinct > 1).mean() < 0.10
    off_arm = (log["intervention"] != log["arm"]).groupby(log["patient_id"]).sum()
    assert off_arm.max() <= 2 and (off_arm < visits / 2).all()
    shares = log.groupby("clinic_id")["patient_id"].nunique() / n
    assert shares.min() >= 0.05 and shares.max() - shares.min() > 0.02


@pytest.mark.parametrize("weeks, last_nominal", [(3, 21), (26, 182)])
def test_follow_up_length_follows_weeks(weeks, last_nominal):
    log, truth = simulate_log(300, 3, seed=11, weeks=weeks)
    day = _with_visit_structure(log)["day"]
    assert truth["visits"]["nominal_days"][-1] == last_nominal
    assert last_nominal - 2 <= day.max() <= last_nominal


def test_arms_subset_always_includes_usual_care():
    log, truth = simulate_log(200, 2, seed=1, arms=["strength_training", "gait_retraining"])
    assert truth["arms"] == ["usual_care", "strength_training", "gait_retraining"]
    assert set(log["intervention"]) == set(truth["arms"])
    assert set(truth["episodes"]["rate_ratio"]) == set(truth["arms"])


def test_truth_records_the_parameters():
    _, truth = simulate_log(50, 2, seed=1)
    ep, pain, st = truth["episodes"], truth["pain"], truth["strength"]
    assert ep["rate_ratio"]["deep_tissue_massage"] == 0.75
    assert ep["percent_reduction"]["deep_tissue_massage"] == pytest.approx(25.0)
    assert st["percent_change_week12"]["deep_tissue_massage"] == 20.0
    assert st["log_slope_per_week"]["deep_tissue_massage"] == pytest.approx(np.log(1.2) / 12)
    assert pain["moderation"]["extra_slope_per_week"]["orthotics"] == -0.10
    assert truth["switch_fraction"] == 0.08 and truth["dropout"]["slope_per_pain_point"] == 0.25
    derived = truth["derived"]
    for arm in truth["arms"]:
        slope = derived["pain_slope_per_week_population"][arm]
        assert derived["pain_slope_difference_vs_usual_care"][arm] == pytest.approx(
            slope - derived["pain_slope_per_week_population"]["usual_care"])
        assert derived["mean_pain_latent"][arm]["week_12"] == pytest.approx(6.0 + 12 * slope)
    # P(round(N(3.5, 3^2)) > 5) = P(Z > 2/3)
    assert truth["foot_posture_index"]["share_overpronated"] == pytest.approx(0.252493, abs=1e-6)
    assert "patient_id" not in json.dumps(truth)


def test_null_truth_has_no_arm_differences():
    _, truth = simulate_log(50, 2, seed=1, effects=Truth.null())
    assert set(truth["episodes"]["rate_ratio"].values()) == {1.0}
    assert set(truth["derived"]["pain_slope_difference_vs_usual_care"].values()) == {0.0}
    assert len(set(truth["strength"]["percent_change_week12"].values())) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"n_patients": 0}, "--patients"),
    ({"n_patients": 10, "n_clinics": 11}, "--clinics"),
    ({"weeks": -1.0}, "--weeks"),
    ({"seed": -3}, "--seed"),
    ({"arms": ["usual_care", "acupuncture"]}, "acupuncture"),
    ({"effects": {"episode_rate_ratio": {}}}, "Truth"),
])
def test_bad_arguments_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        simulate_log(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"episode_rate_ratio": {"deep_tissue_massage": 0.0}}, "episode_rate_ratio must be > 0"),
    ({"pain_slope_per_week": {"reiki": -0.2}}, "unknown intervention(s) ['reiki']"),
    ({"switch_fraction": 1.5}, "switch_fraction must be a probability"),
    ({"pain_sd_residual": -1.0}, "pain_sd_residual must be >= 0"),
])
def test_bad_truth_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Truth(**kwargs)


def test_cli_reports_bad_arguments_without_traceback(tmp_path, capsys):
    code = cli.main(["simulate", "--patients", "0", "--out", str(tmp_path / "x.csv")])
    assert code == 2 and "--patients must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


# --- parameter recovery ---------------------------------------------------------------------

def _rate_ratios(log: pd.DataFrame) -> pd.Series:
    """Post-baseline rate (sum episodes / sum exposure) by arm, divided by usual care's."""
    post = log[log["visit"] > 0]
    rate = post.groupby("arm")["episodes"].sum() / post.groupby("arm")["exposure_days"].sum()
    return rate / rate["usual_care"]


def test_episode_rate_ratios_recovered(big):
    log, truth = big
    ratio = _rate_ratios(_with_visit_structure(log))
    for arm, rr in truth["episodes"]["rate_ratio"].items():
        # SD of log(ratio) over 20 seeds at 4000 patients was about 0.03; 0.12 is 4 SD.
        assert abs(np.log(ratio[arm] / rr)) < 0.12, arm
    usual = _with_visit_structure(log).query("arm == 'usual_care'")
    rate_per_week = 7 * usual["episodes"].sum() / usual["exposure_days"].sum()
    # Population-averaged rate: E[exp(w_i)] = 1, so no -s^2/2 correction is needed here.
    assert rate_per_week == pytest.approx(truth["episodes"]["rate_per_week_population"], rel=0.1)


def test_overridden_rate_ratio_is_recovered():
    log, truth = simulate_log(3000, 6, seed=8, effects=Truth(episode_rate_ratio={
        "deep_tissue_massage": 0.38}))
    assert truth["episodes"]["rate_ratio"]["deep_tissue_massage"] == 0.38
    ratio = _rate_ratios(_with_visit_structure(log))
    assert abs(np.log(ratio["deep_tissue_massage"] / 0.38)) < 0.12


def test_strength_log_slopes_recovered(big):
    log, truth = big
    log = _with_visit_structure(log).dropna(subset=["strength"])
    week, y = log["day"] / 7, np.log(log["strength"])
    # Within-patient (fixed-effects) OLS: demeaning per patient removes v_i and clinic effects.
    wd = week - week.groupby(log["patient_id"]).transform("mean")
    yd = y - y.groupby(log["patient_id"]).transform("mean")
    arms = truth["arms"]
    design = np.column_stack([wd * (log["arm"] == arm) for arm in arms])
    coef, *_ = np.linalg.lstsq(design, yd.to_numpy(), rcond=None)
    for arm, estimate in zip(arms, coef):
        # SD over 20 seeds was about 0.0004 per week; 0.0016 is 4 SD.
        assert abs(estimate - truth["strength"]["log_slope_per_week"][arm]) < 0.0016, arm


def _dropout_fit(log: pd.DataFrame, truth: dict):
    """Logistic fit of 'this was the last visit' on the latest observed pain, at-risk visits."""
    log = _with_visit_structure(log)
    final_slot = len(truth["visits"]["nominal_days"]) - 1
    observed = log["pain_score"].astype(float).groupby(log["patient_id"]).ffill()
    at_risk = (log["visit"] >= 1) & (log["visit"] < final_slot)
    left = (log["visit"] == log["n_visits"] - 1)[at_risk].astype(float)
    pain = observed[at_risk] - truth["dropout"]["pain_centre"]
    fit = sm.Logit(left.to_numpy(), sm.add_constant(pain.to_numpy())).fit(disp=0)
    return fit.params, left, pain


def test_dropout_depends_on_observed_pain():
    log, truth = simulate_log(10000, 6, seed=12)
    params, left, pain = _dropout_fit(log, truth)
    centre = truth["dropout"]["pain_centre"]
    # Higher observed pain, more dropout: hazard at pain >= 7 vs <= 3 (truth ~0.078 vs ~0.020).
    assert left[pain >= 7 - centre].mean() > 2 * left[pain <= 3 - centre].mean()
    # SE of the slope at 10000 patients is about 0.012.
    assert abs(params[1] - truth["dropout"]["slope_per_pain_point"]) < 0.06
    assert abs(params[0] - truth["dropout"]["intercept"]) < 0.15


def test_dropout_check_sees_no_dependence_when_there_is_none():
    log, truth = simulate_log(10000, 6, seed=12, effects=Truth(dropout_pain_slope=0.0))
    params, _, _ = _dropout_fit(log, truth)
    assert abs(params[1]) < 0.06


# --- regression: the bundled example --------------------------------------------------------

def test_bundled_example_equals_its_recorded_command(tmp_path):
    command = json.loads((EXAMPLE / "clinic_log.truth.json").read_text())["command"]
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    assert f"{command} --out data/example/clinic_log.csv" in readme
    argv = shlex.split(command)[1:] + ["--out", str(tmp_path / "clinic_log.csv")]
    assert cli.main(argv) == 0
    for name in ("clinic_log.csv", "clinic_log.truth.json"):
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), name
    assert (EXAMPLE / "clinic_log.csv").stat().st_size < 1_000_000


def test_truth_file_names_an_unknown_field(tmp_path):
    from analysis.errors import ConfigError
    from analysis.studies.truth import truth_from_file

    path = tmp_path / "truth.yaml"
    path.write_text("pain_slope_per_week: {patella_taping: -0.14}\nbogus: 1\n")
    with pytest.raises(ConfigError, match=r"truth.yaml: unknown Truth field\(s\) \['bogus'\]"):
        truth_from_file(path)
    path.write_text("pain_slope_per_week: {patella_taping: -0.14}\n")
    truth = truth_from_file(path)
    assert truth.pain_slope_per_week["patella_taping"] == -0.14
    assert truth.pain_slope_per_week["usual_care"] == -0.08  # the others keep their defaults
