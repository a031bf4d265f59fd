"""factorize_runs (codes from the changes between neighbours) held to pandas.factorize of the
whole column, its oracle, on sorted, grouped, shuffled, missing and mixed columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.intake.runs import factorize_runs
from analysis.endpoints.pain import _with_categorical_arm, _with_categorical_group


def _ids(n_patients, rng, visits=(1, 12)):
    counts = rng.integers(visits[0], visits[1] + 1, n_patients)
    return np.repeat(np.array([f"P{i:05d}" for i in range(n_patients)], dtype=object), counts)


def _columns():
    rng = np.random.default_rng(3)
    ids = _ids(500, rng)
    arms = np.array(["usual_care", "orthotics", "taping", "exercise"], dtype=object)
    per_patient = rng.integers(0, 4, 500)
    arm = arms[per_patient][np.searchsorted(np.unique(ids), ids)]
    shuffled = ids.copy()
    rng.shuffle(shuffled)
    missing = ids.copy()
    missing[rng.choice(len(ids), 40, replace=False)] = None
    nan_mixed = arm.copy()
    nan_mixed[::17] = np.nan
    numbers = np.repeat(np.array([3, 1.0, 1, True, "1", 2.5], dtype=object), 7)
    descending = ids[::-1].copy()
    # equal text held by a new object in every row: the pointer runs are too short, the values'
    # runs are used; and a mix of both (every third row a new object)
    distinct = np.array([s[:1] + s[1:] for s in ids], dtype=object)
    some = ids.copy()
    some[::3] = distinct[::3]
    nan_objects = np.array([float("nan") if i % 5 == 0 else a for i, a in enumerate(arm)], dtype=object)
    return {"sorted ids": ids, "grouped arms": arm, "shuffled ids": shuffled,
            "ids with None": missing, "arms with NaN": nan_mixed, "mixed objects": numbers,
            "descending ids": descending, "one row": ids[:1], "empty": ids[:0],
            "numeric": np.repeat(np.arange(50.0), 3), "distinct objects": distinct,
            "some distinct objects": some, "distinct NaN objects": nan_objects,
            "strided": np.repeat(ids, 2)[::2]}


@pytest.mark.parametrize("sort", [False, True])
@pytest.mark.parametrize("name", list(_columns()))
def test_factorize_runs_equals_pandas_factorize(name, sort):
    values = _columns()[name]
    for given in (values, pd.Series(values)):
        try:
            want_codes, want_uniques = pd.factorize(given, sort=sort)
        except TypeError:  # pandas cannot sort these values: neither may the runs
            with pytest.raises(TypeError):
                factorize_runs(given, sort=sort)
            continue
        codes, uniques = factorize_runs(given, sort=sort)
        np.testing.assert_array_equal(codes, want_codes)
        assert codes.dtype == want_codes.dtype
        assert [type(u) for u in uniques] == [type(u) for u in want_uniques]
        assert list(uniques) == list(want_uniques)


def test_runs_are_used_only_when_they_are_long(monkeypatch):
    """Only run heads are hashed on a grouped column, none when the heads are sorted distinct text
    (a table sorted by patient), every row on a shuffled one: the test above runs every path."""
    calls = []
    real = pd.factorize
    monkeypatch.setattr(pd, "factorize", lambda v, **k: calls.append(len(v)) or real(v, **k))
    cols = _columns()
    factorize_runs(cols["sorted ids"], sort=True)
    factorize_runs(cols["distinct objects"], sort=True)  # the values' runs: pointers change
    assert calls == []
    factorize_runs(cols["grouped arms"])
    assert len(calls) == 1 and calls[0] < 500
    calls.clear()
    factorize_runs(cols["shuffled ids"])
    assert calls == [len(cols["shuffled ids"])]


def _old_path(monkeypatch, func, df, col):
    """``func`` as it was, with pandas.factorize of every row (the oracle)."""
    import analysis.endpoints.pain as pain

    with monkeypatch.context() as m:
        m.setattr(pain, "factorize_runs", pd.factorize)
        return func(df, col)


@pytest.mark.parametrize("name", ["sorted ids", "shuffled ids", "ids with None", "descending ids"])
def test_categorical_group_equals_the_factorised_text(name, monkeypatch):
    df = pd.DataFrame({"patient_id": _columns()[name], "week": np.arange(len(_columns()[name]), dtype=float)})
    pd.testing.assert_frame_equal(_with_categorical_group(df, "patient_id"),
                                  _old_path(monkeypatch, _with_categorical_group, df, "patient_id"))
    codes, uniques = pd.factorize(df["patient_id"], sort=True)
    if not (codes < 0).any():  # text ids became a Categorical of the sorted ids
        col = _with_categorical_group(df, "patient_id")["patient_id"]
        np.testing.assert_array_equal(col.cat.codes.to_numpy(), codes)
        assert list(col.cat.categories) == list(uniques)


@pytest.mark.parametrize("name", ["grouped arms", "arms with NaN", "mixed objects", "shuffled ids"])
def test_categorical_arm_equals_the_factorised_text(name, monkeypatch):
    arm = _columns()[name]
    df = pd.DataFrame({"arm": arm, "y": np.arange(len(arm), dtype=float)})
    out = _with_categorical_arm(df, "arm")
    pd.testing.assert_frame_equal(out, _old_path(monkeypatch, _with_categorical_arm, df, "arm"))
    assert list(out["y"]) == list(df["y"][df["arm"].notna()])
