"""Population-averaged count GEE (src/analysis/models/gee_counts.py) against R.

Sources of the reference numbers
--------------------------------
* ``r_reference.json`` — ``Rscript tests/reference/r_reference.R tests/reference`` (R 4.2.2,
  geepack 1.3.9): ``geeglm(y ~ trt + lbase + lage + V4, family = poisson, id = subject,
  corstr = "exchangeable")`` on MASS's ``epil``.
* ``r_counts_reference.json`` — ``Rscript tests/reference/r_counts_reference.R tests/reference``
  (R 4.2.2, MASS 7.3-58.2, geepack 1.3.9): ``MASS::glm.nb`` and, as geepack has no negative
  binomial variance, a hand-written exchangeable GEE in R (``gee_exch`` in that script) that
  reproduces geeglm's Poisson fit to 7e-9 before it is run with the NB2 variance.

All tests here are regression tests against R; parameter recovery is in tests/endpoints/test_episodes.py.
"""


import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.models.gee_counts import estimate_nb_alpha, fit_count_gee
from tests.reference.data import EPIL_TERMS, epil_design, r_numbers

R = r_numbers("r_reference")
RC = r_numbers("r_counts_reference")
TERMS = EPIL_TERMS


@pytest.fixture(scope="module")
def epil():
    return epil_design()


@pytest.fixture(scope="module")
def poisson_fit(epil):
    return fit_count_gee(*epil, family="poisson", names=TERMS)


@pytest.fixture(scope="module")
def negbin_fit(epil):
    return fit_count_gee(*epil, family="negative_binomial", names=TERMS)


def test_poisson_exchangeable_matches_geepack(poisson_fit):
    ref = R["epil_gee_poisson_exch"]["coef"]
    # r_reference.json: epil_gee_poisson_exch.coef.<term>.Estimate  (geeglm, coef(g))
    expected = [ref[t]["Estimate"] for t in TERMS]
    # r_reference.json: epil_gee_poisson_exch.coef.<term>.Std.err  (geeglm robust SE)
    expected_se = [ref[t]["Std.err"] for t in TERMS]
    np.testing.assert_allclose(poisson_fit.coef, expected, rtol=1e-4)
    np.testing.assert_allclose(poisson_fit.std_error, expected_se, rtol=1e-4)
    assert poisson_fit.converged and poisson_fit.hessian_positive_definite


def test_poisson_rate_ratio_and_interval_match_geepack(poisson_fit):
    z = stats.norm.ppf(0.975)
    b, se = poisson_fit.coef[1], poisson_fit.std_error[1]
    # r_reference.json: epil_gee_poisson_exch.rate_ratio_trt  (exp(coef(g)["trtprogabide"]))
    assert np.exp(b) == pytest.approx(0.98944006002, rel=1e-4)
    # r_reference.json: epil_gee_poisson_exch.rate_ratio_trt_ci95
    np.testing.assert_allclose(np.exp([b - z * se, b + z * se]),
                               [0.67926811907, 1.4412447823], rtol=1e-4)


def test_exchangeable_correlation_and_scale_use_geepack_moments(poisson_fit, epil):
    # geepack prints alpha 0.4023 and scale 4.616 for this fit (summary(g)); the moment
    # estimators with N and the pair count, not N - p and pairs - p. Recomputed here by hand.
    y, X, _, subject = epil
    mu = np.exp(X @ poisson_fit.coef)
    r = (y - mu) / np.sqrt(mu)
    phi = np.sum(r**2) / len(y)
    sums = pd.Series(r).groupby(subject).agg(["sum", lambda v: np.sum(v**2), "size"])
    pairs_prod = np.sum((sums["sum"] ** 2 - sums.iloc[:, 1]) / 2)
    n_pairs = np.sum(sums["size"] * (sums["size"] - 1) / 2)
    assert poisson_fit.working_correlation == pytest.approx(pairs_prod / (phi * n_pairs),
                                                            rel=1e-8)
    assert poisson_fit.working_correlation == pytest.approx(0.4023, abs=5e-5)
    assert poisson_fit.dispersion == pytest.approx(4.616, abs=5e-4)


def test_statsmodels_default_dof_correction_would_not_match(epil):
    # Guards the reason for ddof_scale=0: statsmodels' default (N - p, pairs - p) is off.
    y, X, offset, subject = epil
    default = sm.GEE(y, X, groups=subject, family=sm.families.Poisson(),
                     cov_struct=sm.cov_struct.Exchangeable()).fit()
    ref = R["epil_gee_poisson_exch"]["coef"]
    expected = np.array([ref[t]["Estimate"] for t in TERMS])  # r_reference.json, as above
    assert np.max(np.abs(default.params / expected - 1)) > 1e-4


def test_nb_dispersion_equals_glm_nb(epil):
    y, X, offset, _ = epil
    alpha, notes = estimate_nb_alpha(y, X, offset)
    # r_counts_reference.json: epil_glm_nb.theta  (MASS::glm.nb(...)$theta)
    assert 1 / alpha == pytest.approx(RC["epil_glm_nb"]["theta"], rel=1e-6)
    assert notes == []


def test_negative_binomial_gee_matches_r(negbin_fit):
    ref = RC["epil_gee_negbin_exch"]
    # r_counts_reference.json: epil_gee_negbin_exch.coef.<term>.estimate / .std_error
    # (hand-written GEE in R, NB2 variance with glm.nb's theta, exchangeable, sandwich)
    np.testing.assert_allclose(negbin_fit.coef, [ref["coef"][t]["estimate"] for t in TERMS],
                               rtol=1e-6)
    np.testing.assert_allclose(negbin_fit.std_error,
                               [ref["coef"][t]["std_error"] for t in TERMS], rtol=1e-6)
    # r_counts_reference.json: epil_gee_negbin_exch.alpha  (exchangeable correlation)
    assert negbin_fit.working_correlation == pytest.approx(ref["alpha"], rel=1e-6)
    assert negbin_fit.converged


def test_offset_enters_the_mean(epil):
    # A constant log-exposure offset c shifts only the intercept, by -c.
    y, X, offset, subject = epil
    shifted = fit_count_gee(y, X, offset + np.log(14.0), subject, family="poisson")
    base = fit_count_gee(y, X, offset, subject, family="poisson")
    assert shifted.coef[0] == pytest.approx(base.coef[0] - np.log(14.0), abs=1e-7)
    np.testing.assert_allclose(shifted.coef[1:], base.coef[1:], atol=1e-7)


# --- the vectorised GEE against statsmodels' GEE, the algorithm it re-implements -------------
# Oracle: statsmodels 0.15 ``GEE(y, X, groups, offset, family, Exchangeable()).fit(ddof_scale=0,
# ctol=1e-10, maxiter=200)``, the call fit_count_gee made before it was vectorised; the two share
# no code (statsmodels loops over clusters with Exchangeable.covariance_matrix_solve and
# Exchangeable.update).

def _statsmodels_gee(y, X, offset, groups, family, nb_alpha):
    fam = (sm.families.Poisson() if family == "poisson"
           else sm.families.NegativeBinomial(alpha=nb_alpha))
    model = sm.GEE(y, X, groups=groups, offset=offset, family=fam,
                   cov_struct=sm.cov_struct.Exchangeable())
    res = model.fit(ddof_scale=0, ctol=1e-10, maxiter=200)
    mu = np.asarray(res.fittedvalues)
    phi = np.sum((y - mu) ** 2 / fam.variance(mu)) / len(y)
    return res, float(model.cov_struct.dep_params), phi


def _unequal_clusters(seed=3):
    """A simulated log: 150 patients with 1-9 visits each (patient 0 has exactly one), varying
    exposure, two arms, a covariate and a gamma frailty (overdispersed, correlated counts)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 10, size=150)
    sizes[0] = 1
    groups = np.repeat(np.arange(150), sizes)
    arm = np.repeat(rng.integers(0, 2, size=150), sizes).astype(float)
    x = rng.normal(size=len(groups))
    offset = np.log(rng.uniform(7, 28, size=len(groups)))
    frailty = np.repeat(rng.gamma(2.0, 0.5, size=150), sizes)
    mu = np.exp(-2.0 - 0.4 * arm + 0.3 * x + offset) * frailty
    y = rng.poisson(mu).astype(float)
    X = np.column_stack([np.ones(len(y)), arm, x])
    # shuffle the rows: a patient's visits need not be adjacent
    order = rng.permutation(len(y))
    return y[order], X[order], offset[order], groups[order]


@pytest.mark.parametrize("data", ["epil", "unequal"])
@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_vectorised_gee_equals_statsmodels_gee(epil, data, family):
    y, X, offset, groups = epil if data == "epil" else _unequal_clusters()
    if data == "unequal":
        assert np.min(np.bincount(groups)) == 1 and np.max(np.bincount(groups)) > 5
    fit = fit_count_gee(y, X, offset, groups, family=family)
    res, rho, phi = _statsmodels_gee(y, X, offset, groups, family, fit.nb_alpha)
    np.testing.assert_allclose(fit.coef, res.params, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fit.cov, res.cov_robust, rtol=1e-8, atol=1e-14)
    assert fit.working_correlation == pytest.approx(rho, rel=1e-8)
    assert fit.dispersion == pytest.approx(phi, rel=1e-8)
    # statsmodels' last score (fit_history), not incorporating the scale, and its convergence
    assert fit.converged == bool(res.converged) is True
    last_score = np.max(np.abs(res.fit_history["score"][-1]))
    assert fit.gradient_norm < 1e-9 and last_score < 1e-9
    assert fit.n_groups == len(np.unique(groups)) and fit.n_obs == len(y)


def test_vectorised_gee_iterates_as_statsmodels():
    # Same iteration, not only the same fixed point: stopped after k steps, the estimates agree.
    y, X, offset, groups = _unequal_clusters()
    for k in (2, 3, 4):
        fit = fit_count_gee(y, X, offset, groups, family="poisson", maxiter=k)
        res = _statsmodels_gee_steps(y, X, offset, groups, k)
        np.testing.assert_allclose(fit.coef, res.params, rtol=1e-9)
        np.testing.assert_allclose(fit.cov, res.cov_robust, rtol=1e-8)
        assert not fit.converged
        assert "Iteration limit reached prior to convergence" in fit.warnings


def _statsmodels_gee_steps(y, X, offset, groups, k):
    model = sm.GEE(y, X, groups=groups, offset=offset, family=sm.families.Poisson(),
                   cov_struct=sm.cov_struct.Exchangeable())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IterationLimitWarning
        res = model.fit(ddof_scale=0, ctol=1e-10, maxiter=k)
    assert not res.converged
    return res


def test_gee_refuses_data_without_any_pair():
    y = np.array([1.0, 2.0, 0.0])
    X = np.column_stack([np.ones(3), [0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="no patient has two visits"):
        fit_count_gee(y, X, np.zeros(3), np.array([1, 2, 3]), family="poisson")


@pytest.mark.parametrize("data", ["epil", "unequal"])
def test_nb_alpha_newton_from_moments_equals_bfgs_path(epil, data):
    # The warm-started Newton (default) against BFGS from statsmodels' start + Newton polish,
    # the path estimate_nb_alpha took first; both statsmodels' NB2 likelihood, same maximum.
    y, X, offset, _ = epil if data == "epil" else _unequal_clusters()
    fast, notes = estimate_nb_alpha(y, X, offset)
    slow, slow_notes = estimate_nb_alpha(y, X, offset, method="bfgs")
    assert fast == pytest.approx(slow, rel=1e-10)
    assert notes == slow_notes == []


def test_nb_alpha_falls_back_to_bfgs_without_overdispersion():
    # Under-dispersed counts: the moment start of alpha is negative, so the BFGS path is used.
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(400), rng.normal(size=400)])
    y = rng.binomial(6, 0.5, size=400).astype(float)
    fast, _ = estimate_nb_alpha(y, X, np.zeros(400))
    slow, _ = estimate_nb_alpha(y, X, np.zeros(400), method="bfgs")
    assert fast == slow


def test_nb_alpha_refuses_unknown_method(epil):
    with pytest.raises(ValueError, match="method must be"):
        estimate_nb_alpha(*epil[:3], method="nelder-mead")


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_glm_start_is_statsmodels_glm(epil, family):
    # The GEE's start (the independence GLM by IRLS on the normal equations) against
    # statsmodels' GLM.fit(), which stops at a relative deviance change of 1e-8.
    from analysis.models.gee_counts import _glm_start
    y, X, offset, _ = _unequal_clusters()
    fam = sm.families.Poisson() if family == "poisson" else sm.families.NegativeBinomial(alpha=0.7)
    ref = sm.GLM(y, X, family=fam, offset=offset).fit(tol=1e-14)
    start, notes = _glm_start(y, X, offset, family, 0.7)
    np.testing.assert_allclose(start, ref.params, rtol=1e-10, atol=1e-12)
    assert notes == []


def test_gee_converges_at_the_rounding_floor_when_ctol_is_out_of_reach(epil):
    # At millions of rows the score's rounding floor is above ctol = 1e-10; ctol = 0 stands in
    # for that here: the fit stops when the Fisher step is at STEP_FLOOR, at the same estimate.
    y, X, offset, groups = _unequal_clusters()
    fit = fit_count_gee(y, X, offset, groups, family="negative_binomial", ctol=0.0)
    res, rho, _ = _statsmodels_gee(y, X, offset, groups, "negative_binomial", fit.nb_alpha)
    assert fit.converged and not fit.warnings
    np.testing.assert_allclose(fit.coef, res.params, rtol=1e-8)
    assert fit.working_correlation == pytest.approx(rho, rel=1e-8)
