"""Mixed model for repeated measures (MMRM) matching SAS PROC MIXED with a REPEATED statement.

Methods
-------
For patient ``i`` with outcomes ``y_i`` at the observed subset of ``m`` scheduled visits,

    y_i = X_i beta + e_i,    e_i ~ N(0, Sigma_i(theta)),   patients independent,

visit a CLASS factor in ``X`` (typically ``arm * visit + baseline``) and ``Sigma(theta)`` one of
SAS's structures (``us, toep, toeph, ar1, ar1h, cs, csh, ad, adh``; ``mmrm_covariance``) over the
visits in ``visit_levels`` order, which is SAS's REPEATED index order (SAS sorts CLASS levels and
puts a ``ref=`` level last). ``theta`` is estimated by REML (default) or ML with ``beta``
profiled out (``mmrm_engine``); missing visits are assumed missing at random (likelihood on the
observed data). Inference on ``L beta``: model-based ``Phi = (X'V^-1X)^-1``, the Kenward-Roger
adjusted ``Phi_A`` (REML only; ``kr`` or ``kr(linear)``), or the empirical / CR2 sandwich
(``mmrm_robust``); denominator df by Kenward-Roger, Satterthwaite, residual or between-within
(``mmrm_kr``); LS-means per visit and arm with equal or proportional weights and differences vs
control (``mmrm_lsmeans``). ``fit_mmrm_chain`` tries structures in turn (default
us -> toeph -> ar1h), records why each failed, and reports "not estimable: reason" when none fits.

References: SAS/STAT User's Guide, PROC MIXED; Kenward & Roger (1997), Biometrics 53, 983-997;
Satterthwaite (1946), Biometrics Bulletin 2, 110-114; Mallinckrodt et al. (2008), Drug Inf J 42,
303-319 (MMRM in trials); Sabanes Bove et al., mmrm: Mixed Models for Repeated Measures
(openpharma, R package).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import ThreadpoolController

from analysis.errors import ConfigError
from analysis.models import mmrm_engine as engine
from analysis.models import mmrm_kr as kr
from analysis.models.mmrm_covariance import STRUCTURES, CovarianceStructure
from analysis.models.mmrm_design import Design, build_design
from analysis.models.mmrm_lsmeans import lsmean_diffs, lsmeans
from analysis.models.mmrm_robust import robust_vcov

DF_METHODS = ("kenward-roger", "kenward-roger-linear", "satterthwaite", "residual", "between-within")
VCOV_METHODS = ("model", "empirical", "cr2")
#: BLAS threads are held to one inside a fit: every product is over one visit pattern (at most
#: a few hundred rows), where OpenBLAS's threads cost more than they save -- on a loaded 2-core
#: machine bcva_data's us + KR fit took 21 s with them and 2.5 s without (make bench).
_BLAS = ThreadpoolController()
TIDY = ["term", "estimate", "std_error", "df", "statistic", "p_value", "conf_low", "conf_high"]


class NotEstimable(ValueError):
    """The MMRM with this covariance structure cannot be estimated from these data."""


@dataclass
class MMRMResult:
    """A fitted MMRM. Tables are tidy; numbers are unformatted."""

    covariance: str
    method: str
    df_method: str
    vcov_method: str
    columns: list
    beta: np.ndarray
    vcov: np.ndarray                 # Var(beta) used for SEs (model, KR-adjusted or robust)
    vcov_model: np.ndarray           # Phi = (X'V^-1 X)^-1
    theta: np.ndarray
    theta_names: list
    theta_vcov: np.ndarray
    visits: list
    sigma: np.ndarray
    neg2_loglik: float
    n_obs: int
    n_subjects: int
    alpha: float
    health: dict
    design: Design | None
    data: pd.DataFrame
    parts: kr.InferenceParts
    X: np.ndarray
    subject_codes: np.ndarray
    estimable: bool = True
    fallback: list = field(default_factory=list)

    # -- tables ----------------------------------------------------------------------------
    def coef_table(self) -> pd.DataFrame:
        """Fixed effects: ``term, estimate, std_error, df, statistic, p_value, conf_low, conf_high``."""
        tab = self.contrast(np.eye(len(self.beta)))
        tab["term"] = self.columns
        return tab

    def cov_params(self) -> pd.DataFrame:
        """Covariance parameters in SAS's order and labels, with standard errors."""
        se = np.sqrt(np.clip(np.diag(self.theta_vcov), 0, None))
        return pd.DataFrame({"parameter": self.theta_names, "estimate": self.theta, "std_error": se})

    def covariance_matrix(self) -> pd.DataFrame:
        """Estimated visit covariance ``Sigma`` (rows and columns labelled by visit)."""
        return pd.DataFrame(self.sigma, index=self.visits, columns=self.visits)

    def correlation_matrix(self) -> pd.DataFrame:
        sd = np.sqrt(np.diag(self.sigma))
        return pd.DataFrame(self.sigma / np.outer(sd, sd), index=self.visits, columns=self.visits)

    # -- inference ---------------------------------------------------------------------------
    def contrast(self, L, alpha: float | None = None, labels=None) -> pd.DataFrame:
        """One tidy row per row of ``L``: estimate ``l'beta`` with the fit's SE and df method."""
        L = np.atleast_2d(np.asarray(L, float))
        alpha = self.alpha if alpha is None else alpha
        est = L @ self.beta
        se = np.sqrt(np.einsum("rp,pq,rq->r", L, self.vcov, L))
        df = np.array([self._df(l) for l in L])
        t = est / se
        p = 2 * stats.t.sf(np.abs(t), df)
        q = stats.t.ppf(1 - alpha / 2, df)
        return pd.DataFrame({"term": labels if labels is not None else [f"L{j + 1}" for j in range(len(L))],
                             "estimate": est, "std_error": se, "df": df, "statistic": t,
                             "p_value": p, "conf_low": est - q * se, "conf_high": est + q * se})[TIDY]

    def f_test(self, L) -> dict:
        """Test ``L beta = 0``: ``num_df, den_df, f_value, p_value`` (KR scales F by lambda)."""
        L = np.atleast_2d(np.asarray(L, float))
        c = L.shape[0]
        b = L @ self.beta
        f = float(b @ np.linalg.solve(L @ self.vcov @ L.T, b)) / c
        if self.df_method.startswith("kenward"):
            den, lam = kr.kr_df(self.parts, L)
            f *= lam
        elif self.df_method == "satterthwaite":
            den = kr.satterthwaite_df(self.parts, L)
        else:
            den = min(self._df(l) for l in L)
        return {"num_df": c, "den_df": den, "f_value": f, "p_value": float(stats.f.sf(f, c, den))}

    def _df(self, l: np.ndarray) -> float:
        if self.df_method in ("kenward-roger", "kenward-roger-linear"):
            return kr.kr_df(self.parts, l)[0]
        if self.df_method == "satterthwaite":
            return kr._df_1d(self.parts, l)
        if self.df_method == "residual":
            return kr.residual_df(self.n_obs, self.X)
        bw = kr.between_within_df(self.X, self.subject_codes, self.columns)
        return float(np.min(bw[np.abs(l) > 0])) if np.any(l) else float(np.min(bw))

    def lsmeans(self, specs, weights: str = "equal", at: dict | None = None) -> pd.DataFrame:
        """LS-means of ``specs`` (see ``analysis.models.mmrm_lsmeans.lsmeans``)."""
        return lsmeans(self, specs, weights, at)

    def lsmean_diffs(self, arm: str, control: str, by: str | None = None,
                     weights: str = "equal", at: dict | None = None) -> pd.DataFrame:
        """Differences vs ``control`` at each level of ``by``."""
        return lsmean_diffs(self, arm, control, by, weights, at)


@dataclass
class NotEstimableFit:
    """What a fallback chain returns when no structure could be fitted."""

    reason: str
    fallback: list
    estimable: bool = False

    @property
    def status(self) -> str:
        return f"not estimable: {self.reason}"


def _validate(covariance, method, df, vcov, alpha):
    if covariance not in STRUCTURES:
        raise ConfigError(f"covariance must be one of {', '.join(STRUCTURES)}; got {covariance!r}")
    if method not in ("reml", "ml"):
        raise ConfigError(f"method must be 'reml' or 'ml'; got {method!r}")
    if df not in DF_METHODS:
        raise ConfigError(f"df must be one of {', '.join(DF_METHODS)}; got {df!r}")
    if vcov not in VCOV_METHODS:
        raise ConfigError(f"vcov must be one of {', '.join(VCOV_METHODS)}; got {vcov!r}")
    if df.startswith("kenward") and method != "reml":
        raise ConfigError("Kenward-Roger needs method='reml' (as in SAS and mmrm)")
    if df.startswith("kenward") and vcov != "model":
        raise ConfigError("Kenward-Roger adjusts the model-based covariance; use vcov='model'")
    if df == "satterthwaite" and vcov != "model":
        raise ConfigError("Satterthwaite df here are for vcov='model'; use df='residual' or "
                          "'between-within' with a robust vcov")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1); got {alpha!r}")


def _one_blas_thread(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _BLAS.limit(limits=1, user_api="blas"):
            return func(*args, **kwargs)
    return wrapper


@_one_blas_thread
def fit_mmrm(data: pd.DataFrame, outcome: str, fixed, visit: str, subject: str,
             covariance: str = "us", method: str = "reml", df: str = "kenward-roger",
             vcov: str = "model", reference: dict | None = None, visit_levels=None,
             class_vars: tuple = (), information: str = "observed", alpha: float = 0.05,
             start=None, fixed_theta=None) -> MMRMResult:
    """Fit an MMRM.

    Parameters
    ----------
    data : DataFrame
        Long format, one row per subject and visit; rows with a missing outcome or model
        variable are left out (as PROC MIXED does).
    outcome, visit, subject : str
        Column names.
    fixed : str or DataFrame
        Model terms (``"ARMCD*AVISIT + RACE + SEX"``; CLASS coding in ``mmrm_design``) or a
        design matrix with one row per row of ``data`` (LS-means then unavailable).
    covariance : {"us", "toep", "toeph", "ar1", "ar1h", "cs", "csh", "ad", "adh"}
    method : {"reml", "ml"}
    df : {"kenward-roger", "kenward-roger-linear", "satterthwaite", "residual", "between-within"}
    vcov : {"model", "empirical", "cr2"}
    reference : dict, optional
        CLASS variable -> reference level (SAS default: last sorted level).
    visit_levels : sequence, optional
        Order of the visits for the covariance structure (default: sorted observed visits).
    information : {"observed", "expected"}
        Information matrix for ``Var(theta)`` (PROC MIXED's default is observed).
    alpha : float
        Confidence intervals are ``1 - alpha``.
    start : array, optional
        Starting covariance parameters (SAS order).
    fixed_theta : array, optional
        Do not optimise: take these covariance parameters (SAS order) as the estimate and do
        all inference there, as PROC MIXED's ``PARMS (...) / NOITER`` does.

    Returns
    -------
    MMRMResult

    Raises
    ------
    ConfigError
        Bad options or variables. NotEstimable: the model cannot be fitted (reason given).
    """
    _validate(covariance, method, df, vcov, alpha)
    if information not in ("observed", "expected"):
        raise ConfigError(f"information must be 'observed' or 'expected'; got {information!r}")
    for col in (outcome, visit, subject):
        if col not in data.columns:
            raise ConfigError(f"column {col!r} is not in the data")
    user_matrix = not isinstance(fixed, str)
    needed = [outcome, visit, subject]
    if not user_matrix:
        from analysis.models.mmrm_design import parse_terms
        needed += [v for t in parse_terms(fixed) for v in t if v not in needed]
        absent = [v for v in needed if v not in data.columns]
        if absent:
            raise ConfigError(f"model variables not in the data: {', '.join(absent)}")
    keep = data[needed].notna().all(axis=1).to_numpy()
    if user_matrix:
        Xfull = np.asarray(fixed, float)
        keep &= np.isfinite(Xfull).all(axis=1)
    frame = data.loc[keep].reset_index(drop=True)
    if len(frame) == 0:
        raise NotEstimable("no rows with an outcome and all model variables")
    if user_matrix:
        X = Xfull[keep]
        columns = list(getattr(fixed, "columns", [f"x{j}" for j in range(X.shape[1])]))
        design = None
    else:
        design = build_design(frame, fixed, reference, class_vars)
        X, columns = design.X, design.columns
    observed = sorted({str(v) for v in frame[visit]})
    levels = [str(v) for v in visit_levels] if visit_levels is not None else observed
    unknown = sorted(set(observed) - set(levels))
    if unknown:
        raise ConfigError(f"visits {unknown} are not in visit_levels {levels}")
    levels = [v for v in levels if v in observed]
    visit_codes = pd.Categorical(frame[visit].astype(str), categories=levels).codes
    subject_codes = pd.Categorical(frame[subject].astype(str)).codes
    y = frame[outcome].to_numpy(float)
    pdata = engine.group_by_pattern(y, X, visit_codes, subject_codes)
    struct = CovarianceStructure(covariance, len(levels))
    _check_estimable(pdata, struct, levels)
    reml = method == "reml"
    try:
        if fixed_theta is not None:
            opt = engine.at_theta(pdata, struct, reml, np.asarray(fixed_theta, float))
        else:
            opt = engine.optimise(pdata, struct, reml, start=start)
    except engine.Infeasible as exc:
        raise NotEstimable(f"{covariance}: {exc}") from exc
    if not opt.converged:
        raise NotEstimable(f"{covariance}: the optimiser did not converge ({opt.message}; "
                           f"Hessian positive definite: {opt.hessian_pd})")
    ev = opt.evaluation
    info = ev.hess if information == "observed" else ev.fisher
    try:
        W = kr.theta_vcov(info)
    except np.linalg.LinAlgError as exc:
        raise NotEstimable(f"{covariance}: {exc}") from exc
    parts = kr.InferenceParts(ev.beta, ev.phi, W, ev.P)
    sigma, D, D2 = struct.derivatives(opt.theta, 2)
    if df.startswith("kenward"):
        V = kr.kr_vcov(parts, D, D2, ev.cache, linear=df.endswith("linear"))
    elif vcov == "model":
        V = ev.phi
    else:
        V = robust_vcov(ev.cache, ev.beta, ev.phi, sigma, vcov)
    health = {"converged": opt.converged, "iterations": opt.iterations, "message": opt.message,
              "relative_hessian_criterion": opt.criterion, "hessian_positive_definite": opt.hessian_pd,
              "n_patterns": len(pdata.patterns), "start": opt.start.tolist()}
    return MMRMResult(covariance, method, df, vcov, columns, ev.beta, V, ev.phi, opt.theta,
                      struct.param_names(), W, levels, sigma, ev.value, pdata.n_obs,
                      pdata.n_subjects, alpha, health, design, frame, parts, X, subject_codes)


def _check_estimable(pdata, struct, levels):
    """Refuse structures the data cannot inform, with the reason, before optimising."""
    k, p = struct.n_params, pdata.p
    if pdata.n_obs <= p + k:
        raise NotEstimable(f"{struct.name}: {k} covariance parameters and {p} fixed effects but only "
                           f"{pdata.n_obs} observations")
    typical = 0.5 * np.eye(struct.m) + 0.5  # correlation 0.5 everywhere: no accidental zeros
    _, D, _ = struct.derivatives(struct.start(typical), 1)
    informed = np.zeros(k, bool)
    for pat in pdata.patterns:
        sub = D[(slice(None),) + np.ix_(pat.visits, pat.visits)]
        informed |= np.abs(sub).reshape(k, -1).max(axis=1) > 0
    if not informed.all():
        names = [n for n, ok in zip(struct.param_names(), informed) if not ok]
        if struct.name == "us":
            pairs = [f"{levels[int(a) - 1]}/{levels[int(b) - 1]}"
                     for a, b in (n[3:-1].split(",") for n in names)]
            why = f"no subject is observed at both visits of {', '.join(pairs)}"
        else:
            why = f"no subject's observed visits inform {', '.join(names)}"
        raise NotEstimable(f"{struct.name}: {why}")
    counts = np.zeros(struct.m)
    for pat in pdata.patterns:
        counts[pat.visits] += len(pat.subjects)
    if (struct.name == "us" or struct.heterogeneous) and counts.min() < 2:
        few = [levels[j] for j in np.flatnonzero(counts < 2)]
        raise NotEstimable(f"{struct.name}: visit(s) {', '.join(few)} have fewer than 2 subjects, "
                           "so their variance is not estimable")


def fit_mmrm_chain(data: pd.DataFrame, outcome: str, fixed, visit: str, subject: str,
                   chain=("us", "toeph", "ar1h"), **options):
    """Fit the first structure of ``chain`` that can be estimated, recording every step.

    Returns
    -------
    MMRMResult (with ``fallback`` listing each tried structure, its status and reason) or
    NotEstimableFit when none can be fitted.
    """
    steps = []
    for covariance in chain:
        try:
            res = fit_mmrm(data, outcome, fixed, visit, subject, covariance=covariance, **options)
        except NotEstimable as exc:
            steps.append({"covariance": covariance, "status": "failed", "reason": str(exc)})
            continue
        steps.append({"covariance": covariance, "status": "fitted", "reason": ""})
        res.fallback = steps
        res.health["fallback"] = steps
        return res
    return NotEstimableFit("; ".join(s["reason"] for s in steps), steps)
