"""Small files that decompress to gigabytes: built cheaply, deterministically, in a second or two.

* :func:`parquet_bomb` — one string column whose dictionary holds one long value and whose codes
  (all zero, run-length encoded) repeat it ``rows`` times: 1,000,000 rows of 10,000 characters is
  10 GB once decoded, a few kilobytes on disk.
* :func:`xlsx_bomb` — a workbook whose ``sheet1.xml`` is ``gigabytes`` GB of valid rows, deflated
  with a full flush after every 1 MB block so that each block compresses to the same bytes: the
  block is compressed once and written 1,024 times per GB. The CRC of the huge entry is not
  computed (it would take minutes); a reader that respects the declared sizes refuses the file
  before it would reach the CRC.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

_SHEET_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
_SHEET_TAIL = b"</sheetData></worksheet>"
_ROW = b'<row><c t="inlineStr"><is><t>P1</t></is></c><c><v>5</v></c></row>'


def parquet_bomb(path: Path, rows: int = 1_000_000, width: int = 10_000) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)),
                                            pa.array(["x" * width]))
    pq.write_table(pa.table({"patient_id": column}), path, compression="zstd")
    return path


def _deflate_repeated(head: bytes, block: bytes, copies: int, tail: bytes) -> tuple[bytes, int]:
    """Raw deflate of head + block * copies + tail, compressing ``block`` only once."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    one = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    assert one == again  # a full flush resets the window: each block compresses alike
    end = c.compress(tail) + c.flush()
    return start + one * copies + end, len(head) + len(block) * copies + len(tail)


def _entry(name: str, data: bytes, size: int, crc: int, offset: int) -> tuple[bytes, bytes]:
    """Local header + data and the central-directory record of one deflated entry (zip64 sizes)."""
    name_b = name.encode()
    extra = struct.pack("<HHQQ", 1, 16, size, len(data))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                        len(name_b), len(extra)) + name_b + extra + data
    central_extra = struct.pack("<HHQQ", 1, 16, size, len(data))
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF,
                          0xFFFFFFFF, len(name_b), len(central_extra), 0, 0, 0, 0, offset)
    return local, central + name_b + central_extra


def xlsx_bomb(path: Path, gigabytes: int = 10) -> Path:
    import openpyxl

    small = path.with_suffix(".small.xlsx")
    book = openpyxl.Workbook()
    book.active.append(["patient_id", "pain_score"])
    book.save(small)
    import zipfile

    parts = []
    with zipfile.ZipFile(small) as archive:
        for info in archive.infolist():
            raw = archive.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                block = _ROW * (1024**2 // len(_ROW))
                data, size = _deflate_repeated(_SHEET_HEAD, block, gigabytes * 1024**3 // len(block), _SHEET_TAIL)
                parts.append((info.filename, data, size, 0))
            else:
                c = zlib.compressobj(9, zlib.DEFLATED, -15)
                parts.append((info.filename, c.compress(raw) + c.flush(), len(raw), zlib.crc32(raw)))
    small.unlink()
    body, directory = b"", b""
    for name, data, size, crc in parts:
        local, central = _entry(name, data, size, crc, len(body))
        body += local
        directory += central
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(parts), len(parts), len(directory), len(body), 0)
    path.write_bytes(body + directory + end)
    return path
