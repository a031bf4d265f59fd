"""xlsx formula cells without a saved value: read as empty they would be lost silently, so each
is a validation failure (``formula_without_value``) with its line and column."""

from __future__ import annotations

from pathlib import Path

MESSAGE = ("a formula cell with no saved value (written by a program that does not compute "
           "formulas); open and save the workbook in Excel or LibreOffice, or paste the values")


def formulas_without_values(path: Path, sheet, rows_by_line: dict, labels: list[str]) -> list[dict]:
    """Formula cells with no saved value: read as empty, they would be lost silently.

    Writers that do not compute formulas (pandas/openpyxl, many exports) save ``=A2*2`` without
    the cached result that ``data_only=True`` returns; each such cell is a fault with its line.
    """
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    found = []
    try:
        ws = book[sheet] if isinstance(sheet, str) else book.worksheets[0]
        ws.reset_dimensions()
        for number, values in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1):
            texts = rows_by_line.get(number, [])
            for j, value in enumerate(values[: len(labels)] if number > 1 else ()):
                if isinstance(value, str) and value.startswith("=") and (j >= len(texts) or not texts[j]):
                    found.append({"line": number, "column": labels[j], "check": "formula_without_value",
                                  "value": "", "message": MESSAGE})
                    if len(found) >= 50:
                        return found
    finally:
        book.close()
    return found
