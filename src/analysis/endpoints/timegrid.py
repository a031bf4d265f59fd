"""The time grid comes from the data: report times and each arm's observed follow-up.

Rules (docs/wording.md, "Times"):

* **Report times.** ``models.pain.weeks`` when the config gives it; otherwise the log's own
  schedule: the nominal visit times (each visit time rounded to a whole time unit, so a week-4
  visit on day 30 counts as week 4) at which at least ``min_patients`` patients (the disclosure
  threshold) *of every arm* have the outcome recorded (arms with fewer than that many patients in
  all are left out of this rule: they are withheld everywhere and compared nowhere).
* **Observed follow-up of an arm.** The latest nominal time by which at least ``min_patients``
  patients of the arm are still observed (their last recorded value is at or after it). Nothing
  is estimated, said or graded at a time beyond the observed follow-up of any arm compared: a
  claim at week 12 on a log that follows its arms to week 6 is *not testable*, with that reason.

Nothing here fits a model; the grid only decides where the models are read.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Largest (cell x patient) table of marks counted without sorting (bytes of memory).
TABLE_CELLS = 50_000_000


def nominal(times) -> np.ndarray:
    """Visit times rounded to the nearest whole time unit (the nominal schedule)."""
    return np.round(np.asarray(times, dtype=float))


def _recorded(data: pd.DataFrame, outcome: str | None, time: str, arm_col: str) -> pd.DataFrame:
    cols = [time, arm_col] + ([outcome] if outcome else [])
    if any(c not in data.columns for c in cols):
        return data.iloc[0:0]
    d = data[data[time].notna() & data[arm_col].notna()]
    if outcome:
        d = d[pd.to_numeric(d[outcome], errors="coerce").notna()]
    return d


def observed_times(data: pd.DataFrame, outcome: str | None, time: str = "week",
                   arm_col: str = "arm", group: str = "patient_id",
                   min_patients: int = 1) -> list[float]:
    """Nominal times at which every arm has at least ``min_patients`` patients with the outcome
    (arms with fewer than ``min_patients`` patients in all are not counted).

    Parameters
    ----------
    data : DataFrame
        Visit table with ``group``, ``time``, ``arm_col`` and ``outcome``.
    outcome : str or None
        The outcome column (None: any visit counts).
    min_patients : int
        The disclosure threshold.

    Returns
    -------
    list of float
        Sorted; empty when no time qualifies.
    """
    cols = [time, arm_col] + ([outcome] if outcome else [])
    if any(c not in data.columns for c in cols):
        return []
    keep = data[time].notna().to_numpy() & data[arm_col].notna().to_numpy()
    if outcome:
        y = data[outcome]
        keep &= (y if pd.api.types.is_numeric_dtype(y) else pd.to_numeric(y, errors="coerce")).notna().to_numpy()
    if not keep.any():
        return []
    rows = slice(None) if keep.all() else keep  # no copies of the columns when every row counts
    # integer codes of (nominal time, arm as text, patient): distinct triples counted per (time, arm)
    t_code, t_values = _time_codes(nominal(data[time].to_numpy()[rows]))
    arm_code, arm_labels = _text_codes(data[arm_col][rows])
    p_code, n_p = _group_codes(data[group][rows])
    n_t, n_arm = len(t_values), len(arm_labels)
    # the keys built in place: each full-length temporary is fresh memory at a million patients
    key = arm_code.astype(np.int64)
    key *= n_p
    key += p_code
    sizes = _distinct_per_cell(key, n_p, n_arm)
    np.multiply(t_code, n_arm, out=key)
    key += arm_code
    key *= n_p
    key += p_code
    counts = _distinct_per_cell(key, n_p, n_t * n_arm).reshape(n_t, n_arm)
    k = max(int(min_patients), 1)
    # Arms with fewer than k patients in all are withheld everywhere (disclosure control) and
    # compared nowhere; they must not empty the grid of the arms that can be reported.
    eligible = sizes >= k
    if not eligible.any():
        return []
    kept = (counts[:, eligible] >= k).all(axis=1)
    return [float(t) for t in sorted(t_values[kept])]


def _distinct_per_cell(key: np.ndarray, n_p: int, n_cells: int) -> np.ndarray:
    """Distinct patients per cell, ``key = cell * n_p + patient``: marks in a boolean table when it
    is small (no sort), else the distinct keys."""
    if n_cells * n_p <= TABLE_CELLS:
        seen = np.zeros(n_cells * n_p, dtype=bool)
        seen[key] = True
        return seen.reshape(n_cells, n_p).sum(axis=1)
    return np.bincount(np.unique(key) // n_p, minlength=n_cells)


#: Widest range of whole nominal times coded by offset rather than by hashing.
MAX_TIME_RANGE = 100_000


def _time_codes(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distinct values of the nominal times ``t`` (overwritten) (``pd.factorize``'s sets of rows; the codes
    count cells, so their order is free): whole non-negative times are coded by their offset from
    the smallest, without hashing; others (negative zero included) are factorised."""
    lo = t.min()
    if np.isfinite(lo) and lo >= 0 and t.max() - lo <= MAX_TIME_RANGE and not np.signbit(t).any():
        offset = np.subtract(t, lo, out=t).astype(np.int64)   # t is this function's own copy
        present = np.bincount(offset) > 0
        index = np.cumsum(present) - 1
        return np.take(index, offset, out=offset), lo + np.flatnonzero(present)
    return pd.factorize(t)


def _group_codes(col: pd.Series) -> tuple[np.ndarray, int]:
    """Codes 0..n-1 of the patients (a missing id is one more patient, as
    ``pd.factorize(use_na_sentinel=False)``) and n; a Categorical's own codes, without hashing."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy().astype(np.int64)
        n = len(col.cat.categories)
        if (codes < 0).any():
            codes[codes < 0] = n
            n += 1
        return codes, max(n, 1)
    codes, uniques = pd.factorize(col, use_na_sentinel=False)
    return codes, max(len(uniques), 1)


def _text_codes(arm: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes of ``str(value)`` (values whose text is the same share a code) and the texts."""
    if isinstance(arm.dtype, pd.CategoricalDtype) and not (arm.cat.codes.to_numpy() < 0).any():
        codes, uniques = arm.cat.codes.to_numpy(), arm.cat.categories  # unused ones count nowhere
    else:
        codes, uniques = pd.factorize(arm)
    texts = [str(u) for u in uniques]
    merged, labels = pd.factorize(np.array(texts, dtype=object))
    return merged[codes], list(labels)


def follow_up_end(data: pd.DataFrame, outcome: str | None, time: str = "week",
                  arm_col: str = "arm", group: str = "patient_id",
                  min_patients: int = 1) -> dict[str, float]:
    """Each arm's observed follow-up: the latest nominal time at least ``min_patients`` reach.

    Returns
    -------
    dict of str to float
        Arm -> the ``min_patients``-th largest nominal last-observed time of its patients
        (NaN when the arm has fewer patients with the outcome).
    """
    d = _recorded(data, outcome, time, arm_col)
    out: dict[str, float] = {}
    if d.empty:
        return out
    last = pd.DataFrame({"t": nominal(d[time]), "arm": d[arm_col].astype(str).to_numpy(),
                         "p": d[group].to_numpy()}).groupby(["arm", "p"])["t"].max()
    k = max(int(min_patients), 1)
    for arm, times in last.groupby(level=0):
        ordered = np.sort(times.to_numpy())[::-1]
        out[str(arm)] = float(ordered[k - 1]) if len(ordered) >= k else math.nan
    return out


def report_weeks(weeks, data: pd.DataFrame, outcome: str | None, time: str = "week",
                 arm_col: str = "arm", group: str = "patient_id",
                 min_patients: int = 1) -> list[float]:
    """``weeks`` when given (the config's override), else :func:`observed_times`."""
    if weeks:
        return [float(w) for w in weeks]
    return observed_times(data, outcome, time, arm_col, group, min_patients)


def beyond_follow_up(end: float, arms, ends: dict[str, float], unit: str = "week") -> str | None:
    """The reason a time ``end`` lies beyond the observed follow-up of one of ``arms``, or None."""
    for arm in arms:
        last = ends.get(arm, math.nan)
        if not math.isfinite(last):
            return (f"arm {arm!r} has too few patients with the outcome to know how long it was "
                    "followed")
        if end > last:
            return (f"the log follows arm {arm!r} only to {unit} {last:g} (the last time enough "
                    f"patients are still observed), so nothing can be said at {unit} {end:g}")
    return None
