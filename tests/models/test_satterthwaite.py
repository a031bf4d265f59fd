"""analysis.models.satterthwaite: lme4's profiled deviance and lmerTest's Satterthwaite df.

R numbers: tests/reference/r_reference.json (tests/reference/r_reference.R: lme4 1.1-31, lmerTest
3.1-3) and tests/reference/r_clinic_lmm.json (tests/reference/r_clinic_lmm.R).
"""


import numpy as np
import pytest

from analysis.models.satterthwaite import (
    ProfiledDeviance,
    Satterthwaite,
    hessian,
    jacobian,
    optimise_theta,
)
from tests.reference.data import r_numbers, sleepstudy_arrays

R = r_numbers("r_reference")


def _sleepstudy(q, reml=True):
    return ProfiledDeviance(*sleepstudy_arrays(q), reml=reml)


@pytest.fixture(scope="module")
def slope_fit():
    dev = _sleepstudy(2)
    theta, info = optimise_theta(dev, [1.0, 0.0, 1.0])
    return dev, theta, info


def test_remlcrit_slope_model(slope_fit):
    dev, theta, info = slope_fit
    # r_reference.json: sleepstudy_slope_reml.REMLcrit (lme4 REMLcrit(m1))
    assert info["deviance"] == pytest.approx(1743.62827196, rel=1e-9)
    assert info["gradient_norm"] < 1e-4


@pytest.mark.parametrize("term, L, df_r", [
    # r_reference.json: sleepstudy_slope_reml.fixef_satterthwaite.(Intercept).df (lmerTest)
    ("(Intercept)", [1, 0], 16.9997262885),
    # r_reference.json: sleepstudy_slope_reml.fixef_satterthwaite.Days.df (lmerTest)
    ("Days", [0, 1], 16.9999837256),
    # r_reference.json: sleepstudy_slope_reml.emmeans_days_9.df (emmeans, lmer.df = "satterthwaite")
    ("Days = 9", [1, 9], 16.9998820225),
])
def test_satterthwaite_df_slope_model(slope_fit, term, L, df_r):
    dev, theta, _ = slope_fit
    sat = Satterthwaite(dev, theta, dev.estimates(theta)["sigma"])
    assert sat.positive_definite
    assert sat.df(L) == pytest.approx(df_r, rel=1e-4)


def test_satterthwaite_df_intercept_model():
    dev = _sleepstudy(1)
    theta, info = optimise_theta(dev, [1.0])
    # r_reference.json: sleepstudy_intercept_reml.REMLcrit (lme4)
    assert info["deviance"] == pytest.approx(1786.4650853949, rel=1e-10)
    sat = Satterthwaite(dev, theta, dev.estimates(theta)["sigma"])
    # r_reference.json: sleepstudy_intercept_reml.fixef_satterthwaite.(Intercept).df (lmerTest)
    assert sat.df([1, 0]) == pytest.approx(22.8101989553, rel=1e-5)
    # r_reference.json: sleepstudy_intercept_reml.fixef_satterthwaite.Days.df (lmerTest)
    assert sat.df([0, 1]) == pytest.approx(161.0000000546, rel=1e-6)


def test_ml_deviance_matches_lme4_loglik():
    dev = _sleepstudy(2, reml=False)
    theta, info = optimise_theta(dev, [1.0, 0.0, 1.0])
    # r_reference.json: sleepstudy_slope_ml.logLik (lme4 logLik(m1ml))
    assert -info["deviance"] / 2 == pytest.approx(-875.9696722445, rel=1e-9)


def _dense_reml_deviance(y, X, Z_full, theta_cov):
    """Textbook REML deviance with dense V (Harville 1977), for a small check only."""
    n, p = X.shape
    V = np.eye(n) + Z_full @ theta_cov @ Z_full.T
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    r2 = r @ Vi @ r
    return (np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1]
            + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p))))


def test_blockwise_clinic_deviance_equals_dense_computation():
    rng = np.random.default_rng(11)
    n_pat, n_vis = 12, 4
    patient = np.repeat(np.arange(n_pat), n_vis)
    clinic_of_patient = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    week = np.tile([0.0, 2.0, 5.0, 9.0], n_pat)
    X = np.column_stack([np.ones(n_pat * n_vis), week, rng.normal(size=n_pat * n_vis)])
    y = rng.normal(size=n_pat * n_vis) + week * 0.3
    Z = np.column_stack([np.ones_like(week), week])
    dev = ProfiledDeviance(y, X, Z, patient, clinic_of_patient, reml=True)
    theta = np.array([0.8, -0.1, 0.3, 0.6])  # Lambda = [[.8, 0], [-.1, .3]], lambda_clinic = .6
    # dense Z: patient blocks (intercept, slope) then clinic indicators
    Zp = np.zeros((len(y), 2 * n_pat))
    Zp[np.arange(len(y)), 2 * patient] = 1.0
    Zp[np.arange(len(y)), 2 * patient + 1] = week
    Zc = (clinic_of_patient[patient][:, None] == np.arange(3)).astype(float)
    Lam = np.array([[0.8, 0.0], [-0.1, 0.3]])
    cov = np.zeros((2 * n_pat + 3, 2 * n_pat + 3))
    for j in range(n_pat):
        cov[2 * j:2 * j + 2, 2 * j:2 * j + 2] = Lam @ Lam.T
    cov[2 * n_pat:, 2 * n_pat:] = np.eye(3) * 0.36
    expected = _dense_reml_deviance(y, X, np.hstack([Zp, Zc]), cov)
    assert dev.deviance(theta) == pytest.approx(expected, rel=1e-12)
    # the conditional modes satisfy y - fitted being orthogonal to X under V^-1 (GLS normal eqs)
    est = dev.estimates(theta)
    assert np.allclose(est["fitted"] - X @ est["beta"],
                       (np.hstack([Zp, Zc]) @ cov @ np.hstack([Zp, Zc]).T
                        @ np.linalg.solve(np.eye(len(y)) + np.hstack([Zp, Zc]) @ cov @ np.hstack([Zp, Zc]).T,
                                          y - X @ est["beta"])), atol=1e-10)


def test_richardson_derivatives_on_known_functions():
    f = lambda x: np.exp(x[0]) * np.sin(x[1]) + x[0] ** 2 * x[1]
    x = np.array([0.3, 1.1])
    H = hessian(f, x)
    exact = np.array([[np.exp(0.3) * np.sin(1.1) + 2 * 1.1, np.exp(0.3) * np.cos(1.1) + 2 * 0.3],
                      [np.exp(0.3) * np.cos(1.1) + 2 * 0.3, -np.exp(0.3) * np.sin(1.1)]])
    assert np.allclose(H, exact, rtol=1e-9, atol=1e-9)
    J = jacobian(lambda z: np.array([z[0] * z[1], np.log(z[1])]), x)
    assert np.allclose(J, [[1.1, 0.3], [0.0, 1 / 1.1]], rtol=1e-10)
