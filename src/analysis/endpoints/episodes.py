"""Knee-pain episodes: rate ratios of each arm vs the control, two estimands side by side.

Methods
-------
Data (:mod:`analysis.endpoints.episodes_data`). The follow-up rows (``week > 0``) of a visit log, adjusted
for each patient's centred baseline log rate ``log_baseline_rate`` = log((baseline episodes +
0.5) / baseline exposure_days) when baseline rows (``week <= 0``) exist.

Model. For follow-up visit :math:`j` of patient :math:`i` in arm :math:`a(i)`,

.. math::

    \\log \\mu_{ij} = \\beta_0 + \\beta_{a(i)} + \\gamma\\,\\text{log\\_baseline\\_rate}_i
        + z_{ij}^\\top\\delta + \\log(\\text{exposure\\_days}_{ij}) \\;[+\\, b_i],
    \\qquad \\beta_{\\text{control}} = 0.

Estimands ("rate ratio of episodes, ARM vs CONTROL, follow-up weeks"), both always reported:

* ``patient_level`` — :math:`\\exp(\\beta_a)` in the random-intercept GLMM
  (:mod:`analysis.models.glmm_counts`: Poisson or NB2, Laplace **ML**): the ratio of episode rates for
  the same patient (same :math:`b_i`) under ARM vs CONTROL.
* ``population_averaged`` — :math:`\\exp(\\beta_a)` in the GEE (:mod:`analysis.models.gee_counts`:
  Poisson or NB2 variance, exchangeable working correlation, robust SEs): the ratio of mean
  episode rates of the ARM population vs the CONTROL population with the same covariates.

With a log link and a normal random intercept the two coincide in truth (the random intercept
shifts the marginal mean by :math:`\\sigma^2/2` in every arm), so they differ only by estimation.
Inference is Wald :math:`z` (``df = inf``); the :math:`1-\\alpha` interval
:math:`\\hat\\beta \\pm z_{1-\\alpha/2}\\,\\mathrm{SE}` is exponentiated, and
``percent_reduction`` :math:`= 100(1 - \\mathrm{RR})` has the bounds
:math:`100(1 - \\mathrm{RR}_{high})` and :math:`100(1 - \\mathrm{RR}_{low})` (they swap).

Failures. A data problem never raises. An arm that cannot be compared is left out of the fit
concerned and its rows read ``not estimable: <reason>``: an arm with no follow-up episode (the
log rate ratio is -inf; both fits), or, for the GEE only, an arm with a single patient (the
sandwich needs at least two clusters per arm; the GLMM keeps such an arm, with a warning). When
that arm is the control, or fewer than two arms remain, or the data, the optimiser or the
Hessian fail, the whole fit ends ``not estimable: <reason>`` in its health record, its rows carry
NaN, and the other estimand is still reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from analysis.endpoints.episodes_data import prepare_episode_data
from analysis.errors import ConfigError
from analysis.models.gee_counts import fit_count_gee
from analysis.models.glmm_counts import fit_count_glmm
from analysis.models.health import FitHealth, not_estimable

ESTIMANDS = ("patient_level", "population_averaged")
FAMILIES = ("negative_binomial", "poisson")
TIDY_COLUMNS = ["term", "estimate", "std_error", "df", "statistic", "p_value", "conf_low",
                "conf_high"]
RATE_RATIO_COLUMNS = ["estimand", "family", "arm", "term", "estimate", "std_error", "df",
                      "statistic", "p_value", "conf_low", "conf_high", "rate_ratio",
                      "rr_conf_low", "rr_conf_high", "percent_reduction",
                      "percent_reduction_low", "percent_reduction_high", "status"]
#: Engine labels written to results.json (fit health). A label, not an import path: the Laplace
#: GLMM keeps the name it had before the package was split into stages (it is
#: :mod:`analysis.models.glmm_counts`), so results.json did not change with the layout. The GEE
#: was statsmodels' until it was vectorised in :mod:`analysis.models.gee_counts` (the same
#: iteration and fixed point, statsmodels kept as the test oracle).
ENGINES = {"patient_level": "analysis.glmm_counts (Laplace ML)",
           "population_averaged": "analysis.gee_counts (exchangeable GEE)"}


@dataclass
class EpisodeResult:
    """Both estimands of the episode rate ratio.

    Attributes
    ----------
    rate_ratios : DataFrame
        One row per (estimand, non-control arm), primary estimand first; columns
        :data:`RATE_RATIO_COLUMNS`. ``estimate`` is the log rate ratio.
    primary : str
        The declared primary estimand, ``patient_level`` or ``population_averaged``.
    family, control : str
    coefficients : dict of str to DataFrame
        Full tidy coefficient table (:data:`TIDY_COLUMNS`) of each fit, keyed by estimand;
        empty when not estimable.
    health : dict of str to FitHealth
    parameters : dict of str to dict
        Variance parameters and sizes of each fit (``sd_patient``, ``theta``, ``loglik`` /
        ``working_correlation``, ``nb_alpha``, ``dispersion``; ``n_patients``, ``n_visits``).
    descriptions : dict of str to str
        The estimand of each fit in words.
    notes : list of str
        What data preparation left out and why.
    fits : dict of str to tuple
        Estimand -> (the design fitted, the model's fit object), for the patient-level bootstrap
        of :mod:`analysis.endpoints.episodes_resample`; in-run only, never in results.json.
    """

    rate_ratios: pd.DataFrame
    primary: str
    family: str
    control: str
    coefficients: dict[str, pd.DataFrame]
    health: dict[str, FitHealth]
    parameters: dict[str, dict] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fits: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """Plain containers (tables as records) for results.json."""
        return {"primary": self.primary, "family": self.family, "control": self.control,
                "rate_ratios": self.rate_ratios.to_dict(orient="records"),
                "coefficients": {k: v.to_dict(orient="records")
                                 for k, v in self.coefficients.items()},
                "health": {k: h.to_dict() for k, h in self.health.items()},
                "parameters": self.parameters, "descriptions": self.descriptions,
                "notes": list(self.notes)}


def fit_episode_models(data: pd.DataFrame, control: str, family: str = "negative_binomial",
                       primary: str = "patient_level", covariates=(), arm_col: str = "arm",
                       alpha: float = 0.05) -> EpisodeResult:
    """Fit the patient-level GLMM and the population-averaged GEE for episode counts.

    Parameters
    ----------
    data : DataFrame
        One row per visit with ``patient_id``, ``arm_col``, ``week``, ``episodes``,
        ``exposure_days`` and the covariates.
    control : str
        The comparator arm (reference level).
    family : {"negative_binomial", "poisson"}
        NB2 or Poisson, used by both fits.
    primary : {"patient_level", "population_averaged"}
        Which estimand the report leads with; both are always fitted.
    covariates : sequence of str
        Extra adjustment columns; non-numeric ones are dummy-coded (first level reference).
    arm_col : str
        Column holding each patient's arm.
    alpha : float
        1 - confidence level of the intervals.

    Returns
    -------
    EpisodeResult

    Raises
    ------
    ConfigError
        For an unknown family or primary estimand, alpha outside (0, 1), or a covariate that
        is not a column. Problems of the data never raise: they end ``not estimable``.
    """
    if family not in FAMILIES:
        raise ConfigError(f"models.episodes.family: {family!r} is not one of {list(FAMILIES)}")
    if primary not in ESTIMANDS:
        raise ConfigError(f"models.episodes.primary: {primary!r} is not one of {list(ESTIMANDS)}")
    if not 0 < alpha < 1:
        raise ConfigError(f"models.alpha: {alpha} must lie strictly between 0 and 1")
    covariates = list(covariates)
    missing_cov = [c for c in covariates if c not in data.columns]
    if missing_cov:
        raise ConfigError(f"models.episodes.covariates: {missing_cov} not among the columns")

    prepared, reason, arms, notes = prepare_episode_data(data, control, covariates, arm_col)
    health: dict[str, FitHealth] = {}
    coefs: dict[str, pd.DataFrame] = {}
    params: dict[str, dict] = {}
    excluded: dict[str, dict[str, str]] = {}
    fits: dict = {}
    for estimand in ESTIMANDS:
        h = FitHealth(engine=ENGINES[estimand],
                      random_structure="(1 | patient_id)" if estimand == "patient_level" else "")
        why, excluded[estimand] = reason, {}
        if why is None:
            why, excluded[estimand] = _fit_problems(prepared, estimand, h)
        table = pd.DataFrame(columns=TIDY_COLUMNS)
        if why is None:
            try:
                design = _without(prepared, excluded[estimand], arm_col)
                table, params[estimand], fits[estimand] = _fit(design, estimand, family, alpha,
                                                               h)
                fits[estimand] = (design, fits[estimand])
            except Exception as exc:  # noqa: BLE001 - a failed fit is reported, never raised
                why = f"numerical failure ({type(exc).__name__}: {exc})"
            if why is None and not h.converged:
                why = "the fit did not converge (" + "; ".join(h.warnings) + ")"
            elif why is None and not np.all(np.isfinite(table["std_error"].astype(float))):
                why = "standard errors not available (Hessian not positive definite)"
        if why is not None:
            not_estimable(why, h)
            table = pd.DataFrame(columns=TIDY_COLUMNS)
            fits.pop(estimand, None)
        else:
            h.status = "estimated"
        health[estimand], coefs[estimand] = h, table
    order = [primary] + [e for e in ESTIMANDS if e != primary]
    rr = _rate_ratio_table(order, family, arms, arm_col, coefs, health, excluded)
    arms_text = "each arm" if len(arms) != 2 else str(arms[1])
    where = "follow-up weeks (week > 0)"
    descriptions = {
        "patient_level": f"rate ratio of episodes, {arms_text} vs {control}, {where}, "
                         "patient-level (same patient, random-intercept GLMM)",
        "population_averaged": f"rate ratio of episodes, {arms_text} vs {control}, {where}, "
                               "population-averaged (GEE, exchangeable, robust SE)",
    }
    return EpisodeResult(rate_ratios=rr, primary=primary, family=family, control=control,
                         coefficients=coefs, health=health, parameters=params,
                         descriptions=descriptions, notes=notes, fits=fits)


def _fit_problems(prep, estimand, health):
    """(reason the whole fit cannot be made or None, {arm left out: reason}).

    An arm that cannot be compared (no follow-up episode; for the GEE, a single patient) is left
    out of that fit and its rows say why; the fit goes on with the other arms unless the arm is
    the control or fewer than two arms remain.
    """
    per_arm = pd.DataFrame({"arm": prep.arm, "y": prep.y, "patient": prep.groups})
    per_arm = per_arm.groupby("arm").agg(episodes=("y", "sum"), patients=("patient", "nunique"))
    control = prep.arms[0]
    excluded = {}
    for arm in prep.arms:
        n = int(per_arm.loc[arm, "patients"])
        if per_arm.loc[arm, "episodes"] == 0:
            excluded[arm] = (f"arm {arm!r} has no episodes in follow-up (all counts 0): its log "
                             "rate ratio is -inf")
        elif n < 2 and estimand == "population_averaged":
            excluded[arm] = (f"arm {arm!r} has {n} patient: the robust (sandwich) variance needs "
                             "at least 2 patients per arm")
        elif n < 2:
            health.add_warning(f"arm {arm!r} has 1 patient: its effect rests on that "
                               "patient's random intercept")
    if control in excluded:
        return excluded[control], excluded
    if len(prep.arms) - len(excluded) < 2:
        return next(iter(excluded.values())), excluded
    for arm, why in excluded.items():
        health.add_warning(f"left out of this fit: {why}")
    return None, excluded


def _without(prep, excluded, arm_col):
    """The prepared design without the patients and dummy columns of the excluded arms."""
    if not excluded:
        return prep
    keep = ~np.isin(prep.arm, list(excluded))
    X = prep.X.loc[keep, [c for c in prep.X.columns
                             if c not in {f"{arm_col}[T.{a}]" for a in excluded}]]
    if np.linalg.matrix_rank(X.to_numpy()) < X.shape[1]:
        raise ValueError("without the arm(s) left out, the design is not of full rank")
    return replace(prep, X=X, y=prep.y[keep], offset=prep.offset[keep],
                   groups=prep.groups[keep], arm=prep.arm[keep],
                   arms=[a for a in prep.arms if a not in excluded])


def _fit(prep, estimand, family, alpha, health):
    """One fit; returns its tidy table, parameters and fit object, filling ``health``."""
    names = list(prep.X.columns)
    X = prep.X.to_numpy()
    args = (prep.y, X, prep.offset, prep.groups)
    if estimand == "patient_level":
        fit = fit_count_glmm(*args, family=family, names=names)
        health.optimizers_tried = [fit.optimizer]
        health.singular = "sigma" in fit.boundary
        par = {"sd_patient": fit.sigma, "theta": fit.theta, "loglik": fit.loglik}
    else:
        fit = fit_count_gee(*args, family=family, names=names)
        health.optimizers_tried = [fit.optimizer]
        par = {"working_correlation": fit.working_correlation, "nb_alpha": fit.nb_alpha,
               "nb_theta": None if fit.nb_alpha is None else 1.0 / fit.nb_alpha,
               "dispersion": fit.dispersion}
    health.optimizer_used = fit.optimizer
    health.converged = bool(fit.converged)
    health.gradient_norm = float(fit.gradient_norm)
    health.hessian_positive_definite = bool(fit.hessian_positive_definite)
    for w in fit.warnings:
        health.add_warning(w)
    par.update(n_patients=int(fit.n_groups), n_visits=int(fit.n_obs))
    return tidy_wald(names, fit.coef, fit.std_error, alpha), par, fit


def tidy_wald(names, estimate, std_error, alpha=0.05) -> pd.DataFrame:
    """Tidy Wald z table: ``term, estimate, std_error, df (inf), statistic, p_value, conf_*``.

    Parameters
    ----------
    names : sequence of str
    estimate, std_error : array_like
    alpha : float
        1 - confidence level.

    Returns
    -------
    DataFrame
    """
    est = np.asarray(estimate, float)
    se = np.asarray(std_error, float)
    z = est / se
    q = stats.norm.ppf(1 - alpha / 2)
    return pd.DataFrame({"term": list(names), "estimate": est, "std_error": se,
                         "df": np.inf, "statistic": z, "p_value": 2 * stats.norm.sf(np.abs(z)),
                         "conf_low": est - q * se, "conf_high": est + q * se})


def _rate_ratio_table(order, family, arms, arm_col, coefs, health, excluded) -> pd.DataFrame:
    rows = []
    for estimand in order:
        table = coefs[estimand].set_index("term")
        for arm in arms[1:]:
            term = f"{arm_col}[T.{arm}]"
            row = {"estimand": estimand, "family": family, "arm": arm, "term": term}
            for col in TIDY_COLUMNS[1:]:
                row[col] = float(table.loc[term, col]) if term in table.index else np.nan
            row["status"] = health[estimand].status
            if health[estimand].estimated and arm in excluded[estimand]:
                row["status"] = f"not estimable: {excluded[estimand][arm]}"
            rows.append(row)
        if len(arms) < 2:  # no arm comparison at all: still one row per estimand
            rows.append({"estimand": estimand, "family": family, "arm": None, "term": None,
                         "status": health[estimand].status})
    rr = pd.DataFrame(rows, columns=[c for c in RATE_RATIO_COLUMNS if c not in (
        "rate_ratio", "rr_conf_low", "rr_conf_high", "percent_reduction",
        "percent_reduction_low", "percent_reduction_high")])
    rr["df"] = np.inf
    return add_percent_reduction(rr)[RATE_RATIO_COLUMNS]


def add_percent_reduction(table: pd.DataFrame) -> pd.DataFrame:
    """Add rate ratio, its interval and the percent reduction 100(1 - RR) with swapped bounds.

    Parameters
    ----------
    table : DataFrame
        With ``estimate`` (log rate ratio), ``conf_low`` and ``conf_high``.

    Returns
    -------
    DataFrame
        A copy with ``rate_ratio, rr_conf_low, rr_conf_high, percent_reduction,
        percent_reduction_low, percent_reduction_high``.
    """
    out = table.copy()
    out["rate_ratio"] = np.exp(out["estimate"].astype(float))
    out["rr_conf_low"] = np.exp(out["conf_low"].astype(float))
    out["rr_conf_high"] = np.exp(out["conf_high"].astype(float))
    out["percent_reduction"] = 100 * (1 - out["rate_ratio"])
    # a larger rate ratio is a smaller reduction: the upper RR bound gives the lower bound
    out["percent_reduction_low"] = 100 * (1 - out["rr_conf_high"])
    out["percent_reduction_high"] = 100 * (1 - out["rr_conf_low"])
    return out
