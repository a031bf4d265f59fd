"""analysis.endpoints.strength: log-strength mixed model and percent change.

Regression: tests/reference/r_clinic_lmm.json, key strength_log_intercept_reml
(tests/reference/r_clinic_lmm.R: lmer(log(strength) ~ week * arm + (1 | patient_id)), emtrends).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import StrengthModelOptions
from analysis.endpoints.strength import fit_strength_model
from analysis.models.lmm import TIDY_COLUMNS

REF = Path(__file__).resolve().parents[1] / "reference"
RC = json.loads((REF / "r_clinic_lmm.json").read_text())["strength_log_intercept_reml"]


@pytest.fixture(scope="module")
def result():
    d = pd.read_csv(REF / "r_clinic_lmm.csv")
    return fit_strength_model(d, StrengthModelOptions(), "usual_care", random="intercept")


def test_fit_equals_lme4(result):
    assert result.health.status == "estimated"
    assert result.fit.reml_criterion == pytest.approx(RC["REMLcrit"], rel=1e-9)  # strength_log_intercept_reml.REMLcrit
    vc = result.variance_components  # strength_log_intercept_reml.sdcor
    assert vc.loc[vc.group == "patient_id", "estimate"].item() == pytest.approx(
        RC["sdcor"]["patient_id:(Intercept):NA"], rel=1e-4)


def test_percent_change_is_the_transformed_emtrends_slope(result):
    pct = result.percent_change.set_index("term")
    assert list(result.percent_change.columns) == TIDY_COLUMNS
    for r in RC["trends"]:  # r_clinic_lmm.json: strength_log_intercept_reml.trends (emtrends week.trend)
        row = pct.loc[f"percent change over 12 weeks: {r['arm']}"]
        assert row["estimate"] == pytest.approx(100 * np.expm1(12 * r["week.trend"]), rel=1e-4)
        assert row["conf_low"] == pytest.approx(100 * np.expm1(12 * r["lower.CL"]), rel=1e-4, abs=1e-6)
        assert row["conf_high"] == pytest.approx(100 * np.expm1(12 * r["upper.CL"]), rel=1e-4, abs=1e-6)
        assert row["p_value"] == pytest.approx(r["p.value"], rel=1e-3)
        assert np.isnan(row["std_error"])


def test_ratio_vs_control_is_the_transformed_slope_difference(result):
    ratio = result.ratio_vs_control.set_index("term")
    for r in RC["trend_contrasts"]:  # strength_log_intercept_reml.trend_contrasts (trt.vs.ctrl)
        arm = r["contrast"].split(" - ")[0]
        row = ratio.loc[f"ratio of 12-week change: {arm} / usual_care"]
        assert row["estimate"] == pytest.approx(np.exp(12 * r["estimate"]), rel=1e-5)
        assert row["conf_low"] == pytest.approx(np.exp(12 * r["lower.CL"]), rel=1e-5)
        assert row["conf_high"] == pytest.approx(np.exp(12 * r["upper.CL"]), rel=1e-5)


def test_geometric_means_are_exp_of_emmeans(result):
    geo = result.geometric_means.set_index("term")
    for r in RC["emmeans"]:  # strength_log_intercept_reml.emmeans
        row = geo.loc[f"geometric mean: {r['arm']}, week {r['week']:g}"]
        assert row["estimate"] == pytest.approx(np.exp(r["emmean"]), rel=1e-5)


def test_non_positive_strength_rows_are_left_out_with_a_note():
    d = pd.read_csv(REF / "r_clinic_lmm.csv")
    d.loc[d.index[:3], "strength"] = 0.0
    res = fit_strength_model(d, control="usual_care", random="intercept")
    assert res.health.status == "estimated" and res.n_obs == len(d) - 3
    assert any("not finite" in w for w in res.health.warnings)


def test_recovery_of_percent_change_in_newtons():
    # known truth: 12-week gains 5 % (usual care) and 30 % (strength training), newtons ~ 1e3
    rng = np.random.default_rng(7)
    gains = {"usual_care": 0.05, "strength_training": 0.30}
    rows = []
    for i in range(120):
        arm = list(gains)[i % 2]
        w = np.array([0.0, 2, 4, 6, 8, 10, 12])
        log_s = np.log(1000) + rng.normal(0, 0.25) + np.log1p(gains[arm]) / 12 * w + rng.normal(0, 0.08, 7)
        rows.append(pd.DataFrame({"patient_id": i, "clinic_id": 0, "week": w, "arm": arm, "strength": np.exp(log_s)}))
    res = fit_strength_model(pd.concat(rows), control="usual_care")
    assert res.health.status == "estimated"
    pct = res.percent_change.set_index("term")
    for arm, g in gains.items():
        row = pct.loc[f"percent change over 12 weeks: {arm}"]
        assert row["conf_low"] < 100 * g < row["conf_high"]
    ratio = res.ratio_vs_control.iloc[0]
    assert ratio["conf_low"] < 1.30 / 1.05 < ratio["conf_high"]
