"""The validated table built from the typed rows: ``week`` and ``visit`` added, sorted by patient.

Split from :mod:`analysis.intake.contract` (which types the rows and builds the schema): this is
the one step that writes a full-length copy of the log, so it is written to make as few of them as
the result needs (at a million patients every float column is 60 MB of fresh memory, and on this
kind of machine fresh memory costs more than the arithmetic on it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.config import RunConfig, to_weeks
from analysis.intake.codes import as_object_text, codes_of
from analysis.intake.contract import OUTPUT_COLUMNS, Layout


def to_contract_table(typed: pd.DataFrame, layout: Layout, cfg: RunConfig) -> pd.DataFrame:
    """The validated table: ``week`` and ``visit`` added, dates dropped, sorted by patient, week.

    ``week`` is the time in weeks (``time_unit`` converted; dates: days since the patient's first
    visit / 7). Text columns stay Categorical (:func:`as_object_text` gives the str form). ``visit`` is the visit number (1 = first), or with ``visits:`` the visit label as
    an ordered categorical (order = nominal time). ``covariates:`` columns follow the contract's.

    Built with as few full-length arrays as the result needs (at a million patients each one is
    60 MB of fresh memory): the float columns are written once, into the block the table keeps,
    and a log already in patient/week order is not copied row by row.
    """
    patient = typed["patient_id"]
    rank = (patient.cat.codes.to_numpy() if isinstance(patient.dtype, pd.CategoricalDtype)
            else pd.factorize(patient, sort=True)[0])
    names = [c for c in OUTPUT_COLUMNS if c in typed.columns or c in ("week", "visit")]
    names += [c for c in cfg.covariates if c in typed.columns and c not in names]
    floats = [c for c in names if c == "week" or (c in _FLOAT_OUTPUT and c in typed.columns)]
    block = np.empty((len(floats), len(typed)), dtype=np.float64)
    week = block[floats.index("week")]
    _weeks(typed, layout, cfg, rank, out=week)
    # Sorted by patient (categories are the ids in sorted order), then week; ties keep file order.
    if (rank < 0).any():
        rank = np.where(rank < 0, np.iinfo(rank.dtype).max, rank)
    ordered = len(rank) < 2
    if not ordered:
        step = np.diff(rank)
        ordered = bool(((step > 0) | ((step == 0) & (np.diff(week) >= 0))).all())
        del step
    order = None if ordered else np.lexsort((week, rank))  # a log in order is not re-sorted
    del rank
    for row, name in zip(block, floats):
        if name == "week":
            if not ordered:
                row[:] = row[order]
        elif ordered:
            row[:] = typed[name].to_numpy(dtype=np.float64)
        else:
            np.take(typed[name].to_numpy(dtype=np.float64), order, out=row)
    table = pd.DataFrame(block.T, columns=floats, copy=False)
    for name in names:
        if name in floats:
            continue
        if name == "visit":
            values = _visit_column(table["patient_id"], typed, order, cfg)
        else:
            values = typed[name].array if ordered else typed[name].array.take(order)
        at = sum(names.index(c) < names.index(name) for c in table.columns)
        table.insert(at, name, values)
    return table


_FLOAT_OUTPUT = ("pain_score", "episodes", "exposure_days", "strength", "foot_posture_index")


def _weeks(typed: pd.DataFrame, layout: Layout, cfg: RunConfig, rank: np.ndarray,
           out: np.ndarray) -> None:
    """Each row's time in weeks, written into ``out``."""
    if layout.key == "time":
        week = typed["time"] / 7.0 if cfg.time_unit == "days" else to_weeks(
            typed["time"], cfg.time_unit)
        out[:] = np.asarray(week, dtype=float)
        return
    stamps = typed["visit_date"].to_numpy()
    if len(stamps) and (stamps.dtype == np.dtype("datetime64[ns]")) and (rank >= 0).all() and \
            not np.isnat(stamps).any():
        # Whole days since 1970 (datetime64[D] floors, as normalize() does), less each
        # patient's first day: the same integers as (day - first).dt.days, without Timedeltas.
        day = stamps.astype("datetime64[D]").view(np.int64)
        first = np.full(int(rank.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, rank, day)
        day -= first[rank]
        np.divide(day, 7.0, out=out)
        return
    out[:] = _weeks_from_dates(typed).to_numpy(dtype=float)


def _weeks_from_dates(typed: pd.DataFrame) -> pd.Series:
    """Days since the patient's first visit / 7, through pandas' datetime arithmetic (any
    dtype, missing dates and patients; the oracle of the integer-day path in the tests)."""
    day = typed["visit_date"].dt.normalize()
    first = day.groupby(codes_of(typed["patient_id"]), sort=False).transform("min")
    return (day - first).dt.days / 7.0


def _visit_column(patient: pd.Series, typed: pd.DataFrame, order, cfg: RunConfig):
    """The visit number within each patient (rows already sorted), or the ordered visit label."""
    if cfg.visits:
        # The visit label as a factor ordered by nominal time (analyses of time as categorical).
        labels = sorted(cfg.visits, key=lambda label: (cfg.visits[label], label))
        visit = typed["visit"]
        visit = visit.array if order is None else visit.array.take(order)
        return pd.Categorical(as_object_text(pd.Series(visit)), categories=labels, ordered=True)
    # Rows of a patient are together: the visit number counts from each patient's first row.
    codes = codes_of(patient)
    visit = np.ones(len(codes), dtype=np.int64)
    if len(codes):
        starts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        visit[starts] = 1 - np.diff(starts, prepend=0)
        np.cumsum(visit, out=visit)
    return visit
