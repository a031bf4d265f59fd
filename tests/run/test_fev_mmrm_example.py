"""config/examples/fev_mmrm.yaml end to end: mmrm's fev_data through `outcomes run` by config alone.

The run's pain report must show LS-means by visit (figure and table), the differences vs PBO at
every visit must equal the engine's (analysis.models.mmrm.fit_mmrm on the raw CSV, the same
model) and SAS's estimates (tests/reference/mmrm/sas_log_reml.txt:225, 238, 247, 252; the same
model, there with ddfm=satterthwaite, so only the estimates are compared -- to 0.01 SE, see
test_mmrm_sas_us.py for why), and the covariance matrix is in the researcher view only.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.models.mmrm import fit_mmrm
from analysis.run.runner import run_suite

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "examples" / "fev_mmrm.yaml"
REF = ROOT / "tests" / "reference" / "mmrm"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fev") / "run"
    outcome = run_suite(EXAMPLE, out=out, progress=False,
                        notebooks=[ROOT / "notebooks" / "03_pain.py",
                                   ROOT / "notebooks" / "09_summary.py"])
    assert outcome.status == "succeeded", outcome.error
    return out


def test_report_shows_lsmeans_by_visit(run):
    # The MMRM's tables are the researcher view's (the owner view shows no model tables: issue 14)
    owner = (run / "owner" / "03_pain.html").read_text()
    researcher = (run / "researcher" / "03_pain.html").read_text()
    assert "MMRM: LS-means by visit" in researcher and (run / "figures" / "pain_lsmeans.svg").exists()
    lsm = pd.read_csv(run / "tables" / "pain_lsmeans.csv")
    assert sorted(zip(lsm["week"], lsm["arm"])) == [(w, a) for w in (1.0, 2.0, 3.0, 4.0)
                                                    for a in ("PBO", "TRT")]
    for value in lsm["estimate"]:
        assert f"{value:.2f}" in researcher                  # each LS-mean printed
    assert "missing at random (MAR)" in researcher
    assert "estimated covariance and correlation between visits" in researcher
    assert "estimated covariance and correlation between visits" not in owner


def test_differences_equal_the_engine_and_sas(run):
    pain = json.loads((run / "results.json").read_text())["models"]["pain"]
    assert (pain["analysis"], pain["covariance"], pain["df"]) == ("mmrm", "us", "kenward-roger")
    ours = {d["week"]: d for d in pain["differences"]}
    raw = pd.read_csv(REF / "fev_data.csv")
    engine = fit_mmrm(raw, "FEV1", "ARMCD*AVISIT + RACE + SEX", "AVISIT", "USUBJID",
                      reference={"ARMCD": "PBO"}).lsmean_diffs("ARMCD", "PBO", by="AVISIT")
    listing = (REF / "sas_log_reml.txt").read_text().split("\n")
    for visit, lineno in [("VIS1", 252), ("VIS2", 225), ("VIS3", 238), ("VIS4", 247)]:
        row = ours[float(visit[-1])]
        eng = engine.set_index("AVISIT").loc[visit]
        for col in ("estimate", "std_error", "df", "conf_low", "conf_high", "p_value"):
            assert row[col] == pytest.approx(eng[col], rel=1e-8), (visit, col)
        fields = listing[lineno - 1].split()
        assert fields[1] == visit and fields[2] == "TRT" and fields[4] == "PBO"
        assert abs(row["estimate"] - float(fields[5])) < 0.01 * float(fields[6])


def test_tipping_point_moves_against_the_active_arm(run):
    tip = pd.read_csv(run / "tables" / "pain_tipping_point.csv").sort_values("delta")
    assert list(tip["delta"]) == [0, 1, 2, 3, 4]
    assert tip["estimate"].is_monotonic_decreasing          # FEV1: higher is better


def test_summary_headline_reads_the_mmrm_difference_at_the_last_visit(run):
    results = json.loads((run / "results.json").read_text())
    assert any("FEV1 at week 4" in h for h in results["summary"]["headlines"])
