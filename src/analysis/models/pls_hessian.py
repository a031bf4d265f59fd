r"""Analytic Hessian of lmerTest's deviance in :math:`(\theta, \sigma)` and the Jacobian of
Var(:math:`\hat\beta`), for the pls engine's criterion (one evaluation, all patients at once).

Methods
-------
Notation of :mod:`analysis.models.pls_deviance`. Write every random effect as a column of
:math:`U = [Z_1 \dots Z_m\ 1_1 \dots 1_k]` (per patient its :math:`q` columns, per clinic one), so
:math:`V = I + U\tilde D U^\top` with :math:`\tilde D` block-diagonal (:math:`D = \Lambda\Lambda^\top`
per patient, :math:`\lambda_c^2` per clinic), :math:`V_\alpha = \partial V/\partial\theta_\alpha
= U\tilde\Delta_\alpha U^\top` and :math:`V_{\alpha\beta} = U\tilde\Delta_{\alpha\beta}U^\top` with
:math:`\Delta_\alpha = E_\alpha\Lambda^\top + \Lambda E_\alpha^\top`,
:math:`\Delta_{\alpha\beta} = E_\alpha E_\beta^\top + E_\beta E_\alpha^\top` (:math:`E_\alpha` the unit
matrix of :math:`\theta_\alpha`'s place in :math:`\Lambda`) and :math:`2\lambda_c`, :math:`2` for the
clinic level. lmerTest's deviance (:class:`~analysis.models.satterthwaite.Satterthwaite`) is
:math:`f = \log|V| [+ \log|G_{xx}|] + r^2/\sigma^2 + \text{const}(\sigma)`, :math:`r^2 = y^\top Py`,
:math:`P = V^{-1} - V^{-1}XG_{xx}^{-1}X^\top V^{-1}`. With :math:`\tilde P = P` (REML) or
:math:`V^{-1}` (ML), :math:`\rho = Py` and the standard derivatives :math:`\partial\log|V| = \mathrm{tr}
(V^{-1}V_\alpha)`, :math:`\partial(\log|V| + \log|G_{xx}|) = \mathrm{tr}(PV_\alpha)`,
:math:`\partial P = -PV_\alpha P`:

.. math:: \frac{\partial^2 f}{\partial\theta_\alpha\partial\theta_\beta}
   = -\mathrm{tr}(\tilde PV_\alpha\tilde PV_\beta) + \mathrm{tr}(\tilde PV_{\alpha\beta})
   + \frac{2}{\sigma^2}\rho^\top V_\alpha PV_\beta\rho - \frac{1}{\sigma^2}\rho^\top V_{\alpha\beta}\rho .

Every term is a product of the small blocks of :math:`N = U^\top V^{-1}U`,
:math:`\Phi = U^\top V^{-1}X` and :math:`\omega = U^\top\rho`: per patient :math:`\Phi_i, \omega_i` are
the X and :math:`(-\hat\beta, 1)` combinations of :math:`F_i = Z_i^\top V^{-1}W` (the gradient's
rows). Without clinics :math:`N` is block-diagonal, :math:`N_{ii} = Z_i^\top V^{-1}Z_i`. With them,
in clinic :math:`k`, :math:`N_{ij} = \delta_{ij}\tilde M_i - w_k a_ia_j^\top`,
:math:`N_{i,k} = a_i/d_k`, :math:`N_{kk} = t_k/d_k` (:math:`\tilde M_i = Z_i^\top V_p^{-1}Z_i`,
:math:`a_i = Z_i^\top V_p^{-1}1`, :math:`t_k = \sum_{i\in k}a_{i0}`, :math:`d_k = 1 + \lambda_c^2t_k`,
:math:`w_k = \lambda_c^2/d_k`): :math:`N` times a block vector costs :math:`O(mq^2)`, and

.. math:: \mathrm{tr}(N\tilde\Delta_\alpha N\tilde\Delta_\beta) = \sum_i \mathrm{tr}(\tilde M_i\Delta_\alpha
   \tilde M_i\Delta_\beta) - \sum_i w_k\,a_i^\top(\Delta_\beta\tilde M_i\Delta_\alpha
   + \Delta_\alpha\tilde M_i\Delta_\beta)a_i + \sum_k w_k^2\,\mathrm{tr}(s_k\Delta_\alpha)\,
   \mathrm{tr}(s_k\Delta_\beta)

(:math:`s_k = \sum_{i\in k}a_ia_i^\top`); with the clinic parameter
:math:`2\lambda_c\sum_k\mathrm{tr}(s_k\Delta_\alpha)/d_k^2` and :math:`4\lambda_c^2\sum_k t_k^2/d_k^2`.
For REML, :math:`U^\top PU = N - \Phi G_{xx}^{-1}\Phi^\top` adds
:math:`-2\,\mathrm{tr}(G_{xx}^{-1}\Phi^\top\tilde\Delta_\alpha N\tilde\Delta_\beta\Phi)
+ \mathrm{tr}(G_{xx}^{-1}B_\alpha G_{xx}^{-1}B_\beta)`, :math:`B_\alpha = \Phi^\top\tilde\Delta_\alpha\Phi
= -\partial G_{xx}/\partial\theta_\alpha`; so :math:`\partial C/\partial\theta_\alpha =
\sigma^2G_{xx}^{-1}B_\alpha G_{xx}^{-1}` (:math:`C = \sigma^2G_{xx}^{-1}`) and
:math:`\rho^\top V_\alpha PV_\beta\rho = \omega^\top\tilde\Delta_\alpha N\tilde\Delta_\beta\omega
- (\Phi^\top\tilde\Delta_\alpha\omega)^\top G_{xx}^{-1}(\Phi^\top\tilde\Delta_\beta\omega)`;
:math:`\mathrm{tr}(\tilde PV_{\alpha\beta}) - \rho^\top V_{\alpha\beta}\rho/\sigma^2` is the gradient's
:math:`\mathrm{tr}(S\,\Delta_{\alpha\beta})` at weight :math:`1/\sigma^2`. The :math:`\sigma` row:
:math:`\partial^2f/\partial\theta_\alpha\partial\sigma = 2\sigma^{-3}\,\omega^\top\tilde\Delta_\alpha\omega`,
:math:`\partial^2f/\partial\sigma^2 = 6r^2/\sigma^4 - 2\nu/\sigma^2`, :math:`\partial C/\partial\sigma
= 2C/\sigma`. Checked against Richardson-extrapolated differences of the analytic gradient and of
the deviance (tests/models/test_pls_hessian.py).

References: Kuznetsova A, Brockhoff PB, Christensen RHB (2017) J Stat Softw 82(13); Harville DA
(1977) J Am Stat Assoc 72:320-338 (derivatives of the (RE)ML likelihood); Bates et al. (2015)
J Stat Softw 67(1).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from analysis.models.pls_deviance import _group_sum


class _Blocks:
    """The small blocks of N = U'V^-1 U at one evaluation, and products with block vectors.

    A block vector is a pair (patient part (q, r, m), clinic part (r, k) or None)."""

    def __init__(self, dev, theta, pc):
        self.dev, self.clinic = dev, dev.clinic
        F, zvz = dev._full_rows(theta, pc)
        self.F, self.zvz_full = F, zvz                                # Z_i'V^-1 W, N_ii
        if self.clinic is None:
            self.M = zvz                                              # N_ii
            return
        lc2 = theta[-1] ** 2
        self.M = pc["zvz"]                                            # Z_i'Vp^-1 Z_i
        self.a = pc["zvz"][:, 0]                                      # Z_i'Vp^-1 1, (q, m)
        self.t, self.d = pc["t"], pc["d"]
        self.w = lc2 / self.d                                         # (k,)
        self.hh = pc["h"] / pc["d"]                                   # 1_k'V^-1 W, (p+1, k)

    def csum(self, values):
        """Sum the last (patient) axis within clinics."""
        return _group_sum(values, self.dev._corder, self.dev._cstarts)

    def apply(self, xp, xc):
        """N (xp, xc)."""
        out = _left(self.M, xp)
        if self.clinic is None:
            return out, None
        s = self.csum(sum(self.a[b] * xp[b] for b in range(len(xp))))  # sum_j a_j'x_j per clinic
        cl = self.clinic
        out += self.a[:, None, :] * (xc[:, cl] / self.d[cl] - self.w[cl] * s[:, cl])[None]
        return out, s / self.d + (self.t / self.d) * xc


def _left(M, x):
    """Per patient M_i x_i for batched (q, q, m) M and (q, r, m) x, or a constant (q, q) M."""
    q = M.shape[0]
    bcast = (lambda a, b: M[a, b][None]) if M.ndim == 3 else (lambda a, b: M[a, b])
    return np.stack([sum(bcast(a, b) * x[b] for b in range(q)) for a in range(q)])


def _pair_sums(X, Y):
    """T[a, b, c, d] = sum_i X[a, b, i] Y[c, d, i] for batched (q, q, m) X and Y."""
    q = X.shape[0]
    return np.dot(X.reshape(q * q, -1), Y.reshape(q * q, -1).T).reshape(q, q, q, q)


def _dot(x, y):
    """<x, y> = sum over blocks of x_b' y_b for block vectors of r and s columns: (r, s)."""
    out = sum(x[0][a] @ y[0][a].T for a in range(len(x[0])))
    if x[1] is not None:
        out = out + x[1] @ y[1].T
    return out


def _vdot(x, y):
    """Sum of the elementwise products of two block vectors."""
    out = np.vdot(x[0], y[0])
    return out + np.vdot(x[1], y[1]) if x[1] is not None else out


def vp_hessian(dev, theta, sigma, pc) -> tuple[np.ndarray, np.ndarray]:
    """Hessian of :meth:`~analysis.models.satterthwaite.ProfiledDeviance.deviance_vp` in (theta,
    sigma) and the Jacobian (p, p, n_theta + 1) of Var(beta) = sigma^2 G_xx^-1 there, from the
    pieces ``pc`` of one full evaluation at theta (``dev._profile(theta, full=True)``)."""
    theta = np.asarray(theta, float)
    p, q, reml = dev.p, dev.q, dev.reml
    nb = _Blocks(dev, theta, pc)
    cvec = np.append(-pc["beta"], 1.0)
    Ginv = scipy.linalg.cho_solve(pc["cg"], np.eye(p))
    clinic = dev.clinic is not None
    phi = (nb.F[:, :p], nb.hh[:p] if clinic else None)                  # U'V^-1 X
    om = (np.tensordot(nb.F, cvec, axes=([1], [0]))[:, None],           # U'rho, one column
          (cvec @ nb.hh)[None] if clinic else None)
    L = pc["L"]
    units = []
    for a, b in zip(*dev.tril):
        E = np.zeros((q, q))
        E[a, b] = 1.0
        units.append(E)
    deltas = [E @ L.T + L @ E.T for E in units]
    n_pat = len(units)
    k = dev.n_theta

    def times(alpha, x):
        """Delta~_alpha x for a block vector x."""
        if alpha < n_pat:
            return (_left(deltas[alpha], x[0]), None if x[1] is None else np.zeros_like(x[1]))
        return (np.zeros_like(x[0]), 2.0 * theta[-1] * x[1])

    dom = [times(al, om) for al in range(k)]
    Ndom = [nb.apply(*x) for x in dom]
    # B_alpha = Phi' D~a Phi = -dG_xx/dtheta_alpha from the q x q blocks of sum_i Phi_i[a]' Phi_i[b]
    gamma = [[phi[0][a] @ phi[0][b].T for b in range(q)] for a in range(q)]
    B = [sum(D[a, b] * gamma[a][b] for a in range(q) for b in range(q)) for D in deltas]
    if clinic:
        B.append(2.0 * theta[-1] * phi[1] @ phi[1].T)
    # R_i = Phi_i G^-1 Phi_i' (q, q, m): tr(G^-1 Phi' D~a N_d D~b Phi) = sum_i tr(Da M_i Db R_i)
    R = np.empty((q, q, dev.m))
    for a in range(q):  # one (p, m) product at a time: fewer fresh arrays at 1,000,000 patients
        gphi = Ginv @ phi[0][a]
        for b in range(q):
            R[a, b] = np.einsum("rm,rm->m", gphi, phi[0][b])
    del gphi
    # sums over patients of products of two per-patient q x q entries, by dot products (no
    # (q, q, m) array per parameter): T[(a, b), (c, d)] = sum_i X_i[a, b] Y_i[c, d]
    MM = _pair_sums(nb.M, nb.M)
    # tr(N D~a N D~b)
    tNN = np.empty((k, k))
    if clinic:
        s = nb.csum(nb.a[:, None, :] * nb.a[None, :, :])                # (q, q, k)
        trs = [np.einsum("abk,ba->k", s, D) for D in deltas]           # tr(s_k Delta_alpha)
        wi = nb.w[dev.clinic]
        Da = [D @ nb.a for D in deltas]                                 # Delta_alpha a_i, (q, m)
    for al in range(n_pat):
        for be in range(al + 1):
            v = np.einsum("abcd,bc,da->", MM, deltas[al], deltas[be])  # sum_i tr(M Da M Db)
            if clinic:
                cross = np.einsum("am,abm,bm->m", Da[be], nb.M, Da[al])  # a'D_b M D_a a
                v += -2.0 * np.dot(wi, cross) + np.dot(nb.w ** 2 * trs[al], trs[be])
            tNN[al, be] = tNN[be, al] = v
    if clinic:
        lc = theta[-1]
        for al in range(n_pat):
            tNN[al, -1] = tNN[-1, al] = 2.0 * lc * np.sum(trs[al] / nb.d ** 2)
        tNN[-1, -1] = 4.0 * lc ** 2 * np.sum((nb.t / nb.d) ** 2)
    # the pieces of the quadratic and REML terms
    quad = np.empty((k, k))
    trace = tNN.copy()
    phiom = [_dot(phi, x)[:, 0] for x in dom]                           # Phi' D~a omega, (p,)
    cross = np.zeros((k, k))                                            # tr(G^-1 Phi'Da N Db Phi)
    if reml:
        MR = _pair_sums(nb.M, R)
        for al in range(n_pat):
            for be in range(n_pat):
                cross[al, be] = np.einsum("bcda,ab,cd->", MR, deltas[al], deltas[be])  # tr(Da M Db R)
        if clinic:  # N's clinic coupling: per-clinic sums s_x = sum_j a_j'x_j of x = D~b Phi, (p, k)
            Pi = [[nb.csum(nb.a[a] * phi[0][b]) for b in range(q)] for a in range(q)]
            sx = [sum(D[a, b] * Pi[a][b] for a in range(q) for b in range(q)) for D in deltas]
            sx.append(np.zeros_like(phi[1]))
            xc = [np.zeros_like(phi[1])] * n_pat + [2.0 * theta[-1] * phi[1]]
            for al in range(k):
                for be in range(k):
                    cross[al, be] += (np.vdot(Ginv @ sx[al], xc[be] / nb.d - nb.w * sx[be])
                                      + np.vdot(Ginv @ xc[al], (sx[be] + nb.t * xc[be]) / nb.d))
    for al in range(k):
        for be in range(k):
            quad[al, be] = _vdot(dom[al], Ndom[be]) - phiom[al] @ Ginv @ phiom[be]
            if reml:
                trace[al, be] += (-cross[al, be] - cross[be, al]
                                  + np.trace(Ginv @ B[al] @ Ginv @ B[be]))
    quad = (quad + quad.T) / 2
    # tr(P~ V_ab) - rho'V_ab rho / sigma^2: the gradient's S at weight 1/sigma^2
    weight = 1.0 / sigma ** 2
    S = nb.zvz_full.sum(axis=-1) - weight * (om[0][:, 0] @ om[0][:, 0].T)
    if reml:
        S = S - R.sum(axis=-1)
    second = np.zeros((k, k))
    for al in range(n_pat):
        for be in range(n_pat):
            second[al, be] = np.sum(S * (units[al] @ units[be].T + units[be] @ units[al].T))
    if clinic:
        term = np.sum(nb.t / nb.d) - weight * np.sum(om[1] ** 2)
        if reml:
            term -= np.vdot(phi[1], Ginv @ phi[1])
        second[-1, -1] = 2.0 * term
    H = np.empty((k + 1, k + 1))
    H[:k, :k] = -trace + second + 2.0 * weight * quad
    dr2 = np.array([-_dot(om, dom[al])[0, 0] for al in range(k)])      # d r^2 / d theta
    nu = (dev.n - dev.p) if reml else dev.n
    H[:k, k] = H[k, :k] = -2.0 * dr2 / sigma ** 3
    H[k, k] = 6.0 * pc["r2"] / sigma ** 4 - 2.0 * nu / sigma ** 2
    vcov = sigma ** 2 * Ginv
    jac = np.empty((p, p, k + 1))
    for al in range(k):
        jac[..., al] = sigma ** 2 * Ginv @ B[al] @ Ginv
    jac[..., k] = 2.0 * vcov / sigma
    return (H + H.T) / 2, jac
