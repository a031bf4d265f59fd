"""The fast way in for a plain CSV: pyarrow's reader, every column dictionary-encoded text.

A "plain" CSV is UTF-8 (with or without a byte-order mark), has no quote character and no bare
carriage return, a one-character ASCII delimiter, and every record holds as many fields as the
header. In such a file one line is one record, so the file line of every row comes from the
positions of its newlines (:func:`_record_lines`) and the cells can be
read by pyarrow's multi-threaded CSV reader instead of pandas' single-threaded one.

Cells are read as ``dictionary<int32, string>`` and handed on as pandas ``Categorical`` columns
(categories = the distinct texts, in order of first appearance), so a column of 7 million cells
costs 4 bytes a cell plus its few distinct values instead of a Python string object per cell,
and every rule downstream runs once per distinct value (:func:`analysis.intake.contract.distinct`).
The texts are exactly those the pandas path gives (no trimming, no NA guessing, "" for an empty
field).

Anything else — another encoding, quotes, short or long rows, lines of spaces, bytes that are not
UTF-8, a NUL byte — returns ``None`` and the exact pandas/csv-module path reads the file, with
the error messages it gives.
"""

from __future__ import annotations

import contextlib
import mmap
from pathlib import Path

import numpy as np

#: Bytes decoded to sniff the delimiter (the sniffer looks at the first 21 lines).
_PREFIX_BYTES = 1 << 20
#: Bytes of a memory map counted at a time (each slice is a bytes copy of this size).
_COUNT_STEP = 1 << 24


def record_layout(encoded: bytes, delimiter: str) -> tuple[np.ndarray, np.ndarray]:
    """Start line and field count of each record when no field is quoted (one line = one row)."""
    buf = np.frombuffer(encoded, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.r_[0, newlines + 1]
    ends = np.r_[newlines, buf.size]
    seps = np.flatnonzero(buf == ord(delimiter))
    n_seps = np.searchsorted(seps, ends) - np.searchsorted(seps, starts)
    length = ends - starts - (buf[np.maximum(ends - 1, 0)] == 13) * (ends > starts)
    blank = length <= 0
    # A line of spaces only is blank to the pandas reader too; check the few candidates.
    for i in np.flatnonzero(~blank & (n_seps == 0)):
        if not bytes(buf[starts[i]:ends[i]]).strip(b" \t\r"):
            blank[i] = True
    keep = ~blank
    return np.flatnonzero(keep) + 1, n_seps[keep] + 1


def plain_prefix(data: bytes, offset: int) -> str | None:
    """The first lines of the file as text (enough for the delimiter sniffer), or None."""
    head = data[offset:offset + _PREFIX_BYTES]
    if len(data) - offset > _PREFIX_BYTES:
        cut = head.rfind(b"\n")
        if cut < 0 or head.count(b"\n") < 25:
            return None
        head = head[:cut]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        return None


@contextlib.contextmanager
def mapped(path: Path):
    """The file's bytes as a read-only memory map (bytes for an empty file).

    The map reads the pages the OS already caches for the file instead of copying them into
    fresh process memory (436 MB for a million patients). Everything in this module and in
    ``ingest._read_plain_csv`` works on either; the other readers take ``bytes(data)``.
    """
    with open(path, "rb") as handle:
        if not handle.seek(0, 2):
            yield b""
            return
        view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield view
        finally:
            with contextlib.suppress(BufferError):  # still exported: closed when collected
                view.close()


def count(data, sub: bytes, start: int = 0) -> int:
    """``data.count(sub, start)`` for bytes or a memory map (which has no ``count``)."""
    if isinstance(data, bytes):
        return data.count(sub, start)
    step = _COUNT_STEP
    return sum(data[i:i + step + len(sub) - 1].count(sub) for i in range(start, len(data), step))


def is_plain(data: bytes, delimiter: str) -> bool:
    """No quote, no bare carriage return, no NUL byte, an ASCII delimiter."""
    if len(delimiter) != 1 or not delimiter.isascii() or delimiter in '"\r\n':
        return False
    if data.find(b'"') >= 0 or data.find(b"\x00") >= 0:
        return False
    return data.find(b"\r") < 0 or count(data, b"\r") == count(data, b"\r\n")


def _newlines(data, offset: int) -> np.ndarray:
    """Positions of every newline at or after ``offset``, found a chunk at a time (no copy of
    the bytes or the memory map, no full-length boolean array)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    parts = [np.flatnonzero(buf[i:i + _COUNT_STEP] == 10) + i
             for i in range(offset, len(buf), _COUNT_STEP)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)


def _record_lines(data: bytes, offset: int) -> np.ndarray:
    """File line (1-based) of every non-empty line; lines of spaces are left to pyarrow."""
    size = len(data) - offset
    if size and not data[offset:offset + 2].startswith((b"\n", b"\r\n")):
        # One pass for the newlines: an empty line is "\n\n" or "\n\r\n" (two newlines one
        # or two bytes apart, a carriage return between); without one every line is a record.
        newlines = _newlines(data, offset)
        gap = np.diff(newlines)
        buf = np.frombuffer(data, dtype=np.uint8)
        if not ((gap == 1).any() or ((gap == 2) & (buf[newlines[1:] - 1] == 13)).any()):
            n = len(newlines) + (0 if data[-1:] == b"\n" else 1)
            return np.arange(1, n + 1, dtype=np.int64)
        del newlines, gap, buf
    return _nonempty_lines(data, offset)


def _nonempty_lines(data: bytes, offset: int) -> np.ndarray:
    """:func:`_record_lines` for any text (its oracle in the tests): full-length arrays."""
    buf = np.frombuffer(data, dtype=np.uint8, offset=offset)
    newlines = np.flatnonzero(buf == 10)
    starts = np.r_[0, newlines + 1]
    ends = np.r_[newlines, buf.size]
    length = ends - starts - (buf[np.maximum(ends - 1, 0)] == 13) * (ends > starts)
    return np.flatnonzero(length > 0) + 1


def read_plain(data: bytes, offset: int, delimiter: str):
    """The header, the cells as Categorical text columns, and each data row's file line.

    Parameters
    ----------
    data : bytes
        The whole file; ``offset`` skips a UTF-8 byte-order mark.
    delimiter : str

    Returns
    -------
    (header, cells, lines) or None
        ``header`` the header's fields (not yet stripped), ``cells`` columns ``0 .. width-1``;
        None when the file is not one pyarrow reads exactly as the pandas path would (the
        caller then takes that path).
    """
    import pyarrow as pa
    import pyarrow.csv as pv

    lines = _record_lines(data, offset)
    head = data[offset:offset + (1 << 16)]
    first = head.lstrip(b"\r\n")
    end = first.find(b"\n")
    header_line = (first if end < 0 else first[:end]).rstrip(b"\r").decode("utf-8", "replace")
    width = header_line.count(delimiter) + 1
    if width == 1 or not header_line.strip(" \t") or (end < 0 and len(first) == 1 << 16):
        return None  # one column (a line of spaces would be a row), or a huge header
    body = len(head) - len(first) + (end + 1 if end >= 0 else len(first))
    names = [f"f{i}" for i in range(width)]
    text = pa.dictionary(pa.int32(), pa.string())
    try:
        table = pv.read_csv(
            pa.py_buffer(data)[offset + body:],
            read_options=pv.ReadOptions(column_names=names, block_size=1 << 24),
            parse_options=pv.ParseOptions(delimiter=delimiter, quote_char=False,
                                          double_quote=False, escape_char=False,
                                          newlines_in_values=False, ignore_empty_lines=True),
            convert_options=pv.ConvertOptions(column_types=dict.fromkeys(names, text),
                                              strings_can_be_null=False,
                                              quoted_strings_can_be_null=False,
                                              null_values=[], true_values=[], false_values=[]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # invalid UTF-8, or a row with another field count: the exact path decides
    if table.num_rows != len(lines) - 1:
        return None
    cells = table.to_pandas()
    del table
    # pyarrow's pool (mimalloc) keeps the freed table's pages (~0.8 GB at a million patients)
    # for its next allocation, which does not come: give them back before validation needs more.
    pa.default_memory_pool().release_unused()
    cells.columns = range(width)
    return header_line.split(delimiter), cells, lines[1:]
