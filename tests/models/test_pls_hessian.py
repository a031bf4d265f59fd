"""analysis.models.pls_hessian: the analytic Hessian of lmerTest's deviance in (theta, sigma) and
the Jacobian of Var(beta), against numerical derivatives of the same criterion.

References: Richardson-extrapolated central differences (numDeriv's recipe, as lmerTest calls it:
analysis.models.satterthwaite.hessian / jacobian) of ``deviance_vp`` and ``covbeta``, and
Richardson-extrapolated differences of the analytic gradient (GradientSatterthwaite with
``analytic=False``, 4 levels from a 1e-2 step). Data: lme4's sleepstudy (tests/reference), the
clinic-nested model of tests/reference/r_clinic_lmm.csv and simulated unbalanced logs.
"""

import numpy as np
import pytest

import analysis.models.satterthwaite_gradient as sg
from analysis.models.pls_deviance import PlsDeviance
from analysis.models.pls_hessian import vp_hessian
from analysis.models.satterthwaite import hessian, jacobian
from tests.models.test_satterthwaite_gradient import _clinic, _fitted, _sleepstudy


def _simulated(q, clinics, reml, seed=3, m=120):
    """An unbalanced log: 1-12 visits a patient at uneven weeks, two arms, optional clinics."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 13, m)
    patient = np.repeat(np.arange(m), sizes)
    n = len(patient)
    week = rng.uniform(0, 12, n)
    arm = rng.integers(0, 2, m)[patient].astype(float)
    clinic_of_patient = rng.integers(0, 6, m) if clinics else None
    clinic_of_patient = None if not clinics else np.r_[np.arange(6), clinic_of_patient[6:]]
    b = rng.normal(size=(m, 2)) * [1.5, 0.3]
    c = rng.normal(size=6) * 0.8
    y = 5 + 0.4 * arm - 0.2 * week + b[patient, 0] + b[patient, 1] * week + rng.normal(size=n)
    if clinics:
        y = y + c[clinic_of_patient[patient]]
    X = np.column_stack([np.ones(n), arm, week, arm * week])
    Z = np.column_stack([np.ones(n), week])[:, :q]
    return PlsDeviance(y, X, Z, patient, clinic_of_patient, reml=reml)


CASES = {
    "sleepstudy slope REML": lambda: _sleepstudy(2, True),
    "sleepstudy slope ML": lambda: _sleepstudy(2, False),
    "sleepstudy intercept REML": lambda: _sleepstudy(1, True),
    "sleepstudy intercept ML": lambda: _sleepstudy(1, False),
    "clinic model REML": _clinic,
    "simulated slope REML": lambda: _simulated(2, False, True),
    "simulated slope ML": lambda: _simulated(2, False, False),
    "simulated slope + clinic REML": lambda: _simulated(2, True, True),
    "simulated slope + clinic ML": lambda: _simulated(2, True, False),
    "simulated intercept + clinic REML": lambda: _simulated(1, True, True),
    "simulated intercept + clinic ML": lambda: _simulated(1, True, False),
}


def _at_optimum(name):
    dev = CASES[name]()
    theta, sigma = _fitted(dev)
    return dev, theta, sigma


@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_equals_extrapolated_differences_of_the_gradient(name, monkeypatch):
    dev, theta, sigma = _at_optimum(name)
    H, jac = vp_hessian(dev, theta, sigma, dev._profile(theta, full=True))
    monkeypatch.setattr(sg, "STEP", 1e-2)
    monkeypatch.setattr(sg, "LEVELS", 4)
    numeric = sg.GradientSatterthwaite(dev, theta, sigma, analytic=False)
    assert numeric.free.all()  # no boundary fit among the cases: every row is compared
    scale = np.abs(numeric.hessian).max()
    assert np.abs(H - numeric.hessian).max() < 1e-8 * scale
    assert np.abs(jac - numeric.jac).max() < 1e-7 * np.abs(numeric.jac).max()


@pytest.mark.parametrize("name", ["sleepstudy slope REML", "sleepstudy intercept ML",
                                  "simulated slope + clinic REML", "simulated intercept + clinic ML"])
def test_hessian_equals_richardson_hessian_of_the_deviance(name):
    dev, theta, sigma = _at_optimum(name)
    x = np.append(theta, sigma) * 1.1  # away from the optimum too: every term of the formula counts
    for point in (np.append(theta, sigma), x):
        H, jac = vp_hessian(dev, point[:-1], point[-1], dev._profile(point[:-1], full=True))
        numeric = hessian(dev.deviance_vp, point)            # numDeriv's recipe, as lmerTest
        np.testing.assert_allclose(H, numeric, rtol=2e-6, atol=2e-6 * np.abs(numeric).max())
        numeric_jac = jacobian(dev.covbeta, point)
        np.testing.assert_allclose(jac, numeric_jac, rtol=1e-6, atol=1e-7 * np.abs(numeric_jac).max())


@pytest.mark.parametrize("name", sorted(CASES))
def test_analytic_df_equal_df_from_differences(name):
    dev, theta, sigma = _at_optimum(name)
    analytic = sg.GradientSatterthwaite(dev, theta, sigma)
    differences = sg.GradientSatterthwaite(dev, theta, sigma, analytic=False)
    assert analytic.positive_definite == differences.positive_definite
    rng = np.random.default_rng(5)
    for L in list(np.eye(dev.p)) + [rng.normal(size=dev.p) for _ in range(5)]:
        assert analytic.df(L) == pytest.approx(differences.df(L), rel=1e-6)


def test_boundary_parameters_are_held_fixed():
    """A clinic SD at 0 (a boundary fit): its row and column are left out, as by differences."""
    dev, theta, sigma = _at_optimum("simulated slope + clinic REML")
    theta = theta.copy()
    theta[-1] = 0.0
    analytic = sg.GradientSatterthwaite(dev, theta, sigma)
    differences = sg.GradientSatterthwaite(dev, theta, sigma, analytic=False)
    assert analytic.hessian.shape == differences.hessian.shape == (4, 4)
    np.testing.assert_allclose(analytic.hessian, differences.hessian, rtol=1e-6,
                               atol=1e-8 * np.abs(differences.hessian).max())
    np.testing.assert_allclose(analytic.jac, differences.jac, rtol=1e-6,
                               atol=1e-8 * np.abs(differences.jac).max())
