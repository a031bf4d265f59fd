"""Small-sample inference for the MMRM: Kenward-Roger, Satterthwaite, residual and between-within df.

Methods
-------
Notation as in ``mmrm_engine``: ``Phi = (X'V^-1 X)^-1``, ``theta`` the covariance parameters in
SAS's parameterisation, ``W`` their asymptotic covariance, the inverse of half the observed
Hessian of ``-2 l`` at the estimate (PROC MIXED's default; ``information="expected"`` uses
``tr(P V_a P V_b)`` instead), and

    P_a  = X' V^-1 V_a V^-1 X                     (= -X' dV^-1/dtheta_a X)
    Q_ab = X' V^-1 V_a V^-1 V_b V^-1 X
    R_ab = X' V^-1 V_ab V^-1 X                    (V_ab second derivatives)

*Kenward-Roger* (Kenward & Roger 1997): the adjusted covariance

    Phi_A = Phi + 2 Phi { sum_ab W_ab (Q_ab - P_a Phi P_b - R_ab / 4) } Phi,

without the ``R`` term for ``kr(linear)``; SAS's UN, TOEP and CS are linear in ``theta`` so the
two agree there. For ``H0: L beta = 0`` with ``c`` rows, ``M = L'(L Phi L')^-1 L``,
``A1 = sum W_ab tr(M Phi P_a Phi) tr(M Phi P_b Phi)``, ``A2 = sum W_ab tr(M Phi P_a Phi M Phi
P_b Phi)`` give ``E*, V*, rho``, the denominator df ``m = 4 + (c + 2) / (c rho - 1)`` and scale
``lambda = m / (E*(m - 2))``; ``F* = lambda (L b)'(L Phi_A L')^-1 (L b) / c ~ F(c, m)``. For one
row this is ``m = 2 / (a'Wa)``, ``a_h = l'Phi P_h Phi l / l'Phi l``, with the SE from ``Phi_A``.

*Satterthwaite* (Satterthwaite 1946; Giesbrecht & Burns 1985; Fai & Cornelius 1996), as PROC
MIXED and mmrm: for one row ``df = 2 (l'Phi l)^2 / (g'Wg)``, ``g_a = d(l'Phi l)/dtheta_a =
l'Phi P_a Phi l``; for ``c`` rows, the df of each eigen-direction of ``L Phi L'`` combine as
``E = sum nu_j / (nu_j - 2)``, ``df = 2E / (E - c)``.

*Residual*: ``N - rank(X)``. *Between-within* (SAS DDFM=BW, as mmrm computes it): a coefficient
whose column varies within some subject gets ``N - n_subjects - (#within columns - 1)``, others
``n_subjects - #between columns - 1``; the intercept counts as within.

References: Kenward & Roger (1997), Biometrics 53, 983-997; Satterthwaite (1946), Biometrics
Bulletin 2, 110-114; Fai & Cornelius (1996), J Stat Comput Simul 54, 363-378; SAS/STAT User's
Guide, PROC MIXED, "DDFM= option"; Sabanes Bove et al., mmrm (R package), vignettes
"Kenward-Roger" and "Satterthwaite".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class InferenceParts:
    """What contrasts need after the fit."""

    beta: np.ndarray
    phi: np.ndarray           # model-based Var(beta) = (X'V^-1 X)^-1
    W: np.ndarray             # Var(theta)
    P: np.ndarray             # (k, p, p)


def theta_vcov(hess: np.ndarray) -> np.ndarray:
    """``Var(theta) = (H / 2)^-1`` from the Hessian ``H`` of ``-2 l``."""
    if not np.all(np.isfinite(hess)) or np.linalg.cond(hess) > 1e14:
        raise np.linalg.LinAlgError("the covariance parameters' information matrix is singular")
    return 2.0 * np.linalg.inv(hess)


def kr_vcov(parts: InferenceParts, D: np.ndarray, D2: np.ndarray, cache: list,
            linear: bool) -> np.ndarray:
    """Kenward-Roger adjusted ``Var(beta)`` (``Phi_A``); ``linear=True`` drops the ``R`` term.

    ``D``, ``D2``: first and second derivatives of ``Sigma`` at the estimate; ``cache``: the
    per-pattern ``(pattern, index, Sigma_p^-1, Sigma_p^-1 X, sum_n SX_n (x) SX_n)`` of the fit.
    """
    W, phi, P = parts.W, parts.phi, parts.P
    p = len(parts.beta)
    k = len(W)
    q_w = np.zeros(p * p)
    for pat, ix, sinv, sx, M in cache:
        mp = len(pat.visits)
        Dp = D[(slice(None),) + ix]
        E = np.matmul(sinv, Dp)                          # Sinv D_b
        WD = np.tensordot(W, Dp, axes=([0], [0]))        # sum_a W_ab D_a
        T = WD.transpose(1, 0, 2).reshape(mp, k * mp) @ E.reshape(k * mp, mp)
        if not linear:
            T = T - 0.25 * np.tensordot(W, D2[(slice(None), slice(None)) + ix], axes=([0, 1], [0, 1]))
        # sum_ij T_ij M[i, p, j, q]
        q_w += T.ravel() @ M.transpose(0, 2, 1, 3).reshape(mp * mp, p * p)
    q_w = q_w.reshape(p, p)
    PP = np.matmul(P, phi)                               # P_a Phi
    WP = np.tensordot(W, P, axes=([1], [0]))             # sum_b W_ab P_b
    ppp = PP.transpose(1, 0, 2).reshape(p, k * p) @ WP.reshape(k * p, p)
    inner = q_w - ppp
    adj = phi + 2.0 * phi @ inner @ phi
    return (adj + adj.T) / 2


def satterthwaite_df(parts: InferenceParts, L: np.ndarray) -> float:
    """Satterthwaite denominator df for ``L beta`` (one row: t-test; several: F-test)."""
    L = np.atleast_2d(np.asarray(L, float))
    if L.shape[0] == 1:
        return _df_1d(parts, L[0])
    lpl = L @ parts.phi @ L.T
    w, vec = np.linalg.eigh(lpl)
    nus = np.array([_df_1d(parts, vec[:, j] @ L) for j in range(L.shape[0])])
    nus = nus[nus > 2]
    E = float(np.sum(nus / (nus - 2.0)))
    c = L.shape[0]
    return 2.0 * E / (E - c) if E > c else np.nan


def _df_1d(parts: InferenceParts, l: np.ndarray) -> float:
    pl = parts.phi @ l
    v = float(l @ pl)
    g = np.einsum("p,apq,q->a", pl, parts.P, pl)
    denom = float(g @ parts.W @ g)
    return 2.0 * v * v / denom if denom > 0 else np.inf


def kr_df(parts: InferenceParts, L: np.ndarray) -> tuple[float, float]:
    """Kenward-Roger denominator df ``m`` and F scale ``lambda`` for ``L beta``."""
    L = np.atleast_2d(np.asarray(L, float))
    c = L.shape[0]
    phi, W = parts.phi, parts.W
    if c == 1:
        return _df_1d(parts, L[0]), 1.0
    M = L.T @ np.linalg.solve(L @ phi @ L.T, L)
    mpp = np.einsum("pq,qr,ars,st->apt", M, phi, parts.P, phi)   # M Phi P_a Phi
    tr = np.einsum("app->a", mpp)
    a1 = float(tr @ W @ tr)
    a2 = float(np.einsum("ab,apq,bqp->", W, mpp, mpp))
    b = (a1 + 6.0 * a2) / (2.0 * c)
    g = ((c + 1) * a1 - (c + 4) * a2) / ((c + 2) * a2)
    denom = 3 * c + 2 * (1 - g)
    c1, c2, c3 = g / denom, (c - g) / denom, (c + 2 - g) / denom
    e_star = 1.0 / (1.0 - a2 / c)
    v_star = 2.0 / c * (1 + c1 * b) / ((1 - c2 * b) ** 2 * (1 - c3 * b))
    rho = v_star / (2.0 * e_star ** 2)
    m = 4.0 + (c + 2) / (c * rho - 1)
    lam = m / (e_star * (m - 2))
    return float(m), float(lam)


def residual_df(n_obs: int, X: np.ndarray) -> float:
    """``N - rank(X)`` (SAS DDFM=RESIDUAL)."""
    return float(n_obs - np.linalg.matrix_rank(X))


def between_within_df(X: np.ndarray, subject: np.ndarray, columns: list) -> np.ndarray:
    """Per-coefficient between-within df (SAS DDFM=BW as mmrm computes it)."""
    n_obs, n_subjects = X.shape[0], len(np.unique(subject))
    within = np.zeros(X.shape[1], bool)
    for j, name in enumerate(columns):
        if name == "(Intercept)":
            within[j] = True
            continue
        pairs = np.unique(np.column_stack([X[:, j], subject]), axis=0)
        within[j] = len(pairs) > n_subjects
    n_int = int("(Intercept)" in columns)
    ddf_between = n_subjects - int(np.sum(~within)) - n_int
    ddf_within = n_obs - n_subjects - (int(np.sum(within)) - n_int)
    return np.where(within, ddf_within, ddf_between).astype(float)
