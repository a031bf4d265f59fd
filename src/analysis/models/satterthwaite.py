r"""lme4's profiled deviance per group, and Satterthwaite degrees of freedom as lmerTest computes them.

Methods
-------
**Model** (Bates et al. 2015, notation of lme4). For observation rows of patient :math:`j`
(nested in clinic :math:`k`)

.. math:: y_j = X_j\beta + Z_j b_j + 1\,c_k + \varepsilon_j,\quad
          b_j \sim N(0, \sigma^2\Lambda\Lambda^\top),\ c_k \sim N(0, \sigma^2\lambda_c^2),\
          \varepsilon_j \sim N(0, \sigma^2 I)

with :math:`\Lambda` the :math:`q\times q` lower-triangular relative Cholesky factor. The
variance parameters are lme4's :math:`\theta` = the lower triangle of :math:`\Lambda` in
column-major order, then :math:`\lambda_c` when clinics are modelled; diagonal entries are
bounded below by 0 (a 0 there is a *singular* fit).

**Profiled deviance.** With :math:`W = [X\ y]` and :math:`M = \Lambda^\top Z^\top Z\Lambda + I`
(block-diagonal per patient, bordered per clinic), the matrix
:math:`G = W^\top(I + Z\Lambda\Lambda^\top Z^\top)^{-1}W` is accumulated from per-patient
:math:`q\times q` blocks and one Schur complement per clinic — never an :math:`n\times n` matrix.
Then :math:`\hat\beta(\theta) = G_{xx}^{-1}G_{xy}`, the penalised residual sum of squares is
:math:`r^2 = G_{yy} - G_{xy}^\top\hat\beta` and (Bates et al. 2015, eqs. 34 and 41)

.. math:: d_{ML}(\theta) = \log|M| + n\,[1 + \log(2\pi r^2/n)],\qquad
          d_{REML}(\theta) = \log|M| + \log|G_{xx}| + (n-p)\,[1 + \log(2\pi r^2/(n-p))].

:math:`d_{REML}` at the optimum is lme4's ``REMLcrit``.

**Satterthwaite df** (Kuznetsova et al. 2017, lmerTest 3.1). The variance parameters are
:math:`\phi = (\theta, \sigma)`; the deviance in :math:`\phi` (not profiled over :math:`\sigma`)
is :math:`\log|M| + r^2/\sigma^2 + n\log(2\pi\sigma^2)`, plus
:math:`\log|G_{xx}| - p\log(2\pi\sigma^2)` for REML. :math:`A = 2H^{-1}`, :math:`H` its Hessian
at :math:`\hat\phi`; :math:`C(\phi) = \sigma^2 G_{xx}^{-1}` is Var(:math:`\hat\beta`). For a contrast
:math:`L`, with :math:`g_k = L\,(\partial C/\partial\phi_k)\,L^\top`,

.. math:: \nu = 2\,(L C L^\top)^2 / (g^\top A g).

:math:`H` and :math:`\partial C/\partial\phi` are central differences with Richardson extrapolation
(4 steps halving, as numDeriv's ``hessian``/``jacobian`` that lmerTest calls, with the same first
steps: 0.1|x| for the Hessian, 1e-4|x| for the Jacobian). Variance parameters on the boundary
(:math:`\theta_{ii}=0`) are held fixed: there the deviance is flat to first order in them.

References: Bates D, Mächler M, Bolker B, Walker S (2015) J Stat Softw 67(1).
Kuznetsova A, Brockhoff PB, Christensen RHB (2017) J Stat Softw 82(13).
Satterthwaite FE (1946) Biometrics Bull 2:110-114.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.sparse

_LOG2PI = np.log(2 * np.pi)


class ProfiledDeviance:
    """lme4's REML/ML criterion for patient random effects (q per patient) and a clinic intercept.

    Parameters
    ----------
    y, X, Z : arrays (n,), (n, p), (n, q)
    patient : int array (n,)
        Codes 0..m-1 of the innermost groups.
    clinic_of_patient : int array (m,), optional
        Clinic code of each patient; None for no clinic level.
    reml : bool
    """

    def __init__(self, y, X, Z, patient, clinic_of_patient=None, reml=True):
        y, X, Z = np.asarray(y, float), np.asarray(X, float), np.asarray(Z, float)
        n, p = X.shape
        q = Z.shape[1]
        self.n, self.p, self.q, self.reml = n, p, q, reml
        self.m = int(patient.max()) + 1
        W = np.column_stack([X, y])
        # Per-patient sums as one sparse product: S is the m x n membership matrix.
        S = scipy.sparse.csr_matrix((np.ones(n), (patient, np.arange(n))), shape=(self.m, n))
        self.ZtZ = (S @ (Z[:, :, None] * Z[:, None, :]).reshape(n, q * q)).reshape(self.m, q, q)
        self.ZtW = (S @ (Z[:, :, None] * W[:, None, :]).reshape(n, -1)).reshape(self.m, q, p + 1)
        self.WtW = W.T @ W
        self.Z, self.X, self.y, self.patient = Z, X, y, patient
        self.clinic = clinic_of_patient
        if clinic_of_patient is not None:
            self.k = int(clinic_of_patient.max()) + 1
            self.zsum = S @ Z                                        # (m, q): 1'Z_j
            clinic_obs = clinic_of_patient[patient]
            self.n_c = np.bincount(clinic_obs, minlength=self.k).astype(float)
            C = scipy.sparse.csr_matrix((np.ones(n), (clinic_obs, np.arange(n))), shape=(self.k, n))
            self.onesW = np.asarray(C @ W)                           # (k, p+1): 1'W_c
            self.clinic_obs = clinic_obs
        self.tril = np.tril_indices(q)
        order = np.lexsort((self.tril[0], self.tril[1]))             # column-major, as lme4
        self.tril = (self.tril[0][order], self.tril[1][order])
        self.n_theta = len(self.tril[0]) + (clinic_of_patient is not None)
        diag = np.zeros(self.n_theta, dtype=bool)
        diag[: len(self.tril[0])] = self.tril[0] == self.tril[1]
        if clinic_of_patient is not None:
            diag[-1] = True
        self.on_diagonal = diag

    # -- parameters ---------------------------------------------------------------------------
    def lower_bounds(self) -> np.ndarray:
        return np.where(self.on_diagonal, 0.0, -np.inf)

    def lam(self, theta) -> np.ndarray:
        L = np.zeros((self.q, self.q))
        L[self.tril] = theta[: len(self.tril[0])]
        return L

    def theta_from_cov(self, cov_rel, clinic_rel=0.0) -> np.ndarray:
        """theta from a relative (divided by sigma^2) covariance; clips to the nearest PSD matrix."""
        w, v = np.linalg.eigh((cov_rel + cov_rel.T) / 2)
        cov = (v * np.clip(w, 1e-8, None)) @ v.T
        L = np.linalg.cholesky(cov)
        out = list(L[self.tril])
        if self.clinic is not None:
            out.append(np.sqrt(max(clinic_rel, 0.0)))
        return np.array(out)

    # -- the criterion -------------------------------------------------------------------------
    def _pieces(self, theta):
        """log|M|, G and the per-patient solves needed for conditional modes."""
        theta = np.asarray(theta, float)
        L = self.lam(theta)
        A = L.T @ self.ZtZ @ L + np.eye(self.q)                      # (m, q, q)
        R = L.T @ self.ZtW                                           # (m, q, p+1)
        chol = np.linalg.cholesky(A)
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
        AinvR = np.linalg.solve(A, R)
        G = self.WtW - np.tensordot(R, AinvR, axes=([0, 1], [0, 1]))
        out = {"L": L, "A": A, "R": R, "AinvR": AinvR}
        if self.clinic is not None:
            lc = theta[-1]
            Mjc = lc * (self.zsum @ L)                               # (m, q) = lambda_c L' s_j
            AinvM = np.linalg.solve(A, Mjc[..., None])[..., 0]
            S = lc ** 2 * self.n_c + 1.0 - np.bincount(
                self.clinic, weights=np.einsum("mq,mq->m", Mjc, AinvM), minlength=self.k)
            MAR = np.einsum("mq,mqk->mk", AinvM, R)
            T = lc * self.onesW - np.vstack([np.bincount(self.clinic, weights=MAR[:, i], minlength=self.k)
                                             for i in range(self.p + 1)]).T
            G = G - np.einsum("ck,cl->kl", T / S[:, None], T)
            logdet += np.log(S).sum()
            out.update(Mjc=Mjc, S=S, T=T)
        out.update(G=G, logdet=logdet)
        return out

    def _profile(self, theta):
        pc = self._pieces(theta)
        G, p = pc["G"], self.p
        cg = np.linalg.cholesky(G[:p, :p])
        beta = np.linalg.solve(cg.T, np.linalg.solve(cg, G[:p, p]))
        r2 = max(G[p, p] - G[:p, p] @ beta, 1e-300)
        pc.update(beta=beta, r2=r2, logdet_x=2.0 * np.log(np.diag(cg)).sum(), Gxx=G[:p, :p])
        return pc

    def deviance(self, theta) -> float:
        """Profiled REML (or ML) deviance at theta; +inf where it cannot be evaluated."""
        try:
            pc = self._profile(theta)
        except np.linalg.LinAlgError:
            return np.inf
        n, p = self.n, self.p
        if self.reml:
            return float(pc["logdet"] + pc["logdet_x"] + (n - p) * (1 + _LOG2PI + np.log(pc["r2"] / (n - p))))
        return float(pc["logdet"] + n * (1 + _LOG2PI + np.log(pc["r2"] / n)))

    def deviance_vp(self, varpar) -> float:
        """lmerTest's deviance in (theta, sigma), beta profiled out but sigma not."""
        varpar = np.asarray(varpar, float)
        s2 = varpar[-1] ** 2
        try:
            pc = self._profile(varpar[:-1])
        except np.linalg.LinAlgError:
            return np.inf
        dev = pc["logdet"] + pc["r2"] / s2 + self.n * (_LOG2PI + np.log(s2))
        if self.reml:
            dev += pc["logdet_x"] - self.p * (_LOG2PI + np.log(s2))
        return float(dev)

    def estimates(self, theta) -> dict:
        """beta, sigma, Var(beta), conditional modes and fitted values at theta."""
        pc = self._profile(theta)
        n, p = self.n, self.p
        sigma = np.sqrt(pc["r2"] / ((n - p) if self.reml else n))
        beta = pc["beta"]
        coef = np.append(-beta, 1.0)
        r = pc["R"] @ coef                                           # (m, q)
        out = {"beta": beta, "sigma": sigma, "vcov": sigma ** 2 * np.linalg.inv(pc["Gxx"])}
        if self.clinic is not None:
            uc = (pc["T"] @ coef) / pc["S"]
            r = r - pc["Mjc"] * uc[self.clinic][:, None]
            out["clinic_effects"] = theta[-1] * uc
        u = np.linalg.solve(pc["A"], r[..., None])[..., 0]
        b = u @ pc["L"].T
        fitted = self.X @ beta + np.einsum("nq,nq->n", self.Z, b[self.patient])
        if self.clinic is not None:
            fitted = fitted + out["clinic_effects"][self.clinic_obs]
        out.update(patient_effects=b, fitted=fitted)
        return out

    def covbeta(self, varpar) -> np.ndarray:
        """Var(beta-hat) = sigma^2 G_xx(theta)^{-1} as a function of (theta, sigma)."""
        pc = self._pieces(np.asarray(varpar[:-1], float))
        return varpar[-1] ** 2 * np.linalg.inv(pc["G"][: self.p, : self.p])


# -- numerical derivatives (Richardson extrapolation of central differences) -------------------
def _steps(x, d, eps=1e-4, zero_tol=np.sqrt(np.finfo(float).eps / 7e-7)):
    return np.where(np.abs(x) < zero_tol, eps, d * np.abs(x))


def _richardson(estimates, v=2.0):
    a = list(estimates)
    for m in range(1, len(a)):
        f = v ** (2 * m)
        a = [(f * a[i + 1] - a[i]) / (f - 1) for i in range(len(a) - 1)]
    return a[0]


def jacobian(fun, x, d=1e-4, r=4, v=2.0) -> np.ndarray:
    """d fun / d x (fun returns an array), shape fun(x).shape + (len(x),)."""
    x = np.asarray(x, float)
    h0 = _steps(x, d)
    cols = []
    for i in range(len(x)):
        est = []
        for k in range(r):
            e = np.zeros_like(x)
            e[i] = h0[i] / v ** k
            est.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * e[i]))
        cols.append(_richardson(est, v))
    return np.stack(cols, axis=-1)


def hessian(fun, x, d=0.1, r=4, v=2.0) -> np.ndarray:
    """Hessian of a scalar function by Richardson-extrapolated central second differences."""
    x = np.asarray(x, float)
    n = len(x)
    h0 = _steps(x, d)
    f0 = fun(x)
    H = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            est = []
            for k in range(r):
                hi, hj = h0[i] / v ** k, h0[j] / v ** k
                ei, ej = np.eye(n)[i] * hi, np.eye(n)[j] * hj
                if i == j:
                    est.append((fun(x + ei) - 2 * f0 + fun(x - ei)) / hi ** 2)
                else:
                    est.append((fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej)
                                + fun(x - ei - ej)) / (4 * hi * hj))
            H[i, j] = H[j, i] = _richardson(est, v)
    return H


def gradient(fun, x, d=1e-2, r=4, v=2.0) -> np.ndarray:
    """Gradient of a scalar function; the first step 1% of |x| keeps round-off (~1e-12 of a
    deviance of ~1e3) far below the Richardson-cancelled truncation error."""
    return jacobian(lambda z: np.atleast_1d(fun(z)), x, d, r, v)[0]


# -- optimisation of theta ---------------------------------------------------------------------
def optimise_theta(dev: ProfiledDeviance, start, max_newton: int = 5) -> tuple[np.ndarray, dict]:
    """Minimise the profiled deviance from ``start``.

    Bounded L-BFGS-B (restarted while it stops abnormally and still gains), bounded Nelder-Mead
    from there when lme4's scaled gradient is still above 1e-4, then each small
    diagonal theta tried at its bound 0 (L-BFGS-B creeps towards a boundary optimum slowly when the
    problem is ill-scaled, e.g. strength in newtons), then Newton steps on the free coordinates.

    Returns theta and a record: deviance, ``gradient_norm`` (lme4's scaled gradient, see
    :func:`scaled_gradient_norm`) and the optimizer's message.
    """
    lower = dev.lower_bounds()
    floor = np.where(np.isfinite(lower), lower, -np.inf)
    theta = np.maximum(np.asarray(start, float), floor)
    theta, message = _lbfgsb(dev, theta, floor)
    best = dev.deviance(theta)
    if scaled_gradient_norm(dev, theta) > 1e-4:
        # derivative-free (as lme4's bobyqa) copes with ill-scaled, nearly flat directions
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in floor]
        res = scipy.optimize.minimize(dev.deviance, theta, method="Nelder-Mead", bounds=bounds,
                                      options={"xatol": 1e-7, "fatol": 1e-10, "maxfev": 2000})
        if res.fun < best:
            theta, best, message = np.maximum(res.x, floor), float(res.fun), "Nelder-Mead: " + str(res.message)
    diag = np.flatnonzero(dev.on_diagonal & (theta > 0))
    scale = max(1.0, float(np.max(np.abs(theta)))) if theta.size else 1.0
    for i in diag[theta[diag] < 1e-2 * scale]:
        trial = theta.copy()
        trial[i] = 0.0
        trial, msg = _lbfgsb(dev, trial, floor, restarts=0)
        if dev.deviance(trial) < best:
            theta, best, message = trial, dev.deviance(trial), msg
    theta = _newton(dev, theta, floor, max_newton)
    return theta, {"deviance": dev.deviance(theta), "gradient_norm": scaled_gradient_norm(dev, theta),
                   "message": message}


def _lbfgsb(dev, theta, floor, restarts: int = 1):
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in floor]
    last = np.inf
    for _ in range(restarts + 1):
        # forward differences suffice to get close; the Newton steps do the last digits
        res = scipy.optimize.minimize(dev.deviance, theta, method="L-BFGS-B", jac="2-point", bounds=bounds,
                                      options={"ftol": 1e-12, "gtol": 1e-7, "maxiter": 200})
        theta = np.maximum(res.x, floor)
        if res.success or not res.fun < last - 1e-9 * max(1.0, abs(res.fun)):
            break
        last = res.fun
    return theta, str(res.message)


def _newton(dev, theta, floor, max_newton):
    """Newton steps on the free coordinates: the optimum to ~1e-8 (lme4's bobyqa reaches ~1e-7).

    The Hessian is computed once and reused (it hardly changes this close to the optimum).
    """
    free, H = None, None
    for _ in range(max_newton):
        now_free = _free(dev, theta)
        if not now_free.any():
            break
        f = _restricted(dev.deviance, theta, now_free)
        g = gradient(f, theta[now_free])
        if np.max(np.abs(g)) < 1e-8:
            break
        try:
            if H is None or not np.array_equal(free, now_free):
                free, H = now_free, hessian(f, theta[now_free])
                if np.any(np.linalg.eigvalsh(H) <= 0):
                    break
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        trial = theta.copy()
        trial[free] -= step
        trial = np.maximum(trial, floor)
        # the deviance itself carries ~1e-14 relative round-off: accept steps within that noise
        noise = 1e-11 * max(1.0, abs(dev.deviance(theta)))
        if dev.deviance(trial) <= dev.deviance(theta) + noise:
            theta = trial
        else:
            break
        if g @ step < 1e-12:  # Newton decrement: nothing left to gain
            break
    return theta


def _free(dev, theta):
    return ~(dev.on_diagonal & (theta <= 1e-10))


def _restricted(fun, theta, free):
    def f(z):
        t = theta.copy()
        t[free] = z
        return fun(t)
    return f


def scaled_gradient_norm(dev: ProfiledDeviance, theta) -> float:
    """lme4's convergence measure: max |chol(H)^-1 g| over the free coordinates (scale-free).

    ``g`` and ``H`` are the gradient and Hessian of the deviance in theta; coordinates held at
    their bound 0 by a positive gradient are left out. Where ``H`` is not positive definite the
    plain max |g| is returned.
    """
    g = gradient(dev.deviance, theta)
    free = _free(dev, theta) | (g < 0)
    if not free.any():
        return 0.0
    g = g[free]
    try:
        H = hessian(_restricted(dev.deviance, theta, free), theta[free])
        return float(np.max(np.abs(np.linalg.solve(np.linalg.cholesky(H), g))))
    except np.linalg.LinAlgError:
        return float(np.max(np.abs(g)))


class Satterthwaite:
    """Satterthwaite df for any contrast of beta at the fitted (theta, sigma).

    Parameters
    ----------
    dev : ProfiledDeviance
    theta : array
        The optimum.
    sigma : float
        Residual SD at the optimum.
    """

    def __init__(self, dev: ProfiledDeviance, theta, sigma):
        theta = np.asarray(theta, float)
        self.free = np.append(~(dev.on_diagonal & (np.abs(theta) <= 1e-10)), True)
        full = np.append(theta, sigma)

        def expand(vp):
            out = full.copy()
            out[self.free] = vp
            return out

        vp = full[self.free]
        self.hessian = hessian(lambda z: dev.deviance_vp(expand(z)), vp)
        eig = np.linalg.eigvalsh(self.hessian)
        self.positive_definite = bool(np.all(eig > 0))
        self.A = 2.0 * (np.linalg.inv(self.hessian) if self.positive_definite
                        else np.linalg.pinv(self.hessian))
        self.vcov = dev.covbeta(full)
        self.jac = jacobian(lambda z: dev.covbeta(expand(z)), vp)  # (p, p, k)

    def df(self, L) -> float:
        L = np.asarray(L, float).ravel()
        var = L @ self.vcov @ L
        g = np.einsum("i,ijk,j->k", L, self.jac, L)
        denom = g @ self.A @ g
        if not np.isfinite(denom) or denom <= 0:
            return np.inf
        return float(2.0 * var ** 2 / denom)
