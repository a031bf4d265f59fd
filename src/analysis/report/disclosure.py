"""Statistical disclosure control for every table and figure meant for readers outside a run.

Rule: a cell that rests on fewer patients than ``disclosure_threshold`` (default 11) is suppressed —
its numbers become empty and the row says ``suppressed``. A row's other patient counts (columns
``n_*`` beside the row's own count, e.g. ``n_responders``) from 1 to threshold - 1 are withheld
one by one. Every suppression is logged (table, row,
count, threshold) so the manifest can say what was withheld. Counts themselves below the threshold
are shown as ``<k`` in display tables, never as the exact small number.

Derived disclosure (checked on the values as published, after the rounding of the table):

* **differences of counts on one row** — when a published count minus one or a sum of up to three
  other published counts of the same row is from 1 to threshold - 1 (``n_patients - n_assessable``
  = patients not assessable), the smaller side is withheld too, until no such difference is left;
* **share × denominator** — for the row's share columns (``shares=``: e.g. a responder proportion
  and its interval, with the count it is a share of), when share × denominator, or the
  denominator minus it, is from 0.5 to threshold - 0.5, the shares are withheld (0.375 of 16
  assessable = 6 responders), whether or not the denominator itself is published;
* **totals minus published parts (secondary suppression)** — when exactly one row of a table is
  suppressed, or the suppressed rows together rest on fewer than the threshold, the next smallest
  row is suppressed as well (as statistical offices do), so that a total published elsewhere minus
  the shown rows cannot give the withheld count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Numeric columns that locate a cell rather than report on patients (never blanked).
COORDINATES = ("week",)


@dataclass
class DisclosureLog:
    """Suppressions made during a run (written to the run's manifest)."""

    threshold: int
    entries: list[dict] = field(default_factory=list)

    def record(self, table: str, row: str, n_patients: int | None, reason: str) -> None:
        # The exact small count is not logged: "fewer than k" is all a reader may learn.
        self.entries.append({"table": table, "row": row, "reason": reason,
                             "below_threshold": n_patients is not None and n_patients < self.threshold})


def suppress_small_cells(
    table: pd.DataFrame,
    threshold: int,
    log: DisclosureLog | None = None,
    table_name: str = "table",
    count_column: str = "n_patients",
    key_columns: list[str] | None = None,
    shares: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Blank every numeric cell of a row whose ``count_column`` is below ``threshold``.

    Parameters
    ----------
    table : DataFrame
        A tidy table with one row per reported cell and a patient count column.
    threshold : int
        The disclosure threshold.
    log : DisclosureLog, optional
        Where suppressions are recorded.
    table_name : str
        Name used in the log.
    count_column : str
        Column holding the number of distinct patients behind the row.
    key_columns : list of str, optional
        Columns that identify the row in the log (default: the non-numeric columns).
    shares : dict, optional
        Share columns (0-1) and the count column each is a share of, point estimate first, e.g.
        ``{"estimate": "n_assessable", "conf_low": "n_assessable", "conf_high": "n_assessable"}``.
        When the point estimate times its count (as computed, before any count is withheld), or
        the count minus that, is from 0.5 to threshold - 0.5, every share column of the row is
        withheld.

    Returns
    -------
    DataFrame
        A copy with a boolean ``suppressed`` column; the count itself is kept only as a flag.
    """
    if count_column not in table.columns:
        raise KeyError(f"{table_name}: no {count_column!r} column to check against the threshold")
    out = table.copy()
    small = out[count_column].fillna(0).to_numpy() < threshold
    complementary = _complementary_rows(out[count_column].fillna(0).to_numpy(dtype=float), small, threshold)
    small = small | complementary
    # Coordinates say where a cell is (week 12), not what it holds: they stay, so that a fully
    # suppressed table still reads "withheld at week 12" and code reading it finds its weeks.
    numeric = [c for c in out.columns if pd.api.types.is_numeric_dtype(out[c])
               and c != "suppressed" and c not in COORDINATES]
    for col in numeric:
        out[col] = out[col].astype(float)
        out.loc[small, col] = np.nan
    out["suppressed"] = small
    keys = key_columns or [c for c in out.columns if c not in numeric and c != "suppressed"]
    if log is not None and small.any():
        for i, (_, row) in enumerate(table.loc[small].iterrows()):
            label = ", ".join(f"{k}={row[k]}" for k in keys) or str(row.name)
            second = complementary[np.flatnonzero(small)[i]]
            log.record(table_name, label, None if second else (
                int(row[count_column]) if pd.notna(row[count_column]) else None),
                "complementary suppression (a total minus the shown rows would reveal a small row)"
                if second else f"fewer than {threshold} patients")
    # The row's other patient counts (n_responders, n_assessable, ...) are cells too: one from 1
    # to threshold - 1 is withheld even when the row itself rests on enough patients.
    for col in [c for c in numeric if str(c).startswith("n_") and c != count_column]:
        values = out[col].to_numpy(dtype=float)
        tiny = ~small & (values > 0) & (values < threshold)
        if not tiny.any():
            continue
        out.loc[tiny, col] = np.nan
        if log is not None:
            for _, row in table.loc[tiny].iterrows():
                label = ", ".join(f"{k}={row[k]}" for k in keys) or str(row.name)
                log.record(table_name, f"{label}: {col}", int(row[col]),
                           f"{col} below {threshold}")
    counts = [c for c in numeric if str(c).startswith("n_")]
    for i in np.flatnonzero(~small):
        _withhold_derived(out, table, out.index[i], counts, shares or {}, threshold, log,
                          table_name, ", ".join(f"{k}={out.iloc[i][k]}" for k in keys) or str(out.index[i]))
    return out


def _complementary_rows(counts: np.ndarray, small: np.ndarray, threshold: int) -> np.ndarray:
    """Rows to suppress besides the small ones, so no total minus the shown rows reveals one."""
    extra = np.zeros(len(counts), dtype=bool)
    if not small.any() or len(counts) < 2:
        return extra
    while True:
        hidden = small | extra
        lone = hidden.sum() == 1
        if not (lone or counts[hidden].sum() < threshold) or hidden.all():
            return extra
        candidates = np.flatnonzero(~hidden)
        extra[candidates[np.argmin(counts[candidates])]] = True


def _withhold_derived(out, table, index, counts, shares, threshold, log, table_name, label):
    """Withhold the counts and shares of one row that arithmetic on the rest would reveal."""
    from itertools import combinations

    def published():
        return {c: float(out.at[index, c]) for c in counts if pd.notna(out.at[index, c])}

    def withhold(col, why):
        out.at[index, col] = np.nan
        if log is not None:
            log.record(table_name, f"{label}: {col}", None, why)

    changed = True
    while changed:
        changed = False
        values = published()
        for total in values:
            others = [c for c in values if c != total]
            for size in (1, 2, 3):
                for parts in combinations(others, size):
                    rest = values[total] - sum(values[p] for p in parts)
                    if 0 < rest < threshold:
                        # Withhold the smallest part (never the row's own count while a part is left).
                        target = min(parts, key=lambda c: values[c])
                        withhold(target, f"{total} minus {' + '.join(parts)} would be below {threshold}")
                        changed = True
                        break
                if changed:
                    break
            if changed:
                break
    if not shares:
        return
    point, denominator = next(iter(shares.items()))
    if point not in out.columns or denominator not in table.columns or pd.isna(out.at[index, point]):
        return
    s, d = float(out.at[index, point]), float(table.at[index, denominator])
    implied = s * d
    if 0 <= s <= 1 and (0.5 <= implied < threshold - 0.5 or 0.5 <= d - implied < threshold - 0.5):
        for column in shares:
            if column in out.columns and pd.notna(out.at[index, column]):
                withhold(column, f"{point} x {denominator} would reveal fewer than {threshold} patients")


def display_count(n: float | int | None, threshold: int) -> str:
    """A patient count as a reader may see it: exact at or above the threshold, else ``<k``."""
    if n is None or (isinstance(n, float) and np.isnan(n)):
        return "—"
    return str(int(n)) if n >= threshold else f"<{threshold}"


def attach_arm_counts(table: pd.DataFrame, arm_counts: dict[str, int], text_column: str = "term",
                      total: int | None = None) -> pd.DataFrame:
    """Give each row of a model table the patient count it rests on.

    A row naming one or more arms in ``text_column`` (or in an ``arm`` column) rests on the
    smallest of those arms; a row naming none rests on all patients (``total``).
    """
    import re

    total = int(total if total is not None else sum(arm_counts.values()))
    patterns = {arm: re.compile(rf"(?<![A-Za-z0-9_]){re.escape(arm)}(?![A-Za-z0-9_])") for arm in arm_counts}

    def count(row) -> int:
        text = " ".join(str(row[c]) for c in (text_column, "arm") if c in row and pd.notna(row[c]))
        named = [n for arm, n in arm_counts.items() if patterns[arm].search(text)]
        return int(min(named)) if named else total

    out = table.copy()
    out["n_patients"] = [count(row) for _, row in out.iterrows()] if len(out) else pd.Series(dtype=int)
    return out
