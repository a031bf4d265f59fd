"""Arms: which course each patient had, who switched, and cumulative sessions for dose-response.

Methods
-------
A clinic log is not a trial: a patient may receive more than one intervention over a course of
visits. Every model compares *arms*, so each patient is given exactly one arm for the whole
course (an intention-to-treat-like label fixed per patient, never per visit):

* **default** — the intervention delivered at most of the patient's visits (the mode of
  ``intervention`` over the patient's rows). Ties between equally frequent interventions are
  broken by the one delivered *earliest* (smallest ``visit``): when the first visit's intervention
  is among the tied ones, that is the first visit's intervention. Every visit row counts, also one
  whose pain score is missing, because a session was still delivered.
* **arm column** — when the run config names a column (``models.arm_column``), its values are
  used as given. They must be constant within each patient; a patient whose rows disagree, or a
  row with no value, is refused with :class:`~analysis.errors.InputError`.

A *switcher* is a patient who received more than one distinct intervention, whatever the arm rule.
Switchers are counted, not removed: the arm stays the patient's course.

The arm column returned is a pandas ``Categorical`` whose categories are the arms present with the
control first and the others in alphabetical order, so that formula-based models (patsy's
``Treatment`` coding takes the first category) use the control as the reference level.

Dose-response. :func:`add_cumulative_sessions` adds, per intervention :math:`k`, the time-varying
covariate :math:`S_{ik}(t_j) = \\sum_{l \\le j} 1[\\text{intervention}_{il} = k]` — the number of
sessions of :math:`k` patient :math:`i` has received up to and including visit :math:`j`.

No model is fitted here; there is no estimation, so no REML/ML or df choice applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.errors import ConfigError, InputError
from analysis.intake.runs import factorize_runs

#: How many pseudonymous patient ids an error message may name (they are pseudonyms, never names).
MAX_IDS_IN_MESSAGE = 5


@dataclass(frozen=True)
class ArmAssignment:
    """One arm per patient.

    Attributes
    ----------
    data : DataFrame
        The input visit table (same rows, same order, same index) plus the categorical ``arm``
        column; an ``arm`` column already in the input is replaced unless it was the named
        ``arm_column``.
    switchers : int
        Number of patients who received more than one distinct intervention.
    table : DataFrame
        Tidy, one row per arm in reference order: ``arm, n_patients, n_switchers, n_visits``.
    control_present : bool
        Whether the control arm has at least one patient (if not, arms are alphabetical and no
        contrast against control can be formed).
    control : str
        The control arm's label as configured.
    arms : list of str
        Arm levels in reference order (control first when present, then alphabetical).
    """

    data: pd.DataFrame
    switchers: int
    table: pd.DataFrame
    control_present: bool
    control: str
    arms: list[str]


def _require_columns(data: pd.DataFrame, columns: list[str], what: str,
                     check_ids: bool = True) -> None:
    """Refuse a table without the columns or rows needed, or (``check_ids``) with rows without
    a patient id."""
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"{what}: expected a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise InputError(
            f"{what}: the visit table lacks column(s) {missing}; it has {list(data.columns)}"
        )
    if data.empty:
        raise InputError(f"{what}: the visit table has no rows")
    if check_ids:
        _require_ids(int(data["patient_id"].isna().sum()), what)


def _require_ids(n_missing_id: int, what: str) -> None:
    if n_missing_id:
        raise InputError(f"{what}: {n_missing_id} row(s) have no patient_id")


def _some_ids(ids) -> str:
    ids = sorted(map(str, ids))
    shown = ", ".join(ids[:MAX_IDS_IN_MESSAGE])
    return shown + (", ..." if len(ids) > MAX_IDS_IN_MESSAGE else "")


def arm_levels(arms, control: str) -> list[str]:
    """Order arm labels for reporting and modelling: control first, then alphabetical.

    Parameters
    ----------
    arms : iterable of str
        The arm labels present (duplicates allowed).
    control : str
        The control arm's label; it is put first only if present.

    Returns
    -------
    list of str
    """
    present = sorted(set(map(str, arms)))
    return ([control] if control in present else []) + [a for a in present if a != control]


def _in_patient_visit_order(patient: np.ndarray, visit: np.ndarray) -> bool:
    """Rows already in (patient code, visit) order with no ties, so that row order is the rank."""
    if len(patient) < 2 or visit.dtype.kind not in "iuf":
        return len(patient) < 2
    step = np.diff(patient)
    return bool((step >= 0).all() and ((step > 0) | (visit[1:] > visit[:-1])).all())


#: The mode by a patients x interventions table when it has at most this many cells per row.
MODE_TABLE_CELLS_PER_ROW = 4


def _arm_by_mode(patient: np.ndarray, visit, k: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """Per patient code: the most frequent intervention, ties to the earliest delivered.

    ``k``, ``labels``: ``pd.factorize`` of the intervention column (no missing value). Returns
    the intervention label of each patient and the number of distinct interventions.
    """
    n = len(patient)
    # Rank of each row in (patient, visit, row) order: "earliest" is the smallest rank.
    if isinstance(visit.dtype, pd.CategoricalDtype):  # visit labels sort by nominal time
        visit = np.where(visit.cat.codes < 0, len(visit.cat.categories), visit.cat.codes)
    visit = np.asarray(visit)
    if _in_patient_visit_order(patient, visit):
        rank = np.arange(n, dtype=np.int64)  # the validated table's order: no sort needed
    else:
        order = np.lexsort((np.arange(n), visit, patient))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
    n_patients, n_kinds = int(patient.max()) + 1, len(labels)
    if n_patients * n_kinds <= MODE_TABLE_CELLS_PER_ROW * n:
        return _mode_from_table(patient, k, rank, n_patients, labels)
    pairs = pd.DataFrame({"p": patient, "k": k, "rank": rank}).groupby(
        ["p", "k"], sort=False).agg(n_visits=("rank", "size"), first=("rank", "min")).reset_index()
    p, kk = pairs["p"].to_numpy(), pairs["k"].to_numpy()
    best = np.lexsort((pairs["first"].to_numpy(), -pairs["n_visits"].to_numpy(), p))
    lead = best[np.r_[True, p[best][1:] != p[best][:-1]]]  # first row of each patient
    arm = np.empty(int(p.max()) + 1 if len(p) else 0, dtype=object)
    arm[p[lead]] = np.asarray(labels, dtype=object)[kk[lead]]
    return arm, np.bincount(p, minlength=len(arm))


def _mode_from_table(patient, k, rank, n_patients: int, labels) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_arm_by_mode` from a patients x interventions table of visit counts and first
    ranks: the intervention with most visits, of those the smallest first rank (ranks are
    distinct, so there is no tie left), without grouping rows."""
    n_kinds, n = len(labels), len(patient)
    cell = patient.astype(np.int64) * n_kinds + k
    visits = np.bincount(cell, minlength=n_patients * n_kinds)
    first = np.full(n_patients * n_kinds, n, dtype=np.int64)
    np.minimum.at(first, cell, rank)
    del cell
    # More visits first, then the earlier first visit; an intervention not given scores -n.
    score = (visits * (n + 1) - first).reshape(n_patients, n_kinds)
    best = np.argmax(score, axis=1)
    return (np.asarray(labels, dtype=object)[best],
            np.count_nonzero(visits.reshape(n_patients, n_kinds), axis=1))


def _arm_from_column(data: pd.DataFrame, arm_column: str) -> pd.Series:
    if arm_column not in data.columns:
        raise InputError(
            f"assign_arms: the configured arm column {arm_column!r} (models.arm_column) is not in "
            f"the visit table; it has {list(data.columns)}"
        )
    values = data[arm_column]
    missing = values.isna()
    if missing.any():
        patients = data.loc[missing, "patient_id"].unique()
        raise InputError(
            f"assign_arms: arm column {arm_column!r} is empty on {int(missing.sum())} row(s) of "
            f"{len(patients)} patient(s) ({_some_ids(patients)}); every visit needs the "
            "patient's arm"
        )
    values = values.astype(str)
    n_arms = values.groupby(data["patient_id"], sort=False).nunique()
    bad = n_arms.index[n_arms.to_numpy() > 1]
    if len(bad):
        raise InputError(
            f"assign_arms: arm column {arm_column!r} is not constant within {len(bad)} patient(s) "
            f"({_some_ids(bad)}); a patient's arm must be the same on every visit"
        )
    return values.groupby(data["patient_id"], sort=False).first()


def assign_arms(data: pd.DataFrame, control: str, arm_column: str | None = None) -> ArmAssignment:
    """Give every patient one arm for the whole course and count switchers.

    Parameters
    ----------
    data : DataFrame
        Validated visit table with at least ``patient_id``, ``visit`` (1-based) and
        ``intervention``; one row per visit.
    control : str
        The comparator arm (``RunConfig.control``); made the reference level when present.
    arm_column : str, optional
        Name of a column holding each patient's arm (``models.arm_column``). Its values must be
        constant within each patient. When ``None`` the arm is the intervention delivered at most
        of the patient's visits, ties broken by the one delivered earliest.

    Returns
    -------
    ArmAssignment

    Raises
    ------
    InputError
        Missing columns, no rows, rows without patient_id or intervention, an unknown or empty
        arm column, or an arm column that is not constant within a patient.
    """
    _require_columns(data, ["patient_id", "visit", "intervention"], "assign_arms", check_ids=False)
    patient, ids = factorize_runs(data["patient_id"])
    _require_ids(int((patient < 0).sum()), "assign_arms")  # codes are -1 where an id is missing
    if not isinstance(control, str) or not control:
        raise ConfigError(f"assign_arms: control must be a non-empty arm label, got {control!r}")
    k, labels = pd.factorize(data["intervention"])
    n_no_intervention = int((k < 0).sum())
    if n_no_intervention:
        raise InputError(f"assign_arms: {n_no_intervention} row(s) have no intervention")

    if arm_column is not None:
        by_id = _arm_from_column(data, arm_column)
        arm = by_id.reindex(ids).to_numpy(dtype=object)
        n_interventions = pd.DataFrame({"p": patient, "k": k}
                                       ).drop_duplicates().groupby("p").size().to_numpy()
    else:
        arm, n_interventions = _arm_by_mode(patient, data["visit"], k, labels)
    arm = arm.astype(str)
    levels = arm_levels(pd.unique(arm), control)  # a hash of few labels, not a sort of 1M
    level_of_patient = pd.Index(levels).get_indexer(arm)

    out = data.copy(deep=False)  # new columns only: the input's arrays are shared, not written
    out["arm"] = pd.Categorical.from_codes(level_of_patient[patient], categories=levels)

    is_switcher = n_interventions > 1
    n_levels = len(levels)
    table = pd.DataFrame({
        "arm": levels,
        "n_patients": np.bincount(level_of_patient, minlength=n_levels),
        "n_switchers": np.bincount(level_of_patient, weights=is_switcher, minlength=n_levels),
        "n_visits": np.bincount(level_of_patient[patient], minlength=n_levels)})
    table = table.astype({"n_patients": "int64", "n_switchers": "int64", "n_visits": "int64"})

    return ArmAssignment(
        data=out,
        switchers=int(is_switcher.sum()),
        table=table[["arm", "n_patients", "n_switchers", "n_visits"]],
        control_present=control in levels,
        control=control,
        arms=levels,
    )


def session_column(intervention: str) -> str:
    """Name of the cumulative-sessions covariate of an intervention: ``sessions_<name>``.

    Characters that are not letters, digits or ``_`` become ``_`` so the name can be used in a
    model formula as it is.
    """
    return "sessions_" + re.sub(r"\W", "_", str(intervention))


def add_cumulative_sessions(data: pd.DataFrame, interventions) -> pd.DataFrame:
    """Add per-intervention cumulative session counts (time-varying dose covariates).

    ``sessions_<k>`` on a visit row is the number of visits of that patient, up to and including
    this one (ordered by ``visit``), at which intervention ``k`` was delivered. A visit counts as a
    session whether or not its pain score was recorded.

    Parameters
    ----------
    data : DataFrame
        Visit table with ``patient_id``, ``visit`` and ``intervention``.
    interventions : sequence of str
        The configured interventions (``RunConfig.interventions``); one column each, also for an
        intervention no patient received (all zeros), so the columns do not depend on the data.

    Returns
    -------
    DataFrame
        A copy of ``data`` (same rows, order and index) with integer ``sessions_<k>`` columns;
        existing columns of those names are replaced.

    Raises
    ------
    InputError
        Missing columns, no rows, or interventions in the data that are not configured.
    ConfigError
        No interventions given, or two interventions whose column names would coincide.
    """
    _require_columns(data, ["patient_id", "visit", "intervention"], "add_cumulative_sessions")
    interventions = list(dict.fromkeys(map(str, interventions)))
    if not interventions:
        raise ConfigError("add_cumulative_sessions: no interventions configured")
    names = [session_column(k) for k in interventions]
    if len(set(names)) != len(names):
        raise ConfigError(
            f"add_cumulative_sessions: interventions {interventions} give clashing covariate "
            f"names {names}; rename them in `interventions:`"
        )
    unknown = sorted(set(data["intervention"].dropna().astype(str)) - set(interventions))
    if unknown or data["intervention"].isna().any():
        what = f"unconfigured intervention(s) {unknown}" if unknown else "rows without intervention"
        raise InputError(f"add_cumulative_sessions: the visit table has {what}; "
                         f"configured: {interventions}")

    # Work on positions, not the caller's index (which may be non-unique), then restore it.
    frame = data[["patient_id", "visit", "intervention"]].reset_index(drop=True)
    order = frame.sort_values(["patient_id", "visit"], kind="stable").index.to_numpy()
    ordered = frame.iloc[order]
    indicators = pd.DataFrame(
        (ordered["intervention"].astype(str).to_numpy()[:, None] == np.asarray(interventions)),
        columns=names, dtype="int64",
    )
    cumulative = indicators.groupby(ordered["patient_id"].to_numpy(), sort=False).cumsum()
    result = np.empty((len(frame), len(names)), dtype="int64")
    result[order] = cumulative.to_numpy()

    out = data.copy()
    for j, name in enumerate(names):
        out[name] = result[:, j]
    return out
