r"""Strength over time by arm: a linear mixed model on log(strength), reported as percent change.

Methods
-------
**Model** (formula ``log(strength) ~ week * C(arm, Treatment(reference=control))`` plus
``options.covariates``), REML, per-patient random intercept and slope on week by default
(``random="intercept"`` for intercept only), optional clinic intercept:

.. math:: \log S_{ij} = \beta_0 + \alpha_a + (\beta_1 + \gamma_a)\,t_{ij} + x_i^\top\delta
          + u_{0i} + u_{1i}t_{ij} \;[+\, c_k] + \varepsilon_{ij}.

On the log scale effects are multiplicative, which suits a positive measurement whose spread
grows with its level (newtons), and makes the model free of the unit. Rows with strength <= 0
are left out (log undefined), with a note in the fit health.

**Percent change over** :math:`h` **weeks** (default 12) in arm :math:`a`:
:math:`100\,(e^{h s_a} - 1)`, :math:`s_a` the arm's slope on the log scale (a Satterthwaite-df linear
combination, :mod:`analysis.models.marginal`); its interval is the log-scale interval transformed the same
way. **Between arms**: the ratio of the :math:`h`-week fold changes, arm vs control,
:math:`e^{h(s_a - s_c)}` = (1 + change_a)/(1 + change_c), interval likewise. Geometric means per arm
and week are :math:`e^{\text{marginal mean}}` (emmeans' ``type = "response"`` for a log outcome).
In the transformed tables ``std_error`` is NaN (an interval is transformed, not an SE);
``statistic``, ``df`` and ``p_value`` are those of the log-scale test (no change / ratio 1).

Reference: Bland JM, Altman DG (1996) Transforming data. BMJ 312:770.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.config import StrengthModelOptions
from analysis.endpoints.pain import default_formula, prepare_data
from analysis.models.health import FitHealth, not_estimable
from analysis.models.lmm import LmmFit, empty_tidy, fit_lmm
from analysis.models.marginal import arm_tables


@dataclass
class StrengthResult:
    """Tables of the strength model; empty (``health.status`` says why) when not estimable."""

    formula: str
    control: str
    unit: str
    horizon_weeks: float
    fixed_effects: pd.DataFrame
    variance_components: pd.DataFrame
    log_slopes: pd.DataFrame
    log_slope_differences: pd.DataFrame
    percent_change: pd.DataFrame
    ratio_vs_control: pd.DataFrame
    geometric_means: pd.DataFrame
    health: FitHealth
    n_obs: int = 0
    n_patients: int = 0
    fit: LmmFit | None = field(default=None, repr=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"fixed_effects": self.fixed_effects, "variance_components": self.variance_components,
                "percent_change": self.percent_change, "ratio_vs_control": self.ratio_vs_control,
                "geometric_means": self.geometric_means}


def _transform(table: pd.DataFrame, fun, rename) -> pd.DataFrame:
    out = table.copy()
    for col in ("estimate", "conf_low", "conf_high"):
        out[col] = fun(table[col].to_numpy(float))
    out["std_error"] = np.nan
    out["term"] = [rename(t) for t in table["term"]]
    return out


def fit_strength_model(data: pd.DataFrame, options: StrengthModelOptions | None = None,
                       control: str = "usual_care", arm_col: str = "arm", alpha: float = 0.05,
                       time: str = "week", group: str = "patient_id", clinic: str = "clinic_id",
                       horizon: float = 12.0, random: str = "slope", clinic_level: bool = False,
                       weeks=(0.0, 4.0, 8.0, 12.0), engine: str = "auto",
                       optimizers=("lbfgs", "bfgs", "powell", "nm"),
                       outcome: str = "strength") -> StrengthResult:
    """Fit the log-strength mixed model; percent change per arm and ratios vs control.

    Parameters
    ----------
    data : DataFrame
        One row per visit with ``strength`` (NaN where not measured).
    options : StrengthModelOptions, optional
        Covariates and unit.
    control, arm_col, time, group, clinic : str
    alpha : float
    horizon : float
        Weeks over which the percent change is reported (12).
    random : {"slope", "intercept"} or formula
    clinic_level : bool
    weeks : sequence of float
        Weeks for the geometric means.
    engine, optimizers : see :func:`analysis.models.lmm.fit_lmm`.

    Returns
    -------
    StrengthResult
    """
    options = options or StrengthModelOptions()
    formula = default_formula(outcome, time, arm_col, control, options.covariates, lhs=f"log({outcome})")
    use_clinic = clinic if clinic_level else None
    e = empty_tidy
    df, notes, reason = prepare_data(data, outcome, arm_col, time, group, control,
                                     options.covariates, use_clinic)
    fit = None
    if reason is None:
        fit = fit_lmm(df, formula, group, random, time=time, clinic=use_clinic, engine=engine,
                      optimizers=tuple(optimizers), alpha=alpha)
        health = fit.health
    else:
        health = not_estimable(reason)
    for note in notes:
        health.add_warning(note)
    if fit is None or not fit.estimated:
        return StrengthResult(formula, control, options.unit, horizon, e(),
                              pd.DataFrame(columns=["group", "term1", "term2", "estimate"]),
                              e(), e(), e(), e(), e(), health)
    tabs = arm_tables(fit, arm_col, control, time, weeks, alpha)
    pct = _transform(tabs["slopes"], lambda s: 100 * np.expm1(horizon * s),
                     lambda t: f"percent change over {horizon:g} weeks: {t.split(': ', 1)[1]}")
    ratio = _transform(tabs["slope_differences"], lambda s: np.exp(horizon * s),
                       lambda t: "ratio of {h:g}-week change: {a}".format(
                           h=horizon, a=t.split(": ", 1)[1].replace(" - ", " / ")))
    geo = _transform(tabs["means"], np.exp, lambda t: f"geometric mean: {t}")
    return StrengthResult(formula=formula, control=control, unit=options.unit, horizon_weeks=horizon,
                          fixed_effects=fit.fixed_effects, variance_components=fit.variance_components,
                          log_slopes=tabs["slopes"], log_slope_differences=tabs["slope_differences"],
                          percent_change=pct, ratio_vs_control=ratio, geometric_means=geo,
                          health=health, n_obs=fit.n_obs, n_patients=fit.n_groups.get(group, 0), fit=fit)
