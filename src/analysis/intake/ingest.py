"""Read a clinic log (CSV, Parquet or .xlsx) as text, keeping each row's file line number.

Every cell is read as text (``dtype=str``, no NA guessing) so that typing happens later under
the data contract's own rules and a failure can quote the raw value. Each data row keeps the line
number a person sees in the file (header = line 1, first data row = line 2), also when quoted
fields hold newlines. Structural faults (empty file, header only, duplicate headers, rows with
fewer or more fields than the header) are collected, not raised: validation reports them together
with every other failure. Faults that stop reading altogether (missing file, undecodable bytes,
NUL bytes) raise :class:`~analysis.errors.InputError`. The input file is only ever read.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.config import ReadOptions
from analysis.errors import ConfigError, InputError
from analysis.intake import fast_csv, limits
from analysis.intake.xlsx_formulas import formulas_without_values
from analysis.intake.whitespace import WHITESPACE, looks_whitespace, to_csv_text

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_ALIASES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
                      "whitespace": WHITESPACE, "space": WHITESPACE}
_UTF8_BOM = codecs.BOM_UTF8
CSV_SUFFIXES = {".csv", ".tsv", ".txt", ".tab"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}


@dataclass
class RawLog:
    """A log as read: header, every cell as text, and where each row sits in the file.

    Attributes
    ----------
    path, sha256, format : the file, the SHA-256 of its bytes, ``"csv"|"parquet"|"xlsx"``.
    header : list of str
        Column names as written (stripped of surrounding spaces).
    labels : list of str
        Unique labels of ``cells``' columns: the header name, or for an empty or repeated name
        a stand-in such as ``"(column 4)"``.
    cells : DataFrame
        One row per data row, one column per header column, every cell a ``str``
        (missing trailing fields of a short row are ``""``).
    lines : ndarray of int
        File line of each data row (header = 1). For Parquet, row position + 2.
    n_fields : ndarray of int
        Fields found in each data row (to tell short and long rows).
    faults : list of dict
        Structural faults as report rows (line, column, check, value, message).
    delimiter, encoding : what was used to read a CSV (None otherwise).
    """

    path: Path
    sha256: str
    format: str
    header: list[str]
    labels: list[str]
    cells: pd.DataFrame
    lines: np.ndarray
    n_fields: np.ndarray
    faults: list[dict] = field(default_factory=list)
    delimiter: str | None = None
    encoding: str | None = None

    @property
    def bad_rows(self) -> np.ndarray:
        """Boolean mask of rows whose field count differs from the header's."""
        return self.n_fields != len(self.header)


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (the file is never modified)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fault(line: int, column: str, check: str, message: str, value: str = "") -> dict:
    """One report row."""
    return {"line": int(line), "column": column, "check": check, "value": value,
            "message": message}


def read_log(path: str | Path, options: ReadOptions | None = None) -> RawLog:
    """Read a log file as text with file line numbers.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` (also ``.tsv``/``.txt``), ``.parquet`` or ``.xlsx`` file.
    options : ReadOptions, optional
        ``delimiter`` (default: sniffed among , ; tab |), ``encoding`` (default UTF-8 with or
        without BOM), ``sheet`` (xlsx: name or 0-based index; default the first sheet).

    Returns
    -------
    RawLog

    Raises
    ------
    InputError
        The file is missing, of an unknown type, undecodable, or holds NUL bytes.
    """
    path = Path(path)
    options = options or ReadOptions()
    if not path.exists():
        raise InputError("file not found", path=str(path))
    if not path.is_file():
        raise InputError("not a regular file (a folder, pipe or device); give the log file",
                         path=str(path))
    limits.check_file_size(path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    if suffix in EXCEL_SUFFIXES:
        return _read_xlsx(path, options.sheet)
    if suffix == ".xls":
        raise InputError("old Excel .xls files are not read; save the sheet as .xlsx or CSV",
                         path=str(path))
    if suffix not in CSV_SUFFIXES:
        raise InputError(f"unknown file type {suffix!r}; use .csv, .parquet or .xlsx",
                         path=str(path))
    return _read_csv(path, options)


# --------------------------------------------------------------------------- CSV

def _decode(data: bytes, encoding: str | None, path: Path) -> tuple[str, str]:
    """Decode strictly; a bad byte or a NUL becomes an InputError with its line."""
    if encoding is None:
        if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            raise InputError("the file is UTF-16; save it as UTF-8 or declare "
                             "`read: {encoding: utf-16}` in the run config", path=str(path))
        codec = "utf-8"
    else:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise ConfigError(f"read.encoding: unknown encoding {encoding!r}") from None
    offset = 0
    if codec == "utf-8" and data.startswith(_UTF8_BOM):
        offset = len(_UTF8_BOM)
    elif codec != "utf-8" and data.startswith(_UTF8_BOM):
        raise InputError(f"the file starts with a UTF-8 byte-order mark but read.encoding "
                         f"declares {encoding!r}; remove the declaration", path=str(path))
    try:
        text = data[offset:].decode(codec)
    except UnicodeDecodeError as exc:
        pos = offset + exc.start
        line = data.count(b"\n", 0, pos) + 1
        hint = (" If the file was saved as Latin-1 / Windows-1252, declare "
                "`read: {encoding: latin-1}` in the run config." if codec == "utf-8" else "")
        raise InputError(f"byte 0x{data[pos]:02X} at byte offset {pos} cannot be decoded as "
                         f"{codec}.{hint}", path=str(path), line=line) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise InputError("NUL byte in the file (is it UTF-16 or a binary file?); "
                         "save it as UTF-8 text", path=str(path), line=line)
    return text, codec


def _resolve_delimiter(declared: str | None, text: str) -> str:
    if declared is not None:
        delimiter = _DELIMITER_ALIASES.get(declared.lower(), declared)
        if len(delimiter) != 1 and delimiter != WHITESPACE:
            raise ConfigError(f"read.delimiter: {declared!r} must be one character "
                              "(or tab, comma, semicolon, pipe, whitespace)")
        return delimiter
    return sniff_delimiter(text)


def sniff_delimiter(text: str) -> str:
    """Pick the delimiter among , ; tab | from the header line (quoted parts ignored).

    The header decides because column names rarely contain delimiters while data cells can
    (decimal commas in a ``;`` file). A tie is broken by how many of the next lines have the
    header's count; no candidate at all means whitespace-separated fields when the header and
    most lines split at whitespace into the same 2+ fields, else a one-column file, read with ``,``.
    """
    lines = text.lstrip("\r\n").splitlines()[:21]
    if not lines:
        return ","
    unquoted = [re.sub(r'"[^"]*"', "", line) for line in lines]
    counts = {d: unquoted[0].count(d) for d in CANDIDATE_DELIMITERS}
    best = max(counts.values())
    if best == 0:
        return WHITESPACE if looks_whitespace(lines) else ","
    tied = [d for d in CANDIDATE_DELIMITERS if counts[d] == best]
    if len(tied) == 1:
        return tied[0]
    return max(tied, key=lambda d: sum(line.count(d) == best for line in unquoted[1:]))


def _record_layout_csv(text: str, delimiter: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Start line and field count of each record, with quoted newlines, via csv.reader."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    starts, counts = [], []
    previous = 0
    try:
        for row in reader:
            if not _blank(row):
                starts.append(previous + 1)
                counts.append(len(row))
            previous = reader.line_num
    except csv.Error as exc:
        raise InputError(f"cannot parse CSV ({exc}); is a quote left open?", path=str(path),
                         line=previous + 1) from None
    return np.asarray(starts, dtype=np.int64), np.asarray(counts, dtype=np.int64)


def _blank(row: list[str]) -> bool:
    """An empty line or one of spaces only: skipped, as the pandas reader skips it."""
    return not row or (len(row) == 1 and not row[0].strip(" \t"))


def _cells_from_csv_module(text: str, delimiter: str, width: int) -> pd.DataFrame:
    """Slow but exact fallback when pandas and csv.reader disagree on what a record is."""
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            if not _blank(row)]
    return pd.DataFrame([row + [""] * (width - len(row)) for row in rows], dtype=object)


def _read_csv(path: Path, options: ReadOptions) -> RawLog:
    with fast_csv.mapped(path) as data:
        digest = hashlib.sha256(data).hexdigest()
        raw = _read_plain_csv(path, digest, data, options)
        if raw is not None:
            return raw
        data = bytes(data)
    text, codec = _decode(data, options.encoding, path)
    delimiter = _resolve_delimiter(options.delimiter, text)
    if not text.strip():
        return _empty(path, digest, "csv", delimiter, codec)
    if delimiter == WHITESPACE:
        raw = _read_csv_text(path, digest, to_csv_text(text), ",", codec)
        raw.delimiter = WHITESPACE
        return raw
    return _read_csv_text(path, digest, text, delimiter, codec)


def _read_plain_csv(path: Path, digest: str, data: bytes, options: ReadOptions) -> RawLog | None:
    """A plain UTF-8 CSV through pyarrow (:mod:`analysis.intake.fast_csv`), else None."""
    if options.encoding not in (None, "utf-8", "utf8", "UTF-8"):
        return None  # (an unknown encoding is named by _decode)
    offset = len(_UTF8_BOM) if data[:3] == _UTF8_BOM else 0
    prefix = fast_csv.plain_prefix(data, offset)
    if prefix is None or not prefix.strip() or data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return None
    delimiter = _resolve_delimiter(options.delimiter, prefix)
    read = (fast_csv.read_plain(data, offset, delimiter)
            if delimiter != WHITESPACE and fast_csv.is_plain(data, delimiter) else None)
    if read is None:
        return None
    header, cells, lines = read
    header = [h.strip() for h in header]
    counts = np.full(len(lines), len(header), dtype=np.int64)
    return _finish(path, digest, "csv", header, cells, lines, counts, delimiter, "utf-8")


def _read_csv_text(path: Path, digest: str, text: str, delimiter: str, codec: str) -> RawLog:
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        encoded = text.encode("utf-8")
        plain = delimiter.isascii() and '"' not in text and "\r" not in text.replace("\r\n", "")
        if plain:
            starts, counts = fast_csv.record_layout(encoded, delimiter)
        else:
            starts, counts = _record_layout_csv(text, delimiter, path)
        width = int(counts.max())
        try:
            frame = pd.read_csv(io.BytesIO(encoded), sep=delimiter, header=None,
                                names=list(range(width)), dtype=str, na_filter=False,
                                index_col=False, encoding="utf-8", engine="c")
        except pd.errors.ParserError as exc:
            # csv.reader (non-strict) lets a quote left open run to the end of the file; the
            # C parser does not. Name the record it started on, as a person counts lines.
            found = re.search(r"row (\d+)", str(exc))
            record = int(found.group(1)) if found else -1
            line = int(starts[record]) if 0 <= record < len(starts) else None
            raise InputError(f"cannot parse CSV ({str(exc).strip()}); is a quote left open?",
                             path=str(path), line=line) from None
        if len(frame) != len(starts):
            frame = _cells_from_csv_module(text, delimiter, width)
    finally:
        csv.field_size_limit(old_limit)
    header = [str(v).strip() for v in frame.iloc[0, : counts[0]]]
    cells = frame.iloc[1:, : len(header)].reset_index(drop=True)
    return _finish(path, digest, "csv", header, cells, starts[1:], counts[1:], delimiter, codec)


# ----------------------------------------------------------------------- Parquet / xlsx

def _as_text(series: pd.Series) -> pd.Series:
    """Render one typed column as the text a person would have typed (missing -> "")."""
    missing = series.isna()
    if pd.api.types.is_datetime64_any_dtype(series):
        values = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) else series
        at_midnight = (values.dropna() == values.dropna().dt.normalize()).all()
        text = values.dt.strftime("%Y-%m-%d" if at_midnight else "%Y-%m-%d %H:%M:%S")
    elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        text = series.astype(str)
    else:
        text = series.map(_cell_text)
    return text.where(~missing, "").astype(object)


def _cell_text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _read_parquet(path: Path) -> RawLog:
    digest = sha256_file(path)
    try:
        table = limits.read_parquet_bounded(path).to_pandas()
    except InputError:
        raise
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise InputError(f"cannot read Parquet file ({type(exc).__name__}: {exc})",
                         path=str(path)) from None
    header = [str(c).strip() for c in table.columns]
    if not header:
        return _empty(path, digest, "parquet", None, None)
    cells = pd.DataFrame({i: _as_text(table.iloc[:, i]) for i in range(len(header))})
    n = len(cells)
    # Parquet has no lines; number rows as a CSV export would (header = line 1).
    return _finish(path, digest, "parquet", header, cells, np.arange(2, n + 2),
                   np.full(n, len(header)), None, None)


def _read_xlsx(path: Path, sheet: str | int | None) -> RawLog:
    import openpyxl

    digest = sha256_file(path)
    limits.check_xlsx_archive(path)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile/openpyxl raise many types for a damaged file
        raise InputError(f"cannot read .xlsx file ({type(exc).__name__}: {exc})",
                         path=str(path)) from None
    try:
        names = book.sheetnames
        if isinstance(sheet, int) and 0 <= sheet < len(names):
            sheet = names[sheet]
        if sheet is not None and sheet not in names:
            raise InputError(f"no sheet {sheet!r}; the workbook has {names} (read.sheet is a "
                             "name or a 0-based index)", path=str(path))
        ws = book[sheet] if sheet is not None else book.worksheets[0]
        ws.reset_dimensions()  # some writers store a wrong size; read what is there
        rows, lines = [], []
        for number, values in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1):
            if number > limits.MAX_ROWS + 1 or len(values) > limits.MAX_COLUMNS:
                limits.check_shape(path, number - 1, len(values))
            texts = [_cell_text(v) for v in values]
            while texts and not texts[-1].strip():
                texts.pop()
            if texts:
                rows.append(texts)
                lines.append(number)
    finally:
        book.close()
    if not rows:
        return _empty(path, digest, "xlsx", None, None)
    header = [h.strip() for h in rows[0]]
    width = max(len(header), max(len(r) for r in rows))
    counts = np.array([max(len(r), len(header)) for r in rows[1:]], dtype=np.int64)
    cells = pd.DataFrame([r + [""] * (width - len(r)) for r in rows[1:]],
                         columns=range(width), dtype=object).iloc[:, : len(header)]
    if cells.empty:
        cells = pd.DataFrame(columns=range(len(header)), dtype=object)
    raw = _finish(path, digest, "xlsx", header, cells, np.array(lines[1:], dtype=np.int64),
                  counts, None, None)
    raw.faults += formulas_without_values(path, sheet, dict(zip(lines, rows)), raw.labels)
    return raw


# ----------------------------------------------------------------------- structure

def _empty(path: Path, digest: str, fmt: str, delimiter, encoding) -> RawLog:
    return RawLog(path, digest, fmt, [], [], pd.DataFrame(), np.array([], dtype=np.int64),
                  np.array([], dtype=np.int64),
                  [fault(1, "", "empty_file", "the file is empty: no header, no rows")],
                  delimiter, encoding)


def _finish(path, digest, fmt, header, cells, lines, n_fields, delimiter, encoding) -> RawLog:
    """Label the columns and collect the structural faults."""
    lines = np.asarray(lines, dtype=np.int64)
    n_fields = np.asarray(n_fields, dtype=np.int64)
    faults = []
    labels, seen = [], {}
    for pos, name in enumerate(header):
        if not name:
            labels.append(f"(column {pos + 1})")
        elif name in seen:
            labels.append(f"{name} (column {pos + 1})")
        else:
            labels.append(name)
        seen.setdefault(name, []).append(pos + 1)
    for name, positions in seen.items():
        if name and len(positions) > 1:
            faults.append(fault(1, name, "duplicate_header",
                                f"column name {name!r} appears {len(positions)} times in the "
                                f"header (positions {', '.join(map(str, positions))}); "
                                "rename or drop the copies"))
    cells = cells.copy()
    cells.columns = labels
    if len(cells) == 0:
        faults.append(fault(1, "", "no_data_rows", "the file has a header but no data rows"))
    width = len(header)
    for i in np.flatnonzero(n_fields < width):
        missing = header[n_fields[i]:]
        faults.append(fault(lines[i], labels[n_fields[i]], "short_row",
                            f"row has {n_fields[i]} field(s) but the header has {width}; "
                            f"missing: {', '.join(missing)}. Its cells are not checked further"))
    for i in np.flatnonzero(n_fields > width):
        # Extra fields are not echoed: they often are a note split at an unquoted comma.
        faults.append(fault(lines[i], f"(field {width + 1})", "long_row",
                            f"row has {n_fields[i]} fields but the header has {width} "
                            "(an unquoted delimiter inside a value?). Its cells are not "
                            "checked further"))
    return RawLog(path, digest, fmt, header, labels, cells, lines, n_fields, faults,
                  delimiter, encoding)
