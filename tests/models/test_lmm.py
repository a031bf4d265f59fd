"""analysis.models.lmm: fit_lmm against lme4 / lmerTest.

R numbers: tests/reference/r_reference.json (made by tests/reference/r_reference.R, lme4 1.1-31,
lmerTest 3.1-3) and tests/reference/r_clinic_lmm.json (tests/reference/r_clinic_lmm.R, data
tests/reference/r_clinic_lmm.csv). Regression tests against R only; parameter recovery on
simulated data is in tests/endpoints/test_pain.py.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.errors import ConfigError
from analysis.models.lmm import TIDY_COLUMNS, LmmFit, fit_lmm, get_engine

REF = Path(__file__).resolve().parents[1] / "reference"
R = json.loads((REF / "r_reference.json").read_text())
RC = json.loads((REF / "r_clinic_lmm.json").read_text())
REL = 1e-4


@pytest.fixture(scope="module")
def sleep():
    return pd.read_csv(REF / "sleepstudy.csv")


@pytest.fixture(scope="module")
def slope_fit(sleep):
    # R: lmer(Reaction ~ Days + (Days | Subject), ss, REML = TRUE)
    return fit_lmm(sleep, "Reaction ~ Days", "Subject", "slope", time="Days")


def _rel(a, b):
    return abs(a - b) / abs(b)


def test_slope_model_equals_lme4(slope_fit):
    ref = R["sleepstudy_slope_reml"]
    f = slope_fit
    assert f.health.status == "estimated" and f.health.converged and not f.health.singular
    assert list(f.fixed_effects.columns) == TIDY_COLUMNS
    fe = f.fixed_effects.set_index("term")
    diffs = []
    for term in ["(Intercept)", "Days"]:
        r = ref["fixef_satterthwaite"][term]  # r_reference.json: sleepstudy_slope_reml.fixef_satterthwaite (lmerTest)
        diffs += [_rel(fe.loc[term, "estimate"], r["Estimate"]), _rel(fe.loc[term, "std_error"], r["Std. Error"]),
                  _rel(fe.loc[term, "statistic"], r["t value"]), _rel(fe.loc[term, "df"], r["df"])]
        # p ~ 1e-17 moves 3e-5 per 1e-5 change in df (lmerTest's own df carry ~1e-5 of noise)
        assert fe.loc[term, "p_value"] == pytest.approx(r["Pr(>|t|)"], rel=1e-3)
    vc = f.variance_components
    sd = dict(zip(vc["group"] + ":" + vc["term1"].fillna("NA") + ":" + vc["term2"].fillna("NA"), vc["estimate"]))
    for key, value in ref["sdcor"].items():  # r_reference.json: sleepstudy_slope_reml.sdcor (VarCorr sdcor)
        diffs.append(_rel(sd[key], value))
    diffs.append(_rel(f.sigma, ref["sigma"]))  # r_reference.json: sleepstudy_slope_reml.sigma
    diffs.append(_rel(f.reml_criterion, ref["REMLcrit"]))  # r_reference.json: sleepstudy_slope_reml.REMLcrit
    assert max(diffs) < REL
    assert f.reml_criterion == pytest.approx(1743.62827196, rel=1e-9)


def test_intercept_model_equals_lme4(sleep):
    # R: lmer(Reaction ~ Days + (1 | Subject), ss, REML = TRUE)
    ref = R["sleepstudy_intercept_reml"]
    f = fit_lmm(sleep, "Reaction ~ Days", "Subject", "intercept", time="Days")
    assert f.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-9)  # sleepstudy_intercept_reml.REMLcrit
    fe = f.fixed_effects.set_index("term")
    for term in ["(Intercept)", "Days"]:
        r = ref["fixef_satterthwaite"][term]  # sleepstudy_intercept_reml.fixef_satterthwaite (lmerTest)
        assert fe.loc[term, "estimate"] == pytest.approx(r["Estimate"], rel=REL)
        assert fe.loc[term, "std_error"] == pytest.approx(r["Std. Error"], rel=REL)
        assert fe.loc[term, "df"] == pytest.approx(r["df"], rel=1e-4)
        assert fe.loc[term, "p_value"] == pytest.approx(r["Pr(>|t|)"], rel=1e-3)
    vc = f.variance_components
    # sleepstudy_intercept_reml.sdcor."Subject:(Intercept):NA" and "Residual:NA:NA"
    assert vc.loc[vc.group == "Subject", "estimate"].item() == pytest.approx(37.1238267668, rel=REL)
    assert f.sigma == pytest.approx(30.9912338986, rel=REL)


def test_ml_fit_equals_lme4(sleep):
    # R: lmer(Reaction ~ Days + (Days | Subject), ss, REML = FALSE)
    ref = R["sleepstudy_slope_ml"]
    f = fit_lmm(sleep, "Reaction ~ Days", "Subject", "~ Days", time="Days", reml=False)
    assert f.loglik == pytest.approx(ref["logLik"], rel=1e-9)  # sleepstudy_slope_ml.logLik
    assert f.aic == pytest.approx(ref["AIC"], rel=1e-9)  # sleepstudy_slope_ml.AIC
    assert f.bic == pytest.approx(ref["BIC"], rel=1e-9)  # sleepstudy_slope_ml.BIC
    assert f.deviance == pytest.approx(-2 * ref["logLik"], rel=1e-9) and np.isnan(f.reml_criterion)
    vc = f.variance_components
    sd = dict(zip(vc["group"] + ":" + vc["term1"].fillna("NA") + ":" + vc["term2"].fillna("NA"), vc["estimate"]))
    for key, value in ref["sdcor"].items():  # sleepstudy_slope_ml.sdcor
        assert sd[key] == pytest.approx(value, rel=REL)
    assert f.beta == pytest.approx([ref["fixef"]["(Intercept)"], ref["fixef"]["Days"]], rel=1e-6)


def test_contrast_row_and_fit_pieces(slope_fit, sleep):
    f = slope_fit
    row = f.contrast([1, 9], "Days 9")
    assert list(row.columns) == TIDY_COLUMNS and row["term"].item() == "Days 9"
    # r_reference.json: sleepstudy_slope_reml.emmeans_days_9 (emmeans emmean, SE, df)
    assert row["estimate"].item() == pytest.approx(345.6106784848, rel=1e-6)
    assert row["std_error"].item() == pytest.approx(14.6288155375, rel=REL)
    assert row["df"].item() == pytest.approx(16.9998820225, rel=1e-4)
    assert f.contrast([1, 9], alpha=0.1)["conf_low"].item() > row["conf_low"].item()
    assert f.n_obs == 180 and f.n_groups == {"Subject": 18}
    assert np.allclose(f.fitted + f.residuals, sleep["Reaction"])
    assert f.random_effects.shape == (18, 4) and abs(f.random_effects["Days"].mean()) < 1e-6
    assert f.health.fixed_effects_agreement < 1e-6 and f.health.hessian_positive_definite
    assert f.health.random_structure == "(1 + Days | Subject)"


def test_clinic_nested_model_equals_lme4():
    # R: lmer(pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id)), bobyqa
    ref = RC["clinic_slope_reml"]
    d = pd.read_csv(REF / "r_clinic_lmm.csv")
    f = fit_lmm(d, "pain_score ~ week * C(arm, Treatment(reference='usual_care'))", "patient_id",
                "slope", clinic="clinic_id")
    assert f.health.status == "estimated" and f.n_groups == {"patient_id": 80, "clinic_id": 6}
    assert f.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-9)  # clinic_slope_reml.REMLcrit
    vc = f.variance_components
    sd = dict(zip(vc["group"] + ":" + vc["term1"].fillna("NA") + ":" + vc["term2"].fillna("NA"), vc["estimate"]))
    for key, value in ref["sdcor"].items():  # clinic_slope_reml.sdcor (VarCorr sdcor)
        assert sd[key] == pytest.approx(value, rel=REL), key
    fe = f.fixed_effects.set_index("term")
    for r_name, r in ref["fixef_satterthwaite"].items():  # clinic_slope_reml.fixef_satterthwaite (lmerTest)
        term = r_name.replace("arm", "arm[", 1) + "]" if "arm" in r_name else r_name
        assert fe.loc[term, "estimate"] == pytest.approx(r["Estimate"], rel=REL, abs=1e-7)
        assert fe.loc[term, "std_error"] == pytest.approx(r["Std. Error"], rel=REL)
        assert fe.loc[term, "df"] == pytest.approx(r["df"], rel=1e-3)


def test_configuration_errors_are_config_errors(sleep):
    with pytest.raises(ConfigError, match="engine"):
        get_engine("lme4")
    with pytest.raises(ConfigError, match="optimizer"):
        fit_lmm(sleep, "Reaction ~ Days", "Subject", optimizers=("adam",))
    with pytest.raises(ConfigError, match="random"):
        fit_lmm(sleep, "Reaction ~ Days", "Subject", random="slopes", time="Days")
    with pytest.raises(ConfigError, match="refused"):
        fit_lmm(sleep, "Reaction ~ __import__('os').getcwd()", "Subject")


def test_not_estimable_fit_returns_empty_tables(sleep):
    f = fit_lmm(sleep.assign(Reaction=np.nan), "Reaction ~ Days", "Subject", time="Days")
    assert isinstance(f, LmmFit) and not f.estimated
    assert f.health.status == "not estimable: no rows with complete model values"
    assert f.fixed_effects.empty and list(f.fixed_effects.columns) == TIDY_COLUMNS
    assert f.contrast([1, 0])["estimate"].isna().all()
