"""analysis.models.satterthwaite_gradient: Satterthwaite df from the pls engine's analytic gradient.

R numbers: tests/reference/r_reference.json (tests/reference/r_reference.R: lme4 1.1-31, lmerTest
3.1-3) and tests/reference/r_clinic_lmm.json (tests/reference/r_clinic_lmm.R). The fast df are
also checked against the deviance-difference df of analysis.models.satterthwaite (lmerTest's
numDeriv recipe) and against their own Richardson-extrapolated version.
"""


import numpy as np
import pandas as pd
import pytest

import analysis.models.satterthwaite_gradient as sg
from analysis.models.engine_pls import minimise
from analysis.models.pls_deviance import PlsDeviance
from analysis.models.satterthwaite import Satterthwaite, gradient
from tests.reference.data import REF, r_numbers, sleepstudy_arrays

RC = r_numbers("r_clinic_lmm")


def _sleepstudy(q, reml=True):
    return PlsDeviance(*sleepstudy_arrays(q), reml=reml)


def _clinic():
    d = pd.read_csv(REF / "r_clinic_lmm.csv")
    arms = ["usual_care"] + sorted(set(d["arm"]) - {"usual_care"})
    A = np.column_stack([(d["arm"] == a).to_numpy(float) for a in arms[1:]])
    w = d["week"].to_numpy(float)
    X = np.column_stack([np.ones(len(d)), A, w, A * w[:, None]])
    pairs = pd.MultiIndex.from_arrays([d["clinic_id"], d["patient_id"]])
    codes, uniq = pd.factorize(pairs, sort=True)
    clinic_of_patient = pd.factorize(uniq.get_level_values(0), sort=True)[0]
    Z = np.column_stack([np.ones(len(d)), w])
    return PlsDeviance(d["pain_score"].to_numpy(float), X, Z, codes, clinic_of_patient)


def _fitted(dev):
    theta, info = minimise(dev, dev.moment_start())
    assert info["gradient_norm"] < 1e-6
    return theta, dev.estimates(theta)["sigma"]


@pytest.mark.parametrize("term, L, df_r", [
    # r_reference.json: sleepstudy_slope_reml.fixef_satterthwaite.(Intercept).df (lmerTest)
    ("(Intercept)", [1, 0], 16.9997262885),
    # r_reference.json: sleepstudy_slope_reml.fixef_satterthwaite.Days.df (lmerTest)
    ("Days", [0, 1], 16.9999837256),
    # r_reference.json: sleepstudy_slope_reml.emmeans_days_9.df (emmeans, lmer.df = "satterthwaite")
    ("Days = 9", [1, 9], 16.9998820225),
])
def test_df_slope_model_equals_lmertest(term, L, df_r):
    dev = _sleepstudy(2)
    theta, sigma = _fitted(dev)
    sat = sg.GradientSatterthwaite(dev, theta, sigma)
    assert sat.positive_definite
    assert sat.df(L) == pytest.approx(df_r, rel=1e-4)


def test_df_intercept_model_equals_lmertest():
    dev = _sleepstudy(1)
    theta, sigma = _fitted(dev)
    sat = sg.GradientSatterthwaite(dev, theta, sigma)
    # r_reference.json: sleepstudy_intercept_reml.fixef_satterthwaite.(Intercept).df (lmerTest)
    assert sat.df([1, 0]) == pytest.approx(22.8101989553, rel=1e-5)
    # r_reference.json: sleepstudy_intercept_reml.fixef_satterthwaite.Days.df (lmerTest)
    assert sat.df([0, 1]) == pytest.approx(161.0000000546, rel=1e-6)


def test_df_clinic_model_equals_lmertest():
    dev = _clinic()
    theta, sigma = _fitted(dev)
    sat = sg.GradientSatterthwaite(dev, theta, sigma)
    # r_clinic_lmm.json: clinic_slope_reml.fixef_satterthwaite.week.df (lmerTest); X column 4 is week
    df_r = RC["clinic_slope_reml"]["fixef_satterthwaite"]["week"]["df"]
    assert sat.df(np.eye(dev.p)[4]) == pytest.approx(df_r, rel=1e-3)


@pytest.mark.parametrize("make, reml", [(lambda r: _sleepstudy(2, r), True),
                                        (lambda r: _sleepstudy(2, r), False),
                                        (lambda r: _sleepstudy(1, r), True),
                                        (lambda r: _clinic(), True)])
def test_gradient_df_equal_deviance_difference_df(make, reml):
    dev = make(reml)
    theta, sigma = _fitted(dev)
    slow = Satterthwaite(dev, theta, sigma)
    fast = sg.GradientSatterthwaite(dev, theta, sigma)
    assert fast.positive_definite == slow.positive_definite
    rng = np.random.default_rng(7)
    for L in list(np.eye(dev.p)) + [rng.normal(size=dev.p) for _ in range(10)]:
        assert fast.df(L) == pytest.approx(slow.df(L), rel=1e-5)
    np.testing.assert_allclose(fast.vcov, slow.vcov, rtol=1e-12)


def test_plain_differences_equal_extrapolated_ones(monkeypatch):
    dev = _clinic()
    theta, sigma = _fitted(dev)
    plain = sg.GradientSatterthwaite(dev, theta, sigma, analytic=False)
    monkeypatch.setattr(sg, "STEP", 1e-2)
    monkeypatch.setattr(sg, "LEVELS", 4)
    extrapolated = sg.GradientSatterthwaite(dev, theta, sigma, analytic=False)
    scale = np.abs(extrapolated.hessian).max()
    assert np.abs(plain.hessian - extrapolated.hessian).max() < 1e-7 * scale
    for L in np.eye(dev.p):
        assert plain.df(L) == pytest.approx(extrapolated.df(L), rel=1e-7)


def test_vp_gradient_is_the_gradient_of_deviance_vp():
    dev = _sleepstudy(2)
    theta, sigma = _fitted(dev)
    x = np.append(theta, sigma) * 1.05  # away from the optimum, where the gradient is not 0
    g, _ = dev.vp_gradient(x)
    numeric = gradient(dev.deviance_vp, x)  # Richardson-extrapolated central differences
    np.testing.assert_allclose(g, numeric, rtol=1e-6)
    assert np.abs(g).max() > 1.0
