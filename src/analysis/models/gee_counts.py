"""Population-averaged count models: GEE, Poisson or negative binomial, exchangeable, robust SEs.

Methods
-------
Marginal mean and variance of visit :math:`j` of patient :math:`i`:

.. math::

    \\log E[y_{ij}] = x_{ij}^\\top\\beta + \\log(\\text{exposure}_{ij}),\\qquad
    \\operatorname{Var}(y_{ij}) = \\phi\\,v(\\mu_{ij}),\\quad
    v(\\mu) = \\mu\\ \\text{(Poisson)}\\ \\text{or}\\ \\mu + \\alpha\\mu^2\\ \\text{(NB2)},

with an exchangeable working correlation :math:`\\operatorname{corr}(y_{ij}, y_{ik}) = \\rho`.
:math:`\\beta` solves the generalised estimating equations (Liang & Zeger 1986) by Fisher scoring;
the covariance is the robust sandwich :math:`A^{-1} B A^{-1}` with no small-sample factor,
inference Wald :math:`z`, ``df = inf``. There is no likelihood, so neither ML nor REML applies.

Algorithm. Step for step that of statsmodels' ``GEE(..., cov_struct=Exchangeable())
.fit(ddof_scale=0)``, which this module called until it was vectorised (statsmodels loops over
the patients in Python on every step: 30 s of the 38 s of notebook 04 at 20,000 patients).
Start at the independence GLM (statsmodels' ``GLM.fit``, IRLS); :math:`\\rho = 0`. Each step
takes the Fisher step :math:`\\beta \\leftarrow \\beta + (\\sum_i H_i)^{-1}\\sum_i U_i`
(:mod:`analysis.models.gee_score`: the closed-form exchangeable inverse per patient, every sum over
a patient's visits a sparse product), stops when :math:`\\lVert\\sum_i U_i\\rVert_2 <` ``ctol``
after at least one update of :math:`\\rho`, and otherwise updates :math:`\\rho` by the moment
estimator below (statsmodels' ``Exchangeable.update``; sums per patient by ``bincount``). The
sandwich is evaluated at the last :math:`\\beta` with the last :math:`\\rho`; ``gradient_norm``
is the largest :math:`|\\sum_i U_i|` of the last step (statsmodels' ``fit_history["score"]``).
Against statsmodels on epil and on a simulated log with 1-9 visits per patient (one patient
with one visit): estimates, robust covariance, :math:`\\rho` and :math:`\\phi` equal to 1e-8
relative (tests/models/test_gee_counts.py; observed 1e-11 or closer).

Matching R's geepack (``geeglm(..., corstr = "exchangeable")``). Two moment estimators differ in
their degrees of freedom. With Pearson residuals :math:`r_{ij}`, :math:`N` visits, :math:`p`
coefficients and :math:`P = \\sum_i n_i(n_i - 1)/2` within-patient pairs, geepack uses
:math:`\\hat\\phi = \\sum r^2 / N` and
:math:`\\hat\\rho = \\sum_{\\text{pairs}} r_{ij} r_{ik} / (\\hat\\phi P)`; statsmodels by default
divides by :math:`N - p` and :math:`P - p`. On epil that moves :math:`\\hat\\rho` from 0.40230
(geepack) to 0.39942 and the coefficients by up to 7e-3 relative (trtprogabide, near zero;
2e-4 for the others). ``fit(ddof_scale=0)`` makes
statsmodels use :math:`N` and :math:`P`, and then it equals geepack to 4e-7 relative (estimates)
and 3e-9 (robust SEs). statsmodels also fixes :math:`\\phi = 1` for the Poisson family
(geepack estimates it, 4.62 on epil); the sandwich does not depend on :math:`\\phi`, so the
robust SEs are unaffected; the estimated dispersion is reported for the record.

Negative binomial. statsmodels' ``NegativeBinomial`` family needs the NB2 dispersion
:math:`\\alpha` (:math:`= 1/\\theta`) given. It is estimated once, before the GEE, by maximum
likelihood in the NB2 GLM with the same mean model under working independence (statsmodels'
discrete ``NegativeBinomial``, ``loglike_method="nb2"``; the same estimate as R's
``MASS::glm.nb``: on epil :math:`\\hat\\theta` = 2.6281388 vs 2.62813875 in R). It is a
consistent estimate of the *marginal* extra-Poisson variation, which is what a marginal
variance function describes; the sandwich keeps the SEs valid if it is off. geepack has no NB
variance function, so the NB GEE is checked against a short hand-written Fisher-scoring GEE in
R that first reproduces geeglm's Poisson fit (tests/reference/r_counts_reference.R).

References
----------
Liang & Zeger (1986) Biometrika 73:13-22; Halekoh, Hojsgaard & Yan (2006) J Stat Softw 15(2)
(geepack); Hilbe (2011) Negative Binomial Regression, 2nd ed., ch. 8 and 13.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.discrete.discrete_model import NegativeBinomial

from analysis.models.gee_score import (
    exchangeable_c2,
    information,
    outer_sum,
    patient_indicator,
    patient_scores,
    variance,
)

FAMILIES = ("poisson", "negative_binomial")
#: a Fisher step smaller than this (relative to max(1, |beta|)) is at the rounding floor: converged
STEP_FLOOR = 1e-13
#: the optimizer label of the fit's health record
OPTIMIZER = "Fisher scoring (analysis.gee_counts, statsmodels GEE's iteration vectorised)"


@dataclass
class CountGeeFit:
    """Result of :func:`fit_count_gee`."""

    family: str
    names: list[str]
    coef: np.ndarray
    cov: np.ndarray
    working_correlation: float
    dispersion: float
    nb_alpha: float | None
    converged: bool
    optimizer: str
    gradient_norm: float
    hessian_positive_definite: bool
    n_obs: int
    n_groups: int
    warnings: list[str] = field(default_factory=list)

    @property
    def std_error(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))


def estimate_nb_alpha(y, X, offset, method: str = "newton") -> tuple[float, list[str]]:
    """NB2 dispersion alpha (= 1/theta) by ML in the independence NB2 GLM.

    Parameters
    ----------
    y, X, offset : array_like
        Counts, design (with intercept) and log-exposure offset.
    method : {"newton", "bfgs"}
        ``newton``: statsmodels' Newton (analytic NB2 Hessian) from the Poisson GLM's estimate
        and the moment estimate of alpha, :math:`\\sum((y-\\mu)^2 - y) / \\sum\\mu^2`; a few
        steps. ``bfgs``: BFGS from statsmodels' default start, then the same Newton polish (the
        path this function took first, 0.5 s more at 20,000 patients). ``newton`` falls back to
        ``bfgs`` when its start is not overdispersed or it does not converge to a positive alpha.
        Both stop at the same maximum (tests/models/test_gee_counts.py: 1e-10 relative).

    Returns
    -------
    alpha : float
        The ML estimate, as ``MASS::glm.nb``'s ``1 / theta``.
    notes : list of str
        Warnings raised on the way, in words.
    """
    if method not in ("newton", "bfgs"):
        raise ValueError(f"method must be 'newton' or 'bfgs', not {method!r}")
    notes: list[str] = []
    y, X, offset = (np.asarray(a, float) for a in (y, X, offset))
    model = NegativeBinomial(y, X, offset=offset, loglike_method="nb2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        final = _nb_newton_from_moments(model, y, X, offset) if method == "newton" else None
        if final is None:
            final = _nb_bfgs_then_newton(model)
    alpha = float(final.params[-1])
    if not final.mle_retvals.get("converged", False):
        notes.append("NB2 GLM for the dispersion did not converge")
    notes += [f"NB2 GLM: {w.message}" for w in caught
              if not issubclass(w.category, RuntimeWarning)]
    return alpha, notes


def _nb_newton_from_moments(model, y, X, offset):
    """Newton from (Poisson GLM, moment alpha); None when that start or its result is unusable."""
    beta0, _ = _glm_start(y, X, offset, "poisson", None)
    mu = np.exp(X @ beta0 + offset)
    alpha0 = np.sum((y - mu) ** 2 - y) / np.sum(mu ** 2)
    if not (np.isfinite(alpha0) and alpha0 > 1e-4):
        return None
    try:
        res = model.fit(start_params=np.append(beta0, alpha0), method="newton",
                        maxiter=50, disp=0, tol=1e-12)
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not (np.isfinite(res.llf) and res.params[-1] > 0 and res.mle_retvals.get("converged")):
        return None
    return res


def _nb_bfgs_then_newton(model):
    # BFGS is robust from the Poisson start; Newton from there polishes to machine precision
    # (Newton from the default start can step alpha below zero).
    first = model.fit(method="bfgs", maxiter=2000, disp=0)
    final = first
    try:
        polished = model.fit(start_params=first.params, method="newton", maxiter=50,
                             disp=0, tol=1e-12)
        if np.isfinite(polished.llf) and polished.llf >= first.llf - 1e-8 \
                and polished.params[-1] > 0:
            final = polished
    except (np.linalg.LinAlgError, ValueError):
        pass
    return final


def fit_count_gee(y, X, offset, groups, family="poisson", names=None,
                  nb_alpha: float | None = None, maxiter: int = 200,
                  ctol: float = 1e-10) -> CountGeeFit:
    """Fit an exchangeable GEE for counts with a log link and robust SEs, configured as geepack.

    statsmodels' ``GEE(..., cov_struct=Exchangeable()).fit(ddof_scale=0)`` step for step
    (module docstring), vectorised over patients.

    Parameters
    ----------
    y : array_like
        Non-negative counts, one per visit.
    X : array_like, shape (n, p)
        Design matrix including the intercept column.
    offset : array_like
        Offset on the log scale (``log(exposure_days)``).
    groups : array_like
        Patient identifier per visit (the GEE cluster).
    family : {"poisson", "negative_binomial"}
        Variance function.
    names : list of str, optional
        Column names of ``X``.
    nb_alpha : float, optional
        NB2 dispersion; estimated by :func:`estimate_nb_alpha` when omitted.
    maxiter, ctol : int, float
        Fisher steps at most; converged when the L2 norm of the score is below ``ctol`` (after
        at least one update of the working correlation), as statsmodels' ``fit``, or when no
        coefficient moves by :data:`STEP_FLOOR` relative (the score's rounding floor, which
        passes 1e-10 at millions of rows).

    Returns
    -------
    CountGeeFit
        Estimates, robust covariance, working correlation and diagnostics.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    y = np.asarray(y, float)
    X = np.asarray(X, float)
    offset = np.asarray(offset, float)
    names = list(names) if names is not None else [f"x{k}" for k in range(X.shape[1])]
    notes: list[str] = []
    if family == "negative_binomial" and nb_alpha is None:
        nb_alpha, alpha_notes = estimate_nb_alpha(y, X, offset)
        notes += alpha_notes
    codes, _ = pd.factorize(np.asarray(groups))
    m = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=m)
    n_pairs = float(np.sum(sizes * (sizes - 1.0) / 2))
    if n_pairs == 0:
        raise ValueError("no patient has two visits: the exchangeable correlation is undefined")
    P = patient_indicator(codes, m)
    beta, start_notes = _glm_start(y, X, offset, family, nb_alpha)
    notes += start_notes
    rho, score_norm, score, at_floor = 0.0, -1.0, np.full(X.shape[1], np.nan), False
    for step in range(maxiter):  # rho has been updated `step` times
        score, bmat = _score_and_information(beta, rho, y, X, offset, P, sizes, family,
                                             nb_alpha)
        update = _solve(bmat, score)
        beta = beta + update
        score_norm = float(np.sqrt(np.sum(score ** 2)))
        # The score is a sum over all visits: its rounding floor grows with n (about 1e-10 at
        # 7.5 million rows, so statsmodels' absolute ctol is never reached there). A step below
        # STEP_FLOOR (relative) is that floor: converged too.
        at_floor = bool(np.all(np.abs(update) < STEP_FLOOR * np.maximum(1.0, np.abs(beta))))
        # statsmodels stops only after the correlation has been updated at least once
        if (score_norm < ctol or at_floor) and step > 0:
            break
        rho = _exchangeable_rho(beta, y, X, offset, codes, m, n_pairs, family, nb_alpha)
    converged = 0 <= score_norm < ctol or at_floor
    if not converged:
        notes.append("Iteration limit reached prior to convergence")
    if not np.all(np.isfinite(beta)):
        raise FloatingPointError("GEE failed: " + ("; ".join(notes) or "no estimate"))
    cov, bread = _sandwich(beta, rho, y, X, offset, P, sizes, family, nb_alpha)
    pd_ok = _is_positive_definite(cov) and _is_positive_definite(bread)
    if not pd_ok:
        notes.append("robust covariance not positive definite")
    mu = np.exp(X @ beta + offset)
    pearson = (y - mu) / np.sqrt(variance(mu, family, nb_alpha))
    return CountGeeFit(
        family=family, names=names, coef=beta, cov=cov, working_correlation=float(rho),
        dispersion=float(np.sum(pearson**2) / len(y)), nb_alpha=nb_alpha,
        converged=bool(converged), optimizer=OPTIMIZER,
        gradient_norm=float(np.max(np.abs(score))), hessian_positive_definite=pd_ok,
        n_obs=len(y), n_groups=m, warnings=notes)


def _glm_start(y, X, offset, family, nb_alpha, tol=1e-12, max_iter=100):
    """The independence GLM's estimate, statsmodels GEE's start (``GEE._starting_params``).

    IRLS for the log link as statsmodels' ``GLM.fit`` (its start mu = (y + mean y) / 2), on the
    p x p normal equations: statsmodels' GLM keeps about 530 bytes a row (a WLS fit and its
    pseudo-inverse each step; 4 GB at 7.5 million rows), this 100. Iterated until no coefficient
    moves by ``tol`` (statsmodels stops at a relative deviance change of 1e-8), so it reaches
    the same estimate to 1e-8 or closer (tests/models/test_gee_counts.py); the GEE's fixed point
    does not depend on its start.
    """
    mu = (y + y.mean()) / 2.0
    eta = np.log(mu)
    beta = np.full(X.shape[1], np.nan)
    for _ in range(max_iter):
        w = mu ** 2 / variance(mu, family, nb_alpha)
        z = eta - offset + (y - mu) / mu
        Xw = X * w[:, None]
        new = np.linalg.solve(X.T @ Xw, Xw.T @ z)
        if not np.all(np.isfinite(new)):
            raise FloatingPointError("GLM start failed (IRLS diverged)")
        done = np.all(np.abs(new - beta) < tol * np.maximum(1.0, np.abs(new)))
        beta = new
        if done:
            return beta, []
        eta = X @ beta + offset
        mu = np.exp(eta)
    return beta, [f"GLM start: IRLS did not converge in {max_iter} iterations"]


def _patient_pieces(beta, rho, y, X, offset, P, sizes, family, nb_alpha):
    """Per-patient scores ``U`` (m, 1, p) without :math:`c_1`, :math:`\\sum_i H_i` with it, and
    :math:`c_1` (:mod:`analysis.models.gee_score`)."""
    c2 = exchangeable_c2(sizes, rho)
    U, s, g = patient_scores(beta[None, :], y, X, offset, P, c2, family, nb_alpha)
    c1 = 1.0 / (1.0 - rho)
    return U, c1 * information((X.T @ (X * g ** 2))[None], s, c2[:, None])[0], c1


def _score_and_information(beta, rho, y, X, offset, P, sizes, family, nb_alpha):
    """:math:`\\sum_i U_i` and :math:`\\sum_i H_i`, with :math:`c_1` (statsmodels' score, bmat)."""
    U, H, c1 = _patient_pieces(beta, rho, y, X, offset, P, sizes, family, nb_alpha)
    return c1 * U.sum(axis=0)[0], H


def _solve(bmat, score):
    try:
        return np.linalg.solve(bmat, score)
    except np.linalg.LinAlgError:  # statsmodels' fallback
        return np.linalg.pinv(bmat) @ score


def _exchangeable_rho(beta, y, X, offset, codes, m, n_pairs, family, nb_alpha):
    """statsmodels' ``Exchangeable.update`` with ``ddof_scale=0`` (geepack's moments)."""
    mu = np.exp(X @ beta + offset)
    r = (y - mu) / np.sqrt(variance(mu, family, nb_alpha))
    ssr = np.bincount(codes, weights=r * r, minlength=m)
    rsum = np.bincount(codes, weights=r, minlength=m)
    phi = np.sum(ssr) / len(y)
    return float(np.sum((rsum ** 2 - ssr) / 2) / phi / n_pairs)


def _sandwich(beta, rho, y, X, offset, P, sizes, family, nb_alpha):
    """Robust :math:`A^{-1} B A^{-1}` and the bread :math:`A^{-1}` (statsmodels' ``_covmat``)."""
    U, H, c1 = _patient_pieces(beta, rho, y, X, offset, P, sizes, family, nb_alpha)
    meat = c1 ** 2 * outer_sum(np.ones((U.shape[0], 1)), U, U)[0]
    try:
        bread = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        bread = np.linalg.pinv(H)
    return bread @ meat @ bread, bread


def _is_positive_definite(a) -> bool:
    a = np.asarray(a, float)
    if not np.all(np.isfinite(a)):
        return False
    try:
        np.linalg.cholesky((a + a.T) / 2)
    except np.linalg.LinAlgError:
        return False
    return True
