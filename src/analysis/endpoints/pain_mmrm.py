r"""Pain in a randomised trial with scheduled visits: an MMRM (visit as a factor, arm x visit).

Methods
-------
**Model** (``models.pain.analysis: mmrm``). For patient :math:`i` in arm :math:`a` at scheduled
visit :math:`v` (each distinct value of the time column after baseline is one visit)

.. math:: y_{iv} = \mu_v + \alpha_{av} + x_i^\top\delta + e_{iv},\qquad
          e_i \sim N(0, \Sigma_i(\theta))

with :math:`\alpha_{cv} = 0` for the control arm, covariates :math:`x_i` from
``models.pain.covariates`` (a baseline first: ``baseline_<outcome>`` is derived from the
patient's first visit at week <= 1 as in :mod:`analysis.endpoints.pain`) and :math:`\Sigma` the
configured residual covariance over the visits (``models.pain.covariance``, default
unstructured), REML (``method``), Kenward-Roger df (``df``), model-based or sandwich covariance
(``vcov``): :func:`analysis.models.mmrm.fit_mmrm_chain` with the fallback chain
us -> toeph -> ar1h (from the configured structure on), every step in fit health.

**Reported.** LS-means per arm and visit (equal weights, SAS's default), arm - control at every
visit, the estimated covariance and correlation matrices, the number of patients with each
pattern of observed visits by arm. Missing visits are assumed missing at random given the
modelled terms (the likelihood uses every observed visit); the delta-adjusted tipping-point
analysis (:mod:`analysis.endpoints.pain_tipping`) probes that assumption.

References: Mallinckrodt et al. (2008), Drug Inf J 42, 303-319; SAS PROC MIXED (REPEATED,
LSMEANS); see :mod:`analysis.models.mmrm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.config import PainModelOptions
from analysis.endpoints.pain import prepare_data
from analysis.models.health import FitHealth, not_estimable
from analysis.models.mmrm import MMRMResult, fit_mmrm_chain

#: Fallback order of covariance structures (each step named in fit health).
FALLBACK = ("us", "toeph", "ar1h")
#: At most this many distinct follow-up times count as scheduled visits.
MAX_SCHEDULED_VISITS = 12
VISIT = "visit"


def has_scheduled_visits(data: pd.DataFrame, time: str = "week", group: str = "patient_id") -> bool:
    """True when the times are a small common schedule: at most ``MAX_SCHEDULED_VISITS``
    distinct values, each patient seen at most once at each, and every time shared by >= 2
    patients."""
    if time not in data or group not in data or data[time].isna().all():
        return False
    times = data.dropna(subset=[time])
    per_time = times.groupby(time)[group].nunique()
    return bool(len(per_time) <= MAX_SCHEDULED_VISITS and per_time.min() >= 2
                and not times.duplicated([group, time]).any())


def resolve_analysis(options: PainModelOptions, design: str, data: pd.DataFrame,
                     time: str = "week", group: str = "patient_id") -> str:
    """``options.analysis`` when set; else ``mmrm`` for a randomised design with scheduled visits."""
    if options.analysis is not None:
        return options.analysis
    return "mmrm" if design == "randomised" and has_scheduled_visits(data, time, group) else "trend"


def fallback_chain(covariance: str) -> tuple[str, ...]:
    """The configured structure, then the later steps of us -> toeph -> ar1h."""
    if covariance not in FALLBACK:
        return (covariance,)
    return FALLBACK[FALLBACK.index(covariance):]


def visit_label(week: float) -> str:
    return f"{float(week):g}"


@dataclass
class PainMmrmResult:
    """Tables of the pain MMRM; all empty (``health.status`` saying why) when not estimable."""

    outcome: str
    formula: str
    control: str
    lsmeans: pd.DataFrame
    differences: pd.DataFrame
    covariance_matrix: pd.DataFrame
    correlation_matrix: pd.DataFrame
    patterns: pd.DataFrame
    health: FitHealth
    n_obs: int = 0
    n_patients: int = 0
    covariance: str = ""
    fit: MMRMResult | None = field(default=None, repr=False)
    frame: pd.DataFrame | None = field(default=None, repr=False)
    analysis: str = "mmrm"
    df_method: str = "kenward-roger"

    def difference_at(self, arm: str, week: float) -> pd.Series | None:
        """The arm - control row at ``week`` (None when that visit is not in the model)."""
        tab = self.differences
        row = tab[(tab["arm"] == arm) & np.isclose(tab["week"], float(week))]
        return None if row.empty else row.iloc[0]


def missingness_patterns(data: pd.DataFrame, outcome: str, arm_col: str, time: str, group: str,
                         weeks: list[float]) -> pd.DataFrame:
    """Patients per arm with each pattern of observed scheduled visits.

    ``pattern`` lists one mark per visit in ``weeks`` order: ``X`` observed, ``.`` missing;
    ``dropout`` is True when the missing visits are all after the last observed one.
    """
    seen = data.dropna(subset=[outcome])
    marks = {}
    for pid, weeks_seen in seen.groupby(group)[time]:
        got = {float(w) for w in weeks_seen}
        marks[pid] = "".join("X" if w in got else "." for w in weeks)
    arms = data.drop_duplicates(group).set_index(group)[arm_col]
    rows = pd.DataFrame({"patient": arms.index, "arm": arms.to_numpy()})
    rows["pattern"] = rows["patient"].map(marks).fillna("." * len(weeks))
    tab = rows.groupby(["pattern", "arm"]).size().rename("n_patients").reset_index()
    tab["observed_visits"] = tab["pattern"].str.count("X")
    tab["monotone_dropout"] = [("X" in p and "." in p and "X" not in p[p.index("."):])
                               for p in tab["pattern"]]
    return tab.sort_values(["observed_visits", "pattern", "arm"], ascending=[False, False, True],
                           ignore_index=True)


def _empty(outcome, formula, control, health, patterns=None) -> PainMmrmResult:
    e = pd.DataFrame
    return PainMmrmResult(outcome, formula, control, e(), e(), e(), e(),
                          patterns if patterns is not None else e(), health)


def fit_pain_mmrm(data: pd.DataFrame, options: PainModelOptions | None = None,
                  control: str = "usual_care", arm_col: str = "arm", alpha: float = 0.05,
                  time: str = "week", group: str = "patient_id") -> PainMmrmResult:
    """Fit the pain MMRM, its LS-means by visit and the differences vs control at every visit.

    Parameters
    ----------
    data : DataFrame
        One row per visit: ``patient_id, week, arm, <outcome>`` and covariates.
    options : PainModelOptions, optional
        Outcome, covariates, covariance, df, vcov, method.
    control : str
        Comparator arm.
    alpha : float
        1 - confidence level.

    Returns
    -------
    PainMmrmResult
    """
    options = options or PainModelOptions()
    outcome = options.outcome
    covariates = list(options.covariates)
    formula = f"{arm_col}*{VISIT}" + "".join(f" + {c}" for c in covariates)
    df, notes, reason = prepare_data(data, outcome, arm_col, time, group, control, covariates)
    if reason is None:
        absent = [c for c in covariates if c not in df.columns]
        reason = f"covariate(s) {absent} not in the data" if absent else None
    if reason is not None:
        health = not_estimable(reason)
        health.warnings.extend(notes)
        return _empty(outcome, formula, control, health)
    df = df.dropna(subset=[time]).copy()
    weeks = sorted({float(w) for w in df.loc[df[outcome].notna(), time]})
    if not has_scheduled_visits(df[df[outcome].notna()], time, group):
        health = not_estimable(
            f"the MMRM needs scheduled visits (at most {MAX_SCHEDULED_VISITS} distinct times, each "
            f"shared by 2 or more patients, one row per patient and time); the log has "
            f"{len(weeks)} distinct times -- map them to visits with `visits:` or use "
            "models.pain.analysis: trend")
        health.warnings.extend(notes)
        return _empty(outcome, formula, control, health)
    df[VISIT] = df[time].map(visit_label)
    patterns = missingness_patterns(df, outcome, arm_col, time, group, weeks)
    chain = fallback_chain(options.covariance)
    res = fit_mmrm_chain(df, outcome, formula, VISIT, group, chain=chain,
                         method=options.method, df=options.df, vcov=options.vcov,
                         reference={arm_col: control}, visit_levels=[visit_label(w) for w in weeks],
                         class_vars=(arm_col, VISIT), alpha=alpha)
    steps = [f"{s['covariance']}: {s['reason']}" for s in res.fallback if s["status"] == "failed"]
    if not res.estimable:
        health = not_estimable(res.reason)
        health.engine, health.fallback_steps = "mmrm", steps
        health.warnings.extend(notes)
        return _empty(outcome, formula, control, health, patterns)
    health = FitHealth(engine="mmrm", optimizers_tried=["trust-exact"], optimizer_used="trust-exact",
                       converged=bool(res.health["converged"]),
                       hessian_positive_definite=bool(res.health["hessian_positive_definite"]),
                       fallback_steps=steps, status="estimated",
                       random_structure=f"residual covariance {res.covariance} over {len(weeks)} visits")
    for note in notes:
        health.add_warning(note)
    week_of = {visit_label(w): w for w in weeks}
    means = res.lsmeans((VISIT, arm_col)).rename(columns={arm_col: "arm"})
    diffs = res.lsmean_diffs(arm_col, control, by=VISIT).rename(columns={arm_col: "arm"})
    for tab in (means, diffs):
        tab.insert(1, "week", tab[VISIT].map(week_of))
    labels = {visit_label(w): f"week {visit_label(w)}" for w in weeks}
    cov = res.covariance_matrix().rename(index=labels, columns=labels)
    cor = res.correlation_matrix().rename(index=labels, columns=labels)
    return PainMmrmResult(outcome, formula, control, means, diffs, cov, cor, patterns, health,
                          res.n_obs, res.n_subjects, res.covariance, res, df,
                          df_method=options.df)
