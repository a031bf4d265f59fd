"""Random-intercept Poisson and negative-binomial (NB2) mixed models, ML by Laplace approximation.

Methods
-------
For visit :math:`j` of patient :math:`i`,

.. math::

    y_{ij} \\mid b_i &\\sim \\text{Poisson}(\\mu_{ij}) \\quad\\text{or}\\quad
        \\text{NB2}(\\mu_{ij}, \\theta),\\
        \\operatorname{Var} = \\mu_{ij} + \\mu_{ij}^2/\\theta \\\\
    \\log \\mu_{ij} &= x_{ij}^\\top \\beta + \\log(\\text{exposure}_{ij}) + \\sigma u_i,
        \\qquad u_i \\sim N(0, 1).

**Estimation: maximum likelihood** (not REML) of the marginal likelihood, the integral over
:math:`u_i` replaced by the **Laplace approximation** (one node; glmer's default ``nAGQ = 1`` and
glmmTMB's only method):

.. math::

    \\log L(\\beta, \\sigma, \\theta) = \\sum_i \\Big[ f_i(\\hat u_i)
        - \\tfrac12 \\log\\big(1 + \\sigma^2 W_i(\\hat u_i)\\big) \\Big],\\quad
    f_i(u) = \\sum_j \\log p(y_{ij} \\mid \\eta_{ij}(u)) - u^2/2,\\quad
    W_i = -\\sum_j \\partial^2_\\eta \\log p(y_{ij} \\mid \\eta_{ij}).

The log density keeps every constant (``-log y!`` and the NB gamma terms), so ``loglik`` is
comparable with R's ``logLik()``. The inner modes :math:`\\hat u_i` solve
:math:`\\sigma\\sum_j \\partial_\\eta \\log p = u` by Newton iterations **vectorised across all
patients at once** (per-patient sums by ``np.bincount``; no Python loop over patients), warm-started
from the previous outer step. The outer problem is maximised over
:math:`(\\beta, \\log\\sigma, \\log\\theta)` by scipy's L-BFGS-B with the exact gradient (the
implicit-function derivative :math:`d\\hat u_i/dp = \\partial_p f_{i,u} / H_i` enters through the
log-determinant term), then polished by Newton steps. Covariates are centred and scaled inside the
fit and the estimates mapped back, which changes nothing but the conditioning.

**Covariance**: the inverse of the negative Hessian of the Laplace log-likelihood over *all*
parameters (central differences of the exact gradient), the fixed-effect block taken. glmmTMB
does the same with TMB's automatic differentiation, and glmer's ``vcov()`` uses the
finite-difference Hessian over :math:`(\\sigma, \\beta)`; at an interior maximum the
:math:`\\beta` block of the inverse does not depend on how :math:`\\sigma` or :math:`\\theta` are
parametrised. The alternative, the :math:`\\beta` block of the Hessian alone (conditional on
:math:`\\hat\\sigma`), is smaller (epil Poisson, trtprogabide: 0.15043 vs 0.15081) and matches
neither R package; it is used only as the fallback when :math:`\\hat\\sigma` or
:math:`\\hat\\theta` sits on its boundary (then with a warning). Inference is Wald :math:`z`,
``df = inf``.

glmer's default fit is not converged on epil. Its second-stage optimiser (Nelder-Mead) stops
short of the Laplace maximum: logLik -666.841173 (r_reference.json: epil_glmer_poisson) against
-666.840835 both here and in glmer refitted with ``optimizer = "bobyqa"``, ``rhoend = 1e-10``
(r_counts_reference.json: epil_glmer_poisson_bobyqa). Its fixed effects are 1.9e-4 (relative)
from the maximum and, since its finite-difference Hessian is taken at that point, its SEs are
off by up to 5.1e-3 (V4: 0.054305 vs 0.054584). This module equals the converged glmer to
4e-6 (estimates, SEs, SD) and glmmTMB nbinom2 to 3e-5 (estimates) and 3e-6 (SEs, theta, SD);
against the default glmer the estimates, SD and logLik agree within 2e-4 but the SEs only
within 6e-3 (trtprogabide SE 0.150808 vs 0.150488, 2.1e-3).

Why not gpboost. gpboost 1.8.0 (``GPModel(likelihood="poisson" | "negative_binomial",
group_data=...)``; its ``std_dev`` fit option is discontinued, SEs come from
``get_coef(std_err=True)``) fits the same Laplace model but misses the 1e-3 agreement on epil.
With its default settings the estimates stop early: up to 1.7e-3 (relative) from converged glmer
and 8.4e-3 from glmmTMB nbinom2 (V4). With ``optimizer_cov = optimizer_coef = "lbfgs"`` and
``delta_rel_conv = 1e-12`` the estimates reach the maximum (4e-6 and 3e-5) but its fixed-effect
SEs, which it calls approximate, still differ by 2.5e-3 (Poisson) and 2.7e-3 (NB2) from both
R packages and from this module. It is kept as an independent cross-check of the estimates and
logLik in the tests.

References
----------
Tierney & Kadane (1986) JASA 81:82-86 (Laplace); Breslow & Clayton (1993) JASA 88:9-25;
Bates, Maechler, Bolker & Walker (2015) J Stat Softw 67(1) (lme4);
Brooks et al. (2017) R Journal 9(2):378-400 (glmmTMB); Kristensen et al. (2016) J Stat Softw
70(5) (TMB).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

FAMILIES = ("poisson", "negative_binomial")
#: log sigma and log theta are kept in these boxes; hitting a bound means "at the boundary"
#: (sigma = 0: no patient heterogeneity; theta = infinity: no extra-Poisson variation).
LOG_SIGMA_BOUNDS = (-9.0, 4.0)
LOG_THETA_BOUNDS = (-7.0, 12.0)
#: Below / above these the estimate is reported as on the boundary (sigma = 0, theta = infinity).
SIGMA_ZERO = 1e-3
THETA_INFINITE = 1e4
#: Converged when max |d logLik / d parameter| (free parameters, scaled covariates) is below this.
GRADIENT_TOL = 1e-4


@dataclass
class CountGlmmFit:
    """Result of :func:`fit_count_glmm`; estimates on the caller's covariate scale."""

    family: str
    names: list[str]
    coef: np.ndarray
    cov: np.ndarray
    sigma: float
    theta: float | None
    loglik: float
    converged: bool
    optimizer: str
    gradient_norm: float
    hessian_positive_definite: bool
    n_obs: int
    n_groups: int
    modes: np.ndarray = field(repr=False)
    boundary: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def std_error(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))


def _derivs(y, eta, theta, family, lgy1=None, need_theta=False, y_levels=None, need_d3=True):
    """log p (when ``lgy1`` = log y! is given) and its eta-derivatives 1-3; d/dtheta terms.

    The inner Newton only needs the first two derivatives, so the gamma functions (the bulk of
    the cost) and, with ``need_d3=False``, the third derivative (None then) are skipped there.
    ``y_levels`` = (distinct counts, index of each visit's count): the gamma functions of
    y + theta are then taken once per distinct count (counts take few values), the same
    numbers as elementwise.
    """
    mu = np.exp(eta)
    if family == "poisson":
        logp = None if lgy1 is None else y * eta - mu - lgy1
        return logp, y - mu, -mu, -mu, None
    tm = theta + mu
    ytheta = y + theta
    logp = None
    if lgy1 is not None:
        logp = (_of_y_theta(special.gammaln, ytheta, theta, y_levels)
                - special.gammaln(theta) - lgy1
                + theta * np.log(theta) + y * eta - ytheta * np.log(tm))
    d1 = theta * (y - mu) / tm
    d2 = -ytheta * theta * mu / tm**2
    d3 = -ytheta * theta * mu * (theta - mu) / tm**3 if need_d3 else None
    dth = None
    if need_theta:
        dth = (_of_y_theta(special.digamma, ytheta, theta, y_levels) - special.digamma(theta)
               + np.log(theta) + 1 - np.log(tm) - ytheta / tm,  # d logp / d theta
               mu * (y - mu) / tm**2,                  # d d1 / d theta
               -mu * (2 * theta * mu + y * mu - y * theta) / tm**3)  # d d2 / d theta
    return logp, d1, d2, d3, dth


def _of_y_theta(fun, ytheta, theta, y_levels):
    """``fun(y + theta)``, evaluated once per distinct count when ``y_levels`` is given."""
    if y_levels is None:
        return fun(ytheta)
    values, index = y_levels
    return fun(values + theta)[index]


class _Laplace:
    """Laplace log-likelihood and its exact gradient for one data set (scaled design)."""

    def __init__(self, y, X, offset, group, n_groups, family):
        self.y, self.X, self.offset, self.group, self.G = y, X, offset, group, n_groups
        self.family = family
        self.lgy1 = special.gammaln(y + 1)
        values, index = np.unique(y, return_inverse=True)
        # distinct counts are few (a count is an integer, mostly small): see _derivs
        self.y_levels = (values, index.ravel()) if len(values) <= len(y) // 4 else None
        self.p = X.shape[1]
        self.u = np.zeros(n_groups)

    def _sum(self, v):
        return np.bincount(self.group, weights=v, minlength=self.G)

    def unpack(self, par):
        beta = par[: self.p]
        sigma = np.exp(par[self.p])
        theta = np.exp(par[self.p + 1]) if self.family == "negative_binomial" else None
        return beta, sigma, theta

    def modes(self, beta, sigma, theta, tol=1e-11, max_iter=200):
        """Newton for all patients at once: solve sigma * sum_j d1 = u, f concave in u."""
        lin = self.X @ beta + self.offset
        u = self.u.copy()
        for _ in range(max_iter):
            _, d1, d2, _, _ = _derivs(self.y, lin + sigma * u[self.group], theta, self.family,
                                      need_d3=False)
            score = sigma * self._sum(d1) - u
            if not np.all(np.isfinite(score)):
                self.u = np.zeros(self.G)
                raise FloatingPointError("overflow in the random-effect modes")
            hess = 1.0 - sigma**2 * self._sum(d2)
            # Cap the step on the eta scale: exp() makes a full Newton step overshoot badly
            # from a poor start (e.g. an all-zero patient far from its mode).
            step = np.clip(score / hess, -3.0 / max(sigma, 1e-3), 3.0 / max(sigma, 1e-3))
            u = u + step
            # the second test stops at the floating-point floor of large per-patient sums
            if np.max(np.abs(score)) < tol or np.max(np.abs(step)) < 1e-13:
                break
        else:
            raise FloatingPointError("inner Newton for the random-effect modes did not converge")
        self.u = u
        return u, lin

    def loglik(self, par):
        beta, sigma, theta = self.unpack(par)
        u, lin = self.modes(beta, sigma, theta)
        logp, _, d2, _, _ = _derivs(self.y, lin + sigma * u[self.group], theta, self.family,
                                    self.lgy1, y_levels=self.y_levels, need_d3=False)
        H = 1.0 - sigma**2 * self._sum(d2)
        return float(np.sum(self._sum(logp) - u**2 / 2 - 0.5 * np.log(H)))

    def _gradient_terms(self, par):
        """Log-likelihood and the gradient's pieces: per-visit weights ``d1`` and ``w`` of the
        rows of d/dbeta (``x d1`` and the log-determinant part ``x w``) and per patient
        (d/dsigma, sigma) and (d/dtheta, theta), whose products are the derivatives by log sigma
        and log theta."""
        beta, sigma, theta = self.unpack(par)
        u, lin = self.modes(beta, sigma, theta)
        nb = self.family == "negative_binomial"
        logp, d1, d2, d3, dth = _derivs(self.y, lin + sigma * u[self.group], theta, self.family,
                                        self.lgy1, need_theta=nb, y_levels=self.y_levels)
        S1, S2, S3 = self._sum(d1), self._sum(d2), self._sum(d3)
        H = 1.0 - sigma**2 * S2
        ll = float(np.sum(self._sum(logp) - u**2 / 2 - 0.5 * np.log(H)))
        dH_du = -sigma**3 * S3
        # total derivative: df/dp - 1/(2H) * (dH/dp + dH/du * du/dp), du/dp = (d f_u / dp) / H
        g = self.group
        uo = u[g]
        k = 0.5 / H
        # beta: d f_u / d beta = sigma x d2 and dH / d beta = -sigma^2 x d3 per visit, so the
        # log-determinant part of each visit's row is x times this weight (no (n, p) arrays)
        w = -k[g] * (-sigma**2 * d3 + (dH_du / H)[g] * (sigma * d2))
        # sigma
        df_ds = u * S1
        dfu_ds = S1 + sigma * S2 * u
        dH_ds = -2 * sigma * S2 - sigma**2 * self._sum(d3 * uo)
        per_patient = [(df_ds - k * (dH_ds + dH_du * dfu_ds / H), sigma)]
        if nb:
            lth, d1th, d2th = dth
            df_dt = self._sum(lth)
            dfu_dt = sigma * self._sum(d1th)
            dH_dt = -sigma**2 * self._sum(d2th)
            per_patient.append((df_dt - k * (dH_dt + dH_du * dfu_dt / H), theta))
        return ll, d1, w, per_patient

    def loglik_grad(self, par):
        ll, d1, w, per_patient = self._gradient_terms(par)
        grad_beta = self.X.T @ (d1 + w)
        return ll, np.concatenate([grad_beta] + [[np.sum(t) * f] for t, f in per_patient])

    def patient_gradients(self, par) -> np.ndarray:
        """Each patient's term of the gradient, (patients, parameters): the Laplace
        log-likelihood is a sum over patients at fixed (sigma, theta), so weighted sums of these
        rows are a resample's gradient (:mod:`analysis.models.resample_glmm`)."""
        _, d1, w, per_patient = self._gradient_terms(par)
        rows = self.X * (d1 + w)[:, None]
        beta = np.column_stack([self._sum(rows[:, j]) for j in range(self.p)])
        return np.column_stack([beta] + [t * f for t, f in per_patient])

    def hessian(self, par, rel_step=1e-5):
        """Central differences of the exact gradient, symmetrised."""
        n = len(par)
        hess = np.empty((n, n))
        for i in range(n):
            h = rel_step * max(1.0, abs(par[i]))
            up, dn = par.copy(), par.copy()
            up[i] += h
            dn[i] -= h
            hess[:, i] = (self.loglik_grad(up)[1] - self.loglik_grad(dn)[1]) / (2 * h)
        self.loglik_grad(par)  # leave the warm start at the estimate
        return (hess + hess.T) / 2


def _standardise(X):
    """Matrix M with X @ M centred/scaled (the all-ones column kept); beta = M @ gamma."""
    p = X.shape[1]
    M = np.eye(p)
    ones = [k for k in range(p) if np.all(X[:, k] == 1.0)]
    for k in range(p):
        if k in ones:
            continue
        sd = X[:, k].std()
        sd = sd if sd > 0 else 1.0
        M[k, k] = 1.0 / sd
        if ones:
            M[ones[0], k] = -X[:, k].mean() / sd
    return M


def _start(y, Xs, offset, family):
    """Poisson GLM by IRLS for beta, sigma 0.5, theta from a moment estimate."""
    beta = np.zeros(Xs.shape[1])
    ones = np.flatnonzero(np.all(Xs == 1.0, axis=0))
    if ones.size:
        beta[ones[0]] = np.log(max(y.sum(), 0.5) / np.exp(offset).sum())
    for _ in range(25):
        eta = np.clip(Xs @ beta + offset, -30, 30)
        mu = np.exp(eta)
        z = eta - offset + (y - mu) / mu
        sw = np.sqrt(mu)
        new = np.linalg.lstsq(Xs * sw[:, None], z * sw, rcond=None)[0]
        if np.max(np.abs(new - beta)) < 1e-8:
            beta = new
            break
        beta = new
    start = [beta, [np.log(0.5)]]
    if family == "negative_binomial":
        mu = np.exp(np.clip(Xs @ beta + offset, -30, 30))
        alpha = np.sum((y - mu) ** 2 - y) / np.sum(mu**2)
        start.append([np.log(1.0 / np.clip(alpha, 0.05, 20.0))])
    return np.concatenate(start)


def fit_count_glmm(y, X, offset, groups, family="poisson", names=None) -> CountGlmmFit:
    """Fit a random-intercept Poisson or NB2 GLMM by Laplace maximum likelihood.

    Parameters
    ----------
    y : array_like
        Non-negative counts, one per visit.
    X : array_like, shape (n, p)
        Fixed-effects design (include an intercept column of ones).
    offset : array_like
        Offset on the log scale, e.g. ``log(exposure_days)``.
    groups : array_like
        Patient identifier per visit (any hashable values).
    family : {"poisson", "negative_binomial"}
        Conditional distribution; negative binomial is NB2 (glmmTMB's ``nbinom2``).
    names : list of str, optional
        Names of the columns of ``X``.

    Returns
    -------
    CountGlmmFit
        Estimates, full-Hessian covariance of the fixed effects, sigma, theta, logLik and
        convergence diagnostics.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    offset = np.asarray(offset, dtype=float)
    group = np.unique(np.asarray(groups), return_inverse=True)[1].astype(np.intp).ravel()
    n_groups = int(group.max()) + 1
    names = list(names) if names is not None else [f"x{k}" for k in range(X.shape[1])]
    M = _standardise(X)
    Xs = X @ M
    model = _Laplace(y, Xs, offset, group, n_groups, family)
    p = X.shape[1]
    nb = family == "negative_binomial"
    bounds = [(None, None)] * p + [LOG_SIGMA_BOUNDS] + ([LOG_THETA_BOUNDS] if nb else [])
    notes: list[str] = []

    def objective(par):
        try:
            ll, g = model.loglik_grad(par)
        except FloatingPointError:
            ll = np.nan
        if not np.isfinite(ll):  # an overflowing probe: reject it, keep the warm start sane
            model.u = np.zeros(n_groups)
            return np.inf, np.zeros_like(par)
        return -ll, -g

    lo = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in bounds])
    par = _start(y, Xs, offset, family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow probes are rejected anyway
        # A rejected probe can stop L-BFGS-B early, hence up to three rounds of it + polish.
        for _ in range(3):
            opt = optimize.minimize(objective, par, jac=True, method="L-BFGS-B", bounds=bounds,
                                    options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9})
            par = opt.x
            # Boundary: sigma ~ 0 or theta ~ infinity leave the likelihood flat that way;
            # such a parameter is held at its value and the SEs are conditional on it.
            at_bound = [par[p] < np.log(SIGMA_ZERO)] + ([par[p + 1] > np.log(THETA_INFINITE)]
                                                        if nb else [])
            free = np.array([True] * p + [not b for b in at_bound])
            par = _newton_polish(model, par, free, lo, hi)
            ll, g = model.loglik_grad(par)
            if np.isfinite(ll) and np.max(np.abs(g[free])) < GRADIENT_TOL:
                break
        hess = model.hessian(par)

    boundary = []
    if at_bound[0]:
        boundary.append("sigma")
        notes.append(f"random-intercept SD at the boundary ({np.exp(par[p]):.1e} ~ 0): no "
                     "detectable patient heterogeneity; SEs are conditional on it")
    if nb and at_bound[1]:
        boundary.append("theta")
        notes.append(f"NB2 theta at the boundary ({np.exp(par[p + 1]):.1e} ~ infinity): no "
                     "detectable extra-Poisson variation; SEs are conditional on it")
    neg = -hess[np.ix_(free, free)]
    pd_ok = _is_positive_definite(neg)
    cov_scaled = np.full((p, p), np.nan)
    if pd_ok:
        cov_scaled = np.linalg.inv(neg)[:p, :p]
    else:
        notes.append("negative Hessian of the Laplace log-likelihood not positive definite")
    grad_norm = float(np.max(np.abs(g[free])))
    # the polished gradient is ~1e-10 when all is well; L-BFGS-B's own flag is not needed
    converged = bool(np.isfinite(ll) and grad_norm < GRADIENT_TOL)
    if not converged:
        notes.append(f"optimiser did not converge: max |gradient| {grad_norm:.2e} "
                     f"(L-BFGS-B: {opt.message})")
    return CountGlmmFit(
        family=family, names=names, coef=M @ par[:p], cov=M @ cov_scaled @ M.T,
        sigma=float(np.exp(par[p])), theta=float(np.exp(par[p + 1])) if nb else None,
        loglik=ll, converged=converged, optimizer="L-BFGS-B + Newton polish (scipy)",
        gradient_norm=grad_norm, hessian_positive_definite=pd_ok, n_obs=len(y),
        n_groups=n_groups, modes=np.exp(par[p]) * model.u, boundary=boundary,
        warnings=notes)


def _newton_polish(model, par, free, lo, hi, max_steps=8):
    """Newton steps on the free parameters while they raise the log-likelihood."""
    for _ in range(max_steps):
        ll, g = model.loglik_grad(par)
        if np.max(np.abs(g[free])) < 1e-8:
            break
        try:
            step = np.linalg.solve(-model.hessian(par)[np.ix_(free, free)], g[free])
            trial = par.copy()
            trial[free] = np.clip(par[free] + step, lo[free], hi[free])
            better = np.all(np.isfinite(trial)) and model.loglik(trial) >= ll - 1e-9
        except (np.linalg.LinAlgError, FloatingPointError):
            better = False
        if not better:
            model.loglik_grad(par)  # restore the warm start
            break
        par = trial
    return par


def _is_positive_definite(a) -> bool:
    if not np.all(np.isfinite(a)):
        return False
    try:
        np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return False
    return True
