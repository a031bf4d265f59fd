"""Responder analysis: the share of patients whose pain fell by a clinically important amount.

Methods
-------
**Definition.** For patient :math:`i` with baseline pain :math:`y_{i0}` (the score at week 0) and
follow-up pain :math:`y_{iw}` at the chosen week :math:`w`, the reduction is
:math:`d_i = y_{i0} - y_{iw}`. The patient is a *responder* when

.. math::

   d_i \\ge m_{\\text{points}} \\quad\\text{or}\\quad 100\\, d_i / y_{i0} \\ge m_{\\text{percent}}

(defaults 2 points or 30 %: Farrar et al. 2001, as adopted by IMMPACT, Dworkin et al.
2008). The percent criterion needs :math:`y_{i0} > 0`; with a baseline of 0 only the points
criterion applies (so such a patient, who cannot improve, is an assessable non-responder). Both
comparisons are inclusive and allow 1e-9 points of floating-point slack, so that e.g. 8.2 -> 6.2
counts as exactly 2 points.

* **Baseline** — the score of the patient's first visit time (week 0 for dated visits; with
  ``baseline: first_visit`` whatever its time); when several visits fall on it, the earliest
  (smallest ``visit``) with a recorded score. With ``baseline: {column: NAME}`` the file's
  baseline column, and every visit is then a follow-up candidate.
* **Direction** — with ``better: higher`` (``outcomes:``) :math:`d_i = y_{iw} - y_{i0}`: a
  responder's score rose by the thresholds.
* **Follow-up** — among the patient's visits after the baseline time with a recorded score and
  :math:`|t - w| \\le` ``window`` weeks, the one closest to :math:`w`; equally close visits are
  resolved to the later one (the last observation), and visits in the same week to the higher
  visit number.
* **Not assessable** — a patient with no baseline score, or with no follow-up score in the window,
  is counted in ``n_not_assessable`` (split into ``n_no_baseline`` and ``n_no_followup``; a
  patient lacking both is counted once, as ``n_no_baseline``) and left out of the denominator.
  Nobody is dropped silently: ``n_patients = n_assessable + n_not_assessable`` in every arm.
  Proportions are of *assessable* patients (a complete-case analysis), which assumes the
  missingness is unrelated to response within arm; the counts let a reader judge that.

**Per arm.** :math:`\\hat p = x / n` with the Wilson score interval (Wilson 1927; method 3 of
Newcombe 1998a), from ``statsmodels.stats.proportion.proportion_confint(method="wilson")``; this is
the interval of R's ``prop.test(x, n, correct = FALSE)``.

**Arm vs control.** The risk difference :math:`\\hat p_{\\text{arm}} - \\hat p_{\\text{control}}`
with Newcombe's hybrid score interval (Newcombe 1998b, method 10: square-and-add of the two
Wilson intervals), from ``confint_proportions_2indep(method="newcomb")``. Its p-value is from the
two-sided two-proportion z-test with pooled variance (the score test without the
Miettinen-Nurminen :math:`n/(n-1)` factor: ``test_proportions_2indep(method="score",
correction=False)``); :math:`z^2` is Pearson's :math:`\\chi^2` of the 2x2 table without Yates'
correction, i.e. R's ``prop.test(c(x1, x2), c(n1, n2), correct = FALSE)``. The z-test was chosen
over Fisher's exact test because it belongs to the same score family as the interval; the two
still come from different constructions, so at the margin the p-value can fall on the other side of
``alpha`` from the interval's exclusion of 0. When both arms are all responders or all
non-responders the pooled variance is 0 and ``statistic`` and ``p_value`` are NaN (as R's
``prop.test`` returns NaN).

**Columns.** Score intervals are not estimate +/- z x SE, so ``std_error`` is NaN (no standard
error is reported rather than a Wald one that would not match the interval); ``df`` is inf (normal
reference); the per-arm rows carry no test (``statistic``, ``p_value`` NaN).

There is no likelihood fitting, hence no REML/ML choice.

References
----------
Wilson EB (1927). Probable inference, the law of succession, and statistical inference. JASA 22,
209-212.
Newcombe RG (1998a). Two-sided confidence intervals for the single proportion: comparison of seven
methods. Stat Med 17, 857-872.
Newcombe RG (1998b). Interval estimation for the difference between independent proportions:
comparison of eleven methods. Stat Med 17, 873-890.
Farrar JT et al. (2001). Clinical importance of changes in chronic pain intensity measured on an
11-point numerical pain rating scale. Pain 94, 149-158.
Dworkin RH et al. (2008). Interpreting the clinical importance of treatment outcomes in chronic
pain clinical trials: IMMPACT recommendations. J Pain 9, 105-121.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    test_proportions_2indep,
)

from analysis.errors import ConfigError, InputError
from analysis.intake.arms import MAX_IDS_IN_MESSAGE, arm_levels

#: Floating-point slack (in pain-score points) for the inclusive responder thresholds.
TOLERANCE = 1e-9

RESULT_COLUMNS = ["term", "estimate", "std_error", "df", "statistic", "p_value", "conf_low",
                  "conf_high"]
PROPORTION_COUNTS = ["n_patients", "n_assessable", "n_not_assessable", "n_no_baseline",
                     "n_no_followup", "n_responders"]
DIFFERENCE_COUNTS = ["n_patients", "n_patients_arm", "n_patients_control", "n_assessable_arm",
                     "n_assessable_control", "n_responders_arm", "n_responders_control"]


@dataclass(frozen=True)
class ResponderResult:
    """Responder proportions per arm and risk differences against control.

    Attributes
    ----------
    proportions : DataFrame
        One row per arm (control first): ``arm``, the tidy result columns with
        ``term = "responder_proportion"``, then ``n_patients, n_assessable, n_not_assessable,
        n_no_baseline, n_no_followup, n_responders``.
    differences : DataFrame
        One row per non-control arm: ``arm, comparison`` (``"<arm> - <control>"``), the tidy
        result columns with ``term = "risk_difference"``, then the counts of both arms.
        ``n_patients`` is the *smaller* of the two arms' patient counts, so a disclosure rule on
        ``n_patients`` protects both groups behind the difference (a difference plus the control's
        proportion would otherwise reveal a suppressed arm's proportion). Empty (with these
        columns) when the control arm is absent.
    patients : DataFrame
        One row per patient: ``patient_id, arm, baseline, followup_week, followup, reduction,
        percent_reduction, assessable, reason, responder`` (``responder`` is NA when not
        assessable). Patient-level: for checks inside a run, never for publication.
    definition : dict
        The settings used (week, window, thresholds, alpha, control, methods).
    control_present : bool
        Whether the control arm has patients.
    """

    proportions: pd.DataFrame
    differences: pd.DataFrame
    patients: pd.DataFrame
    definition: dict = field(default_factory=dict)
    control_present: bool = True


def _check_settings(control, week, min_points, min_percent, window, alpha) -> None:
    if not isinstance(control, str) or not control:
        raise ConfigError("responder_analysis: control must be a non-empty arm label, "
                          f"got {control!r}")
    checks = [
        ("models.responders.week", week, lambda v: math.isfinite(v) and v > 0,
         "must be a finite number of weeks above 0"),
        ("responder window", window, lambda v: math.isfinite(v) and v >= 0,
         "must be a finite number of weeks, 0 or more"),
        ("models.responders.min_points", min_points, lambda v: v > 0,
         "must be above 0 (use inf to switch the points criterion off)"),
        ("models.responders.min_percent", min_percent,
         lambda v: v > 0 and (v <= 100 or v == math.inf),
         "must be in (0, 100] (use inf to switch the percent criterion off)"),
        ("models.alpha", alpha, lambda v: 0 < v < 1, "must be between 0 and 1"),
    ]
    for key, value, ok, rule in checks:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or math.isnan(value) or not ok(float(value)):
            raise ConfigError(f"responder_analysis: {key} = {value!r} {rule}")
    if math.isinf(min_points) and math.isinf(min_percent):
        raise ConfigError("responder_analysis: min_points and min_percent are both inf; "
                          "no patient could respond")


def _check_data(data: pd.DataFrame) -> None:
    if not isinstance(data, pd.DataFrame):
        raise InputError("responder_analysis: expected a pandas DataFrame, "
                         f"got {type(data).__name__}")
    needed = ["patient_id", "week", "visit", "pain_score", "arm"]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        hint = " (call analysis.intake.arms.assign_arms first)" if "arm" in missing else ""
        raise InputError(f"responder_analysis: the visit table lacks column(s) {missing}{hint}; "
                         f"it has {list(data.columns)}")
    if data.empty:
        raise InputError("responder_analysis: the visit table has no rows")
    for col in ("patient_id", "week", "arm"):
        n = int(data[col].isna().sum())
        if n:
            raise InputError(f"responder_analysis: {n} row(s) have no {col}")
    for col in ("week", "pain_score"):
        if not pd.api.types.is_numeric_dtype(data[col]):
            raise InputError(f"responder_analysis: column {col!r} must be numeric, "
                             f"got {data[col].dtype}")
    n_arms = data.groupby("patient_id", sort=False, observed=True)["arm"].nunique()
    bad = sorted(map(str, n_arms.index[n_arms.to_numpy() > 1]))
    if bad:
        more = ", ..." if len(bad) > MAX_IDS_IN_MESSAGE else ""
        shown = ", ".join(bad[:MAX_IDS_IN_MESSAGE]) + more
        raise InputError(f"responder_analysis: arm is not constant within {len(bad)} patient(s) "
                         f"({shown}); each patient needs one arm (see assign_arms)")


def classify_patients(data: pd.DataFrame, week: float = 12.0, min_points: float = 2.0,
                      min_percent: float = 30.0, window: float = 2.0, better: str = "lower",
                      baseline: pd.Series | None = None) -> pd.DataFrame:
    """Baseline, follow-up and responder status of every patient (no checks; see module doc).

    Parameters
    ----------
    data : DataFrame
        Visit table with ``patient_id, week, visit, pain_score, arm`` (already checked).
    week, min_points, min_percent, window : float
        As in :func:`responder_analysis`.
    better, baseline
        As in :func:`responder_analysis`.

    Returns
    -------
    DataFrame
        One row per patient, in order of first appearance; columns as
        :attr:`ResponderResult.patients`.
    """
    # Positional index: the caller's may repeat labels (e.g. after pd.concat), breaking alignment.
    rows = data[["patient_id", "week", "visit", "pain_score", "arm"]].reset_index(drop=True)
    patients = rows.drop_duplicates("patient_id")[["patient_id", "arm"]].set_index("patient_id")
    patients["arm"] = patients["arm"].astype(str)
    scored = rows[rows["pain_score"].notna()]

    # Baseline: the score at the patient's first visit time (week 0 when visits are dated), or a
    # baseline column of the file; follow-up: a later visit (any visit, for a baseline column).
    first_week = rows.groupby("patient_id", sort=False)["week"].transform("min")
    after = scored["week"] > first_week[scored.index] + TOLERANCE
    if baseline is None:
        at_first = (scored["week"] - first_week[scored.index]).abs() <= TOLERANCE
        at_baseline = scored[at_first].sort_values(["patient_id", "visit"], kind="stable")
        baseline = at_baseline.drop_duplicates("patient_id").set_index("patient_id")["pain_score"]
    else:
        after = pd.Series(True, index=scored.index)

    distance = (scored["week"] - week).abs()
    in_window = scored[after & (distance <= window + TOLERANCE)].assign(_distance=distance)
    # Closest to the target week first; among equally close, the later visit (last observed).
    in_window = in_window.sort_values(["patient_id", "_distance", "week", "visit"],
                                      ascending=[True, True, False, False], kind="stable")
    followup = in_window.drop_duplicates("patient_id").set_index("patient_id")

    out = patients.copy()
    out["baseline"] = baseline.reindex(out.index).astype(float)
    out["followup_week"] = followup["week"].reindex(out.index).astype(float)
    out["followup"] = followup["pain_score"].reindex(out.index).astype(float)
    # "reduction": the change in the better direction (a fall when lower is better).
    sign = 1.0 if better == "lower" else -1.0
    out["reduction"] = sign * (out["baseline"] - out["followup"])
    positive = out["baseline"] > 0
    out["percent_reduction"] = 100 * out["reduction"] / out["baseline"].where(positive)

    has_baseline = out["baseline"].notna()
    has_followup = out["followup"].notna()
    out["assessable"] = has_baseline & has_followup
    out["reason"] = np.select([~has_baseline, ~has_followup],
                              ["no baseline score", "no follow-up score in window"], default="")
    by_points = out["reduction"] >= min_points - TOLERANCE
    by_percent = positive & (100 * out["reduction"]
                             >= min_percent * out["baseline"] - 100 * TOLERANCE)
    out["responder"] = pd.array((by_points | by_percent).to_numpy(), dtype="boolean")
    out.loc[~out["assessable"], "responder"] = pd.NA
    return out.reset_index()


def _proportions(patients: pd.DataFrame, levels: list[str], alpha: float) -> pd.DataFrame:
    arm = pd.Categorical(patients["arm"], categories=levels)
    counts = pd.DataFrame({
        "n_patients": patients.groupby(arm, observed=False).size(),
        "n_assessable": patients["assessable"].groupby(arm, observed=False).sum(),
        "n_no_baseline": (patients["reason"] == "no baseline score")
        .groupby(arm, observed=False).sum(),
        "n_no_followup": (patients["reason"] == "no follow-up score in window")
        .groupby(arm, observed=False).sum(),
        "n_responders": patients["responder"].fillna(False).astype(bool)
        .groupby(arm, observed=False).sum(),
    }).astype("int64")
    counts["n_not_assessable"] = counts["n_patients"] - counts["n_assessable"]

    x = counts["n_responders"].to_numpy(dtype=float)
    n = counts["n_assessable"].to_numpy(dtype=float)
    ok = n > 0
    estimate = np.full(len(n), np.nan)
    low = np.full(len(n), np.nan)
    high = np.full(len(n), np.nan)
    if ok.any():
        estimate[ok] = x[ok] / n[ok]
        low[ok], high[ok] = proportion_confint(x[ok], n[ok], alpha=alpha, method="wilson")
    table = pd.DataFrame({
        "arm": levels, "term": "responder_proportion", "estimate": estimate, "std_error": np.nan,
        "df": np.inf, "statistic": np.nan, "p_value": np.nan, "conf_low": low, "conf_high": high,
    })
    for col in PROPORTION_COUNTS:
        table[col] = counts[col].to_numpy()
    return table


def _difference_row(arm: str, control: str, a: pd.Series, c: pd.Series, alpha: float) -> dict:
    x1, n1, x2, n2 = (int(a["n_responders"]), int(a["n_assessable"]),
                      int(c["n_responders"]), int(c["n_assessable"]))
    row = {"arm": arm, "comparison": f"{arm} - {control}", "term": "risk_difference",
           "estimate": np.nan, "std_error": np.nan, "df": np.inf, "statistic": np.nan,
           "p_value": np.nan, "conf_low": np.nan, "conf_high": np.nan}
    if n1 > 0 and n2 > 0:
        row["estimate"] = x1 / n1 - x2 / n2
        low, high = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff",
                                               alpha=alpha)
        row["conf_low"], row["conf_high"] = float(low), float(high)
        pooled = (x1 + x2) / (n1 + n2)
        if 0 < pooled < 1:  # else the pooled variance is 0 and z is 0/0
            # statsmodels also forms ratio and odds ratio, which divide by 0 when a count is 0.
            with np.errstate(divide="ignore", invalid="ignore"):
                test = test_proportions_2indep(x1, n1, x2, n2, method="score", correction=False,
                                               compare="diff", alternative="two-sided")
            row["statistic"], row["p_value"] = float(test.statistic), float(test.pvalue)
    row.update({
        "n_patients": min(int(a["n_patients"]), int(c["n_patients"])),
        "n_patients_arm": int(a["n_patients"]), "n_patients_control": int(c["n_patients"]),
        "n_assessable_arm": n1, "n_assessable_control": n2,
        "n_responders_arm": x1, "n_responders_control": x2,
    })
    return row


def responder_analysis(data: pd.DataFrame, control: str, week: float = 12.0,
                       min_points: float = 2.0, min_percent: float = 30.0, window: float = 2.0,
                       alpha: float = 0.05, better: str = "lower",
                       baseline: pd.Series | None = None) -> ResponderResult:
    """Responder proportions per arm (Wilson) and risk differences vs control (Newcombe).

    Parameters
    ----------
    data : DataFrame
        Visit table with ``patient_id``, ``week`` (0 at the first visit), ``visit``,
        ``pain_score`` (NaN allowed) and a per-patient ``arm`` (from
        :func:`analysis.intake.arms.assign_arms`).
    control : str
        The comparator arm.
    week : float
        Week at which response is judged (``models.responders.week``).
    min_points : float
        Reduction in points that makes a responder (``models.responders.min_points``); ``inf``
        switches this criterion off.
    min_percent : float
        Reduction in percent of baseline that makes a responder
        (``models.responders.min_percent``); ``inf`` switches it off.
    window : float
        Half-width in weeks of the window around ``week`` in which a follow-up score is looked
        for.
    alpha : float
        1 - confidence level of the intervals (``models.alpha``).
    better : {"lower", "higher"}
        Direction of improvement (``outcomes:`` metadata): with ``"higher"`` a responder's score
        *rose* by the thresholds.
    baseline : Series, optional
        Baseline score per patient (index ``patient_id``), e.g. from a baseline column of the file
        (``baseline: {column: ...}``); then every visit is a follow-up candidate. Default: the
        score at the patient's first visit time.

    Returns
    -------
    ResponderResult

    Raises
    ------
    ConfigError
        A setting out of range.
    InputError
        Missing columns, no rows, missing patient_id/week/arm, non-numeric week or pain, or an arm
        that changes within a patient.
    """
    _check_settings(control, week, min_points, min_percent, window, alpha)
    _check_data(data)
    patients = classify_patients(data, week=week, min_points=min_points, min_percent=min_percent,
                                 window=window, better=better, baseline=baseline)
    levels = arm_levels(patients["arm"], control)  # arms with patients, control first
    proportions = _proportions(patients, levels, alpha)

    control_present = control in levels
    rows = []
    if control_present:
        by_arm = proportions.set_index("arm")
        rows = [_difference_row(arm, control, by_arm.loc[arm], by_arm.loc[control], alpha)
                for arm in levels if arm != control]
    differences = pd.DataFrame(rows, columns=["arm", "comparison", *RESULT_COLUMNS,
                                              *DIFFERENCE_COUNTS])
    definition = {
        "week": float(week), "window": float(window), "min_points": float(min_points),
        "min_percent": float(min_percent), "alpha": float(alpha), "control": control,
        "proportion_interval": "Wilson score (Newcombe 1998a method 3)",
        "difference_interval": "Newcombe hybrid score (Newcombe 1998b method 10)",
        "difference_test": "two-proportion z-test, pooled variance (Pearson chi-square, no Yates)",
    }
    if better != "lower":  # recorded only when not the default, so default results stay as they were
        definition["better"] = better
    if baseline is not None:
        definition["baseline"] = "baseline column of the file"
    return ResponderResult(proportions=proportions, differences=differences, patients=patients,
                           definition=definition, control_present=control_present)
