"""observed_times counts distinct (time, arm, patient) triples on integer codes; this test holds it
to the plain pandas computation it replaced (drop_duplicates + groupby), on random logs with the
awkward cases: missing outcomes, text outcomes, arms whose text coincides (1 and "1"),
Categorical arms and a missing patient id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.endpoints import timegrid
from analysis.endpoints.timegrid import nominal, observed_times


def _reference(data, outcome, time="week", arm_col="arm", group="patient_id", min_patients=1):
    d = data[data[time].notna() & data[arm_col].notna()]
    if outcome:
        d = d[pd.to_numeric(d[outcome], errors="coerce").notna()]
    if d.empty:
        return []
    frame = pd.DataFrame({"t": nominal(d[time]), "arm": d[arm_col].astype(str).to_numpy(),
                          "p": d[group].to_numpy()})
    counts = frame.drop_duplicates().groupby(["t", "arm"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=sorted(frame["arm"].unique()), fill_value=0)
    k = max(int(min_patients), 1)
    sizes = frame.drop_duplicates(["arm", "p"]).groupby("arm").size()
    eligible = [a for a in counts.columns if sizes.get(a, 0) >= k]
    if not eligible:
        return []
    keep = counts.index[(counts[eligible] >= k).all(axis=1)]
    return [float(t) for t in sorted(keep)]


def _log(seed, n=600):
    rng = np.random.default_rng(seed)
    arms = np.array(["a", "b", 1, "1", "c"], dtype=object)
    d = pd.DataFrame({"patient_id": rng.integers(0, 80, n).astype(str),
                      "week": rng.uniform(0, 8, n).round(2),
                      "arm": arms[rng.integers(0, 5 if seed % 2 else 3, n)],
                      "y": rng.normal(size=n)})
    d.loc[rng.uniform(size=n) < 0.1, "y"] = np.nan
    d.loc[rng.uniform(size=n) < 0.05, "week"] = np.nan
    d.loc[rng.uniform(size=n) < 0.05, "arm"] = None
    return d


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 8, 40])
@pytest.mark.parametrize("table", [True, False])
def test_observed_times_equals_the_pandas_reference(seed, k, table, monkeypatch):
    if not table:  # the sorting branch, used for large logs
        monkeypatch.setattr(timegrid, "TABLE_CELLS", 0)
    d = _log(seed)
    assert observed_times(d, "y", min_patients=k) == _reference(d, "y", min_patients=k)
    assert observed_times(d, None, min_patients=k) == _reference(d, None, min_patients=k)
    text = d.assign(y=d["y"].map(lambda v: "n/a" if np.isnan(v) else str(v)))
    assert observed_times(text, "y", min_patients=k) == _reference(text, "y", min_patients=k)
    cat = d[d["arm"].map(lambda a: isinstance(a, str) or a is None)].copy()
    cat["arm"] = pd.Categorical(cat["arm"], categories=["c", "b", "a", "1", "unused"])
    assert observed_times(cat, "y", min_patients=k) == _reference(cat, "y", min_patients=k)
    ids = d.assign(patient_id=pd.Categorical(d["patient_id"]))
    assert observed_times(ids, "y", min_patients=k) == _reference(ids, "y", min_patients=k)
    gap = d.copy()
    gap.loc[gap.index[:20], "patient_id"] = None
    assert observed_times(gap, "y", min_patients=k) == _reference(gap, "y", min_patients=k)
    # patient ids as a Categorical with unused and missing ids; every row kept (no selection)
    cat_gap = gap.assign(patient_id=pd.Categorical(gap["patient_id"], categories=[*map(str, range(90))]))
    assert observed_times(cat_gap, "y", min_patients=k) == _reference(cat_gap, "y", min_patients=k)
    full = d.dropna().assign(patient_id=lambda f: pd.Categorical(f["patient_id"]))
    assert observed_times(full, "y", min_patients=k) == _reference(full, "y", min_patients=k)


@pytest.mark.parametrize("shift", [0.0, -0.4, -3.0, 1e9, 0.5])
def test_time_codes_by_offset_equal_the_factorised_times(shift):
    """Whole non-negative times are coded by offset (no hashing); negative ones, -0.0 among them,
    and wide ranges are factorised: the same cells either way."""
    d = _log(1).dropna()
    d = d.assign(week=d["week"] + shift)
    if shift == 1e9:
        d.loc[d.index[0], "week"] = 0.0  # a range wider than MAX_TIME_RANGE
    for k in (1, 3):
        assert observed_times(d, "y", min_patients=k) == _reference(d, "y", min_patients=k)
    t = nominal(d["week"].to_numpy())
    codes, values = timegrid._time_codes(t.copy())
    np.testing.assert_array_equal(values[codes], t)
    assert sorted(values) == sorted(pd.unique(t))
