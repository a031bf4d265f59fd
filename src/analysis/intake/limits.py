"""Size limits every reader checks before it decompresses or decodes a log.

A log is refused (``InputError``, exit code 2, nothing written) when it passes one of these limits,
and the check happens before the expensive step, so a small file that would decompress to
gigabytes (a "zip bomb") costs a few megabytes of memory and milliseconds:

* any file: at most :data:`MAX_FILE_BYTES` on disk (a CSV is read whole);
* Parquet: from the footer metadata alone, at most :data:`MAX_ROWS` rows, :data:`MAX_COLUMNS`
  columns and :data:`MAX_DECODED_BYTES` of uncompressed column data; then each column is read
  still dictionary-encoded and the size of its decoded text computed from the dictionary and the
  codes, so a column repeating one long value a million times is refused before it is expanded;
* cells: at most :data:`MAX_CELL_CHARS` characters, column names :data:`MAX_HEADER_CHARS`
  (:func:`overlong_cells`, a validation failure ``cell_too_long`` with line and column);
* xlsx: from the zip's central directory alone, at most :data:`MAX_DECODED_BYTES` uncompressed in
  all entries together and a ratio of at most :data:`MAX_ZIP_RATIO` for any entry over 1 MB
  (Python's zipfile never returns more bytes than an entry declares, so the declared sizes bound
  what is read); while rows are read, at most :data:`MAX_ROWS` rows and :data:`MAX_COLUMNS` columns.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from analysis.errors import InputError

#: Largest log file on disk, in bytes (a 1,000,000-row log is about 60 MB).
MAX_FILE_BYTES = 512 * 1024**2
#: Largest uncompressed / decoded size of a Parquet or xlsx log, in bytes.
MAX_DECODED_BYTES = 512 * 1024**2
#: Most data rows a log may have.
MAX_ROWS = 5_000_000
#: Most columns a log may have.
MAX_COLUMNS = 1_000
#: Longest cell read (characters); a longer one is a validation failure (``cell_too_long``) found
#: before any pattern looks at it, so no cell can make the identifier guard slow.
MAX_CELL_CHARS = 1000
#: Longest column name read (characters).
MAX_HEADER_CHARS = 200
#: Largest compression ratio of one xlsx entry over 1 MB (real sheets compress 5-20 times).
MAX_ZIP_RATIO = 200


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.0f} MB"


def check_file_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"the file has {_mb(size)}; logs of at most {_mb(MAX_FILE_BYTES)} are read",
                         path=str(path))


def check_shape(path: Path, n_rows: int, n_columns: int) -> None:
    if n_rows > MAX_ROWS:
        raise InputError(f"more than {MAX_ROWS:,} rows; logs of at most {MAX_ROWS:,} rows are read",
                         path=str(path))
    if n_columns > MAX_COLUMNS:
        raise InputError(f"{n_columns:,} columns; logs of at most {MAX_COLUMNS:,} columns are read",
                         path=str(path))


def check_decoded(path: Path, n_bytes: int, what: str = "decompressed") -> None:
    if n_bytes > MAX_DECODED_BYTES:
        raise InputError(f"{_mb(n_bytes)} when {what}; logs of at most {_mb(MAX_DECODED_BYTES)} "
                         "are read (is it a zip bomb?)", path=str(path))


def check_xlsx_archive(path: Path) -> None:
    """Refuse a workbook whose zip entries declare too much data, before any entry is inflated."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"cannot read .xlsx file (not a zip archive: {exc})", path=str(path)) from None
    check_decoded(path, sum(e.file_size for e in entries))
    for entry in entries:
        if entry.file_size > 1024**2 and entry.file_size > MAX_ZIP_RATIO * max(entry.compress_size, 1):
            raise InputError(f"entry {entry.filename!r} inflates {entry.file_size // max(entry.compress_size, 1):,} "
                             f"times; at most {MAX_ZIP_RATIO} (is it a zip bomb?)", path=str(path))


def read_parquet_bounded(path: Path):
    """Read a Parquet file as a pyarrow Table after checking its metadata and decoded size."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    meta = handle.metadata
    check_shape(path, meta.num_rows, meta.num_columns)
    uncompressed = sum(meta.row_group(g).column(c).total_uncompressed_size
                       for g in range(meta.num_row_groups) for c in range(meta.num_columns))
    check_decoded(path, uncompressed)
    text = [f.name for f in handle.schema_arrow
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    table = pq.ParquetFile(path, read_dictionary=text).read() if text else handle.read()
    decoded = 0
    for name in table.column_names:
        column = table.column(name)
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                lengths = pc.binary_length(chunk.dictionary)
                decoded += int(pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0)
            else:
                decoded += chunk.nbytes
        check_decoded(path, decoded, "decoded")
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = pa.chunked_array([c.dictionary_decode() for c in column.chunks],
                                      type=column.type.value_type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(
        [pa.field(n, c.type) for n, c in zip(table.column_names, columns)], metadata=table.schema.metadata))


def overlong_cells(raw, kept: list[str], per_column: int = 5) -> list[dict]:
    """Report rows for cells and column names longer than the documented limits (values not shown)."""
    from analysis.intake.codes import distinct

    rows = []
    for pos, (label, name) in enumerate(zip(raw.labels, raw.header), start=1):
        if len(name) > MAX_HEADER_CHARS:
            rows.append({"line": 1, "column": f"(column {pos})", "check": "cell_too_long", "value": "",
                         "message": f"column name of {len(name):,} characters; at most "
                                    f"{MAX_HEADER_CHARS} are read"})
    for label in kept:
        codes, uniques = distinct(raw.cells[label])  # lengths of the distinct texts only
        lengths = uniques.str.len().to_numpy() if len(uniques) else np.zeros(0, int)
        if not (lengths > MAX_CELL_CHARS).any():
            continue  # no full-length array for a column without a long cell (nearly all)
        lengths = lengths[codes]
        for i in np.flatnonzero(lengths > MAX_CELL_CHARS)[:per_column]:
            column = label if len(label) <= MAX_HEADER_CHARS else "(long column name)"
            rows.append({"line": int(raw.lines[i]), "column": column, "check": "cell_too_long",
                         "value": "", "message": f"cell of {int(lengths[i]):,} characters; at most "
                                                 f"{MAX_CELL_CHARS:,} are read (free text does not "
                                                 "belong in the log: drop the column)"})
    return rows
