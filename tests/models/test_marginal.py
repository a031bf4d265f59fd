"""analysis.models.marginal: emmeans-style marginal means, contrasts and slopes against R's emmeans.

R numbers: tests/reference/r_reference.json (sleepstudy; tests/reference/r_reference.R) and
tests/reference/r_clinic_lmm.json (tests/reference/r_clinic_lmm.R, data r_clinic_lmm.csv), both
emmeans 1.8.4 with lmer.df = "satterthwaite", adjust = "none".
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.models.lmm import TIDY_COLUMNS, fit_lmm
from analysis.models.marginal import arm_tables, estimate, grid_variables, reference_row

REF = Path(__file__).resolve().parents[1] / "reference"
R = json.loads((REF / "r_reference.json").read_text())
RC = json.loads((REF / "r_clinic_lmm.json").read_text())


def test_emmeans_sleepstudy_days_9():
    ss = pd.read_csv(REF / "sleepstudy.csv")
    fit = fit_lmm(ss, "Reaction ~ Days", "Subject", "slope", time="Days")
    L = reference_row(fit, {"Days": 9})
    assert np.allclose(L, [1, 9])
    row = estimate(fit, L, "Days 9").iloc[0]
    ref = R["sleepstudy_slope_reml"]["emmeans_days_9"]  # r_reference.json: sleepstudy_slope_reml.emmeans_days_9
    assert row["estimate"] == pytest.approx(ref["emmean"], rel=1e-6)
    assert row["std_error"] == pytest.approx(ref["SE"], rel=1e-4)
    assert row["df"] == pytest.approx(ref["df"], rel=1e-4)
    assert row["conf_low"] == pytest.approx(ref["lower.CL"], rel=1e-5)
    assert row["conf_high"] == pytest.approx(ref["upper.CL"], rel=1e-5)


@pytest.fixture(scope="module")
def cov_tables():
    # R: lmer(pain_score ~ week * arm + foot_posture_index + sex + (1 + week | patient_id))
    d = pd.read_csv(REF / "r_clinic_lmm.csv")
    fit = fit_lmm(d, "pain_score ~ week * C(arm, Treatment(reference='usual_care')) + foot_posture_index + sex",
                  "patient_id", "slope")
    return fit, arm_tables(fit, "arm", "usual_care", "week", [0, 4, 8, 12])


def _check(ours: pd.Series, r: dict, est_key: str):
    assert ours["estimate"] == pytest.approx(r[est_key], rel=1e-4, abs=1e-8)
    assert ours["std_error"] == pytest.approx(r["SE"], rel=1e-4)
    assert ours["df"] == pytest.approx(r["df"], rel=1e-3)
    assert ours["conf_low"] == pytest.approx(r["lower.CL"], rel=1e-4, abs=1e-6)
    assert ours["conf_high"] == pytest.approx(r["upper.CL"], rel=1e-4, abs=1e-6)


def test_grid_averages_factors_and_puts_covariates_at_means(cov_tables):
    fit, _ = cov_tables
    factors, means = grid_variables(fit)
    assert factors == {"arm": ["foot_massage", "orthotics", "strength_training", "usual_care"], "sex": ["F", "M"]}
    assert means["foot_posture_index"] == pytest.approx(fit.design.data["foot_posture_index"].mean())
    row = reference_row(fit, {"arm": "usual_care", "week": 4.0})
    names = fit.fixed_effects["term"].tolist()
    assert row[names.index("sex[M]")] == pytest.approx(0.5)  # equal weights, not frequencies


def test_means_by_arm_and_week_equal_emmeans(cov_tables):
    _, tabs = cov_tables
    means = tabs["means"].set_index("term")
    assert list(tabs["means"].columns) == TIDY_COLUMNS
    for r in RC["covariates_slope_reml"]["emmeans"]:  # r_clinic_lmm.json: covariates_slope_reml.emmeans
        _check(means.loc[f"{r['arm']}, week {r['week']:g}"], r, "emmean")
    grid = tabs["grid"].set_index("term")
    assert grid.loc["orthotics, week 8", "kind"] == "mean" and grid.loc["orthotics, week 8", "week"] == 8


def test_contrasts_vs_control_equal_emmeans_trt_vs_ctrl(cov_tables):
    _, tabs = cov_tables
    con = tabs["contrasts"].set_index("term")
    refs = RC["covariates_slope_reml"]["contrasts"]  # covariates_slope_reml.contrasts (trt.vs.ctrl)
    assert len(refs) == len(con) == 12
    for r in refs:
        _check(con.loc[f"{r['contrast']}, week {r['week']:g}"], r, "estimate")


def test_slopes_and_slope_differences_equal_emtrends(cov_tables):
    _, tabs = cov_tables
    slopes = tabs["slopes"].set_index("term")
    for r in RC["covariates_slope_reml"]["trends"]:  # covariates_slope_reml.trends (emtrends)
        _check(slopes.loc[f"week slope: {r['arm']}"], r, "week.trend")
    diffs = tabs["slope_differences"].set_index("term")
    for r in RC["covariates_slope_reml"]["trend_contrasts"]:  # covariates_slope_reml.trend_contrasts
        _check(diffs.loc[f"week slope: {r['contrast']}"], r, "estimate")


def test_non_estimable_function_gives_nan_row():
    rng = np.random.default_rng(5)
    n = 24
    d = pd.DataFrame({"patient_id": np.repeat(np.arange(8), 3), "week": np.tile([0.0, 2.0, 4.0], 8),
                      "arm": np.repeat(["a", "b"], 12), "g": np.repeat(["x", "x", "y", "x"], 6),
                      "y": rng.normal(size=n)})
    fit = fit_lmm(d, "y ~ C(arm) * C(g)", "patient_id", "intercept")  # arm a has no g = y: aliased
    assert fit.estimated and fit.design.dropped
    L_bad = reference_row(fit, {"arm": "a", "g": "y"})
    assert estimate(fit, L_bad, "a, y")[["estimate", "std_error", "df"]].isna().all(axis=None)
    assert np.isfinite(estimate(fit, reference_row(fit, {"arm": "b", "g": "y"}), "b, y")["estimate"]).all()


def test_one_grid_gives_the_numbers_of_one_grid_per_term(cov_tables):
    # arm_tables builds every reference row in one design build; each term must be the same
    # number as its own grid built alone (the definition in the module docstring)
    fit, tabs = cov_tables
    for kind, key, L_of in [
        ("mean", "means", lambda lv, w: reference_row(fit, {"arm": lv, "week": w})),
        ("difference", "contrasts", lambda lv, w: reference_row(fit, {"arm": lv, "week": w})
         - reference_row(fit, {"arm": "usual_care", "week": w})),
    ]:
        grid = tabs["grid"][tabs["grid"]["kind"] == kind]
        table = tabs[key].set_index("term")
        for g in grid.itertuples():
            alone = estimate(fit, L_of(g.arm, g.week), g.term).iloc[0]
            for col in ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high"):
                assert table.loc[g.term, col] == alone[col], (g.term, col)
    slope = (reference_row(fit, {"arm": "orthotics", "week": 1.0})
             - reference_row(fit, {"arm": "orthotics", "week": 0.0}))
    alone = estimate(fit, slope, "s").iloc[0]
    assert tabs["slopes"].set_index("term").loc["week slope: orthotics", "estimate"] == alone["estimate"]
