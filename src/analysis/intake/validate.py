"""Validate a clinic log against the data contract, behind the anonymity guard.

``validate_log`` reads the file as text (:mod:`analysis.intake.ingest`), drops the ``drop:`` columns,
refuses direct identifiers (:mod:`analysis.intake.anonymity`), types the contract columns and runs the
pandera schema lazily (:mod:`analysis.intake.contract`), so that a single report lists every failure
with its file line, column, check, raw value and message. On success it returns the validated
long table and writes nothing; on failure it raises, and ``write_validation_failure`` writes
the one file a failed validation leaves: ``validation_report.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from analysis.config import RunConfig, from_weeks
from analysis.errors import IdentifierError, InputError, ValidationFailed
from analysis.intake.anonymity import guard, k_anonymity
from analysis.intake.codes import as_object_text, as_text_categorical
from analysis.intake.contract import (
    QUASI_IDENTIFIERS,
    Layout,
    build_schema,
    check_labels_config,
    failures,
    first_line_of_group,
    resolve_layout,
    type_columns,
)
from analysis.intake.ingest import RawLog, read_log
from analysis.intake.limits import overlong_cells
from analysis.intake.mapping import (
    add_constants,
    apply_missing,
    apply_patient_key,
    check_covariates,
    check_missing_tokens,
    check_visits_config,
    patient_in_two_clinics,
    type_covariates,
    visit_times,
)
from analysis.intake.reshape import Origin, reshape_wide
from analysis.intake.table import to_contract_table

REPORT_COLUMNS = ["line", "column", "check", "value", "message"]
REPORT_FILE = "validation_report.csv"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ValidatedLog:
    """A log that passed the contract and the anonymity guard.

    Attributes
    ----------
    data : DataFrame
        One row per visit, sorted by patient_id, week. Text columns (patient_id, clinic_id,
        arm, intervention, age_band, sex) hold str (missing: None); ``week`` float64;
        ``visit`` int64 (1 = the patient's first visit); pain_score, episodes, exposure_days,
        strength, foot_posture_index float64 (episodes and foot_posture_index whole numbers;
        missing: NaN). No calendar dates, no dropped or ignored columns.
    path, sha256 : the file and the SHA-256 of its bytes.
    n_rows_read, n_rows, n_patients : rows in the file, rows kept, distinct patients.
    columns_used : dict
        Contract column -> file column it was read from.
    dropped, ignored : list of str
        File columns removed by ``drop:``, and file columns not used (and not identifying).
    k_anonymity : DataFrame
        From :func:`analysis.intake.anonymity.k_anonymity`.
    """

    data: pd.DataFrame
    path: Path
    sha256: str
    n_rows_read: int
    n_rows: int
    n_patients: int
    columns_used: dict[str, str]
    dropped: list[str]
    ignored: list[str]
    k_anonymity: pd.DataFrame
    disclosure_threshold: int = 11
    read_as: str = ""
    notes: list[str] = field(default_factory=list)
    time_unit: str = "weeks"
    # First and last visit month ("2025-03"), for the report's data period: months only, so no
    # visit date leaves intake. None when the log orders visits by a numeric ``time``.
    visit_months: tuple[str, str] | None = None

    def _time_range(self) -> str:
        lo, hi = self.data["week"].min(), self.data["week"].max()
        if self.time_unit == "weeks":
            return f"weeks {lo:g} to {hi:g}"
        return f"{self.time_unit} {from_weeks(lo, self.time_unit):g} to {from_weeks(hi, self.time_unit):g}"


    def summary(self) -> str:
        """What came in and what was kept, as terminal text."""
        d = self.data
        per_patient = d.groupby("patient_id").size()
        out = [f"log: {self.path} ({self.read_as})", f"sha256: {self.sha256}",
               f"rows: {self.n_rows_read} read, {self.n_rows} valid; patients: {self.n_patients}; "
               f"visits per patient: median {per_patient.median():g} (min {per_patient.min()}, "
               f"max {per_patient.max()}); {self._time_range()}"]
        clinics = sorted(d["clinic_id"].unique())
        shown = ", ".join(clinics[:12]) + (f", ... ({len(clinics) - 12} more)"
                                            if len(clinics) > 12 else "")
        out.append(f"clinics: {len(clinics)} ({shown})")
        for name in ("arm", "intervention"):
            if name in d:
                counts = d.groupby(name)["patient_id"].agg(["size", "nunique"])
                out.append(f"{name}: " + "; ".join(
                    f"{k} {r['size']} rows / {r['nunique']} patients"
                    for k, r in counts.iterrows()))
        out.append("columns used: " + ", ".join(
            c if c == f else f"{c} <- {f!r}" for c, f in self.columns_used.items()))
        out.append(f"dropped columns: {', '.join(map(repr, self.dropped)) or 'none'}")
        out.append(f"ignored columns: {', '.join(map(repr, self.ignored)) or 'none'}")
        out += self.notes
        k = self.k_anonymity
        qis = [c for c in k.columns if c not in ("n_patients", "below_threshold")]
        small = k[k["below_threshold"]]
        t = self.disclosure_threshold
        out.append(f"k-anonymity over {', '.join(qis) or '(no quasi-identifiers)'}: {len(small)} "
                   f"of {len(k)} group(s) have fewer than {t} patients")
        for _, row in small.head(20).iterrows():
            # Small counts are themselves disclosive, so only "< threshold" is shown.
            out.append("  " + ", ".join(f"{q}={row[q]}" for q in qis) + f": fewer than {t}")
        if len(small) > 20:
            out.append(f"  ... and {len(small) - 20} more")
        return "\n".join(out) + "\n"


def validate_log(cfg: RunConfig, path: Path | None = None, *, date_format: str | None = None,
                 today: pd.Timestamp | None = None) -> ValidatedLog:
    """Read, guard and validate a log; return the validated long table.

    Parameters
    ----------
    cfg : RunConfig
        Column mapping, labels, drop list, scales, time unit, read options.
    path : Path, optional
        The log; default ``cfg.data``.
    date_format : str, optional
        strftime format of ``visit_date`` (default ISO 8601, ``YYYY-MM-DD``). Stand-in for a
        future ``read.date_format`` config option.
    today : Timestamp, optional
        Reference date for "date in the future" (default: today).

    Returns
    -------
    ValidatedLog

    Raises
    ------
    InputError
        The file cannot be read at all.
    IdentifierError
        A column holds direct identifiers (checked before anything else).
    ValidationFailed
        The log breaks the contract; ``exc.report`` lists every failure.
    """
    path = Path(path) if path is not None else Path(cfg.data)
    check_labels_config(cfg)
    raw = read_log(path, cfg.read)
    if any(f["check"] == "empty_file" for f in raw.faults):
        raise ValidationFailed(_report(raw.faults), path=str(path))
    origin, shape_notes = None, []
    if cfg.reshape is not None:
        n_wide = len(raw.cells)
        raw, origin = reshape_wide(raw, cfg.reshape)
        shape_notes.append(f"reshape: {n_wide} wide rows read as {len(raw.cells)} long rows")
    add_constants(raw, cfg)
    drop = set(cfg.drop)
    dropped = [lab for lab, head in zip(raw.labels, raw.header) if head in drop or lab in drop]
    kept = [lab for lab in raw.labels if lab not in dropped]
    layout, header_rows = resolve_layout(kept, cfg, dropped)
    check_visits_config(cfg, layout.columns)
    check_missing_tokens(cfg, set(layout.columns))
    check_covariates(raw, cfg, kept)
    roles = {file: contract for contract, file in layout.columns.items()}
    roles.update({name: "covariate" for name in cfg.covariates if name not in roles})
    too_long = overlong_cells(raw, kept)
    if too_long:
        raise ValidationFailed(_report(too_long), path=str(path))
    positions = {lab: i + 1 for i, lab in enumerate(raw.labels)}
    guard(raw.cells[kept], raw.lines, roles, path=str(path), positions=positions)
    notes = shape_notes + apply_missing(raw, cfg, kept)

    good = ~raw.bad_rows
    covariates = [c for c in cfg.covariates if c not in layout.columns]
    names, sources = list(layout.columns) + covariates, list(layout.columns.values()) + covariates
    if good.all():  # the usual case: the columns as they are, not a row-by-row copy of each
        rows = pd.DataFrame({n: raw.cells[f].array for n, f in zip(names, sources)},
                            index=pd.RangeIndex(len(good)), copy=False)
        lines = raw.lines
    else:
        rows = raw.cells.loc[good, sources].reset_index(drop=True)
        rows.columns = names
        lines = raw.lines[good]
    origin = origin.subset(good) if origin is not None else None
    typed, found = type_columns(rows, cfg, layout, raw.delimiter, date_format)
    if cfg.visits and "visit" in layout.columns:
        typed["time"], more = visit_times(typed["visit"], cfg, layout.columns["visit"])
        found += more
        layout = replace(layout, columns={**layout.columns, "time": layout.columns["visit"]},
                         key="time")
    extra, more = type_covariates(rows, cfg, raw.delimiter)
    typed = typed.assign(**extra) if extra else typed
    found += more
    apply_patient_key(typed, cfg)
    if "patient_id" in typed and not isinstance(typed["patient_id"].dtype, pd.CategoricalDtype):
        typed["patient_id"] = as_text_categorical(typed["patient_id"])  # joined with clinic_id
    if cfg.patient_key == ["patient_id"]:
        found += patient_in_two_clinics(typed, lines)
    found.append(_run_schema(typed, lines, cfg, layout, today, found))
    structural = [f for f in raw.faults
                  if not (f["check"] == "duplicate_header" and f["column"] in drop)]
    report = _report(structural + header_rows, found, rows, lines, layout, origin)
    if len(report):
        raise ValidationFailed(report, path=str(path))

    n_rows_read = len(raw.cells)
    del rows, found  # the raw text is not needed once the log passed: free it before the table
    raw.cells = raw.cells.iloc[:0]
    months = None
    if "visit_date" in typed and typed["visit_date"].notna().any():
        dates = typed["visit_date"].dropna()
        months = (dates.min().strftime("%Y-%m"), dates.max().strftime("%Y-%m"))
    data = to_contract_table(typed, layout, cfg)
    del typed
    k_table = k_anonymity(data, QUASI_IDENTIFIERS, cfg.disclosure_threshold)
    n_patients = int(data["patient_id"].nunique())
    for name in data.columns:  # the validated table holds text as str (missing: None)
        if isinstance(data[name].dtype, pd.CategoricalDtype) and name != "visit":
            data[name] = as_object_text(data[name])
    notes = [f"note: drop: {name!r} is not a column of the file"
             for name in cfg.drop if name not in raw.header and name not in raw.labels] + notes
    return ValidatedLog(
        data=data, path=path, sha256=raw.sha256, n_rows_read=n_rows_read, n_rows=len(data),
        n_patients=n_patients,
        columns_used=dict(layout.columns) | {c: c for c in covariates},
        dropped=dropped, ignored=[lab for lab in kept if lab not in roles],
        k_anonymity=k_table,
        disclosure_threshold=cfg.disclosure_threshold, read_as=_read_as(raw), notes=notes,
        time_unit=cfg.time_unit, visit_months=months)


def _read_as(raw: RawLog) -> str:
    if raw.format != "csv":
        return raw.format
    delim = {"\t": "tab"}.get(raw.delimiter, raw.delimiter)
    return f"csv, delimiter {delim!r}, encoding {raw.encoding}"


def _run_schema(typed, lines, cfg, layout: Layout, today, found) -> pd.DataFrame:
    """Run the pandera schema lazily; return its failures as a failure frame."""
    schema, registry = build_schema(cfg, layout, today)
    try:
        # coerce=False: nothing is changed, so no copy of the whole table (inplace=True).
        schema.validate(typed, lazy=True, inplace=True)
        return failures([], "", "", "")
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    pos = pd.to_numeric(cases["index"], errors="coerce").fillna(-1).astype(np.int64)
    known = cases["check"].map(lambda e: registry.get(e, (None, None)))
    check = known.map(lambda k: k[0])
    column = known.map(lambda k: k[1]).fillna(cases["column"]).fillna("")
    message = cases["check"].astype(str)
    nullable = cases["check"] == "not_nullable"
    check = check.where(~nullable, "missing").fillna("schema")
    message = message.where(~nullable,
                            cases["column"].astype(str) + " is required; the cell is empty")
    out = pd.DataFrame({"pos": pos, "column": column, "check": check, "message": message})
    out = out.drop_duplicates(["pos", "column", "check"])
    # A cell that could not be typed is already reported; do not call it "empty" as well
    # (nor "exposure missing": an exposure of -inf is not finite, not absent).
    if found:
        typed_fail = pd.concat(found)
        # An unknown visit label leaves its time empty: that is the one failure, not two.
        typed_fail = pd.concat([typed_fail, typed_fail[typed_fail["column"] == "visit"].assign(
            column="time")])
        seen = pd.MultiIndex.from_frame(typed_fail[["pos", "column"]])
        again = pd.MultiIndex.from_frame(out[["pos", "column"]]).isin(seen)
        out = out[~(again & out["check"].isin(["missing", "exposure_missing"]))]
    for name, previous, words in (("duplicate_visit", False, "first on line"),
                                  ("time_order", True, "previous visit on line")):
        sel = out["check"] == name
        if sel.any():
            ref = first_line_of_group(typed, lines, layout.key, out.loc[sel, "pos"].to_numpy(),
                                      previous=previous)
            out.loc[sel, "message"] = [f"{m} ({words} {int(r)})"
                                       for m, r in zip(out.loc[sel, "message"], ref)]
    return out


def _report(header_rows: list[dict], found: list[pd.DataFrame] | None = None,
            rows: pd.DataFrame | None = None, lines: np.ndarray | None = None,
            layout: Layout | None = None, origin: Origin | None = None) -> pd.DataFrame:
    """Assemble the report: file line, file column, check, raw value, message (a reshaped
    cell's column is the wide file's own column, from ``origin``)."""
    parts = [pd.DataFrame(header_rows, columns=REPORT_COLUMNS)]
    for frame in found or []:
        if frame.empty:
            continue
        pos = frame["pos"].to_numpy()
        part = pd.DataFrame({"line": np.where(pos >= 0, lines[np.maximum(pos, 0)], 1)})
        part["value"] = ""
        for contract in frame["column"].unique():
            sel = (frame["column"] == contract).to_numpy() & (pos >= 0)
            if contract in rows.columns:
                part.loc[sel, "value"] = np.asarray(rows[contract].iloc[pos[sel]], dtype=object)
        part["column"] = frame["column"].map(lambda c: layout.columns.get(c, c)).to_numpy()
        if origin is not None:
            for label in part["column"].unique():
                sel = (part["column"] == label).to_numpy() & (pos >= 0)
                found = origin.file_column(label, pos[sel])
                if found is not None:
                    part.loc[sel, "column"] = found
        part["check"] = frame["check"].to_numpy()
        part["message"] = frame["message"].to_numpy()
        parts.append(part[REPORT_COLUMNS])
    report = pd.concat([p for p in parts if len(p)] or parts, ignore_index=True)
    report["line"] = report["line"].astype(np.int64)
    for name in ("column", "check", "value", "message"):
        report[name] = report[name].fillna("").astype(str)
    return report.sort_values(["line", "column"], kind="stable").reset_index(drop=True)


def identifier_report(findings: list[dict]) -> pd.DataFrame:
    """Report rows for identifier findings: where they are, never what they are."""
    rows = [{"line": line, "column": f["column"], "check": "direct_identifier", "value": "",
             "message": f"{f['kind'].replace('_', ' ')} (found by {f.get('basis', 'content')}); "
                        "values are not shown. Remove the column with `drop:` in the run config"}
            for f in findings for line in f["lines"]]
    return _report(rows)


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix spreadsheet-formula-like text cells (= + - @ tab CR) with an apostrophe."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object:
            text = out[name].astype(str)
            out[name] = text.where(~text.str.startswith(_FORMULA_START), "'" + text)
    return out


def write_validation_failure(exc: ValidationFailed | IdentifierError, report_dir) -> Path:
    """Write ``report_dir/validation_report.csv`` (and nothing else) for a failed validation.

    Parameters
    ----------
    exc : ValidationFailed or IdentifierError
        Identifier findings are written as rows without values.
    report_dir : str or Path
        Created if missing.

    Returns
    -------
    Path
        The report file.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    frame = identifier_report(exc.findings) if isinstance(exc, IdentifierError) else exc.report
    target = report_dir / REPORT_FILE
    if target.is_symlink() or (target.exists() and not target.is_file()):
        # Never write through a link out of the report folder (or onto a FIFO or device).
        raise InputError(f"{target}: is a link or special file; the report is not written there")
    escape_formulas(frame[REPORT_COLUMNS]).to_csv(target, index=False)
    return target
