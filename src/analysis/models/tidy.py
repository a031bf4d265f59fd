r"""Tidy inference tables: one row per estimate with t (or z) statistic, p value and interval.

Methods
-------
For an estimate :math:`\hat\theta` with standard error :math:`s` and degrees of freedom
:math:`\nu`: :math:`t = \hat\theta / s`, two-sided :math:`p = 2\,P(T_\nu > |t|)` and the
:math:`1-\alpha` interval :math:`\hat\theta \pm t_{1-\alpha/2,\nu}\,s`; where :math:`\nu` is
infinite (a GEE or a z-based estimate) the normal distribution takes the place of :math:`T_\nu`.
:func:`tidy_frame` does many rows in one call of each distribution function (the same
elementwise functions :func:`tidy_row` calls for one row, so the same numbers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.special
import scipy.stats

TIDY_COLUMNS = ["term", "estimate", "std_error", "df", "statistic", "p_value", "conf_low", "conf_high"]


def tidy_row(term: str, estimate: float, std_error: float, df: float, alpha: float = 0.05) -> dict:
    """One tidy row: t (or z when df is inf) statistic, two-sided p and 1 - alpha interval."""
    stat = estimate / std_error if std_error > 0 else np.nan
    # t.sf(x, df) is what a frozen t(df) calls, without the ~10 ms of freezing one per row
    shape = () if not np.isfinite(df) else (df,)
    dist = scipy.stats.norm if not np.isfinite(df) else scipy.stats.t
    p = 2 * dist.sf(abs(stat), *shape) if np.isfinite(stat) else np.nan
    half = dist.ppf(1 - alpha / 2, *shape) * std_error
    return {"term": term, "estimate": estimate, "std_error": std_error, "df": df, "statistic": stat,
            "p_value": p, "conf_low": estimate - half, "conf_high": estimate + half}


def t_sf(x, nu) -> np.ndarray:
    """``scipy.stats.t.sf(x, nu)`` for finite x: the special function scipy's ``t._sf`` calls
    (``stdtr(nu, -x)``), NaN where scipy finds the argument invalid (nu <= 0 or NaN), without
    the ~1 ms of scipy.stats' argument handling per call (tested equal to scipy.stats)."""
    x, nu = np.asarray(x, float), np.asarray(nu, float)
    with np.errstate(invalid="ignore"):
        return np.where(nu > 0, scipy.special.stdtr(np.where(nu > 0, nu, 1.0), -x), np.nan)


def t_ppf(q: float, nu) -> np.ndarray:
    """``scipy.stats.t.ppf(q, nu)`` for 0 < q < 1: ``stdtrit(nu, q)`` as scipy's ``t._ppf``, NaN
    where nu <= 0 or NaN (tested equal to scipy.stats)."""
    nu = np.asarray(nu, float)
    with np.errstate(invalid="ignore"):
        return np.where(nu > 0, scipy.special.stdtrit(np.where(nu > 0, nu, 1.0), q), np.nan)


def tidy_frame(terms, estimate, std_error, df, alpha: float = 0.05) -> pd.DataFrame:
    """:func:`tidy_row` for many rows at once, as a DataFrame of :data:`TIDY_COLUMNS`.

    NaN estimates (a row that is not estimable) give NaN in every numeric column, as
    :func:`tidy_row` would not be called for them.
    """
    est = np.asarray(estimate, float)
    se = np.asarray(std_error, float)
    nu = np.asarray(df, float)
    if est.size == 0:
        return empty_tidy()
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(se > 0, est / np.where(se > 0, se, 1.0), np.nan)
    finite_df = np.isfinite(nu)
    p = np.full(est.shape, np.nan)
    q = np.empty(est.shape)
    has_stat = np.isfinite(stat)
    t_rows, z_rows = finite_df, ~finite_df
    if t_rows.any():
        q[t_rows] = t_ppf(1 - alpha / 2, nu[t_rows])
        m = t_rows & has_stat
        p[m] = 2 * t_sf(np.abs(stat[m]), nu[m])
    if z_rows.any():
        q[z_rows] = scipy.stats.norm.ppf(1 - alpha / 2)
        m = z_rows & has_stat
        p[m] = 2 * scipy.stats.norm.sf(np.abs(stat[m]))
    half = q * se
    names = np.fromiter(terms, dtype=object, count=est.size)
    # the dict in TIDY_COLUMNS order and of plain arrays: pandas neither reorders nor aligns
    out = pd.DataFrame({"term": names, "estimate": est, "std_error": se, "df": nu, "statistic": stat,
                        "p_value": p, "conf_low": est - half, "conf_high": est + half})
    missing = np.isnan(est) & np.isnan(se)
    if missing.any():
        out.loc[missing, TIDY_COLUMNS[1:]] = np.nan
    return out


def empty_tidy() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c == "term" else float) for c in TIDY_COLUMNS})
