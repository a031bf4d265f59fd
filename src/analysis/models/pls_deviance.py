r"""The ``pls`` engine's criterion: lme4's profiled REML/ML deviance and its analytic gradient,
vectorised over patients (the optimiser and the engine object are in :mod:`analysis.models.engine_pls`).

Methods
-------
**Model** (Bates, Mächler, Bolker & Walker 2015, section 3; the class this engine takes). For the
rows of patient :math:`i` (nested in clinic :math:`k`)

.. math:: y_i = X_i\beta + Z_i b_i + 1\,c_k + \varepsilon_i,\quad
          b_i \sim N(0, \sigma^2\Lambda\Lambda^\top),\ c_k \sim N(0, \sigma^2\lambda_c^2),\
          \varepsilon_i \sim N(0, \sigma^2 I)

with :math:`Z_i = [1]` (random intercept) or :math:`[1\ t]` (intercept + slope), :math:`\Lambda`
lower triangular (lme4's relative covariance factor, :math:`\theta` its lower triangle in
column-major order, then :math:`\lambda_c`), Gaussian errors, REML or ML. Anything else is not
this engine's class (:func:`pls_class_problem`) and ``engine="auto"`` sends it to statsmodels.

**Criterion.** lme4's :math:`\log|\Lambda^\top Z^\top Z\Lambda + I|` equals :math:`\log|V|` with
:math:`V = I + Z\Lambda\Lambda^\top Z^\top + \lambda_c^2\sum_k 1_k1_k^\top` (determinant lemma), and
:math:`G = W^\top V^{-1}W` for :math:`W = [X\ y]`. Per patient, with
:math:`A_i = \Lambda^\top Z_i^\top Z_i\Lambda + I` (:math:`q\times q`, :math:`q\le 2`, eigenvalues
:math:`\ge 1`, so its closed-form adjugate inverse is stable) and
:math:`K_i = \Lambda A_i^{-1}\Lambda^\top`, Woodbury gives
:math:`W_i^\top V_{p,i}^{-1}W_i = W_i^\top W_i - (Z_i^\top W_i)^\top K_i (Z_i^\top W_i)`
from cross-products :math:`Z_i^\top Z_i, Z_i^\top W_i` summed once (``np.add.reduceat``); the
clinic level is one scalar Schur complement per clinic,
:math:`d_k = 1 + \lambda_c^2\,1_k^\top V_p^{-1}1_k`. A deviance evaluation therefore costs
:math:`O(m\,q^2 p)` for :math:`m` patients and never touches the :math:`n` rows. :math:`\beta` and
the penalised RSS :math:`r^2` are profiled out exactly as in
:class:`~analysis.models.satterthwaite.ProfiledDeviance` (this class is its fast subclass):
:math:`d_{REML} = \log|V| + \log|G_{xx}| + (n-p)[1 + \log(2\pi r^2/(n-p))]`.

**Analytic gradient.** With :math:`D = \Lambda\Lambda^\top`, :math:`F_i = Z_i^\top V^{-1}W`,
:math:`u_i = F_i(-\hat\beta, 1)^\top`, :math:`Q_i` the :math:`X` columns of :math:`F_i`:
:math:`\mathrm{d}\,d = \mathrm{tr}(S\,\mathrm{d}D)`,
:math:`S = \sum_i Z_i^\top V^{-1}Z_i - \frac{\nu}{r^2}\sum_i u_iu_i^\top
- \sum_i Q_iG_{xx}^{-1}Q_i^\top` (:math:`\nu = n-p`; ML: :math:`\nu = n`, no last term), so
:math:`\partial d/\partial\Lambda = 2S\Lambda`;
likewise for :math:`\lambda_c` through :math:`1_k^\top V^{-1}W`. **Optimiser:** bounded L-BFGS-B
on this gradient (in :math:`\theta` scaled by its start) from a method-of-moments start, and from
lme4's (:math:`\Lambda = I`, :math:`\lambda_c = 1`) only when the first did not reach a scaled
gradient below 1e-8 (lme4 accepts 2e-3); probes off the bound where it stopped at a diagonal
:math:`\theta = 0` (a saddle: the deviance is even there); Newton steps (Hessian by
differences of the gradient). Derivative-free bounded searches (Nelder-Mead, Powell; lme4 uses
BOBYQA) took 15-50 times more evaluations (docs/engine.md).

**Inference** is the engine-independent part of :mod:`analysis.models.lmm`: :math:`\mathrm{Var}(\hat\beta)
= \sigma^2 G_{xx}^{-1}`, Satterthwaite df from the Hessian of the deviance in :math:`(\theta,\sigma)`
(:class:`~analysis.models.satterthwaite.Satterthwaite`, as lmerTest), conditional modes
:math:`\hat b_i = D\,u_i`, :math:`\hat c_k = \lambda_c^2\,1_k^\top V^{-1}(y - X\hat\beta)`.

References: Bates D, Mächler M, Bolker B, Walker S (2015) J Stat Softw 67(1);
Kuznetsova A, Brockhoff PB, Christensen RHB (2017) J Stat Softw 82(13).
"""

from __future__ import annotations

import contextlib
import functools
import itertools

import numpy as np
import scipy.linalg
import scipy.optimize

from analysis.models.satterthwaite import _LOG2PI, ProfiledDeviance

#: Most random effects per patient the engine takes (intercept + one slope).
MAX_Q = 2

try:  # installed with scikit-learn (a dependency of gpboost); without it BLAS keeps its threads
    from threadpoolctl import ThreadpoolController
    _BLAS = ThreadpoolController()
except ImportError:  # pragma: no cover
    _BLAS = None


def _single_threaded(method):
    """Run ``method`` with one BLAS thread: its (p+1) x m by m x (p+1) products are too small
    for threads to pay; on 2 busy cores OpenBLAS's threads made them 7 times slower."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _BLAS.limit(limits=1, user_api="blas") if _BLAS else contextlib.nullcontext():
            return method(*args, **kwargs)
    return wrapper


def pls_class_problem(design) -> str | None:
    """Why a :class:`~analysis.models.formulas.MixedDesign` is outside the pls engine's class, or None."""
    q = design.Z.shape[1]
    if q > MAX_Q:
        return (f"{q} random effects per patient (the pls engine takes an intercept, "
                "or intercept + slope)")
    if not np.all(design.Z[:, 0] == 1.0):
        return "patient random effects without an intercept"
    return None


def _group_sum(values, order, starts):
    """Sum the last axis of ``values`` in groups (rows permuted by ``order``; ``starts``)."""
    v = values if order is None else values[..., order]
    return np.add.reduceat(v, starts, axis=-1)


def _sorting(codes):
    """Permutation that sorts ``codes`` (None if already sorted) and where each group starts."""
    codes = np.asarray(codes)
    order = None if np.all(codes[1:] >= codes[:-1]) else np.argsort(codes, kind="stable")
    s = codes if order is None else codes[order]
    return order, np.flatnonzero(np.r_[True, s[1:] != s[:-1]])


#: Rows per block of the per-patient sums Z_i'W_i (blocks end where a patient does).
SUM_BLOCK = 1 << 16


def _patient_sums(zcol, W, starts) -> np.ndarray:
    """Z_i'W_i per patient, (q, p+1, m): the sums of ``np.add.reduceat(Z[:, [a]] * W, starts,
    axis=0)``, taken over blocks of whole patients with W's block transposed so each sum runs
    along contiguous memory (4 times faster at 200,000 patients; each patient's sum is the same
    sequence of additions, so the same numbers)."""
    n, m = W.shape[0], len(starts)
    out = np.empty((len(zcol), W.shape[1], m))
    cuts = np.unique(np.r_[np.searchsorted(starts, np.arange(0, n, SUM_BLOCK)), m])
    for i0, i1 in itertools.pairwise(cuts):
        lo, hi = starts[i0], (starts[i1] if i1 < m else n)
        block = np.ascontiguousarray(W[lo:hi].T)                        # (p+1, rows)
        local = starts[i0:i1] - lo
        for a, z in enumerate(zcol):
            out[a, :, i0:i1] = np.add.reduceat(z[lo:hi] * block, local, axis=1)
    return out


def _bmul(A, B, out=None, tmp=None):
    """Batched product C[a] = sum_b A[a, b] * B[b] of (q, r, m) and (r, ..., m) arrays (batch last).

    With ``out`` (shape (q,) + B.shape[1:]) and ``tmp`` (shape B.shape[1:]) it is written there
    with no fresh arrays: fresh temporaries cost page faults that made the product 1.7 times
    slower at 20,000 patients and 3 times at 1,000,000. The same products and sums in the same
    order either way (x + 0 = x), so the same numbers.
    """
    if out is None:
        return np.stack([sum(A[a, b] * B[b] for b in range(A.shape[1])) for a in range(A.shape[0])])
    tmp = np.empty_like(out[0]) if tmp is None else tmp
    for a in range(A.shape[0]):
        np.multiply(B[0], A[a, 0], out=out[a])
        for b in range(1, A.shape[1]):
            out[a] += np.multiply(B[b], A[a, b], out=tmp)
    return out


def _sandwich(L, B, right):
    """(L' B L) if ``right`` is L else (L B L') for a constant q x q L and batched (q, q, m) B."""
    return np.einsum("ca,cdm,db->abm", L, B, L) if right else np.einsum("ac,cdm,bd->abm", L, B, L)


def _inv_logdet(A):
    """Closed-form inverse and log-determinant of batched 1x1 or 2x2 symmetric (q, q, m) matrices."""
    if A.shape[0] == 1:
        return 1.0 / A, np.log(A[0, 0])
    det = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
    inv = np.array([[A[1, 1], -A[0, 1]], [-A[1, 0], A[0, 0]]]) / det
    return inv, np.log(det)


class PlsDeviance(ProfiledDeviance):
    """:class:`~analysis.models.satterthwaite.ProfiledDeviance` for q <= 2 with an intercept, vectorised.

    Same parameters, criterion, ``deviance``, ``deviance_vp``, ``covbeta`` and ``estimates``
    (so the Satterthwaite machinery runs on it unchanged), plus :meth:`deviance_and_gradient`.
    Cross-products are stored batch-last: ``zz`` (q, q, m), ``zw`` (q, p+1, m).
    """

    def __init__(self, y, X, Z, patient, clinic_of_patient=None, reml=True):
        y, X, Z = np.asarray(y, float), np.asarray(X, float), np.asarray(Z, float)
        n, p = X.shape
        q = Z.shape[1]
        if q > MAX_Q or not np.all(Z[:, 0] == 1.0):
            raise ValueError("PlsDeviance needs an intercept (+ at most one slope) per patient")
        self.n, self.p, self.q, self.reml = n, p, q, reml
        patient = np.asarray(patient)
        self.m = int(patient.max()) + 1
        W = np.column_stack([X, y])
        order, starts = _sorting(patient)
        if len(starts) != self.m:
            raise ValueError("patient codes must be 0..m-1, each present")
        Zs, Ws = (Z, W) if order is None else (Z[order], W[order])
        # contiguous columns, each product once (Z_a Z_b = Z_b Z_a exactly): fewer fresh n-arrays
        zcol = [np.ascontiguousarray(Zs[:, a]) for a in range(q)]
        sums = {(a, b): np.add.reduceat(zcol[a] * zcol[b], starts) for a in range(q) for b in range(a + 1)}
        self.zz = np.array([[sums[max(a, b), min(a, b)] for b in range(q)] for a in range(q)])
        self.zw = _patient_sums(zcol, Ws, starts)
        self.WtW = W.T @ W
        self.Z, self.X, self.y, self.patient = Z, X, y, patient
        self._order, self._starts = order, starts
        self.clinic = None if clinic_of_patient is None else np.asarray(clinic_of_patient)
        if self.clinic is not None:
            self.k = int(self.clinic.max()) + 1
            self._corder, self._cstarts = _sorting(self.clinic)
            if len(self._cstarts) != self.k:
                raise ValueError("clinic codes must be 0..k-1, each present")
            self.clinic_obs = self.clinic[patient]
        tril = np.tril_indices(q)
        col_major = np.lexsort((tril[0], tril[1]))  # lme4 orders theta column by column
        self.tril = (tril[0][col_major], tril[1][col_major])
        self.n_theta = len(self.tril[0]) + (self.clinic is not None)
        diag = np.zeros(self.n_theta, dtype=bool)
        diag[: len(self.tril[0])] = self.tril[0] == self.tril[1]
        if self.clinic is not None:
            diag[-1] = True
        self.on_diagonal = diag
        self.evaluations = 0  # deviance (or deviance + gradient) evaluations, for fit health
        self._cache: dict = {}
        self._buffers: dict = {}
        self._last_full: tuple | None = None

    def start(self) -> np.ndarray:
        """lme4's default start: Lambda = I, lambda_c = 1."""
        return np.where(self.on_diagonal, 1.0, 0.0)

    def moment_start(self) -> np.ndarray:
        r"""Method-of-moments start: :math:`\hat b_i = (Z_i'Z_i)^{-1}Z_i'e` (OLS residuals e, patients
        with more rows than effects), :math:`\hat D = \mathrm{cov}(\hat b) - \hat\sigma^2
        \overline{(Z_i'Z_i)^{-1}}`, :math:`\hat\sigma^2` pooled within patients; clinic SD from the
        clinic means of :math:`\hat b_{i0}`. Floored away from 0, where the deviance is flat."""
        q = self.q
        beta = np.linalg.lstsq(self.X, self.y, rcond=None)[0]
        e = self.y - self.X @ beta
        ze = np.tensordot(self.zw, np.append(-beta, 1.0), axes=([1], [0]))          # (q, m)
        es = e if self._order is None else e[self._order]
        ee = np.add.reduceat(es * es, self._starts)
        n_i = self.zz[0, 0]
        with np.errstate(divide="ignore", invalid="ignore"):  # one-visit patients: left out below
            zinv, logdet = _inv_logdet(self.zz)
            scale = np.log(np.prod([self.zz[a, a] for a in range(q)], axis=0))
            ok = (n_i > q) & np.isfinite(logdet) & (logdet > np.log(1e-8) + scale)
        if ok.sum() < 3:
            return self.start()
        zinv = zinv[:, :, ok]
        b = _bmul(zinv, ze[:, None, ok])[:, 0]                                     # (q, m_ok)
        s2 = max((ee[ok] - (ze[:, ok] * b).sum(axis=0)).sum() / (n_i[ok] - q).sum(), 1e-12)
        D = (np.cov(b) if q > 1 else np.atleast_2d(b.var(ddof=1))) - s2 * zinv.mean(axis=-1)
        w, v = np.linalg.eigh(np.atleast_2d(D) / s2)
        L = np.linalg.cholesky((v * np.maximum(w, 1e-4 * max(w.max(), 1e-2))) @ v.T)
        out = list(L[self.tril])
        if self.clinic is not None:
            cl = self.clinic[ok]
            counts = np.bincount(cl, minlength=self.k)
            means = np.bincount(cl, weights=b[0], minlength=self.k)[counts > 0] / counts[counts > 0]
            between = means.var() - D[0, 0] * np.mean(1.0 / counts[counts > 0])
            out.append(np.sqrt(max(float(np.nan_to_num(between / s2)), (0.1 * L[0, 0]) ** 2)))
        return np.array(out)

    # -- the criterion ---------------------------------------------------------------------
    def _buffer(self, name, shape):
        """A work array reused between evaluations (never part of a returned or cached result)."""
        if name not in self._buffers:
            self._buffers[name] = np.empty(shape)
        return self._buffers[name]

    def _pieces(self, theta, full=False, reuse=False):
        """log|V| and G; with ``full`` also the per-patient Z'V^-1 W and Z'V^-1 Z. Plain evaluations
        are cached: a third of the Satterthwaite Hessian's points differ from others in sigma only.
        The last full evaluation is kept too (its arrays are the work arrays, current until the next
        full one) and given back with ``reuse``: after the fit, the estimates and the Satterthwaite
        step start where the optimiser's last gradient was taken. The optimiser never reuses, so its
        evaluation count (in the fit health) is what it computed."""
        theta = np.asarray(theta, float)
        if full:
            key = theta.tobytes()
            if reuse and self._last_full is not None and self._last_full[0] == key:
                return dict(self._last_full[1])
            pc = self._compute_pieces(theta, True)
            self._last_full = (key, dict(pc))
            return pc
        key = theta.tobytes()
        if key not in self._cache:
            if len(self._cache) >= 512:
                self._cache.clear()
            pc = self._compute_pieces(theta, False)
            self._cache[key] = {k: v for k, v in pc.items() if k not in ("g", "zvz")}
        return dict(self._cache[key])

    @_single_threaded
    def _compute_pieces(self, theta, full):
        self.evaluations += 1
        L = self.lam(theta)
        A = _sandwich(L, self.zz, right=True) + np.eye(self.q)[:, :, None]
        Ainv, logdet_i = _inv_logdet(A)
        K = _sandwich(L, Ainv, right=False)                      # Lambda A^-1 Lambda'
        q, m = self.q, self.m
        tmp_w = self._buffer("tmp_w", self.zw.shape[1:])
        H = _bmul(K, self.zw, self._buffer("H", self.zw.shape), tmp_w)  # K Z'W, (q, p+1, m)
        G = self.WtW - sum(self.zw[a] @ H[a].T for a in range(self.q))
        out = {"L": L, "logdet": float(logdet_i.sum())}
        # Z'Vp^-1 W and Z'Vp^-1 Z per patient (Vp: patients only); row 0 is 1'Vp^-1 as Z = [1 ...]
        rows = slice(None) if full else slice(0, 1)
        if self.clinic is not None or full:
            # work arrays, one set for full and one for plain evaluations: a full evaluation's g and
            # zvz live until the next full one (its callers use them at once: _gradient, estimates)
            nr, tag = (q, "full") if full else (1, "plain")
            tmp_z = self._buffer("tmp_z", (q, m))
            kappa = _bmul(self.zz[rows], K, self._buffer("kappa_" + tag, (nr, q, m)), tmp_z)
            np.subtract(np.eye(q)[rows, :, None], kappa, out=kappa)            # (I - Z'Z K) rows
            g = _bmul(kappa, self.zw, self._buffer("g_" + tag, (nr,) + self.zw.shape[1:]), tmp_w)
            zvz = _bmul(kappa, self.zz, self._buffer("zvz_" + tag, (nr, q, m)), tmp_z)
            out.update(g=g, zvz=zvz)
        if self.clinic is not None:
            lc2 = theta[-1] ** 2
            t = _group_sum(zvz[0, 0], self._corder, self._cstarts)     # 1'Vp^-1 1 per clinic
            h = _group_sum(g[0], self._corder, self._cstarts)          # 1'Vp^-1 W, (p+1, k)
            d = 1.0 + lc2 * t
            G = G - lc2 * (h / d) @ h.T
            out["logdet"] += float(np.log(d).sum())
            out.update(t=t, h=h, d=d)
        out["G"] = G
        return out

    def _profile(self, theta, full=False, reuse=False):
        pc = self._pieces(theta, full, reuse)
        G, p = pc["G"], self.p
        if not np.all(np.isfinite(G)):
            raise np.linalg.LinAlgError("non-finite cross-products")
        cg = scipy.linalg.cho_factor(G[:p, :p], lower=True)
        beta = scipy.linalg.cho_solve(cg, G[:p, p])
        r2 = max(G[p, p] - G[:p, p] @ beta, 1e-300)
        pc.update(beta=beta, r2=r2, cg=cg, logdet_x=2.0 * np.log(np.diag(cg[0])).sum(), Gxx=G[:p, :p])
        return pc

    def _criterion(self, pc) -> float:
        n, p = self.n, self.p
        if self.reml:
            nu, extra = n - p, pc["logdet_x"]
        else:
            nu, extra = n, 0.0
        return float(pc["logdet"] + extra + nu * (1 + _LOG2PI + np.log(pc["r2"] / nu)))

    def _full_rows(self, theta, pc):
        """F_i = Z_i'V^-1 W (q, p+1, m) and Z_i'V^-1 Z_i (q, q, m), clinic level included."""
        F, zvz = pc["g"], pc["zvz"]
        if self.clinic is None:
            return F, zvz
        w = (theta[-1] ** 2 / pc["d"])[self.clinic]                      # lambda_c^2 / d_k
        a = zvz[:, 0]                                                     # Z_i'Vp^-1 1, (q, m)
        F = F - a[:, None, :] * (w * pc["h"][:, self.clinic])[None]
        zvz = zvz - a[:, None, :] * a[None, :, :] * w
        return F, zvz

    @_single_threaded
    def deviance_and_gradient(self, theta) -> tuple[float, np.ndarray]:
        """Profiled deviance and its analytic gradient in theta; (inf, nan) where not evaluable."""
        theta = np.asarray(theta, float)
        try:
            pc = self._profile(theta, full=True)
        except (np.linalg.LinAlgError, ValueError):
            return np.inf, np.full(self.n_theta, np.nan)
        nu = (self.n - self.p) if self.reml else self.n
        return self._criterion(pc), self._gradient(theta, pc, nu / pc["r2"])

    def _gradient(self, theta, pc, weight) -> np.ndarray:
        """d/dtheta of log|V| (+ log|G_xx| for REML) + weight * r^2 (module docstring): the
        profiled deviance for weight = nu / r^2, lmerTest's deviance in (theta, sigma) for
        weight = 1 / sigma^2."""
        p, q = self.p, self.q
        c = np.append(-pc["beta"], 1.0)
        F, zvz = self._full_rows(theta, pc)
        # one Gram matrix of the rows of F gives sum_i u_i u_i' and sum_i Q_i Gxx^-1 Q_i'
        Fm = F.reshape(q * (p + 1), -1)
        gram = (Fm @ Fm.T).reshape(q, p + 1, q, p + 1)
        S = zvz.sum(axis=-1) - weight * np.einsum("j,ajbk,k->ab", c, gram, c)
        if self.reml:
            Ginv = scipy.linalg.cho_solve(pc["cg"], np.eye(p))
            S = S - np.einsum("jk,ajbk->ab", Ginv, gram[:, :p, :, :p])
        grad = list((2.0 * S @ pc["L"])[self.tril])
        if self.clinic is not None:
            lc = theta[-1]
            hh = pc["h"] / pc["d"]                                        # 1_k'V^-1 W, (p+1, k)
            term = (pc["t"] / pc["d"]).sum() - weight * np.sum((c @ hh) ** 2)
            if self.reml:
                term -= np.vdot(hh[:p], scipy.linalg.cho_solve(pc["cg"], hh[:p]))
            grad.append(2.0 * lc * term)
        return np.array(grad)

    @_single_threaded
    def vp_gradient(self, varpar, pieces: bool = False, reuse: bool = False) -> tuple:
        """Analytic gradient of :meth:`deviance_vp` in (theta, sigma), and Var(beta) there (and
        with ``pieces`` the criterion's pieces at theta, current until the next full evaluation;
        ``reuse``: the last full evaluation when it was at this theta, see :meth:`_pieces`).

        d/dsigma = -2 r^2 / sigma^3 + 2 nu / sigma (nu = n - p for REML, n for ML).
        """
        varpar = np.asarray(varpar, float)
        theta, sigma = varpar[:-1], varpar[-1]
        pc = self._profile(theta, full=True, reuse=reuse)
        nu = (self.n - self.p) if self.reml else self.n
        g = self._gradient(theta, pc, 1.0 / sigma ** 2)
        g_sigma = -2.0 * pc["r2"] / sigma ** 3 + 2.0 * nu / sigma
        vcov = sigma ** 2 * scipy.linalg.cho_solve(pc["cg"], np.eye(self.p))
        return (np.append(g, g_sigma), vcov) + ((pc,) if pieces else ())

    def gradient(self, theta) -> np.ndarray:
        """Analytic gradient of the profiled deviance in theta."""
        return self.deviance_and_gradient(theta)[1]

    @_single_threaded
    def estimates(self, theta) -> dict:
        """beta, sigma, Var(beta), conditional modes (BLUPs) and fitted values at theta."""
        theta = np.asarray(theta, float)
        pc = self._profile(theta, full=True, reuse=True)
        n, p = self.n, self.p
        sigma = np.sqrt(pc["r2"] / ((n - p) if self.reml else n))
        beta = pc["beta"]
        c = np.append(-beta, 1.0)
        F, _ = self._full_rows(theta, pc)
        u = np.tensordot(F, c, axes=([1], [0]))                           # Z_i'V^-1 (y - X beta)
        b = (pc["L"] @ pc["L"].T @ u).T                                   # (m, q)
        out = {"beta": beta, "sigma": sigma,
               "vcov": sigma ** 2 * scipy.linalg.cho_solve(pc["cg"], np.eye(p))}
        fitted = self.X @ beta + np.einsum("nq,nq->n", self.Z, b[self.patient])
        if self.clinic is not None:
            out["clinic_effects"] = theta[-1] ** 2 * (c @ (pc["h"] / pc["d"]))
            fitted = fitted + out["clinic_effects"][self.clinic_obs]
        out.update(patient_effects=b, fitted=fitted)
        return out
