r"""Moderation by foot posture: does an intervention's pain slope differ for overpronated feet?

Methods
-------
A patient is *overpronated* when ``foot_posture_index > threshold`` (default 5, i.e. +6 and
above, the Foot Posture Index's "pronated" band; Redmond et al. 2006). The pain model of
:mod:`analysis.endpoints.pain` gains the factor :math:`o_i` = 1[overpronated] crossed with week and arm,

``pain_score ~ week * C(arm, Treatment(reference=control)) * C(overpronated)`` (+ covariates),

fitted by REML with the same random structure (``options.random``, ``options.clinic_level``).
For each arm :math:`a` the **slope difference** overpronated minus not,

.. math:: \Delta_a = s_{a,o=1} - s_{a,o=0}

(weekly pain slopes from the model, :mod:`analysis.models.marginal`), and its difference from the
control arm's, :math:`\Delta_a - \Delta_c` (the ``week:arm[a]:overpronated[1]`` coefficient: does the
moderation exceed what is seen under control?). Both are linear combinations of
:math:`\hat\beta` with Satterthwaite df, t-based p and 1 - alpha intervals. An arm without
patients on one side of the threshold gives an all-NaN row (not estimable), never a guess.

The threshold splits a continuous index (a dichotomised moderator loses power, Altman & Royston
2006); it is used because the clinical question is posed in those terms.

References: Redmond AC, Crosbie J, Ouvrier RA (2006) Clin Biomech 21:89-98. Altman DG, Royston P
(2006) The cost of dichotomising continuous variables. BMJ 332:1080.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.config import PainModelOptions
from analysis.endpoints.pain import prepare_data
from analysis.models.health import FitHealth, not_estimable
from analysis.models.lmm import LmmFit, empty_tidy, fit_lmm
from analysis.models.marginal import estimate, grid_variables, linear_function

OVERPRONATED = "overpronated"


@dataclass
class ModeratorResult:
    """Slope differences by foot posture per arm; empty (``health.status`` says why) if not estimable."""

    formula: str
    control: str
    threshold: float
    fixed_effects: pd.DataFrame
    slope_difference_by_foot: pd.DataFrame
    vs_control: pd.DataFrame
    n_patients: pd.DataFrame
    health: FitHealth
    fit: LmmFit | None = field(default=None, repr=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"fixed_effects": self.fixed_effects,
                "slope_difference_by_foot": self.slope_difference_by_foot,
                "vs_control": self.vs_control, "n_patients": self.n_patients}


def fit_moderator_model(data: pd.DataFrame, options: PainModelOptions | None = None,
                        control: str = "usual_care", threshold: float = 5.0, arm_col: str = "arm",
                        alpha: float = 0.05, time: str = "week", group: str = "patient_id",
                        clinic: str = "clinic_id", fpi_col: str = "foot_posture_index") -> ModeratorResult:
    """Fit the moderator model and each arm's slope difference (overpronated - not).

    Parameters
    ----------
    data : DataFrame
        One row per visit with ``foot_posture_index``.
    options : PainModelOptions, optional
        Outcome, covariates, random structure, clinic level, engine, optimizers (``formula`` is
        not used: the model is fixed by the question).
    control : str
    threshold : float
        Overpronated when ``foot_posture_index > threshold``.
    arm_col, time, group, clinic, fpi_col : str
    alpha : float

    Returns
    -------
    ModeratorResult
    """
    options = options or PainModelOptions()
    outcome = options.outcome
    formula = (f"{outcome} ~ {time} * C({arm_col}, Treatment(reference={str(control)!r})) * "
               f"C({OVERPRONATED})" + "".join(f" + {c}" for c in options.covariates))
    use_clinic = clinic if options.clinic_level else None
    e = empty_tidy
    counts = pd.DataFrame(columns=["arm", "overpronated", "n_patients"])

    def empty(health):
        return ModeratorResult(formula, control, threshold, e(), e(), e(), counts, health)

    if fpi_col not in data.columns:
        return empty(not_estimable(f"column {fpi_col!r} not in the data"))
    df, notes, reason = prepare_data(data, outcome, arm_col, time, group, control,
                                     options.covariates, use_clinic)
    if reason is None:
        fpi = pd.to_numeric(df[fpi_col], errors="coerce")
        if fpi.isna().any():
            notes.append(f"{int(fpi.isna().sum())} rows without {fpi_col} left out")
        df = df[fpi.notna()].copy()
        df[OVERPRONATED] = (fpi[fpi.notna()] > threshold).astype(int)
        scored = df[df[outcome].notna()].drop_duplicates(group)
        counts = (scored.groupby([arm_col, OVERPRONATED]).size().rename("n_patients").reset_index()
                  .rename(columns={arm_col: "arm"}))
        sides = set(scored[OVERPRONATED])
        if sides != {0, 1}:
            side = "above" if 1 not in sides else "at or below"
            reason = f"no patient with {fpi_col} {side} {threshold:g}"
    if reason is not None:
        health = not_estimable(reason)
        health.warnings.extend(notes)
        return empty(health)
    fit = fit_lmm(df, formula, group, options.random, time=time, clinic=use_clinic,
                  engine=options.engine, optimizers=tuple(options.optimizers), alpha=alpha)
    for note in notes:
        fit.health.add_warning(note)
    if not fit.estimated:
        return empty(fit.health)
    arms = grid_variables(fit)[0].get(arm_col, [])
    by_foot, vs = [], []

    def delta(arm):
        at = [{arm_col: arm, OVERPRONATED: o, time: t} for o, t in ((1, 1.0), (0, 0.0))]
        minus = [{arm_col: arm, OVERPRONATED: o, time: t} for o, t in ((1, 0.0), (0, 1.0))]
        return linear_function(fit, at, minus)

    for arm in ([control] if control in arms else []) + [a for a in arms if a != control]:
        by_foot.append(estimate(fit, delta(arm), f"{time} slope, overpronated - not: {arm}", alpha))
        if arm != control and control in arms:
            vs.append(estimate(fit, delta(arm) - delta(control),
                               f"{time} slope, overpronated - not: {arm} - {control}", alpha))
    return ModeratorResult(formula=formula, control=control, threshold=threshold,
                           fixed_effects=fit.fixed_effects,
                           slope_difference_by_foot=pd.concat(by_foot, ignore_index=True) if by_foot else e(),
                           vs_control=pd.concat(vs, ignore_index=True) if vs else e(),
                           n_patients=counts, health=fit.health, fit=fit)
