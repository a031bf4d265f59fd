"""Intake's one-pass paths for logs in patient order, against the general paths they skip.

The wide checks (one row per patient and key, visits in time order) compare each row with the one
before when the rows are grouped by patient in id order; k-anonymity counts from Categorical codes.
Each is checked here against the hashing/grouping path on logs in order, shuffled, with repeats,
steps back in time and missing values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.intake.anonymity import _k_anonymity_codes, _k_anonymity_frame, k_anonymity
from analysis.intake.codes import as_text_categorical
from analysis.intake.contract import (
    _in_order_by_patient,
    _in_time_order,
    _in_time_order_grouped,
    _unique_visit,
    _unique_visit_hashed,
)


def _log(seed: int, *, dates: bool, shuffle: bool, repeats: bool, back: bool, missing: bool):
    rng = np.random.default_rng(seed)
    visits = rng.integers(1, 7, 300)
    ids = np.repeat([f"P{i:03d}" for i in range(len(visits))], visits)
    when = np.concatenate([np.cumsum(rng.integers(0 if repeats else 1, 20, v)) for v in visits])
    when = when.astype(float)
    if back:
        when[rng.choice(len(when), 5, replace=False)] -= 50
    if missing:
        when[rng.choice(len(when), 5, replace=False)] = np.nan
    frame = pd.DataFrame({"patient_id": as_text_categorical(pd.Series(ids, dtype=object))})
    frame["key"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(when, unit="D")) if dates else when
    if shuffle:
        frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    return frame


CASES = [dict(dates=d, shuffle=s, repeats=r, back=b, missing=m)
         for d in (False, True) for s in (False, True) for r in (False, True)
         for b in (False, True) for m in (False, True)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(k for k, v in c.items() if v) or "plain")
def test_wide_checks_equal_the_hashing_and_grouping_paths(case):
    frame = _log(len(str(case)), **case)
    fast_taken = _in_order_by_patient(frame, "key") is not None
    assert fast_taken == (not case["shuffle"] and not case["back"] and not case["missing"])
    pd.testing.assert_series_equal(_unique_visit(frame, "key"), _unique_visit_hashed(frame, "key"))
    pd.testing.assert_series_equal(_in_time_order(frame, "key"),
                                   _in_time_order_grouped(frame, "key"))
    if case["repeats"] and fast_taken:
        assert not _unique_visit(frame, "key").all()


def _qi_frame(seed: int, categorical: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 4000
    frame = pd.DataFrame({
        "patient_id": np.repeat([f"P{i:04d}" for i in range(1000)], 4),
        "age_band": rng.choice(["18-39", "40-64", "65+", None], n),
        "sex": rng.choice(["F", "M", None], n, p=[0.5, 0.45, 0.05]),
        "clinic_id": np.repeat(rng.choice([f"C{i}" for i in range(12)], 1000), 4),
    })
    if categorical:
        for name in frame.columns:
            frame[name] = as_text_categorical(frame[name].astype(object))
    return frame


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_k_anonymity_from_codes_equals_the_frame_path(seed):
    frame = _qi_frame(seed, categorical=True)
    qis = ["age_band", "sex", "clinic_id"]
    fast = _k_anonymity_codes(frame, qis)
    assert fast is not None
    slow = _k_anonymity_frame(frame, qis)
    key = qis
    pd.testing.assert_frame_equal(fast.sort_values(key).reset_index(drop=True),
                                  slow.sort_values(key).reset_index(drop=True))
    pd.testing.assert_frame_equal(k_anonymity(frame, qis, 11),
                                  k_anonymity(_qi_frame(seed, categorical=False), qis, 11))
    assert (fast["n_patients"].sum() >= 1000) and "(missing)" in set(fast["sex"])


@pytest.mark.parametrize("seed", range(6))
def test_two_clinics_precheck_agrees_with_the_pandas_path(seed):
    # The code pass (analysis.intake.mapping._any_patient_in_two_clinics) lets the pandas path
    # report only when some patient is under two clinics; its answer must be the pandas one's.
    from analysis.intake.mapping import _any_patient_in_two_clinics

    rng = np.random.default_rng(seed)
    n_patients = 200
    patient = rng.integers(0, n_patients, 1500)
    clinic = patient % 5  # one clinic per patient ...
    movers = rng.choice(n_patients, seed % 3, replace=False)  # ... but for 0-2 movers
    moved = np.isin(patient, movers) & (rng.random(1500) < 0.3)
    clinic = np.where(moved, (clinic + 1) % 5, clinic)
    p = pd.Series([f"P{i}" for i in patient], dtype=object)
    c = pd.Series([f"C{i}" for i in clinic], dtype=object)
    if seed % 2:
        p[rng.random(1500) < 0.05] = None
        c[rng.random(1500) < 0.05] = None
    pairs = pd.DataFrame({"p": p, "c": c}).dropna().drop_duplicates()
    expected = bool(pairs["p"].duplicated().any())
    assert _any_patient_in_two_clinics(p.astype("category"), c.astype("category")) == expected
    assert _any_patient_in_two_clinics(p, c)  # not Categorical: the pandas path decides
    assert expected == (seed % 3 > 0 and bool(moved[~p.isna().to_numpy() & ~c.isna().to_numpy()].any()))


@pytest.mark.parametrize("values", [["", "P1", "P2", "P3"], ["P1", "P2", "P3"], ["P1", "P1", "P2"],
                                    ["P2", "P1", "P3"], ["a", None, "b"], ["b", ""], ["x"]])
def test_text_categorical_of_values_in_order_equals_the_sorting_path(monkeypatch, values):
    from analysis.intake import codes

    rng = np.random.default_rng(0)
    row_codes = rng.integers(0, len(values), 50)
    fast = codes.text_categorical(row_codes, values)
    monkeypatch.setattr(codes, "_increasing", lambda v: False)  # np.unique always
    slow = codes.text_categorical(row_codes, values)
    pd.testing.assert_series_equal(fast, slow)
    assert fast.cat.codes.dtype == slow.cat.codes.dtype


@pytest.mark.parametrize("movers", [0, 3])
def test_k_anonymity_of_one_combination_per_patient_equals_the_frame_path(movers):
    """The validated table's case: rows grouped by patient in order, the quasi-identifiers fixed
    per patient (with ``movers`` patients whose sex changes: the sorting path then)."""
    from analysis.intake import anonymity

    rng = np.random.default_rng(movers)
    visits = rng.integers(1, 6, 800)
    per_patient = {"age_band": rng.choice(["18-39", "40-64", "65+", None], 800),
                   "sex": rng.choice(["F", "M", None], 800), "clinic_id": rng.choice(["C1", "C2", "C3"], 800)}
    frame = pd.DataFrame({"patient_id": np.repeat([f"P{i:04d}" for i in range(800)], visits)}
                         | {k: np.repeat(v, visits) for k, v in per_patient.items()})
    for i in range(movers):
        frame.loc[frame.index[frame["patient_id"] == f"P{i:04d}"][-1], "sex"] = "X"
    codes = frame.astype(object).apply(lambda c: as_text_categorical(c.where(c.notna(), "")))
    qis = ["age_band", "sex", "clinic_id"]
    patient = codes["patient_id"].cat.codes.to_numpy()
    combined = sum(codes[q].cat.codes.to_numpy().astype(np.int64) * 10**j for j, q in enumerate(qis))
    taken = anonymity._one_combination_per_patient(patient, combined) is not None
    assert taken == (movers == 0 or all(visits[:movers] == 1))
    fast = _k_anonymity_codes(codes, qis)
    slow = _k_anonymity_frame(codes, qis)
    pd.testing.assert_frame_equal(fast.sort_values(qis).reset_index(drop=True),
                                  slow.sort_values(qis).reset_index(drop=True))
