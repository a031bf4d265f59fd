r"""Linear mixed models with lme4's estimates and lmerTest's Satterthwaite inference.

Methods
-------
**Model.** :math:`y = X\beta + Zb + \varepsilon` with per-patient random effects
:math:`b_j \sim N(0, \Sigma)` — a random intercept (``random="intercept"``,
``(1 | patient)``), intercept and slope on time (``"slope"``, ``(1 + week | patient)``) or any
design ``"~ ..."`` — optionally a random intercept per clinic with patients nested in clinics
(``(1 | clinic) + (... | clinic:patient)``), and :math:`\varepsilon \sim N(0, \sigma^2 I)`.

**Estimation.** REML by default (``reml=False``: ML). Engine ``"pls"``
(:mod:`analysis.models.engine_pls`) minimises lme4's profiled criterion directly, vectorised over
patients, with an analytic gradient; ``"auto"`` uses it for the models in its class (random
intercept, or intercept + slope, per patient; optional clinic intercept) and ``"statsmodels"``
for anything else, saying so in the fit health. Engine ``"statsmodels"`` (the cross-check)
fits ``statsmodels.MixedLM`` with each optimizer in turn; its solution is converted to lme4's
:math:`\theta` (relative Cholesky factor) and polished on lme4's profiled criterion
(:class:`~analysis.models.satterthwaite.ProfiledDeviance`: bounded L-BFGS-B, Nelder-Mead if needed, Newton), so the
estimates equal lme4's to ~1e-6 (statsmodels alone stops ~1e-5 short). A second polish from lme4's
own start (:math:`\theta` = identity) guards against a poor statsmodels solution; the two must
agree (``fixed_effects_agreement``). statsmodels cannot fit correlated patient effects nested in
clinics (its ``vc_formula`` components are independent, and slow), so with a clinic level the
patient part starts from statsmodels and the clinic variance is estimated on lme4's criterion.

**Inference.** Fixed effects and any contrast :math:`L\beta`: t statistics with Satterthwaite df
(:class:`~analysis.models.satterthwaite.Satterthwaite`, as lmerTest), two-sided p, and
:math:`L\hat\beta \pm t_{1-\alpha/2,\nu}\,\mathrm{SE}`. A GEE fallback fit is z-based (df = inf).

**Variance components** as lme4's ``as.data.frame(VarCorr(m))`` ``sdcor`` column: SDs, then
correlations, per group; last ``Residual``.

References: Bates D et al. (2015) J Stat Softw 67(1); Kuznetsova A et al. (2017) J Stat Softw
82(13); Seabold S, Perktold J (2010) statsmodels, Proc. 9th Python in Science Conf.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
import pandas as pd

from analysis.errors import ConfigError
from analysis.models.engine_pls import PlsEngine
from analysis.models.formulas import DesignProblem, MixedDesign, build_mixed_design
from analysis.models.health import (
    GRADIENT_TOL,
    SINGULAR_TOL,
    FitHealth,
    fit_gee,
    not_estimable,
    simpler_structures,
)
from analysis.models.pls_deviance import PlsDeviance, pls_class_problem
from analysis.models.satterthwaite import ProfiledDeviance, Satterthwaite, optimise_theta
from analysis.models.satterthwaite_gradient import GradientSatterthwaite
from analysis.models.tidy import TIDY_COLUMNS, empty_tidy, tidy_frame, tidy_row

__all__ = ["TIDY_COLUMNS", "LmmFit", "empty_tidy", "fit_lmm", "tidy_frame", "tidy_row"]

STATSMODELS_METHODS = ("lbfgs", "bfgs", "powell", "nm", "cg", "newton")


@dataclass
class LmmFit:
    """A fitted (or not estimable) linear mixed model. Tables are empty when not estimable."""

    fixed_effects: pd.DataFrame
    vcov_beta: pd.DataFrame
    variance_components: pd.DataFrame
    sigma: float
    reml: bool
    reml_criterion: float
    deviance: float
    loglik: float
    aic: float
    bic: float
    n_obs: int
    n_groups: dict
    random_effects: pd.DataFrame
    residuals: pd.Series
    fitted: pd.Series
    health: FitHealth
    alpha: float = 0.05
    theta: np.ndarray | None = None
    design: MixedDesign | None = None
    satterthwaite: Satterthwaite | None = field(default=None, repr=False)

    @property
    def estimated(self) -> bool:
        return self.health.estimated

    @property
    def beta(self) -> np.ndarray:
        return self.fixed_effects["estimate"].to_numpy(float)

    def design_rows(self, newdata: pd.DataFrame) -> np.ndarray:
        """Fixed-effect design rows (columns as in ``fixed_effects``) for new data."""
        return self.design.rows(newdata)

    def contrast(self, L, term: str = "contrast", alpha: float | None = None) -> pd.DataFrame:
        """:math:`L\\beta` as one tidy row with Satterthwaite df (z-based for a GEE fit)."""
        return pd.DataFrame([self.contrast_row(L, term, alpha)], columns=TIDY_COLUMNS)

    def contrast_row(self, L, term: str = "contrast", alpha: float | None = None) -> dict:
        """:meth:`contrast` as a dict."""
        alpha = self.alpha if alpha is None else alpha
        if not self.estimated:
            return {**{c: np.nan for c in TIDY_COLUMNS}, "term": term}
        L = np.asarray(L, float).ravel()
        if L.size != len(self.fixed_effects):
            raise ValueError(f"contrast has {L.size} entries for {len(self.fixed_effects)} fixed effects")
        V = self.vcov_beta.to_numpy()
        se = float(np.sqrt(max(L @ V @ L, 0.0)))
        df = self.satterthwaite.df(L) if self.satterthwaite is not None else np.inf
        return tidy_row(term, float(L @ self.beta), se, df, alpha)

    def contrast_table(self, Ls, terms, alpha: float | None = None) -> pd.DataFrame:
        """:meth:`contrast` of each row of ``Ls`` (None: not estimable, all NaN) in one table;
        each estimate, SE and df is computed as :meth:`contrast_row` computes it."""
        alpha = self.alpha if alpha is None else alpha
        n = len(terms)
        est, se, df = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        if self.estimated:
            V, beta, k = self.vcov_beta.to_numpy(), self.beta, len(self.fixed_effects)
            for i, L in enumerate(Ls):
                if L is None:
                    continue
                L = np.asarray(L, float).ravel()
                if L.size != k:
                    raise ValueError(f"contrast has {L.size} entries for {k} fixed effects")
                se[i] = float(np.sqrt(max(L @ V @ L, 0.0)))
                df[i] = self.satterthwaite.df(L) if self.satterthwaite is not None else np.inf
                est[i] = float(L @ beta)
        return tidy_frame(terms, est, se, df, alpha)


class LmmEngine(Protocol):
    """What an engine must do: find lme4's theta for a design (inference is engine-independent).

    An engine may also have ``criterion(design, reml)`` returning its own
    :class:`~analysis.models.satterthwaite.ProfiledDeviance` (e.g. a faster subclass); fit_lmm then uses
    it for the fit and for inference.
    """

    name: str

    def fit(self, design: MixedDesign, dev: ProfiledDeviance, optimizers: Sequence[str],
            health: FitHealth) -> np.ndarray | None:
        """Return theta at the optimum (None if no optimizer converged), filling ``health``."""


class StatsmodelsEngine:
    """statsmodels MixedLM per optimizer, then polished on lme4's profiled criterion."""

    name = "statsmodels"

    def fit(self, design, dev, optimizers, health):
        from statsmodels.regression.mixed_linear_model import MixedLM

        lme4_start = np.where(dev.on_diagonal, 1.0, 0.0)
        for method in optimizers:
            health.optimizers_tried.append(method)
            candidates, betas = [], []
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    res = MixedLM(design.y, design.X, groups=design.patient,
                                  exog_re=design.Z).fit(reml=dev.reml, method=method)
                    cov = np.atleast_2d(np.asarray(res.cov_re, float)) / res.scale
                    if not np.all(np.isfinite(cov)):
                        raise ValueError("non-finite random-effects covariance")
                    if res.converged and dev.clinic is None:  # with clinics it is another model
                        betas.append(np.asarray(res.fe_params, float))
                    for c in self._clinic_starts(dev, cov):
                        candidates.append(c)
                except Exception as exc:  # statsmodels raises many types on degenerate data
                    health.add_warning(f"statsmodels MixedLM ({method}) failed: {exc}")
            for w in caught:
                health.add_warning(f"statsmodels ({method}): {w.message}")
            if not candidates:
                continue
            candidates.append(lme4_start)
            solutions = []
            for start in candidates:
                theta, info = optimise_theta(dev, start)
                if np.isfinite(info["deviance"]) and info["gradient_norm"] < GRADIENT_TOL:
                    solutions.append((info["deviance"], theta, info))
            if not solutions:
                health.add_warning(f"{method}: no solution passed the gradient check")
                continue
            solutions.sort(key=lambda s: s[0])
            best_dev, theta, info = solutions[0]
            for d, t, _ in solutions:
                if d - best_dev < 1e-6 * max(1.0, abs(best_dev)):
                    betas.append(dev.estimates(t)["beta"])
            ref = dev.estimates(theta)["beta"]
            health.fixed_effects_agreement = float(max(np.max(np.abs(b - ref)) for b in betas))
            health.optimizer_used = f"{method} + lme4-criterion polish (L-BFGS-B, Newton)"
            health.gradient_norm = info["gradient_norm"]
            health.converged = True
            return theta
        return None

    @staticmethod
    def _clinic_starts(dev, cov):
        if dev.clinic is None:
            return [dev.theta_from_cov(cov)]
        # statsmodels fitted patients only: start the clinic SD (relative to sigma) at the best of
        # a few values, judged by the deviance itself (cheap)
        starts = [dev.theta_from_cov(cov, c ** 2) for c in (0.01, 0.1, 0.3, 1.0)]
        return [min(starts, key=dev.deviance)]


class AutoEngine:
    """The pls engine for the models in its class, statsmodels for the rest (said in the health)."""

    name = "auto"

    def criterion(self, design, reml):
        if pls_class_problem(design) is None:
            return PlsEngine.criterion(design, reml)
        return _criterion(StatsmodelsEngine(), design, reml)

    def fit(self, design, dev, optimizers, health):
        problem = pls_class_problem(design)
        if problem is None:
            theta = PlsEngine().fit(design, dev, optimizers, health)
            if theta is not None:
                return theta
            health.add_warning("engine auto: the pls engine did not converge; trying statsmodels")
        else:
            health.add_warning(f"engine auto: {problem}: outside the pls engine's class, "
                               "fitted with statsmodels")
        health.engine = "statsmodels"
        return StatsmodelsEngine().fit(design, dev, optimizers, health)


ENGINES = {"auto": AutoEngine, "pls": PlsEngine, "statsmodels": StatsmodelsEngine}


def get_engine(engine: str) -> LmmEngine:
    if engine not in ENGINES:
        raise ConfigError(f"unknown mixed-model engine {engine!r}; choose from {sorted(ENGINES)}")
    return ENGINES[engine]()


def _criterion(eng, design, reml) -> ProfiledDeviance:
    """The engine's own criterion if it has one (see LmmEngine), else the reference implementation."""
    if hasattr(eng, "criterion"):
        return eng.criterion(design, reml)
    return ProfiledDeviance(design.y, design.X, design.Z, design.patient, design.clinic_of_patient,
                            reml=reml)


def fit_lmm(data: pd.DataFrame, fixed: str, group: str, random: str = "slope", time: str = "week",
            clinic: str | None = None, reml: bool = True, engine: str = "auto",
            optimizers: Sequence[str] = ("lbfgs", "bfgs", "powell", "nm"), alpha: float = 0.05,
            fallback: bool = True) -> LmmFit:
    """Fit a linear mixed model; never raises for a data problem (see ``health.status``).

    Parameters
    ----------
    data : DataFrame
        One row per observation.
    fixed : str
        Fixed-effects formula, e.g. ``"pain_score ~ week * C(arm, Treatment(reference='usual_care'))"``;
        checked by :func:`analysis.models.formulas.check_formula`.
    group : str
        Patient column.
    random : {"intercept", "slope"} or str
        Patient random effects; ``"slope"`` is intercept + slope on ``time``; or a formula ``"~ week"``.
    time : str
        Time column (weeks).
    clinic : str, optional
        Clinic column: adds a clinic random intercept, patients nested in clinics.
    reml : bool
        REML (default) or ML.
    engine : str
        ``"auto"`` (``"pls"`` for models in its class, else ``"statsmodels"``), ``"pls"`` or
        ``"statsmodels"``. ``"pls"`` on a model outside its class raises ConfigError.
    optimizers : sequence of str
        statsmodels optimizers, tried in order (the pls engine has its own, see
        :mod:`analysis.models.engine_pls`).
    alpha : float
        1 - confidence level of the intervals.
    fallback : bool
        Follow the fallback chain (simpler structure, GEE) when no optimizer converges.

    Returns
    -------
    LmmFit

    Raises
    ------
    ConfigError
        Unsafe formula, unknown column, engine or optimizer (configuration, not data, problems).
    """
    eng = get_engine(engine)
    bad = [o for o in optimizers if o not in STATSMODELS_METHODS]
    if bad or not optimizers:
        raise ConfigError(f"unknown optimizer(s) {bad}; choose from {list(STATSMODELS_METHODS)}")
    health = FitHealth(engine=eng.name)
    try:
        design = build_mixed_design(data, fixed, group, random, time, clinic)
    except DesignProblem as exc:
        return _not_estimable(str(exc), health, reml, alpha)
    for note in design.notes:
        health.add_warning(note)
    n_clinics = len(design.clinic_labels) if clinic else None
    for rnd, clin, step in simpler_structures(random, clinic, n_clinics):
        if step is not None:
            if not fallback and not step.startswith("clinic level dropped: only"):
                break
            health.fallback_steps.append(step)
        if (rnd, clin) != (random, clinic):
            try:
                design = build_mixed_design(data, fixed, group, rnd, time, clin)
            except DesignProblem as exc:
                return _not_estimable(str(exc), health, reml, alpha)
        dev = _criterion(eng, design, reml)
        theta = eng.fit(design, dev, optimizers, health)
        if theta is not None:
            return _finish(design, dev, theta, health, alpha)
    if not fallback:
        return _not_estimable("no optimizer converged", health, reml, alpha)
    health.fallback_steps.append("GEE (gaussian, exchangeable, robust SE)")
    try:
        return _gee_fit(design, health, reml, alpha)
    except Exception as exc:  # the last resort must not raise either
        return _not_estimable(f"no optimizer converged and GEE failed ({exc})", health, reml, alpha)


def _structure(design: MixedDesign) -> str:
    terms = " + ".join("1" if z == "(Intercept)" else z for z in design.z_names)
    if design.clinic:
        return f"(1 | {design.clinic}) + ({terms} | {design.clinic}:{design.group})"
    return f"({terms} | {design.group})"


def _finish(design, dev, theta, health, alpha) -> LmmFit:
    est = dev.estimates(theta)
    health.random_structure = _structure(design)
    health.singular = bool(np.any(dev.on_diagonal & (theta < SINGULAR_TOL)))
    if health.singular:
        health.add_warning("boundary (singular) fit: a random-effect variance is estimated as ~0")
    # the pls criterion has an analytic gradient: its Hessian costs ~20 evaluations, not ~160
    satt = (GradientSatterthwaite if isinstance(dev, PlsDeviance) else Satterthwaite)(dev, theta, est["sigma"])
    health.hessian_positive_definite = satt.positive_definite
    if not satt.positive_definite:
        health.add_warning("Hessian of the deviance in the variance parameters is not positive "
                           "definite: Satterthwaite df are unreliable")
    health.status = "estimated"
    names = design.x_names
    se = np.sqrt(np.diag(est["vcov"]))
    dfs = [satt.df(np.eye(len(names))[i]) for i in range(len(names))]
    crit = dev.deviance(theta)
    k = len(names) + len(theta) + 1
    n = len(design.y)
    idx = design.data.index
    fitted = pd.Series(est["fitted"], index=idx, name="fitted")
    return LmmFit(
        fixed_effects=tidy_frame(names, est["beta"], se, dfs, alpha),
        vcov_beta=pd.DataFrame(est["vcov"], index=names, columns=names),
        variance_components=_varcorr(design, dev, theta, est["sigma"]), sigma=float(est["sigma"]),
        reml=dev.reml, reml_criterion=crit if dev.reml else np.nan,
        deviance=np.nan if dev.reml else crit, loglik=-crit / 2, aic=crit + 2 * k,
        bic=crit + k * np.log(n), n_obs=n, n_groups=_n_groups(design), alpha=alpha,
        random_effects=_ranef(design, est), residuals=pd.Series(design.y - est["fitted"], index=idx,
                                                                 name="residual"),
        fitted=fitted, health=health, theta=theta, design=design, satterthwaite=satt)


def _n_groups(design) -> dict:
    out = {design.group: len(design.patient_labels)}
    if design.clinic:
        out[design.clinic] = len(design.clinic_labels)
    return out


def _varcorr(design, dev, theta, sigma) -> pd.DataFrame:
    L = dev.lam(theta)
    cov = sigma ** 2 * L @ L.T
    sd = np.sqrt(np.diag(cov))
    gname = f"{design.clinic}:{design.group}" if design.clinic else design.group
    rows = [(gname, z, None, sd[i]) for i, z in enumerate(design.z_names)]
    for j in range(len(sd)):
        for i in range(j + 1, len(sd)):
            corr = cov[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
            rows.append((gname, design.z_names[j], design.z_names[i], corr))
    if design.clinic:
        rows.append((design.clinic, "(Intercept)", None, sigma * theta[-1]))
    rows.append(("Residual", None, None, sigma))
    return pd.DataFrame(rows, columns=["group", "term1", "term2", "estimate"])


def _ranef(design, est) -> pd.DataFrame:
    b = pd.DataFrame(est["patient_effects"], columns=design.z_names)
    labels = design.patient_labels  # an object array from the list is 4 times faster than pandas'
    b.insert(0, "level", np.fromiter(labels, dtype=object, count=len(labels)))
    b.insert(0, "group", f"{design.clinic}:{design.group}" if design.clinic else design.group)
    if design.clinic:
        c = pd.DataFrame({"group": design.clinic, "level": design.clinic_labels,
                          "(Intercept)": est["clinic_effects"]})
        b = pd.concat([b, c], ignore_index=True)
    return b


def _empty_fit(health, reml, alpha, design=None) -> LmmFit:
    nan = float("nan")
    return LmmFit(fixed_effects=empty_tidy(), vcov_beta=pd.DataFrame(),
                  variance_components=pd.DataFrame(columns=["group", "term1", "term2", "estimate"]),
                  sigma=nan, reml=reml, reml_criterion=nan, deviance=nan, loglik=nan, aic=nan, bic=nan,
                  n_obs=0, n_groups={}, random_effects=pd.DataFrame(), residuals=pd.Series(dtype=float),
                  fitted=pd.Series(dtype=float), health=health, alpha=alpha, design=design)


def _not_estimable(reason, health, reml, alpha) -> LmmFit:
    return _empty_fit(not_estimable(reason, health), reml, alpha)


def _gee_fit(design, health, reml, alpha) -> LmmFit:
    g = fit_gee(design.y, design.X, design.patient)
    for w in g["warnings"]:
        health.add_warning(f"GEE: {w}")
    health.engine = "statsmodels-GEE"
    health.optimizer_used = "GEE (gaussian, exchangeable, robust SE)"
    health.converged = g["converged"]
    health.random_structure = f"exchangeable working correlation within {design.group}"
    health.status = "estimated"
    names = design.x_names
    se = np.sqrt(np.diag(g["vcov"]))
    fit = _empty_fit(health, reml, alpha, design)
    fit.fixed_effects = tidy_frame(names, g["beta"], se, np.full(len(names), np.inf), alpha)
    fit.vcov_beta = pd.DataFrame(g["vcov"], index=names, columns=names)
    fit.variance_components = pd.DataFrame(
        [(design.group, "exchangeable correlation", None, g["correlation"]),
         ("Residual", None, None, np.sqrt(g["scale"]))], columns=["group", "term1", "term2", "estimate"])
    fit.sigma, fit.n_obs, fit.n_groups = float(np.sqrt(g["scale"])), len(design.y), _n_groups(design)
    fitted = design.X @ g["beta"]
    fit.fitted = pd.Series(fitted, index=design.data.index, name="fitted")
    fit.residuals = pd.Series(design.y - fitted, index=design.data.index, name="residual")
    return fit
