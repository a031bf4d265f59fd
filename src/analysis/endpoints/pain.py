r"""Pain over time by arm: a linear mixed model with random intercept and slope per patient.

Methods
-------
**Model** (default formula ``pain_score ~ week * C(arm, Treatment(reference=control))``, plus
``options.covariates``; ``options.formula`` replaces it whole). For patient :math:`i` in arm
:math:`a` (clinic :math:`k`) at week :math:`t_{ij}`

.. math:: y_{ij} = \beta_0 + \alpha_a + (\beta_1 + \gamma_a)\,t_{ij} + x_i^\top\delta
          + u_{0i} + u_{1i} t_{ij} \;[+\, c_k] + \varepsilon_{ij}

with :math:`\alpha_c = \gamma_c = 0` for the control arm, :math:`(u_{0i}, u_{1i})` bivariate
normal with free correlation (``options.random = "slope"``; ``"intercept"`` keeps :math:`u_{0i}`
only), an optional clinic intercept :math:`c_k` with patients nested in clinics
(``options.clinic_level``) and :math:`\varepsilon_{ij} \sim N(0, \sigma^2)`. REML; fixed effects
and contrasts with Satterthwaite df (lmerTest), 95 % t intervals — see :mod:`analysis.models.lmm`.

**Reported.** Fixed effects with readable names (``arm[orthotics]``, ``week:arm[orthotics]`` —
:func:`analysis.models.formulas.readable_term`); variance components (SD/correlation, lme4's ``sdcor``);
marginal means per arm at ``options.weeks`` (default: the log's own schedule,
:func:`analysis.endpoints.timegrid.observed_times`), arm - control at each week, slopes per arm and slope
differences vs control (:func:`analysis.models.marginal.arm_tables`); fit health.

**Data handling.** Rows with a missing outcome, time, arm or covariate are left out (the model is
valid under missingness at random given the modelled terms). An arm without any recorded outcome
is left out of the model, with a warning; a missing control arm makes the model not estimable.
A covariate named ``baseline_<outcome>`` (or ``baseline_pain``) that is not a column is derived
as the patient's outcome at their first visit when that visit is at week <= 1, and that visit
then leaves the response (baseline is adjusted for, not modelled twice).

Reference: Fitzmaurice GM, Laird NM, Ware JH (2011) *Applied Longitudinal Analysis*, 2nd ed., ch. 8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.config import PainModelOptions
from analysis.endpoints.timegrid import report_weeks
from analysis.intake.runs import factorize_runs
from analysis.models.health import FitHealth, not_estimable
from analysis.models.lmm import LmmFit, empty_tidy, fit_lmm
from analysis.models.marginal import arm_tables

#: A first visit later than this (weeks) is not a baseline.
BASELINE_MAX_WEEK = 1.0


@dataclass
class PainResult:
    """Tables of one pain model; all empty (with ``health.status`` saying why) when not estimable."""

    outcome: str
    formula: str
    control: str
    fixed_effects: pd.DataFrame
    variance_components: pd.DataFrame
    marginal_means: pd.DataFrame
    contrasts: pd.DataFrame
    slopes: pd.DataFrame
    slope_differences: pd.DataFrame
    grid: pd.DataFrame
    health: FitHealth
    n_obs: int = 0
    n_patients: int = 0
    fit: LmmFit | None = field(default=None, repr=False)
    analysis: str = "trend"

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"fixed_effects": self.fixed_effects, "variance_components": self.variance_components,
                "marginal_means": self.marginal_means, "contrasts": self.contrasts,
                "slopes": self.slopes, "slope_differences": self.slope_differences}


def default_formula(outcome: str, time: str, arm_col: str, control: str, covariates=(),
                    lhs: str | None = None) -> str:
    """``outcome ~ time * C(arm, Treatment(reference='control')) + covariates``."""
    rhs = f"{time} * C({arm_col}, Treatment(reference={str(control)!r}))"
    rhs += "".join(f" + {c}" for c in covariates)
    return f"{lhs or outcome} ~ {rhs}"


def prepare_data(data: pd.DataFrame, outcome: str, arm_col: str, time: str, group: str, control: str,
                 covariates=(), clinic: str | None = None,
                 columns=None) -> tuple[pd.DataFrame, list[str], str | None]:
    """Check columns, keep arms with data, derive a baseline covariate.

    With ``columns`` (names a formula uses; None: every column is kept, arm as text) only the
    model's columns are copied and the arm becomes a pandas Categorical of its text labels
    (sorted, as patsy orders levels), which the design is built from without per-row work.

    Returns
    -------
    data, warnings, reason
        ``reason`` is None, or why the model is not estimable.
    """
    needed = [group, time, arm_col, outcome] + ([clinic] if clinic else [])
    missing = [c for c in needed if c not in data.columns]
    if missing:
        return data, [], f"column(s) {missing} not in the data"
    notes: list[str] = []
    if columns is None:
        df = data.copy()
        df[arm_col] = df[arm_col].astype(object).where(df[arm_col].notna(), None)
        df = df[df[arm_col].notna()]
        df[arm_col] = df[arm_col].astype(str)
    else:
        wanted = set(needed) | set(covariates) | set(columns)
        # the model's columns without copying them (the text ones are replaced by Categoricals
        # next, and the design copies what it keeps): nothing below writes into a column in place
        model_columns = pd.DataFrame({c: data[c] for c in data.columns if c in wanted}, copy=False)
        df = _with_categorical_arm(model_columns, arm_col)
    for name in covariates:
        if name not in df.columns and name in (f"baseline_{outcome}", "baseline_pain"):
            df = _add_baseline(df, outcome, time, group, name)
            notes.append(f"{name} derived from each patient's first visit (week <= "
                         f"{BASELINE_MAX_WEEK:g}); that visit left out of the response")
    if not pd.api.types.is_numeric_dtype(df[outcome]):
        return df, notes, f"outcome {outcome!r} is not numeric"
    present, recorded = _arms(df[arm_col], df[outcome].notna().to_numpy())
    for arm in sorted(present - recorded):
        notes.append(f"arm {arm!r} has no recorded {outcome}: left out of the model")
    if control not in recorded:
        return df, notes, f"control arm {control!r} has no recorded {outcome}"
    if present == recorded:
        return df, notes, None
    return df[df[arm_col].isin(recorded)], notes, None


def _arms(arm: pd.Series, has_outcome: np.ndarray) -> tuple[set, set]:
    """The arms in the rows, and those with an outcome (a Categorical counted on its codes)."""
    if isinstance(arm.dtype, pd.CategoricalDtype):
        codes, cats = arm.cat.codes.to_numpy(), arm.cat.categories
        def seen(mask):
            return set(cats[np.flatnonzero(np.bincount(codes[mask & (codes >= 0)], minlength=len(cats)))])
        return seen(np.ones(len(codes), dtype=bool)), seen(has_outcome)
    values = arm.to_numpy()
    return set(values), set(values[has_outcome])


def _with_categorical_arm(df: pd.DataFrame, arm_col: str) -> pd.DataFrame:
    """Rows with an arm, the arm as a Categorical of ``str(label)`` in sorted order (a copy)."""
    codes, uniques = factorize_runs(df[arm_col])
    labels = [str(u) for u in uniques]
    if len(set(labels)) < len(labels):  # e.g. 1 and "1": let text decide, as the plain path does
        out = df[codes >= 0].copy()
        out[arm_col] = pd.Categorical(out[arm_col].astype(str))
        return out
    order = np.argsort(np.array(labels, dtype=object)) if labels else np.array([], int)
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels))
    keep = codes >= 0
    # filter only when needed; shallow (the columns are not written in place)
    out = (df if keep.all() else df[keep]).copy(deep=False)
    out[arm_col] = pd.Categorical.from_codes(rank[codes[keep]], categories=[labels[i] for i in order])
    return out


def _with_categorical_group(df: pd.DataFrame, group: str) -> pd.DataFrame:
    """Text patient (or clinic) ids as a Categorical of the sorted ids: coded once here (from the
    runs of equal neighbours, :func:`~analysis.intake.runs.factorize_runs`) instead of hashed
    in the design and again in the time grid (seconds at 1,000,000 patients); the same codes and
    labels as factorising the text. Other ids (numbers, missing, mixed) are left as they are."""
    col = df[group]
    if not pd.api.types.is_object_dtype(col.dtype):
        return df
    codes, uniques = factorize_runs(col, sort=True)
    if (codes < 0).any() or pd.api.types.infer_dtype(uniques, skipna=False) != "string":
        return df
    categories = pd.Index(uniques, dtype=object)
    # sorted ids: the monotonic check (comparisons) tells pandas they are unique, which it would
    # otherwise learn by hashing them all again
    categories.is_monotonic_increasing
    out = df.copy(deep=False)
    out[group] = pd.Categorical.from_codes(codes, categories=categories)
    return out


def _add_baseline(df, outcome, time, group, name):
    first = df[df[outcome].notna()].sort_values([group, time]).drop_duplicates(group)
    first = first[first[time] <= BASELINE_MAX_WEEK]
    df[name] = df[group].map(first.set_index(group)[outcome])
    is_baseline = df.index.isin(first.index)
    return df[~is_baseline]


def _empty(outcome, formula, control, health) -> PainResult:
    e = empty_tidy
    return PainResult(outcome, formula, control, e(), pd.DataFrame(columns=["group", "term1", "term2", "estimate"]),
                      e(), e(), e(), e(), pd.DataFrame(columns=["term", "kind", "arm", "week"]), health)


def fit_pain_model(data: pd.DataFrame, options: PainModelOptions | None = None,
                   control: str = "usual_care", arm_col: str = "arm", alpha: float = 0.05,
                   time: str = "week", group: str = "patient_id",
                   clinic: str = "clinic_id", design: str = "observational",
                   min_patients: int = 1):
    """Fit the pain mixed model and its marginal means and contrasts.

    Parameters
    ----------
    data : DataFrame
        One row per visit: ``patient_id, clinic_id, week, arm, pain_score`` and covariates.
    options : PainModelOptions, optional
        Outcome, formula or covariates, random structure, clinic level, weeks, engine, optimizers.
    control : str
        Comparator arm.
    arm_col, time, group, clinic : str
        Column names.
    alpha : float
        1 - confidence level.
    min_patients : int
        When ``options.weeks`` is not given, means are reported at the nominal times at which
        every arm has at least this many patients with the outcome (the disclosure threshold).

    design : {"observational", "randomised"}
        The run's ``design:``; with ``options.analysis`` unset, a randomised design with
        scheduled visits gets the MMRM (:func:`analysis.endpoints.pain_mmrm.resolve_analysis`).

    Returns
    -------
    PainResult, or PainMmrmResult when the analysis is ``mmrm``

    Raises
    ------
    ConfigError
        The formula is unsafe or names unknown columns.
    """
    options = options or PainModelOptions()
    from analysis.endpoints.pain_mmrm import fit_pain_mmrm, resolve_analysis

    if resolve_analysis(options, design, data, time, group) == "mmrm":
        return fit_pain_mmrm(data, options, control, arm_col, alpha, time, group)
    outcome = options.outcome
    formula = options.formula or default_formula(outcome, time, arm_col, control, options.covariates)
    use_clinic = clinic if options.clinic_level else None
    df, notes, reason = prepare_data(data, outcome, arm_col, time, group, control,
                                     options.covariates, use_clinic,
                                     columns=re.findall(r"\w+", formula))
    if reason is not None:
        health = not_estimable(reason)
        health.warnings.extend(notes)
        return _empty(outcome, formula, control, health)
    df = _with_categorical_group(df, group)
    if use_clinic:  # clinic ids too: the design's (clinic, patient) codes come from their codes
        df = _with_categorical_group(df, use_clinic)
    fit = fit_lmm(df, formula, group, options.random, time=time, clinic=use_clinic, reml=True,
                  engine=options.engine, optimizers=tuple(options.optimizers), alpha=alpha)
    for note in notes:
        fit.health.add_warning(note)
    if not fit.estimated:
        return _empty(outcome, formula, control, fit.health)
    weeks = report_weeks(options.weeks, df, outcome, time, arm_col, group, min_patients)
    tabs = arm_tables(fit, arm_col, control, time, weeks, alpha)
    return PainResult(outcome=outcome, formula=formula, control=control,
                      fixed_effects=fit.fixed_effects, variance_components=fit.variance_components,
                      marginal_means=tabs["means"], contrasts=tabs["contrasts"], slopes=tabs["slopes"],
                      slope_differences=tabs["slope_differences"], grid=tabs["grid"],
                      health=fit.health, n_obs=fit.n_obs, n_patients=fit.n_groups.get(group, 0),
                      fit=fit)
