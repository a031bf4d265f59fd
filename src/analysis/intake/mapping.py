"""The mapping keys applied to a log as read: ``read.missing``, ``constants:``, ``visits:``,
``covariates:`` and ``patient_key:`` (docs/data-contract.md, "Mapping an export").

Each function either returns what it made or raises :class:`~analysis.errors.ConfigError` naming the
config key at fault; faults in the data themselves are failure frames (``pos, column, check,
message``), reported with every other failure at their file line and column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.config import RunConfig, outcome_meta
from analysis.errors import ConfigError
from analysis.intake.anonymity import find_identifiers
from analysis.intake.codes import distinct
from analysis.intake.contract import _NUMBER_RE, _parse_numbers, failures
from analysis.intake.ingest import RawLog

#: Value rules of the number columns a missing-value token must not satisfy.
_VALID_NUMBER = {
    "episodes": (lambda v: v >= 0 and float(v).is_integer(), "a count of 0 or more"),
    "exposure_days": (lambda v: v > 0, "above 0"),
    "strength": (lambda v: v > 0, "above 0"),
}


def apply_missing(raw: RawLog, cfg: RunConfig, columns: list[str]) -> list[str]:
    """Blank every cell equal to a ``read.missing`` token (after stripping) in ``columns``.

    Returns the intake-summary notes: how many cells each token blanked, per file column.
    """
    tokens = list(cfg.read.missing)
    if not tokens:
        return []
    notes = []
    for column in columns:
        codes, uniques = distinct(raw.cells[column])  # tokens are looked for in distinct texts
        text = uniques.astype(str).str.strip()
        token_of = text.where(text.isin(tokens)).to_numpy(dtype=object)[codes]
        hit = pd.notna(token_of)
        if hit.any():
            counts = pd.Series(token_of[hit]).value_counts()
            if isinstance(raw.cells[column].dtype, pd.CategoricalDtype):
                values = uniques.where(~text.isin(tokens), "")
                new, kept = pd.factorize(values)  # raw cells keep "" as a value
                raw.cells[column] = pd.Categorical.from_codes(new[codes], pd.Index(kept, dtype=object))
            else:
                raw.cells.loc[hit, column] = ""
            notes.append(f"read.missing: {column!r}: " + ", ".join(
                f"{int(n)} cell(s) {tok!r}" for tok, n in sorted(counts.items())) + " read as missing")
    return notes


def check_missing_tokens(cfg: RunConfig, present: set[str]) -> None:
    """A token that is a valid value of a number column present would hide real data."""
    for token in cfg.read.missing:
        if not pd.Series([token]).str.fullmatch(_NUMBER_RE).iloc[0]:
            continue
        value = float(token)
        for name in sorted(present):
            meta_range = outcome_meta(cfg, name).range if name in ("pain_score",
                                                                    "foot_posture_index") else None
            if meta_range is not None and meta_range.min <= value <= meta_range.max:
                raise ConfigError(f"read.missing: {token!r} is a valid {name} (range "
                                  f"{meta_range.min:g} to {meta_range.max:g}); a missing-value "
                                  "token must not be a value the data can hold")
            rule = _VALID_NUMBER.get(name)
            if rule is not None and rule[0](value):
                raise ConfigError(f"read.missing: {token!r} is a valid {name} ({rule[1]}); a "
                                  "missing-value token must not be a value the data can hold")


def add_constants(raw: RawLog, cfg: RunConfig) -> None:
    """Add each ``constants:`` column to every row (as text, typed like the file's own)."""
    for name, value in cfg.constants.items():
        file_name = cfg.columns.get(name, name)
        if file_name in raw.labels or name in raw.labels:
            raise ConfigError(f"constants.{name}: the file already has a {file_name!r} column; "
                              "give the value in the file or in constants:, not both")
        text = repr(value) if isinstance(value, float) and not value.is_integer() else (
            str(int(value)) if isinstance(value, float) else str(value))
        bad = raw.bad_rows
        raw.cells[name] = pd.Categorical.from_codes(np.zeros(len(raw.cells), np.int8), [text])
        raw.labels.append(name)
        raw.header.append(name)
        raw.n_fields = np.where(bad, raw.n_fields, len(raw.header))


def check_visits_config(cfg: RunConfig, layout_columns: dict[str, str]) -> None:
    if "visit" in layout_columns and not cfg.visits:
        raise ConfigError("visits: the log has a visit-label column "
                          f"({layout_columns['visit']!r}) but no `visits: {{label: time}}` mapping")
    if cfg.visits and "visit" not in layout_columns:
        raise ConfigError("visits: is given but the log has no `visit` column (map yours with "
                          "`columns: {visit: <file column>}`)")
    if cfg.visits and "time" in layout_columns:
        raise ConfigError("visits: the log has a numeric time column as well as visit labels; "
                          "use one of them")
    if cfg.baseline.visit is not None and cfg.baseline.visit not in cfg.visits:
        raise ConfigError(f"baseline.visit: {cfg.baseline.visit!r} is not a label of visits:")


def visit_times(labels: pd.Series, cfg: RunConfig, file_column: str) -> tuple[np.ndarray, list]:
    """Nominal time of each row's visit label; unknown labels are failures."""
    seen = set(labels.dropna().unique())
    absent = [label for label in cfg.visits if label not in seen]
    if absent:
        raise ConfigError(f"visits: label(s) {absent} do not occur in column {file_column!r} "
                          f"(it holds {sorted(map(str, seen))[:20]})")
    times = labels.map(cfg.visits).to_numpy(dtype=float)
    unknown = labels.notna().to_numpy() & np.isnan(times)
    out = []
    if unknown.any():
        out.append(failures(np.flatnonzero(unknown), "visit", "unknown_visit",
                            f"visit label is not one of visits: ({', '.join(map(str, cfg.visits))})"))
    return times, out


def check_covariates(raw: RawLog, cfg: RunConfig, kept: list[str]) -> None:
    """Every covariate is a kept file column and does not look identifying."""
    for name in cfg.covariates:
        if name not in kept:
            raise ConfigError(f"covariates.{name}: the file has no column {name!r}"
                              + (" (it was dropped)" if name in raw.labels else ""))
        found = find_identifiers(raw.cells[[name]], raw.lines, {name: "covariate"})
        if found:
            raise ConfigError(f"covariates.{name}: the column looks like a direct identifier "
                              f"({found[0]['kind'].replace('_', ' ')}, by {found[0]['basis']}); "
                              "a covariate must not identify a person")


def type_covariates(rows: pd.DataFrame, cfg: RunConfig, delimiter):
    """Typed covariate columns (numbers float, categories str or None) and their failures."""
    typed, out = {}, []
    for name, kind in cfg.covariates.items():
        text = rows[name].astype(str).str.strip()
        if kind == "number":
            typed[name], found = _parse_numbers(text, name, delimiter)
            out += found
        else:
            typed[name] = text.where(text != "", None).astype(object)
    return typed, out


def apply_patient_key(typed: pd.DataFrame, cfg: RunConfig) -> None:
    """With ``patient_key: [clinic_id, patient_id]`` the same id in two clinics is two patients."""
    if cfg.patient_key == ["clinic_id", "patient_id"] and "patient_id" in typed:
        both = typed["patient_id"].notna() & typed["clinic_id"].notna()
        joined = typed["clinic_id"].astype(str) + "/" + typed["patient_id"].astype(str)
        typed["patient_id"] = joined.where(both, typed["patient_id"])


def patient_in_two_clinics(typed: pd.DataFrame, lines: np.ndarray) -> list[pd.DataFrame]:
    """A patient_id under two or more clinic_ids: one failure per later clinic, at its first line."""
    if "patient_id" not in typed or typed["clinic_id"].nunique(dropna=True) < 2:
        return []
    if not _any_patient_in_two_clinics(typed["patient_id"], typed["clinic_id"]):
        return []
    known = typed["patient_id"].notna() & typed["clinic_id"].notna()
    frame = pd.DataFrame({"p": typed["patient_id"], "c": typed["clinic_id"], "line": lines,
                          "pos": np.arange(len(typed))})[known.to_numpy()]
    firsts = frame.drop_duplicates(["p", "c"])
    multi = firsts[firsts.duplicated("p", keep=False)]
    if multi.empty:
        return []
    pos, messages = [], []
    for _, group in multi.groupby("p", sort=False, observed=True):
        head = group.iloc[0]
        for row in group.iloc[1:].itertuples(index=False):
            pos.append(row.pos)
            messages.append(f"patient_id also appears under clinic_id {head.c!r} (first on line "
                            f"{int(head.line)}) and here under {row.c!r} (first on line "
                            f"{int(row.line)}); ids must be unique across clinics, or declare "
                            "`patient_key: [clinic_id, patient_id]`")
    return [failures(pos, "clinic_id", "patient_in_two_clinics", np.array(messages, dtype=object))]


def _any_patient_in_two_clinics(patient: pd.Series, clinic: pd.Series) -> bool:
    """Whether some patient_id has rows under two clinic_ids, in one pass over integer codes: each
    patient's first clinic (by a reversed fancy assignment: the last write, i.e. the first row,
    wins) compared with every row's clinic. True when the columns are not Categorical (the
    caller's pandas path then decides)."""
    if not (isinstance(patient.dtype, pd.CategoricalDtype) and isinstance(clinic.dtype, pd.CategoricalDtype)):
        return True
    p, c = patient.cat.codes.to_numpy(), clinic.cat.codes.to_numpy()
    known = (p >= 0) & (c >= 0)
    p, c = p[known], c[known]
    first = np.full(len(patient.cat.categories), -1, dtype=np.int64)
    first[p[::-1]] = c[::-1]
    return bool(np.any(first[p] != c))
