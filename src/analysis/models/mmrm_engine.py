"""Likelihood engine of the MMRM: REML/ML with beta profiled out, analytic gradient and Hessian.

Methods
-------
Model: ``y_i = X_i beta + e_i``, ``e_i ~ N(0, Sigma_i(theta))`` independently over patients, with
``Sigma_i`` the rows/columns of the ``m x m`` visit covariance ``Sigma(theta)`` observed for
patient ``i`` (``analysis.models.mmrm_covariance``). For fixed ``theta`` the GLS estimate
``beta(theta) = Phi X' V^-1 y``, ``Phi = (X' V^-1 X)^-1``, is profiled out and

    -2 l_ML(theta)   = N log(2 pi) + log|V| + y'Py
    -2 l_REML(theta) = (N - p) log(2 pi) + log|V| + log|X'V^-1 X| + y'Py,

``P = V^-1 - V^-1 X Phi X' V^-1`` (``y'Py`` is the GLS residual sum of squares), the criterion
PROC MIXED prints as "-2 Res Log Like" / "-2 Log Like". With ``V_a = dV/dtheta_a``,
``u = V^-1 (y - X beta)``:

    d(-2l)/dtheta_a           = tr(P V_a) - u'V_a u        (REML; ML uses tr(V^-1 V_a))
    d2(-2l)/dtheta_a dtheta_b = tr(P V_ab) - u'V_ab u - tr(P V_a P V_b) + 2 u'V_a P V_b u

and the expected information ``tr(P V_a P V_b)``. All sums over patients are done per *pattern*
of observed visits: patients sharing a pattern share ``Sigma_i``, its Cholesky factor and inverse,
so every pattern is a few batched matrix products. ``theta`` is optimised by scipy's exact
trust-region Newton method (``trust-exact``) on SAS's own parameterisation, with infeasible points
(non-positive-definite ``Sigma``) rejected by the trust region, which is SAS's Newton-Raphson
with ridging in spirit.

References: SAS/STAT User's Guide, PROC MIXED, "Estimating Covariance Parameters in the Mixed
Model"; Jennrich & Schluchter (1986), Biometrics 42, 805-820; Wolfinger, Tobias & Sall (1994),
SIAM J Sci Comput 15, 1294-1310; Sabanes Bove et al., mmrm (R package), vignette "Algorithm".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize

from analysis.errors import ConfigError

LOG_2PI = float(np.log(2 * np.pi))


@dataclass
class Pattern:
    """Patients sharing one pattern of observed visits."""

    visits: np.ndarray       # indices into the m visits
    y: np.ndarray            # (n, m_p)
    X: np.ndarray            # (n, m_p, p)
    subjects: np.ndarray     # subject codes (n,)
    rows: np.ndarray         # row numbers into the fitted data (n, m_p)


@dataclass
class PatternData:
    """Fitted data grouped by pattern of observed visits."""

    patterns: list
    n_obs: int
    n_subjects: int
    m: int
    p: int


def group_by_pattern(y: np.ndarray, X: np.ndarray, visit: np.ndarray,
                     subject: np.ndarray) -> PatternData:
    """Group rows by patient and then by the patient's set of observed visits.

    Parameters
    ----------
    y : (N,) outcomes; X : (N, p) design; visit : (N,) visit codes 0..m-1;
    subject : (N,) subject codes 0..n-1.
    """
    n_subj, m = int(subject.max()) + 1, int(visit.max()) + 1
    rowidx = np.full((n_subj, m), -1)
    if pd.Series(subject * m + visit).duplicated().any():
        raise ConfigError("a subject has two rows for the same visit; the MMRM needs one per visit")
    rowidx[subject, visit] = np.arange(len(y))
    mask = rowidx >= 0
    keys, inverse = np.unique(mask, axis=0, return_inverse=True)
    patterns = []
    for g, key in enumerate(keys):
        subj = np.flatnonzero(inverse.ravel() == g)
        vis = np.flatnonzero(key)
        if len(vis) == 0:
            continue
        rows = rowidx[np.ix_(subj, vis)]
        patterns.append(Pattern(vis, y[rows], X[rows], subj, rows))
    return PatternData(patterns, len(y), n_subj, m, X.shape[1])


@dataclass
class Evaluation:
    """Everything known at one ``theta``: criterion, derivatives, GLS quantities."""

    value: float
    beta: np.ndarray | None = None
    phi: np.ndarray | None = None
    grad: np.ndarray | None = None
    hess: np.ndarray | None = None
    fisher: np.ndarray | None = None
    P: np.ndarray | None = None          # (k, p, p): X'V^-1 V_a V^-1 X
    cache: list = field(default_factory=list)


class Infeasible(Exception):
    """Sigma(theta) is not positive definite on some observed pattern."""


def evaluate(data: PatternData, struct, theta: np.ndarray, reml: bool, order: int = 0,
             keep: bool = False) -> Evaluation:
    """-2 log-likelihood (REML or ML) at ``theta`` with derivatives up to ``order`` (0, 1, 2)."""
    sig, D, D2 = struct.derivatives(theta, order)
    p, m = data.p, data.m
    xtvx, xtvy, yvy, logdet = np.zeros((p, p)), np.zeros(p), 0.0, 0.0
    per = []
    for pat in data.patterns:
        ix = np.ix_(pat.visits, pat.visits)
        sub = sig[ix]
        try:  # numpy's LAPACK calls: scipy's wrappers cost more than the 4x4 solves on fev_data
            chol = np.linalg.cholesky(sub)
        except np.linalg.LinAlgError as exc:
            raise Infeasible(str(exc)) from exc
        if np.any(np.diag(chol) <= 0):
            raise Infeasible("non-positive pivot")
        sinv = np.linalg.inv(sub)
        sx = np.matmul(sinv, pat.X)
        n = pat.y.shape[0]
        xtvx += np.tensordot(pat.X, sx, axes=([0, 1], [0, 1]))
        xtvy += np.einsum("nip,ni->p", sx, pat.y)
        yvy += float(np.sum((pat.y @ sinv) * pat.y))
        logdet += n * 2.0 * float(np.sum(np.log(np.diag(chol))))
        per.append((pat, ix, sinv, sx))
    try:
        cx = linalg.cho_factor(xtvx, lower=True)
    except linalg.LinAlgError as exc:
        raise Infeasible("X'V^-1X is singular") from exc
    beta = linalg.cho_solve(cx, xtvy)
    phi = linalg.cho_solve(cx, np.eye(p))
    quad = yvy - float(beta @ xtvy)
    n_obs = data.n_obs
    if reml:
        value = (n_obs - p) * LOG_2PI + logdet + 2.0 * float(np.sum(np.log(np.diag(cx[0])))) + quad
    else:
        value = n_obs * LOG_2PI + logdet + quad
    ev = Evaluation(value, beta, phi)
    if order == 0:
        return ev
    k = struct.n_params
    G = np.zeros((m, m))
    if order >= 2:
        H_second, H1, H2, T4 = (np.zeros((k, k)) for _ in range(4))
        g_vec, P = np.zeros((k, p)), np.zeros((k, p, p))
    for pat, ix, sinv, sx in per:
        n, mp = pat.y.shape
        r = pat.y - pat.X @ beta
        u = r @ sinv
        U = u.T @ u
        Gp = n * sinv - U
        if reml or order >= 2:
            sxf = sx.reshape(n, mp * p)
            M = (sxf.T @ sxf).reshape(mp, p, mp, p)      # sum_n SX_n[i,p] SX_n[j,q]
            C = np.tensordot(sx @ phi, sx, axes=([0, 2], [0, 2]))  # sum_n Sinv X_n Phi X_n' Sinv
        if reml:
            Gp = Gp - C
        G[ix] += Gp
        if order >= 2:
            _second_order(pat, ix, sinv, sx, u, U, Gp, C, M, D, D2, struct.linear,
                          (H_second, H1, H2, T4, g_vec, P))
            if keep:
                ev.cache.append((pat, ix, sinv, sx, M))
    ev.grad = D.reshape(k, m * m) @ G.ravel()
    if order >= 2:
        quad_term = T4 - g_vec @ phi @ g_vec.T
        if reml:
            phip = np.matmul(phi, P)
            tr_pvpv = H1 - 2.0 * H2 + _trace_products(phip, phip)
        else:
            tr_pvpv = H1
        ev.hess = H_second - tr_pvpv + 2.0 * quad_term
        ev.hess = (ev.hess + ev.hess.T) / 2
        ev.fisher = (tr_pvpv + tr_pvpv.T) / 2
        ev.P = P
    return ev


def _trace_products(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``out[a, b] = tr(A_a B_b)`` for stacks of square matrices, as one matrix product."""
    k = A.shape[0]
    return A.reshape(k, -1) @ B.transpose(0, 2, 1).reshape(B.shape[0], -1).T


def _second_order(pat, ix, sinv, sx, u, U, Gp, C, M, D, D2, linear, acc):
    """Add one pattern's terms of the Hessian, ``g_vec`` and ``P`` into ``acc`` (in place).

    Only the parameters whose ``dSigma`` touches the pattern's visits contribute (for ``us`` a
    pattern with ``m_p`` visits has ``m_p (m_p + 1) / 2`` of them); linear structures have no
    second derivatives. Every sum is a BLAS matrix product of flattened stacks.
    """
    H_second, H1, H2, T4, g_vec, P = acc
    n, mp = pat.y.shape
    p = sx.shape[2]
    Dfull = D[(slice(None),) + ix]
    touched = np.abs(Dfull).reshape(len(D), -1).max(axis=1) > 0
    if not linear:  # a derivative can vanish at a point (a zero correlation) while D2 does not
        touched |= np.abs(D2[(slice(None), slice(None)) + ix]).reshape(len(D), -1).max(axis=1) > 0
    act = np.flatnonzero(touched)
    if len(act) == 0:
        return
    Dp = Dfull[act]
    a2 = np.ix_(act, act)
    E = np.matmul(sinv, Dp)
    H1[a2] += n * _trace_products(E, E)
    H2[a2] += _trace_products(np.matmul(C, Dp), E)
    T4[a2] += _trace_products(Dp, np.matmul(E, U))
    Dpf = Dp.reshape(len(act), mp * mp)
    Z = np.tensordot(sx, u, axes=([0], [0]))               # (i, p, j)
    g_vec[act] += Dpf @ Z.transpose(0, 2, 1).reshape(mp * mp, p)
    P[act] += (Dpf @ M.transpose(0, 2, 1, 3).reshape(mp * mp, p * p)).reshape(len(act), p, p)
    if not linear:
        D2p = D2[np.ix_(act, act, pat.visits, pat.visits)]
        H_second[a2] += D2p.reshape(len(act) ** 2, mp * mp).dot(Gp.ravel()).reshape(len(act), len(act))


def moment_sigma(data: PatternData) -> np.ndarray:
    """Pairwise-available covariance of OLS residuals by visit (the optimiser's start)."""
    X = np.concatenate([pat.X.reshape(-1, data.p) for pat in data.patterns])
    y = np.concatenate([pat.y.ravel() for pat in data.patterns])
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    m = data.m
    s, cnt = np.zeros((m, m)), np.zeros((m, m))
    for pat in data.patterns:
        r = pat.y - pat.X @ beta
        ix = np.ix_(pat.visits, pat.visits)
        s[ix] += r.T @ r
        cnt[ix] += r.shape[0]
    sig = np.where(cnt > 0, s / np.maximum(cnt, 1), 0.0)
    resid_var = float(np.mean((y - X @ beta) ** 2))
    diag = np.diag(sig).copy()
    diag[diag <= 0] = resid_var
    np.fill_diagonal(sig, diag)
    return sig


@dataclass
class Optimum:
    """The optimiser's result and how it got there."""

    theta: np.ndarray
    evaluation: Evaluation
    converged: bool
    iterations: int
    message: str
    start: np.ndarray
    criterion: float = np.nan
    hessian_pd: bool = False


def optimise(data: PatternData, struct, reml: bool, start: np.ndarray | None = None,
             max_iter: int = 200, gtol: float = 1e-7) -> Optimum:
    """Minimise -2 log-likelihood over ``theta`` (SAS's parameterisation) by trust-exact Newton."""
    theta0 = np.asarray(start, float) if start is not None else struct.start(moment_sigma(data))
    if not struct.feasible(theta0):
        theta0 = struct.start(np.diag(np.diag(moment_sigma(data))))
    scale = struct.scale(theta0)
    k = struct.n_params
    memo = {}

    def at(x):
        key = x.tobytes()
        if key not in memo:
            if len(memo) >= 2:  # the accepted point and one trial point
                memo.pop(next(iter(memo)))
            theta = x * scale
            if not struct.feasible(theta):
                memo[key] = None
            else:
                try:  # keep=True: the optimum's evaluation is then reused, not recomputed
                    memo[key] = evaluate(data, struct, theta, reml, order=2, keep=True)
                except Infeasible:
                    memo[key] = None
        return memo[key]

    def fun(x):
        ev = at(x)
        return np.inf if ev is None else ev.value

    def jac(x):
        ev = at(x)
        return np.zeros(k) if ev is None else ev.grad * scale

    def hess(x):
        ev = at(x)
        return np.eye(k) if ev is None else ev.hess * np.outer(scale, scale)

    if at(theta0 / scale) is None:
        raise Infeasible("the starting covariance is not positive definite")
    with np.errstate(all="ignore"):
        res = optimize.minimize(fun, theta0 / scale, jac=jac, hess=hess, method="trust-exact",
                                options={"gtol": gtol, "maxiter": max_iter})
    theta = res.x * scale
    ev = at(res.x)
    if ev is None:
        ev = evaluate(data, struct, theta, reml, order=2, keep=True)
    # SAS's relative Hessian criterion g'H^-1 g / |f|; scipy's "bad approximation" stop at a
    # point this flat is rounding noise, not a failure.
    try:
        crit = float(ev.grad @ np.linalg.solve(ev.hess, ev.grad)) / max(abs(ev.value), 1.0)
        pd_hess = bool(np.all(np.linalg.eigvalsh(ev.hess) > 0))
    except np.linalg.LinAlgError:
        crit, pd_hess = np.inf, False
    converged = bool(pd_hess and abs(crit) < 1e-8)
    message = str(res.message) + f" (relative Hessian criterion {crit:.2e})"
    return Optimum(theta, ev, converged, int(res.nit), message, theta0, crit, pd_hess)


def at_theta(data: PatternData, struct, reml: bool, theta: np.ndarray) -> Optimum:
    """No optimisation: everything at the given ``theta`` (PROC MIXED's PARMS / NOITER)."""
    if len(theta) != struct.n_params or not struct.feasible(theta):
        raise Infeasible(f"fixed covariance parameters {list(theta)} are not a valid "
                         f"{struct.name} covariance with {struct.n_params} parameters")
    ev = evaluate(data, struct, theta, reml, order=2, keep=True)
    pd_hess = bool(np.all(np.linalg.eigvalsh(ev.hess) > 0))
    return Optimum(theta, ev, True, 0, "covariance parameters fixed (no iterations)", theta,
                   np.nan, pd_hess)
