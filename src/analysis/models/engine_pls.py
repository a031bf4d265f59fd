r"""The ``pls`` mixed-model engine: optimising lme4's profiled criterion, vectorised over patients.

Methods
-------
The criterion, its analytic gradient and the model class are in :mod:`analysis.models.pls_deviance`
(its docstring is the methods section for both modules). **Optimiser:** bounded L-BFGS-B on the
analytic gradient (in :math:`\theta` scaled by its start) from a method-of-moments start, and from
lme4's (:math:`\Lambda = I`, :math:`\lambda_c = 1`) only when the first did not reach a scaled
gradient below 1e-8 (lme4 accepts 2e-3); probes off the bound where it stopped at a diagonal
:math:`\theta = 0` (a saddle: the deviance is even there); Newton steps with the Hessian
from forward differences of the gradient. The best solution of the starts tried is used; when none
converges, the numerical-gradient chain of :mod:`analysis.models.satterthwaite` takes over.

References: Bates D, Mächler M, Bolker B, Walker S (2015) J Stat Softw 67(1).
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

from analysis.errors import ConfigError
from analysis.models.health import GRADIENT_TOL
from analysis.models.pls_deviance import PlsDeviance, _single_threaded, pls_class_problem
from analysis.models.satterthwaite import optimise_theta

__all__ = ["PlsEngine", "minimise"]

#: A first start polished below this scaled gradient (Newton's target, far inside lme4's 2e-3)
#: makes the second start unnecessary. At lme4's 2e-3 alone the demo's strength model (log
#: newtons, an ill-scaled slope SD) kept a first solution at 6e-7 whose estimates differ from the
#: best of both starts in the 9th digit.
POLISHED = 1e-8


# -- optimisation ------------------------------------------------------------------------------
def _free(dev: PlsDeviance, theta, g) -> np.ndarray:
    """Coordinates not held at their bound 0 by a non-negative gradient."""
    return ~(dev.on_diagonal & (theta <= 1e-10) & (g >= 0))


def gradient_hessian(dev: PlsDeviance, theta, free, g=None) -> np.ndarray:
    """Hessian in the free coordinates by forward differences of the analytic gradient (forward
    steps never cross the bound 0; their ~1e-5 relative error hardly slows Newton's steps)."""
    g = dev.gradient(theta) if g is None else g
    idx = np.flatnonzero(free)
    H = np.empty((len(idx), len(idx)))
    for j, i in enumerate(idx):
        e = np.zeros_like(theta)
        e[i] = 1e-5 * max(abs(theta[i]), 1e-2)
        H[:, j] = (dev.gradient(theta + e)[idx] - g[idx]) / e[i]
    return (H + H.T) / 2


def scaled_gradient(dev: PlsDeviance, theta, H=None) -> tuple:
    """lme4's convergence measure max |chol(H)^-1 g| over the free coordinates (max |g| where H
    is not positive definite), with free, H and g. A given H (near the optimum it hardly
    changes) is reused."""
    g = dev.gradient(theta)
    free = _free(dev, theta, g)
    if not free.any():
        return 0.0, free, np.zeros((0, 0)), g
    if H is None or H.shape[0] != free.sum():
        H = gradient_hessian(dev, theta, free, g)
    try:
        return float(np.max(np.abs(np.linalg.solve(np.linalg.cholesky(H), g[free])))), free, H, g
    except np.linalg.LinAlgError:
        return float(np.max(np.abs(g[free]))), free, H, g


def _scale(dev: PlsDeviance, start) -> np.ndarray:
    """Typical size of each theta (its start; off-diagonals take their row's diagonal)."""
    q = len(dev.tril[0])
    diag_of_row = {r: i for i, (r, c) in enumerate(zip(*dev.tril)) if r == c}
    scale = np.array([abs(start[diag_of_row[r]]) for r in dev.tril[0]] + list(np.abs(start[q:])))
    return np.maximum(scale, 1e-3)


@_single_threaded  # scipy's L-BFGS-B calls LAPACK on tiny matrices too
def _lbfgsb(dev: PlsDeviance, theta, scale) -> tuple[np.ndarray, str]:
    """L-BFGS-B in theta / scale: its first steps are of unit length, so unscaled it overshoots
    small theta (a slope's SD per week) to the bound."""
    def fun(phi):
        value, grad = dev.deviance_and_gradient(phi * scale)
        return value, grad * scale

    bounds = [(0.0, None) if d else (None, None) for d in dev.on_diagonal]
    res = scipy.optimize.minimize(fun, theta / scale, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"ftol": 1e-11, "gtol": 1e-6, "maxiter": 500})
    return np.where(dev.on_diagonal, np.maximum(res.x, 0.0), res.x) * scale, str(res.message)


def _off_the_boundary(dev: PlsDeviance, theta, value) -> np.ndarray | None:
    """A lower point next to a diagonal theta stuck at 0, or None. The deviance is even in the last
    diagonal of Lambda and in lambda_c (Lambda Lambda' keeps its value when they change sign): at 0
    its gradient is exactly 0, and L-BFGS-B, once a step reached the bound, stops at a saddle."""
    scale = max(1.0, float(np.max(np.abs(theta))))
    for i in np.flatnonzero(dev.on_diagonal & (theta <= 1e-10)):
        for delta in (1e-3, 1e-2, 1e-1):
            trial = theta.copy()
            trial[i] = delta * scale
            if dev.deviance(trial) < value - 1e-10 * max(1.0, abs(value)):
                return trial
    return None


def minimise(dev: PlsDeviance, start, max_newton: int = 4) -> tuple[np.ndarray, dict]:
    """L-BFGS-B on the analytic gradient from ``start``, off-the-boundary probes, Newton steps.

    Returns theta and a record: ``deviance``, ``gradient_norm`` (lme4's scaled gradient),
    ``evaluations`` (of the deviance, with or without gradient, polish included), ``message``.
    """
    before = dev.evaluations
    start = np.where(dev.on_diagonal, np.maximum(np.asarray(start, float), 0.0), start)
    scale = _scale(dev, start)
    theta, message = _lbfgsb(dev, start, scale)
    best = dev.deviance(theta)
    for _ in range(3):
        trial = _off_the_boundary(dev, theta, best)
        if trial is None:
            break
        trial, message = _lbfgsb(dev, trial, _scale(dev, trial))
        if dev.deviance(trial) < best:
            theta, best = trial, dev.deviance(trial)
    norm, free, H, g = scaled_gradient(dev, theta)
    for _ in range(max_newton):
        if norm < 1e-8 or not free.any():
            break
        try:
            step = np.linalg.solve(H, g[free])
        except np.linalg.LinAlgError:
            break
        trial = theta.copy()
        trial[free] -= step
        trial = np.where(dev.on_diagonal, np.maximum(trial, 0.0), trial)
        value = dev.deviance(trial)
        # the deviance carries ~1e-14 relative round-off: accept steps within that noise
        if not value <= best + 1e-12 * max(1.0, abs(best)):
            break
        theta, best = trial, min(best, value)
        norm, free, H, g = scaled_gradient(dev, theta, H)
    return theta, {"deviance": best, "gradient_norm": norm, "evaluations": dev.evaluations - before,
                   "message": message}


class PlsEngine:
    """lme4's penalised-least-squares criterion for this project's models (module docstring)."""

    name = "pls"

    @staticmethod
    def criterion(design, reml: bool) -> PlsDeviance:
        """The profiled criterion this engine optimises (used by fit_lmm for inference too).

        Raises
        ------
        ConfigError
            The random-effects structure is outside the engine's class.
        """
        problem = pls_class_problem(design)
        if problem is not None:
            raise ConfigError(f"engine 'pls': {problem}; use engine 'auto' or 'statsmodels'")
        return PlsDeviance(design.y, design.X, design.Z, design.patient, design.clinic_of_patient,
                           reml=reml)

    @_single_threaded
    def fit(self, design, dev, optimizers, health):
        """Optimise theta from the moment start; from lme4's too only when the first does not meet
        lme4's convergence criterion (``optimizers``, statsmodels', unused)."""
        if not isinstance(dev, PlsDeviance):
            dev = self.criterion(design, dev.reml)
        health.engine = self.name
        health.optimizers_tried.append("L-BFGS-B")
        moments = dev.moment_start()
        starts = [moments if np.all(np.isfinite(moments)) else dev.start(), dev.start()]
        solutions, evaluations = [], 0
        used = 0
        for start in starts:
            theta, info = minimise(dev, start)
            evaluations += info["evaluations"]
            used += 1
            if np.isfinite(info["deviance"]) and info["gradient_norm"] < GRADIENT_TOL:
                solutions.append((info["deviance"], theta, info))
                if info["gradient_norm"] < POLISHED:
                    break  # at the optimum to Newton's target: lme4's own start is not needed
        how = (f"pls: L-BFGS-B (analytic gradient) + Newton, {evaluations} evaluations "
               f"from {used} start{'s' if used > 1 else ''}")
        if not solutions:
            # the bounded numerical-gradient chain of analysis.models.satterthwaite (Nelder-Mead included)
            health.optimizers_tried.append("L-BFGS-B/Nelder-Mead (numerical gradient)")
            health.add_warning("pls: L-BFGS-B on the analytic gradient did not converge; "
                               "retried with the numerical-gradient optimiser chain")
            before = dev.evaluations
            theta, info = optimise_theta(dev, dev.start())
            if not (np.isfinite(info["deviance"]) and info["gradient_norm"] < GRADIENT_TOL):
                return None
            solutions.append((info["deviance"], theta, info))
            how = (f"pls: numerical-gradient chain ({info['message']}), "
                   f"{dev.evaluations - before} evaluations")
        solutions.sort(key=lambda s: s[0])
        best_dev, theta, info = solutions[0]
        for d, _, _ in solutions[1:]:
            if d - best_dev >= 1e-6 * max(1.0, abs(best_dev)):
                health.add_warning(f"pls: a start stopped at a local optimum {d - best_dev:.3g} "
                                   "above the best; the best is used")
        same = [dev._profile(t)["beta"] for d, t, _ in solutions
                if d - best_dev < 1e-6 * max(1.0, abs(best_dev))]
        health.fixed_effects_agreement = float(max(np.max(np.abs(b - same[0])) for b in same))
        health.optimizer_used = how
        health.gradient_norm = info["gradient_norm"]
        health.converged = True
        return theta
