"""The data contract for a clinic log: columns, typing of raw text, and the pandera schema.

One row per visit (long format). Typing is done here, from the raw text, because only the raw text
tells a decimal comma, an ``inf`` or a date in the wrong format apart from a missing value; every
other rule (ranges, integer counts, known labels, one row per patient and visit, visits in time
order) is a check of the pandera schema built by :func:`build_schema`, run lazily so that one
report lists every failure. docs/data-contract.md is the user-facing description of these rules.

Failures are returned as frames with ``pos`` (row position among the checked rows), ``column``
(contract name), ``check`` and ``message``; :mod:`analysis.intake.validate` turns positions into file
lines and adds the raw value.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from analysis.config import CONTRACT_COLUMNS, RunConfig, outcome_meta
from analysis.errors import ConfigError
from analysis.intake.codes import codes_of, distinct, text_categorical
from analysis.intake.textmatch import strip

TEXT_COLUMNS = ("patient_id", "clinic_id", "intervention", "arm", "age_band", "sex", "visit")
NUMBER_COLUMNS = ("time", "pain_score", "episodes", "exposure_days", "strength",
                  "foot_posture_index")
#: Output column order of the validated table (only those present are kept).
OUTPUT_COLUMNS = ("patient_id", "clinic_id", "arm", "intervention", "week", "visit",
                  "pain_score", "episodes", "exposure_days", "strength", "foot_posture_index",
                  "age_band", "sex")
QUASI_IDENTIFIERS = ("age_band", "sex", "clinic_id")
DEFAULT_CLINIC = "all"
EARLIEST_DATE = pd.Timestamp("1900-01-01")

# ASCII digits only: `\d` would also take "５" or "٥", which then fail to convert.
_NUMBER_RE = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NOT_FINITE_RE = r"(?i)[+-]?(?:nan|inf|infinity)"
_DECIMAL_COMMA_RE = r"[+-]?(?:[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]+),[0-9]+"
_FAILURE_COLUMNS = ["pos", "column", "check", "message"]


@dataclass(frozen=True)
class Layout:
    """Which contract columns the file provides, and from which file column."""

    columns: dict[str, str]  # contract name -> file column label
    key: str | None  # "time" or "visit_date": what orders visits and defines `week`
    arm: str | None  # contract column holding the arm (config models.arm_column)


def failures(pos, column: str, check: str, message) -> pd.DataFrame:
    """A failure frame (vectorised: ``pos`` an array, ``message`` a str or an array)."""
    pos = np.asarray(pos, dtype=np.int64)
    return pd.DataFrame({"pos": pos, "column": column, "check": check, "message": message},
                        columns=_FAILURE_COLUMNS)


def arm_column(cfg: RunConfig) -> str | None:
    """The contract column named by ``models.arm_column`` (ConfigError if it is not one)."""
    arm = cfg.models.arm_column
    if arm is not None and arm not in CONTRACT_COLUMNS:
        raise ConfigError(f"models.arm_column: {arm!r} is not a contract column; "
                          f"use one of {CONTRACT_COLUMNS} (usually 'arm')")
    return arm


def check_labels_config(cfg: RunConfig) -> None:
    unknown = sorted(set(cfg.labels) - set(CONTRACT_COLUMNS))
    if unknown:
        raise ConfigError(f"labels: unknown contract column(s) {unknown}; labels are keyed by "
                          f"contract column, one of {CONTRACT_COLUMNS}")


def resolve_layout(labels: list[str], cfg: RunConfig, dropped: list[str]) -> tuple[Layout, list]:
    """Find each contract column in the file; report required ones that are missing.

    Returns the layout and a list of header-level report rows (line 1).
    """
    present, rows = {}, []
    arm = arm_column(cfg)
    for name in CONTRACT_COLUMNS:
        if name == "arm" and arm != "arm":
            continue  # an `arm` column counts only when models.arm_column names it
        file_name = cfg.columns.get(name, name)
        if file_name in labels:
            present[name] = file_name
        elif name in cfg.columns:
            why = ("it was dropped (drop:)" if file_name in dropped
                   else "the file has no such column")
            rows.append((name, f"columns: maps {name!r} to {file_name!r}, but {why}"))
    for name in ("patient_id", "intervention") + ((arm,) if arm else ()):
        if name not in present and name not in cfg.columns:
            rows.append((name, f"required column {name!r} is missing; if the file names it "
                               f"differently, map it with `columns: {{{name}: <file column>}}`"))
    labelled = "visit" in present and bool(cfg.visits)
    if "visit_date" not in present and "time" not in present and not labelled and not (
            {"visit_date", "time", "visit"} & set(cfg.columns)):
        rows.append(("visit_date", "the log needs a `visit_date`, a numeric `time` or a `visit` "
                                   "label column with `visits:` (map yours with `columns:`)"))
    if "episodes" in present and "exposure_days" not in set(present) | set(cfg.columns):
        rows.append(("exposure_days", "`exposure_days` is required when `episodes` is given "
                                      "(the days the episode count covers)"))
    key = ("time" if "time" in present or labelled else
           "visit_date" if "visit_date" in present else None)
    report = [{"line": 1, "column": present.get(c, cfg.columns.get(c, c)),
               "check": "missing_column", "value": "", "message": m} for c, m in rows]
    return Layout(present, key, arm), report


def _recode(text: pd.Series, mapping: dict[str, str] | None) -> tuple[np.ndarray, pd.Series]:
    """Strip cells and apply a ``labels:`` mapping: codes and the recoded distinct values."""
    codes, uniques = distinct(text)
    uniques = strip(uniques)
    if mapping:
        table = {str(k).strip(): str(v) for k, v in mapping.items()}
        uniques = uniques.map(lambda u: table.get(u, u))
    return codes, uniques


def _parse_numbers(text: pd.Series, column: str, delimiter: str | None):
    """Parse distinct values once; return floats and failure frames for unparseable text."""
    return _parse_distinct(*distinct(text), column, delimiter)


def _parse_distinct(codes: np.ndarray, u: pd.Series, column: str, delimiter: str | None,
                    out: np.ndarray | None = None):
    valid = u.str.fullmatch(_NUMBER_RE)
    # astype(float) parses with Python's correctly rounded conversion; pd.to_numeric's fast
    # parser is off by one bit for about a third of 16-17 digit decimals (a value read back
    # would differ from the one written).
    values = u.where(valid).astype(float).to_numpy(dtype=float)
    empty = (u == "").to_numpy()
    not_finite = ((valid & ~np.isfinite(values)) | u.str.fullmatch(_NOT_FINITE_RE)).to_numpy()
    comma = (~valid & u.str.fullmatch(_DECIMAL_COMMA_RE)).to_numpy() & (delimiter != ",")
    wrong = ~(valid.to_numpy() | empty | not_finite | comma)
    values[~valid.to_numpy() | not_finite] = np.nan
    found = []
    for mask, check, message in (
        (not_finite, "not_finite", f"{column} must be a finite number; NaN, inf and numbers too "
                                   "large for a float are not allowed (leave the cell empty if "
                                   "the value is missing)"),
        (comma, "decimal_comma", f"{column} has a decimal comma; write the number with a point "
                                 "(6.5, not 6,5) - re-export the file with '.' as the decimal "
                                 "separator"),
        (wrong, "type", f"{column} must be a number"),
    ):
        if mask.any():
            found.append(failures(np.flatnonzero(mask[codes]), column, check, message))
    return np.take(values, codes, out=out), found


def _one_date(value: str, fmt: str):
    """One date's wall-clock timestamp (offset dropped), NaT if it does not parse."""
    try:
        stamp = pd.to_datetime(value, format=fmt, errors="coerce")
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    if pd.isna(stamp):
        return pd.NaT
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


_ISO_DATE = (r"\d{4}-\d{1,2}-\d{1,2}"
             r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?\s?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?")


def _parse_dates(codes: np.ndarray, u: pd.Series, date_format: str | None, index):
    fmt = date_format or "ISO8601"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # mixed offsets: handled below
            parsed = pd.to_datetime(u, format=fmt, errors="coerce")
    except (ValueError, TypeError):
        parsed = None
    if parsed is None or not pd.api.types.is_datetime64_any_dtype(parsed):
        # Mixed UTC offsets (or offsets beside naive times) give no single dtype: parse each
        # distinct value alone and keep its own wall-clock date, as for a uniform offset below.
        parsed = pd.Series([_one_date(v, fmt) for v in u], index=u.index, dtype="datetime64[ns]")
    elif getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    bad = (parsed.isna() & (u != "")).to_numpy()
    if date_format is None:
        # pandas' "ISO8601" also takes 20240101, 2024/01/05, 2024.01.05, 2024-01 and 2024 (the
        # last two silently as the 1st): the contract's form is year-month-day with dashes.
        bad |= (~u.str.fullmatch(_ISO_DATE) & (u != "")).to_numpy()
        parsed = parsed.where(~bad)
    year = pd.to_numeric(u.str.extract(r"^(\d{4})-\d{1,2}-\d{1,2}", expand=False),
                         errors="coerce").to_numpy()
    # Dates outside pandas' range (1677-2262) do not parse; still call them what they are.
    too_old = bad & (year < 1900)
    too_new = bad & (year > pd.Timestamp.today().year)
    expected = date_format or "YYYY-MM-DD (ISO 8601)"
    out = []
    for mask, check, message in (
        (too_old, "date_range", "visit_date is before 1900"),
        (too_new, "future_date", "visit_date is in the future"),
        (bad & ~too_old & ~too_new, "date_parse", f"visit_date is not a date; expected {expected}"),
    ):
        if mask.any():
            out.append(failures(np.flatnonzero(mask[codes]), "visit_date", check, message))
    return pd.Series(parsed.to_numpy()[codes], index=index), out


def type_columns(raw: pd.DataFrame, cfg: RunConfig, layout: Layout,
                 delimiter: str | None, date_format: str | None = None):
    """Turn the contract columns' raw text into typed columns.

    Parameters
    ----------
    raw : DataFrame
        Raw text of the rows to check, columns named by contract name.
    cfg, layout, delimiter, date_format
        ``delimiter`` decides whether ``6,5`` is reported as a decimal comma.

    Returns
    -------
    typed : DataFrame
        Text columns as :func:`text_categorical` (missing = NaN), numbers as float64,
        ``visit_date`` datetime64.
    failures : list of DataFrame
        Failure frames for text that cannot be typed.
    """
    typed, out = {}, []
    # The numbers are written straight into the one float block the frame keeps (a frame built
    # from separate columns would copy them all into it).
    numbers = [name for name in layout.columns if name in NUMBER_COLUMNS]
    block = np.empty((len(numbers), len(raw)), dtype=np.float64)
    for name in layout.columns:
        codes, uniques = _recode(raw[name], cfg.labels.get(name))
        if name in TEXT_COLUMNS:
            typed[name] = text_categorical(codes, uniques, raw.index)
        elif name in NUMBER_COLUMNS:
            _, found = _parse_distinct(codes, uniques, name, delimiter,
                                       out=block[numbers.index(name)])
            out += found
        elif name == "visit_date":
            typed[name], found = _parse_dates(codes, uniques, date_format, raw.index)
            out += found
    frame = pd.DataFrame(block.T, columns=numbers, index=raw.index, copy=False)
    for name in typed:
        frame.insert(sum(list(layout.columns).index(c) < list(layout.columns).index(name)
                         for c in frame.columns), name, typed[name])
    if "clinic_id" not in layout.columns:
        frame["clinic_id"] = text_categorical(np.zeros(len(frame), np.int64), [DEFAULT_CLINIC],
                                              frame.index)
    return frame, out


def build_schema(cfg: RunConfig, layout: Layout, today: pd.Timestamp | None = None):
    """The pandera schema for the typed frame.

    Returns
    -------
    schema : pandera DataFrameSchema
    registry : dict
        Maps each check's error text to ``(check name, report column)``.
    """
    registry: dict[str, tuple[str, str | None]] = {}

    def check(fn, name, message, column=None, **kw):
        registry[message] = (name, column)
        return pa.Check(fn, name=name, error=message, **kw)

    present = set(layout.columns) | {"clinic_id"}
    key = layout.key
    today = (today or pd.Timestamp.today()).normalize()
    cols = {}
    for name in ("patient_id", "clinic_id", "intervention", "arm", "age_band", "sex"):
        if name not in present:
            continue
        checks = []
        if name in ("intervention", "arm"):
            allowed = list(cfg.interventions)
            checks.append(check(lambda s, a=allowed: s.isin(a), "unknown_label",
                                f"unknown {name} label; allowed: {', '.join(allowed)}. Map the "
                                f"file's labels with `labels: {{{name}: {{<file value>: "
                                "<contract value>}}` in the run config"))
        # No dtype check: text columns are Categorical by construction (type_columns).
        cols[name] = pa.Column(None, nullable=name in ("age_band", "sex"), checks=checks)
    if "visit_date" in present:
        cols["visit_date"] = pa.Column("datetime64[ns]", nullable=key != "visit_date", checks=[
            check(lambda s: s >= EARLIEST_DATE, "date_range", "visit_date is before 1900"),
            check(lambda s, t=today: s.dt.normalize() <= t, "future_date",
                  f"visit_date is in the future (after {today.date()})"),
        ])
    if "time" in present:
        cols["time"] = pa.Column(float, nullable=key != "time")
    scales = {"pain_score": (0.0, 10.0), "foot_posture_index": (-12.0, 12.0)}
    scales.update({k: (v.min, v.max) for k, v in cfg.scales.items()})
    for name in ("pain_score", "foot_posture_index"):
        meta = outcome_meta(cfg, name).range  # outcomes: range, over scales:
        if meta is not None:
            scales[name] = (meta.min, meta.max)
    for name in ("pain_score", "foot_posture_index"):
        if name in present:
            lo, hi = scales[name]
            cols[name] = pa.Column(float, nullable=True, checks=[
                check(lambda s, lo=lo, hi=hi: s.between(lo, hi), "out_of_range",
                      f"{name} must be between {lo:g} and {hi:g} (scales: in the run config)")])
    integer = "must be a whole number"
    if "episodes" in present:
        cols["episodes"] = pa.Column(float, nullable=True, checks=[
            check(lambda s: s >= 0, "negative", "episodes must be 0 or more"),
            check(lambda s: s == np.floor(s), "not_integer", f"episodes {integer} (a count)")])
    if "foot_posture_index" in present:
        cols["foot_posture_index"].checks.append(
            check(lambda s: s == np.floor(s), "not_integer", f"foot_posture_index {integer}"))
    for name in ("exposure_days", "strength"):
        if name in present:
            cols[name] = pa.Column(float, nullable=True, checks=[
                check(lambda s: s > 0, "not_positive", f"{name} must be greater than 0")])
    wide = []
    if key and "patient_id" in present:
        wide.append(check(lambda d, k=key: _unique_visit(d, k), "duplicate_visit",
                          f"another row has the same patient_id and {key} (one row per visit)",
                          column=key, ignore_na=False))
        wide.append(check(lambda d, k=key: _in_time_order(d, k), "time_order",
                          f"{key} goes back in time for this patient (a patient's rows must be "
                          "in time order)",
                          column=key, ignore_na=False))
    if {"episodes", "exposure_days"} <= present:
        wide.append(check(lambda d: ~(d["episodes"].notna() & d["exposure_days"].isna()),
                          "exposure_missing", "exposure_days is required where episodes is "
                          "given", column="exposure_days", ignore_na=False))
    if layout.arm and layout.arm in present and "patient_id" in present:
        wide.append(check(lambda d, a=layout.arm: _constant_arm(d, a), "arm_changes",
                          f"{layout.arm} changes within a patient; a patient has one arm",
                          column=layout.arm, ignore_na=False))
    return pa.DataFrameSchema(cols, checks=wide, strict=False, coerce=False), registry


def _unique_visit(frame: pd.DataFrame, key: str) -> pd.Series:
    adjacent = _in_order_by_patient(frame, key)
    if adjacent is not None:  # sorted by patient and key: a repeated pair is the row before
        same_patient, when = adjacent
        repeat = np.zeros(len(when), dtype=bool)
        repeat[1:] = same_patient & (when[1:] == when[:-1])
        return pd.Series(~repeat, index=frame.index)
    return _unique_visit_hashed(frame, key)


def _unique_visit_hashed(frame: pd.DataFrame, key: str) -> pd.Series:
    has_key = frame[key].notna() & frame["patient_id"].notna()
    # One integer per (patient, key) pair: a hash of integers, not of tuples of objects.
    patient, when = codes_of(frame["patient_id"]), codes_of(frame[key])
    pair = pd.Series((patient + 1) * (int(when.max(initial=0)) + 2) + when + 1, index=frame.index)
    return ~(pair.duplicated(keep="first") & has_key)


def _in_time_order(frame: pd.DataFrame, key: str) -> pd.Series:
    adjacent = _in_order_by_patient(frame, key)
    if adjacent is not None:  # in order by construction (the common case: one pass)
        return pd.Series(np.ones(len(frame), dtype=bool), index=frame.index, name=key)
    return _in_time_order_grouped(frame, key)


def _in_time_order_grouped(frame: pd.DataFrame, key: str) -> pd.Series:
    previous = frame[key].groupby(codes_of(frame["patient_id"]), sort=False).shift(1)
    return ~(frame[key] < previous)


def _in_order_by_patient(frame: pd.DataFrame, key: str):
    """For a log whose rows are grouped by patient (in id order) with ``key`` never missing and
    never going back within a patient: (row has the previous row's patient, key values), so
    that both wide checks are one comparison with the row before. None for any other log (the
    checks then hash and group, :func:`_unique_visit_hashed`, :func:`_in_time_order_grouped`)."""
    patient = frame["patient_id"]
    if not isinstance(patient.dtype, pd.CategoricalDtype) or len(frame) < 2:
        return None
    codes = patient.cat.codes.to_numpy()
    when = frame[key].to_numpy()
    if when.dtype.kind not in "fM" or codes[0] < 0:
        return None
    step = np.diff(codes)
    if (step < 0).any():
        return None
    same_patient = step == 0
    del step
    back = (when[1:] < when[:-1]) & same_patient
    if back.any() or pd.isna(when).any():
        return None
    return same_patient, when


def _constant_arm(frame: pd.DataFrame, arm: str) -> pd.Series:
    first = frame[arm].groupby(codes_of(frame["patient_id"]), sort=False).transform("first")
    return ~(frame[arm].notna() & first.notna() & (frame[arm] != first))


def first_line_of_group(typed: pd.DataFrame, lines: np.ndarray, key: str, pos: np.ndarray,
                        previous: bool = False) -> np.ndarray:
    """For rows at ``pos``: line of the first row with the same patient and key, or with
    ``previous=True`` the line of the patient's previous row in file order."""
    line = pd.Series(lines, index=typed.index)
    if previous:
        ref = line.groupby(typed["patient_id"], sort=False, observed=True).shift(1)
    else:
        ref = line.groupby([typed["patient_id"], typed[key]], sort=False,
                           observed=True).transform("first")
    return ref.to_numpy()[pos]
