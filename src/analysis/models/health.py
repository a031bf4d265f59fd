"""Fit health of a mixed model, the fallback chain, and the GEE fallback fit.

Every model fit carries a :class:`FitHealth` record. A data problem never ends in a traceback:
the fit either ends ``estimated`` (possibly after fallback steps, each listed) or
``not estimable: <reason>`` with empty result tables.

Fallback chain (see docs/methods.md, "Linear mixed models")
-----------------------------------------------------------
1. The engine's optimizers, in the configured order (default ``lbfgs, bfgs, powell, nm``); the
   first whose solution passes the convergence check (lme4's scaled gradient of the deviance,
   max |chol(H)^-1 g| over free variance parameters, below :data:`GRADIENT_TOL`) is used.
2. A simpler random structure: random slope -> random intercept only (clinic level kept), then
   the clinic level dropped. A clinic level with fewer than 2 clinics is dropped up front.
3. GEE: ``statsmodels`` GEE, gaussian family, exchangeable working correlation within patient,
   robust (sandwich) standard errors, z-based inference (df = inf). Reported with engine
   ``statsmodels-GEE``: it estimates population-averaged effects, not patient-level variance
   components.
4. ``not estimable: <reason>``.

Singular fit: as lme4's ``isSingular``, a variance parameter bounded below by 0 (a diagonal
entry of the relative Cholesky factor) that is below 1e-4. A singular fit is *estimated*, with the
flag set and a warning, as lme4 leaves it.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

#: Convergence: lme4's scaled gradient max |chol(H)^-1 g| (its check.conv.grad default, 2e-3).
GRADIENT_TOL = 2e-3
#: lme4's isSingular tolerance on theta.
SINGULAR_TOL = 1e-4


@dataclass
class FitHealth:
    """How a model fit went.

    Attributes
    ----------
    engine : str
        ``statsmodels`` (MixedLM, polished on lme4's criterion), ``statsmodels-GEE`` or ``""``
        for the LMM; the episode count models label theirs
        (:data:`analysis.endpoints.episodes.ENGINES`).
    optimizers_tried, optimizer_used : list of str, str or None
    converged : bool
    singular : bool
        lme4's criterion: a theta with lower bound 0 below 1e-4.
    gradient_norm : float
        lme4's scaled gradient of the deviance in theta at the solution (free coordinates).
    hessian_positive_definite : bool or None
        Hessian of the deviance in the variance parameters (theta, sigma) used for the
        Satterthwaite df (boundary parameters held fixed).
    fixed_effects_agreement : float
        Max |beta_a - beta_b| over the converged solutions (optimizers and starting points).
    fallback_steps : list of str
    status : str
        ``"estimated"`` or ``"not estimable: <reason>"``.
    warnings : list of str
        Captured, never printed.
    random_structure : str
        The random-effects structure finally fitted, in lme4 notation.
    """

    engine: str = ""
    optimizers_tried: list[str] = field(default_factory=list)
    optimizer_used: str | None = None
    converged: bool = False
    singular: bool = False
    gradient_norm: float = float("nan")
    hessian_positive_definite: bool | None = None
    fixed_effects_agreement: float = float("nan")
    fallback_steps: list[str] = field(default_factory=list)
    status: str = "not estimable: not fitted"
    warnings: list[str] = field(default_factory=list)
    random_structure: str = ""

    @property
    def estimated(self) -> bool:
        return self.status == "estimated"

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("gradient_norm", "fixed_effects_agreement"):
            if not np.isfinite(out[key]):
                out[key] = None
        return out

    def add_warning(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def not_estimable(reason: str, base: FitHealth | None = None) -> FitHealth:
    """A health record ending ``not estimable: <reason>`` (keeping what ``base`` tried)."""
    h = base if base is not None else FitHealth()
    h.status = f"not estimable: {reason}"
    h.converged = False
    return h


def simpler_structures(random: str, clinic: str | None, n_clinics: int | None):
    """The random structures to try in order, each with the fallback step that leads to it.

    Yields ``(random, clinic, step)``; ``step`` is None for the requested structure.
    """
    first_step = None
    if clinic is not None and n_clinics is not None and n_clinics < 2:
        first_step = f"clinic level dropped: only {n_clinics} clinic with data"
        clinic = None
    yield random, clinic, first_step
    if random != "intercept":
        yield "intercept", clinic, f"random structure simplified: {random!r} -> 'intercept'"
    if clinic is not None:
        yield "intercept", None, "clinic level dropped"


def fit_gee(y, X, groups) -> dict:
    """Gaussian GEE, exchangeable working correlation, robust covariance (statsmodels).

    Returns beta, vcov (robust), the exchangeable correlation and scale, and captured warnings.
    """
    import statsmodels.api as sm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        order = np.argsort(groups, kind="stable")  # GEE wants each cluster's rows contiguous
        model = sm.GEE(y[order], X[order], groups=groups[order], family=sm.families.Gaussian(),
                       cov_struct=sm.cov_struct.Exchangeable())
        res = model.fit()
    return {"beta": np.asarray(res.params), "vcov": np.asarray(res.cov_params()),
            "correlation": float(model.cov_struct.dep_params), "scale": float(res.scale),
            "converged": bool(getattr(res, "converged", True)),
            "warnings": sorted({str(w.message) for w in caught})}
