"""Multiple imputation from a fitted MMRM, and Rubin's rules.

Methods
-------
*Imputation.* For imputation ``j``, covariance parameters ``theta_j ~ N(theta_hat, W)`` (their
asymptotic distribution, redrawn until ``Sigma(theta_j)`` is positive definite) and fixed effects
``beta_j ~ N(beta_hat, Phi)`` are drawn independently -- an approximation to their posterior
(rbmi's "approximate Bayesian" idea without its bootstrap). A patient's missing visits ``M``
given the observed ``O`` are then drawn from the conditional normal

    y_M | y_O ~ N(mu_M + S_MO S_OO^-1 (y_O - mu_O),  S_MM - S_MO S_OO^-1 S_OM),

``mu = X beta_j``, ``S = Sigma(theta_j)``: imputation under missing at random. Patients sharing a
pattern share ``S_OO^-1`` and the conditional covariance's Cholesky factor.

*Rubin's rules* (Rubin 1987; Barnard & Rubin 1999, as R's ``mice::pool``): with ``m``
completed-data estimates ``q_j`` and variances ``u_j``, ``qbar = mean(q)``, ``ubar = mean(u)``,
``b = var(q)``, ``T = ubar + (1 + 1/m) b``, ``lambda = (1 + 1/m) b / T``,
``nu_old = (m - 1) / lambda^2``, ``nu_obs = (nu_com + 1) / (nu_com + 3) nu_com (1 - lambda)`` and
``nu = nu_old nu_obs / (nu_old + nu_obs)`` (``nu_old`` when ``nu_com`` is infinite).

References: Rubin (1987), Multiple Imputation for Nonresponse in Surveys, Wiley; Barnard & Rubin
(1999), Biometrika 86, 948-955; Carpenter, Roger & Kenward (2013), J Biopharm Stat 23,
1352-1371 (reference-based and delta-adjusted imputation); Gower-Page et al., rbmi (R package).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.errors import ConfigError
from analysis.models.mmrm_covariance import CovarianceStructure


def rubin(estimates, variances, df_complete: float = np.inf, alpha: float = 0.05) -> dict:
    """Pool ``m`` completed-data estimates and their variances by Rubin's rules.

    Returns
    -------
    dict
        ``estimate, std_error, df, statistic, p_value, conf_low, conf_high, within, between,
        lambda`` (the fraction of the variance due to missing data).
    """
    q, u = np.asarray(estimates, float), np.asarray(variances, float)
    m = len(q)
    if m < 2 or len(u) != m:
        raise ConfigError("Rubin's rules need at least 2 imputations with one variance each")
    qbar, ubar, b = float(q.mean()), float(u.mean()), float(q.var(ddof=1))
    total = ubar + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / total
    nu_old = (m - 1) / lam ** 2 if lam > 0 else np.inf
    if np.isfinite(df_complete):
        nu_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
        df = nu_obs if not np.isfinite(nu_old) else nu_old * nu_obs / (nu_old + nu_obs)
    else:
        df = nu_old
    se = float(np.sqrt(total))
    t = qbar / se
    crit = stats.t.ppf(1 - alpha / 2, df)
    return {"estimate": qbar, "std_error": se, "df": float(df), "statistic": t,
            "p_value": float(2 * stats.t.sf(abs(t), df)), "conf_low": qbar - crit * se,
            "conf_high": qbar + crit * se, "within": ubar, "between": b, "lambda": float(lam)}


def design_rows(design, frame: pd.DataFrame) -> np.ndarray:
    """Design rows of ``frame`` (CLASS variables as levels, numeric ones as values)."""
    values = {}
    for v, levels in design.levels.items():
        codes = pd.Categorical(frame[v].astype(str), categories=levels).codes
        if np.any(codes < 0):
            raise ConfigError(f"{v!r} has levels the model did not see")
        values[v] = np.eye(len(levels))[codes]
    for v in design.means:
        values[v] = frame[v].to_numpy(float)
    return np.atleast_2d(design.row(values))


def draw_parameters(fit, rng: np.random.Generator, max_tries: int = 100):
    """``(beta_j, Sigma_j)`` from the fit's approximate posterior (see the module docstring)."""
    struct = CovarianceStructure(fit.covariance, len(fit.visits))
    theta = fit.theta
    for _ in range(max_tries):
        cand = rng.multivariate_normal(fit.theta, fit.theta_vcov, method="cholesky")
        if struct.feasible(cand):
            theta = cand
            break
    beta = rng.multivariate_normal(fit.beta, fit.vcov_model, method="cholesky")
    return beta, struct.sigma(theta)


def impute(fit, y: np.ndarray, X: np.ndarray, n_imputations: int, seed,
           draw: bool = True) -> np.ndarray:
    """Completed outcome matrices ``(n_imputations, n_subjects, m)`` under MAR.

    Parameters
    ----------
    fit : MMRMResult
    y : (n_subjects, m) outcomes with NaN where missing (visits in ``fit.visits`` order).
    X : (n_subjects, m, p) design rows of every subject at every visit.
    n_imputations : int
    seed : int or sequence of int
        For ``numpy.random.default_rng``.
    draw : bool
        Draw ``beta`` and ``Sigma`` per imputation (True) or hold them at the estimate.
    """
    rng = np.random.default_rng(seed)
    miss = np.isnan(y)
    keys, inverse = np.unique(miss, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    out = np.repeat(y[None], n_imputations, axis=0)
    for j in range(n_imputations):
        beta, sigma = draw_parameters(fit, rng) if draw else (fit.beta, fit.sigma)
        mu = X @ beta
        for g, key in enumerate(keys):
            if not key.any():
                continue
            who = np.flatnonzero(inverse == g)
            M, O = np.flatnonzero(key), np.flatnonzero(~key)
            mean = mu[np.ix_(who, M)]
            cov = sigma[np.ix_(M, M)]
            if len(O):
                gain = np.linalg.solve(sigma[np.ix_(O, O)], sigma[np.ix_(O, M)]).T
                mean = mean + (y[np.ix_(who, O)] - mu[np.ix_(who, O)]) @ gain.T
                cov = cov - gain @ sigma[np.ix_(O, M)]
            chol = np.linalg.cholesky((cov + cov.T) / 2)
            out[j][np.ix_(who, M)] = mean + rng.standard_normal((len(who), len(M))) @ chol.T
    return out
