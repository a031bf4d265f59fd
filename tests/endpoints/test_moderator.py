"""analysis.endpoints.moderator: slope differences by foot posture.

Regression: tests/reference/r_clinic_lmm.json, key moderator_slope_reml (tests/reference/r_clinic_lmm.R:
lmer(pain_score ~ week * arm * overpronated + (1 + week | patient_id)); emtrends(~ overpronated | arm)
with contrast "revpairwise", i.e. overpronated1 - overpronated0 within arm).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import PainModelOptions
from analysis.endpoints.moderator import fit_moderator_model

REF = Path(__file__).resolve().parents[1] / "reference"
RC = json.loads((REF / "r_clinic_lmm.json").read_text())["moderator_slope_reml"]


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(REF / "r_clinic_lmm.csv")


@pytest.fixture(scope="module")
def result(data):
    return fit_moderator_model(data, PainModelOptions(), control="usual_care", threshold=5.0)


def test_model_equals_lme4(result):
    assert result.health.status == "estimated"
    assert result.fit.reml_criterion == pytest.approx(RC["REMLcrit"], rel=1e-9)  # moderator_slope_reml.REMLcrit


def test_slope_difference_by_foot_equals_emtrends(result):
    tab = result.slope_difference_by_foot.set_index("term")
    assert len(tab) == 4
    for r in RC["trend_by_foot"]:  # moderator_slope_reml.trend_by_foot (emtrends, revpairwise)
        row = tab.loc[f"week slope, overpronated - not: {r['arm']}"]
        assert row["estimate"] == pytest.approx(r["estimate"], rel=1e-4)
        assert row["std_error"] == pytest.approx(r["SE"], rel=1e-4)
        assert row["df"] == pytest.approx(r["df"], rel=1e-3)
        assert row["conf_low"] == pytest.approx(r["lower.CL"], rel=1e-4)
        assert row["conf_high"] == pytest.approx(r["upper.CL"], rel=1e-4)


def test_difference_from_control_is_the_three_way_interaction(result):
    tab = result.vs_control.set_index("term")
    for arm in ["orthotics", "foot_massage", "strength_training"]:
        # moderator_slope_reml.fixef_satterthwaite."week:arm<arm>:overpronated1" (lmerTest)
        r = RC["fixef_satterthwaite"][f"week:arm{arm}:overpronated1"]
        row = tab.loc[f"week slope, overpronated - not: {arm} - usual_care"]
        assert row["estimate"] == pytest.approx(r["Estimate"], rel=1e-4)
        assert row["std_error"] == pytest.approx(r["Std. Error"], rel=1e-4)
        assert row["df"] == pytest.approx(r["df"], rel=1e-3)


def test_patient_counts(result):
    counts = result.n_patients.set_index(["arm", "overpronated"])["n_patients"]
    # moderator_slope_reml.n_overpronated_patients (R tapply)
    for arm, n in RC["n_overpronated_patients"].items():
        assert counts.loc[(arm, 1)] == n


def test_no_overpronated_patient_is_not_estimable(data):
    res = fit_moderator_model(data.assign(foot_posture_index=0), control="usual_care")
    assert res.health.status == "not estimable: no patient with foot_posture_index above 5"
    assert res.slope_difference_by_foot.empty


def test_arm_without_overpronated_patients_gives_nan_row(data):
    d = data.copy()
    d.loc[d.arm.eq("foot_massage"), "foot_posture_index"] = 0
    res = fit_moderator_model(d, control="usual_care")
    assert res.health.status == "estimated"
    tab = res.slope_difference_by_foot.set_index("term")
    assert np.isnan(tab.loc["week slope, overpronated - not: foot_massage", "estimate"])
    assert np.isfinite(tab.loc["week slope, overpronated - not: orthotics", "estimate"])
