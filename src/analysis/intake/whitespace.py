"""Whitespace-separated text files (R's ``write.table``, SAS ``PUT`` lists, aligned columns).

Such a file has no single delimiter character: fields are separated by runs of spaces or tabs,
and a field holding spaces is quoted (``"Black or African American"``). :func:`looks_whitespace`
tells it from a one-column file; :func:`to_csv_text` rewrites it, line by line, as comma-separated
text so that the ordinary CSV reader (and its line numbering) applies unchanged: line *n* of the
result is line *n* of the file. A quoted field may not span lines in such a file.
"""

from __future__ import annotations

import csv
import io
import re

#: The name ``read.delimiter`` accepts, and the name a run reports, for this layout.
WHITESPACE = "whitespace"

_FIELD = re.compile(r'"(?:[^"]|"")*"|[^\s"]+')


def split_fields(line: str) -> list[str]:
    """The fields of one line: runs of non-space text or double-quoted strings."""
    return [f[1:-1].replace('""', '"') if f.startswith('"') else f
            for f in _FIELD.findall(line)]


def looks_whitespace(lines: list[str]) -> bool:
    """True when the header splits into 2+ fields at whitespace and most next lines agree."""
    if not lines:
        return False
    width = len(split_fields(lines[0]))
    if width < 2:
        return False
    rest = [line for line in lines[1:] if line.strip()]
    return not rest or sum(len(split_fields(line)) == width for line in rest) >= 0.5 * len(rest)


def to_csv_text(text: str) -> str:
    """The same rows as comma-separated text, one output line per input line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for line in text.splitlines():
        if line.strip():
            writer.writerow(split_fields(line))
        else:
            out.write("\n")
    return out.getvalue()
