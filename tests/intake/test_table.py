"""The validated table (analysis.intake.table) against the pandas path it replaced.

``old_to_contract_table`` below is the implementation before the 1M-patient work (copied from
analysis.intake.contract at 4e2cbe6): pandas' datetime arithmetic for ``week``, row copies and one
DataFrame built from a dict. The new one writes the float block once and takes integer days; both
must give the same table, cell for cell and dtype for dtype.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.config import parse_config, to_weeks
from analysis.intake.codes import as_object_text, as_text_categorical, codes_of, distinct
from analysis.intake.contract import OUTPUT_COLUMNS, Layout
from analysis.intake.table import _weeks, _weeks_from_dates, to_contract_table


def old_to_contract_table(typed, layout, cfg):
    if layout.key == "time":
        week = typed["time"] / 7.0 if cfg.time_unit == "days" else to_weeks(
            typed["time"], cfg.time_unit)
    else:
        day = typed["visit_date"].dt.normalize()
        first = day.groupby(codes_of(typed["patient_id"]), sort=False).transform("min")
        week = (day - first).dt.days / 7.0
    week = np.asarray(week, dtype=float)
    patient = typed["patient_id"]
    rank = (patient.cat.codes.to_numpy() if isinstance(patient.dtype, pd.CategoricalDtype)
            else pd.factorize(patient, sort=True)[0])
    rank = np.where(rank < 0, np.iinfo(rank.dtype).max, rank)
    ordered = len(rank) < 2 or bool(((np.diff(rank) > 0) | ((np.diff(rank) == 0)
                                                            & (np.diff(week) >= 0))).all())
    order = None if ordered else np.lexsort((week, rank))
    columns = {"week": week if ordered else week[order]}
    for name in typed.columns:
        if name in OUTPUT_COLUMNS or name in cfg.covariates:
            values = typed[name].reset_index(drop=True)
            values = values if ordered else values.iloc[order].reset_index(drop=True)
            if name in ("pain_score", "episodes", "exposure_days", "strength",
                        "foot_posture_index") and values.dtype != np.float64:
                values = values.astype(float)
            columns[name] = values
    if cfg.visits:
        labels = sorted(cfg.visits, key=lambda label: (cfg.visits[label], label))
        columns["visit"] = pd.Categorical(as_object_text(columns["visit"]), categories=labels,
                                          ordered=True)
    else:
        patient = codes_of(columns["patient_id"])
        row = np.arange(len(patient), dtype=np.int64)
        first_row = np.maximum.accumulate(np.where(np.r_[True, patient[1:] != patient[:-1]], row, 0)
                                          ) if len(row) else row
        columns["visit"] = row - first_row + 1
    keep = [c for c in OUTPUT_COLUMNS if c in columns]
    keep += [c for c in cfg.covariates if c in columns and c not in keep]
    return pd.DataFrame({c: columns[c] for c in keep})


def _config(**extra):
    return parse_config({"name": "t", "data": "x.csv", **extra})


def _typed(n_patients: int, seed: int, *, shuffle: bool, key: str = "visit_date",
           labels: list[str] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.integers(1, 6, n_patients)
    ids = np.repeat([f"P{i:04d}" for i in range(n_patients)], visits)
    n = len(ids)
    frame = pd.DataFrame({
        "patient_id": as_text_categorical(pd.Series(ids, dtype=object)),
        "clinic_id": as_text_categorical(pd.Series(rng.choice(["C1", "C2", "C3"], n), dtype=object)),
        "intervention": as_text_categorical(pd.Series(rng.choice(["a", "b", ""], n), dtype=object)),
        "pain_score": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 11, n).astype(float)),
        "strength": rng.normal(200, 30, n),
        "sex": as_text_categorical(pd.Series(rng.choice(["F", "M", ""], n), dtype=object)),
    })
    if key == "visit_date":
        # Dates before and after 1970, with times of day (normalised away), repeated days.
        start = rng.integers(-3000, 20000, n_patients).repeat(visits)
        days = start + np.concatenate([np.sort(rng.integers(0, 400, v)) for v in visits])
        seconds = rng.integers(0, 86400, n)
        frame["visit_date"] = (pd.to_datetime(days, unit="D") + pd.to_timedelta(seconds, unit="s")
                               ).astype("datetime64[ns]")
    else:
        frame["time"] = np.concatenate([np.sort(rng.integers(0, 90, v)) for v in visits]
                                       ).astype(float)
    if labels is not None:
        frame["visit"] = as_text_categorical(pd.Series(rng.choice(labels + ["odd"], n), dtype=object))
    if shuffle:
        frame = frame.iloc[rng.permutation(n)].reset_index(drop=True)
    return frame


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_week_from_integer_days_equals_pandas_datetime_arithmetic(shuffle, seed):
    typed = _typed(300, seed, shuffle=shuffle)
    layout = Layout({c: c for c in typed.columns}, "visit_date", None)
    out = np.empty(len(typed))
    _weeks(typed, layout, _config(), typed["patient_id"].cat.codes.to_numpy(), out=out)
    expected = _weeks_from_dates(typed).to_numpy()
    np.testing.assert_array_equal(out, expected)
    assert (out >= 0).all() and np.isclose(out * 7, np.round(out * 7)).all()


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("key", ["visit_date", "time"])
def test_contract_table_equals_the_old_pandas_path(shuffle, key):
    typed = _typed(400, 3, shuffle=shuffle, key=key)
    cfg = _config(time_unit="days") if key == "time" else _config()
    layout = Layout({c: c for c in typed.columns}, key, None)
    new, old = to_contract_table(typed, layout, cfg), old_to_contract_table(typed, layout, cfg)
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert list(new.columns) == [c for c in OUTPUT_COLUMNS if c in new.columns]
    assert (new["visit"].groupby(new["patient_id"], observed=True).min() == 1).all()


def test_contract_table_with_visit_labels_and_covariates_equals_the_old_path():
    labels = ["baseline", "week 6", "week 12"]
    cfg = _config(visits={"baseline": 0, "week 6": 6, "week 12": 12}, covariates={"fev_bl": "number", "race": "category"})
    typed = _typed(200, 4, shuffle=True, key="time", labels=labels)
    typed["fev_bl"] = np.linspace(1.0, 3.0, len(typed))
    typed["race"] = as_text_categorical(pd.Series(np.where(typed.index % 3, "x", "y"), dtype=object))
    layout = Layout({c: c for c in typed.columns if c not in ("fev_bl", "race")}, "time", None)
    new, old = to_contract_table(typed, layout, cfg), old_to_contract_table(typed, layout, cfg)
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert list(new["visit"].cat.categories) == labels and new["visit"].isna().any()
    assert list(new.columns[-2:]) == ["fev_bl", "race"]


def test_missing_dates_take_the_pandas_path():
    typed = _typed(50, 5, shuffle=True)
    typed.loc[3, "visit_date"] = pd.NaT
    layout = Layout({c: c for c in typed.columns}, "visit_date", None)
    new, old = to_contract_table(typed, layout, _config()), old_to_contract_table(typed, layout, _config())
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert new["week"].isna().sum() == 1


@pytest.mark.parametrize("n_distinct", [3, 126, 127, 200, 40000])
def test_categorical_codes_of_any_width_give_the_object_path(n_distinct):
    rng = np.random.default_rng(n_distinct)
    values = np.array([f" v{i}" if i % 7 else "" for i in range(n_distinct)], dtype=object)
    text = pd.Series(values[rng.integers(0, n_distinct, 5000)], dtype=object)
    cat = pd.Series(pd.Categorical(text))
    kept = cat.iloc[::3].reset_index(drop=True)  # rows taken away: unused categories remain
    for column in (cat, kept):
        as_object = column.astype(object)
        pd.testing.assert_series_equal(as_text_categorical(column), as_text_categorical(as_object))
        codes, uniques = distinct(column)
        assert uniques.to_numpy()[codes].tolist() == as_object.tolist()
