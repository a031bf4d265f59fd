"""analysis.endpoints.pain: the pain mixed model.

Regression tests against R: tests/reference/r_clinic_lmm.json (tests/reference/r_clinic_lmm.R,
lme4 1.1-31 / lmerTest 3.1-3 / emmeans 1.8.4, data tests/reference/r_clinic_lmm.csv).
Parameter-recovery tests (simulated data with known truth) are in their own section below.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import PainModelOptions
from analysis.endpoints.pain import default_formula, fit_pain_model
from analysis.errors import ConfigError
from analysis.models.lmm import TIDY_COLUMNS

REF = Path(__file__).resolve().parents[1] / "reference"
RC = json.loads((REF / "r_clinic_lmm.json").read_text())


@pytest.fixture(scope="module")
def clinic_log():
    return pd.read_csv(REF / "r_clinic_lmm.csv")


# -- regression against R --------------------------------------------------------------------
def test_default_pain_model_with_clinic_level_equals_lme4_and_emmeans(clinic_log):
    # R: lmer(pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id))
    ref = RC["clinic_slope_reml"]
    res = fit_pain_model(clinic_log, PainModelOptions(clinic_level=True), control="usual_care")
    assert res.health.status == "estimated" and res.n_patients == 80
    assert res.fit.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-9)  # clinic_slope_reml.REMLcrit
    fe = res.fixed_effects.set_index("term")
    # readable names: R's "week:armorthotics" is ours "week:arm[orthotics]"
    r = ref["fixef_satterthwaite"]["week:armorthotics"]  # clinic_slope_reml.fixef_satterthwaite (lmerTest)
    assert fe.loc["week:arm[orthotics]", "estimate"] == pytest.approx(r["Estimate"], rel=1e-4)
    assert fe.loc["week:arm[orthotics]", "df"] == pytest.approx(r["df"], rel=1e-3)
    means = res.marginal_means.set_index("term")
    for r in ref["emmeans"]:  # clinic_slope_reml.emmeans (emmeans ~ arm | week)
        row = means.loc[f"{r['arm']}, week {r['week']:g}"]
        assert row["estimate"] == pytest.approx(r["emmean"], rel=1e-4)
        assert row["std_error"] == pytest.approx(r["SE"], rel=1e-4)
        assert row["df"] == pytest.approx(r["df"], rel=1e-3)
    con = res.contrasts.set_index("term")
    for r in ref["contrasts"]:  # clinic_slope_reml.contrasts (trt.vs.ctrl, adjust = "none")
        row = con.loc[f"{r['contrast']}, week {r['week']:g}"]
        assert row["estimate"] == pytest.approx(r["estimate"], rel=1e-4, abs=1e-7)
        assert row["conf_low"] == pytest.approx(r["lower.CL"], rel=1e-4, abs=1e-6)
        assert row["conf_high"] == pytest.approx(r["upper.CL"], rel=1e-4, abs=1e-6)
    sd = res.slope_differences.set_index("term")
    for r in ref["trend_contrasts"]:  # clinic_slope_reml.trend_contrasts (emtrends, trt.vs.ctrl)
        row = sd.loc[f"week slope: {r['contrast']}"]
        assert row["estimate"] == pytest.approx(r["estimate"], rel=1e-4)
        assert row["p_value"] == pytest.approx(r["p.value"], rel=1e-3)
    for table in res.tables().values():
        if "term" in table and table is not res.variance_components:
            assert list(table.columns) == TIDY_COLUMNS


def test_covariates_are_added_to_the_default_formula(clinic_log):
    # R: lmer(pain_score ~ week * arm + foot_posture_index + sex + (1 + week | patient_id))
    res = fit_pain_model(clinic_log, PainModelOptions(covariates=["foot_posture_index", "sex"]), "usual_care")
    assert res.formula == ("pain_score ~ week * C(arm, Treatment(reference='usual_care'))"
                           " + foot_posture_index + sex")
    # r_clinic_lmm.json: covariates_slope_reml.REMLcrit
    assert res.fit.reml_criterion == pytest.approx(RC["covariates_slope_reml"]["REMLcrit"], rel=1e-9)
    # r_clinic_lmm.json: covariates_slope_reml.fixef_satterthwaite.sexM
    r = RC["covariates_slope_reml"]["fixef_satterthwaite"]["sexM"]
    assert res.fixed_effects.set_index("term").loc["sex[M]", "estimate"] == pytest.approx(r["Estimate"], rel=1e-4)


# -- behaviour -------------------------------------------------------------------------------
def test_user_formula_is_checked_before_patsy(clinic_log):
    opts = PainModelOptions(formula="pain_score ~ __import__('os').system('echo hi')")
    with pytest.raises(ConfigError, match="__import__"):
        fit_pain_model(clinic_log, opts, "usual_care")


def test_default_formula_quotes_the_control_safely():
    f = default_formula("pain_score", "week", "arm", "it's care", ["age"])
    assert f == "pain_score ~ week * C(arm, Treatment(reference=\"it's care\")) + age"


def test_baseline_covariate_is_derived_and_baseline_visit_leaves_the_response(clinic_log):
    res = fit_pain_model(clinic_log, PainModelOptions(covariates=["baseline_pain"], random="intercept",
                                                      weeks=[12.0]), "usual_care")
    assert res.health.status == "estimated"
    assert any("baseline_pain derived" in w for w in res.health.warnings)
    used = res.fit.design.data
    assert (used["week"] > 0).all()
    first = clinic_log.sort_values("week").drop_duplicates("patient_id").set_index("patient_id")["pain_score"]
    assert np.allclose(used["baseline_pain"], used["patient_id"].map(first))
    assert "baseline_pain" in set(res.fixed_effects["term"])


# -- parameter recovery (simulated, known truth) ---------------------------------------------
TRUE_SLOPES = {"usual_care": -0.08, "orthotics": -0.15, "deep_tissue_massage": -0.12, "strength_training": -0.22}


def simulate_pain(n_patients=200, seed=20261121):
    rng = np.random.default_rng(seed)
    arms = np.array(list(TRUE_SLOPES))[np.arange(n_patients) % 4]
    weeks = np.array([0, 1, 2, 3, 4, 6, 8, 10, 12], float)
    sd0, sd1, rho = 1.2, 0.05, -0.2
    cov = np.array([[sd0 ** 2, rho * sd0 * sd1], [rho * sd0 * sd1, sd1 ** 2]])
    u = rng.multivariate_normal([0, 0], cov, size=n_patients)
    rows = []
    for i in range(n_patients):
        w = weeks[rng.random(len(weeks)) > 0.1]
        y = 6 + u[i, 0] + (TRUE_SLOPES[arms[i]] + u[i, 1]) * w + rng.normal(0, 1, len(w))
        rows.append(pd.DataFrame({"patient_id": f"P{i:03d}", "clinic_id": f"C{i % 5}", "week": w,
                                  "arm": arms[i], "pain_score": y}))
    return pd.concat(rows, ignore_index=True)


def test_recovery_true_slope_differences_lie_in_95pct_intervals():
    res = fit_pain_model(simulate_pain(), PainModelOptions(), control="usual_care")
    assert res.health.status == "estimated"
    sd = res.slope_differences.set_index("term")
    for arm, slope in TRUE_SLOPES.items():
        if arm == "usual_care":
            continue
        row = sd.loc[f"week slope: {arm} - usual_care"]
        truth = slope - TRUE_SLOPES["usual_care"]
        assert row["conf_low"] < truth < row["conf_high"], arm
    vc = res.variance_components
    assert vc.loc[vc.term1.eq("(Intercept)") & vc.term2.isna(), "estimate"].item() == pytest.approx(1.2, rel=0.2)
    assert res.fit.sigma == pytest.approx(1.0, rel=0.1)
    assert "week:arm[deep_tissue_massage]" in set(res.fixed_effects["term"])


def test_model_columns_and_categorical_arm_give_the_plain_path_numbers(clinic_log):
    # fit_pain_model copies only the model's columns and makes the arm a Categorical; fitting the
    # whole table with the arm as text (the plain path) must give the same numbers
    from analysis.endpoints.pain import prepare_data
    from analysis.models.lmm import fit_lmm

    res = fit_pain_model(clinic_log, PainModelOptions(clinic_level=False))
    df, _, _ = prepare_data(clinic_log, "pain_score", "arm", "week", "patient_id", "usual_care")
    assert df["arm"].dtype == object
    plain = fit_lmm(df, res.formula, "patient_id", "slope")
    pd.testing.assert_frame_equal(res.fixed_effects, plain.fixed_effects)
    assert isinstance(res.fit.design.data["arm"].dtype, pd.CategoricalDtype)
