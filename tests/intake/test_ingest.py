"""Reading logs as text with file line numbers: CSV (delimiters, encodings, BOM, quoted
newlines, structural faults), .xlsx and Parquet. Small files are written in tmp_path."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pytest

from analysis.config import ReadOptions
from analysis.errors import ConfigError, InputError
from analysis.intake.ingest import read_log, sha256_file, sniff_delimiter

HEADER = "patient_id,visit_date,intervention,pain_score"


def write(tmp_path, text: str, name: str = "log.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def checks(raw) -> list[tuple[int, str, str]]:
    return [(f["line"], f["column"], f["check"]) for f in raw.faults]


def test_cells_are_text_and_leading_zeros_survive(tmp_path):
    path = write(tmp_path, f"{HEADER}\n007,2024-01-01,usual_care,5\n0070,2024-01-01,usual_care,\n")
    raw = read_log(path)
    assert raw.cells["patient_id"].tolist() == ["007", "0070"]
    assert raw.cells["pain_score"].tolist() == ["5", ""]
    assert raw.lines.tolist() == [2, 3]
    assert raw.faults == []


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed_from_the_header(tmp_path, delimiter):
    text = f"{HEADER}\nP1,2024-01-01,usual_care,6,5\n".replace(",", delimiter)
    if delimiter != ",":  # a decimal comma in the data must not fool the sniffer
        text = text.replace(f"6{delimiter}5", "6,5")
    raw = read_log(write(tmp_path, text))
    assert raw.delimiter == delimiter
    assert raw.header == HEADER.split(",")


def test_sniffer_prefers_the_header_over_decimal_commas():
    assert sniff_delimiter("a;b;c\n1,5;2,5;3,5\n") == ";"
    assert sniff_delimiter("single\n1\n") == ","


def test_declared_delimiter_aliases_and_bad_value(tmp_path):
    path = write(tmp_path, "a\tb\n1\t2\n")
    assert read_log(path, ReadOptions(delimiter="tab")).cells.shape == (1, 2)
    with pytest.raises(ConfigError, match="read.delimiter"):
        read_log(path, ReadOptions(delimiter=";;"))


@pytest.mark.parametrize("declared", [None, "utf-8"])
def test_utf8_bom_is_removed_from_the_first_header(tmp_path, declared):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\nP1,2024-01-01,usual_care,5\n".encode())
    raw = read_log(path, ReadOptions(encoding=declared))
    assert raw.header[0] == "patient_id"


def test_latin1_only_when_declared(tmp_path):
    text = f"{HEADER}\nP1,2024-01-01,usual_care,5\nP2,2024-01-01,Kräuter,5\n"
    path = write(tmp_path, text, encoding="latin-1")
    raw = read_log(path, ReadOptions(encoding="latin-1"))
    assert raw.cells["intervention"].tolist() == ["usual_care", "Kräuter"]
    with pytest.raises(InputError) as info:
        read_log(path)  # undeclared: UTF-8, and 0xE4 (ä in Latin-1) is not valid UTF-8
    message = str(info.value)
    assert "0xE4" in message and "line 3" in message and "latin-1" in message
    assert info.value.line == 3


def test_nul_bytes_are_refused_with_their_line(tmp_path):
    path = tmp_path / "nul.csv"
    text = f"{HEADER}\nP1,2024-01-01,usual_care,5\nP2,2024\x00-01-01,usual_care,5\n"
    path.write_bytes(text.encode())
    with pytest.raises(InputError, match="NUL") as info:
        read_log(path)
    assert info.value.line == 3


def test_utf16_without_declaration_is_refused(tmp_path):
    path = tmp_path / "u16.csv"
    path.write_bytes(f"{HEADER}\n".encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16"):
        read_log(path)


def test_quoted_newlines_keep_line_numbers(tmp_path):
    text = (f"{HEADER},site\n"
            'P1,2024-01-01,usual_care,5,"North\nWing"\n'
            'P1,2024-01-08,usual_care,4,"a ""quoted"", b"\n'
            "\n"
            'P2,2024-01-01,usual_care,3,"x\r\ny\nz"\n'
            "P2,2024-01-08,usual_care,2,C\n")
    raw = read_log(write(tmp_path, text))
    assert raw.lines.tolist() == [2, 4, 6, 9]
    assert raw.cells["site"].tolist() == ["North\nWing", 'a "quoted", b', "x\r\ny\nz", "C"]


def test_blank_lines_are_skipped_but_counted(tmp_path):
    text = f"{HEADER}\r\n\r\nP1,2024-01-01,usual_care,5\r\n  \r\nP2,2024-01-01,usual_care,6\r\n"
    raw = read_log(write(tmp_path, text))
    assert raw.lines.tolist() == [3, 5]
    assert raw.cells["pain_score"].tolist() == ["5", "6"]


def test_structural_faults_short_and_long_rows_with_lines(tmp_path):
    text = (f"{HEADER}\n"
            "P1,2024-01-01,usual_care,5\n"
            "P1,2024-01-08\n"
            "P2,2024-01-01,usual_care,5,extra,more\n")
    raw = read_log(write(tmp_path, text))
    assert checks(raw) == [(3, "intervention", "short_row"), (4, "(field 5)", "long_row")]
    assert "2 field(s) but the header has 4" in raw.faults[0]["message"]
    assert raw.faults[1]["value"] == ""  # extra fields are never echoed
    assert raw.bad_rows.tolist() == [False, True, True]


def test_structural_faults_in_quoted_file(tmp_path):
    text = f'{HEADER},site\n"P1",2024-01-01,usual_care,5,"a\nb"\n"P2",2024-01-01\n'
    raw = read_log(write(tmp_path, text))
    assert checks(raw) == [(4, "intervention", "short_row")]


def test_empty_header_only_and_duplicate_headers(tmp_path):
    assert checks(read_log(write(tmp_path, "", "empty.csv"))) == [(1, "", "empty_file")]
    assert checks(read_log(write(tmp_path, "\n \n", "blank.csv"))) == [(1, "", "empty_file")]
    assert checks(read_log(write(tmp_path, f"{HEADER}\n", "head.csv"))) == [(1, "", "no_data_rows")]
    raw = read_log(write(tmp_path, "patient_id,pain_score,pain_score\nP1,1,2\n", "dup.csv"))
    assert checks(raw) == [(1, "pain_score", "duplicate_header")]
    assert "positions 2, 3" in raw.faults[0]["message"]
    assert raw.labels == ["patient_id", "pain_score", "pain_score (column 3)"]


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_log(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="unknown file type"):
        read_log(write(tmp_path, "x", "log.json"))


def test_sha256_matches_and_file_is_untouched(tmp_path):
    path = write(tmp_path, f"{HEADER}\nP1,2024-01-01,usual_care,5\n")
    before = path.read_bytes()
    raw = read_log(path)
    assert raw.sha256 == sha256_file(path) == hashlib.sha256(before).hexdigest()
    assert path.read_bytes() == before


def test_xlsx_rows_keep_sheet_row_numbers(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "visits"
    other = book.create_sheet("other")
    other.append(["nothing"])
    sheet.append(HEADER.split(","))
    sheet.append(["007", dt.datetime(2024, 1, 1), "usual_care", 6.5])
    sheet.append([])
    sheet.append(["007", dt.datetime(2024, 1, 8, 10, 30), "usual_care", 7])
    path = tmp_path / "log.xlsx"
    book.save(path)
    raw = read_log(path, ReadOptions(sheet="visits"))
    assert raw.format == "xlsx"
    assert raw.lines.tolist() == [2, 4]
    assert raw.cells["patient_id"].tolist() == ["007", "007"]
    assert raw.cells["visit_date"].tolist() == ["2024-01-01", "2024-01-08 10:30:00"]
    assert raw.cells["pain_score"].tolist() == ["6.5", "7"]
    assert read_log(path).header == HEADER.split(",")  # default: first sheet
    with pytest.raises(InputError, match="no sheet 'missing'"):
        read_log(path, ReadOptions(sheet="missing"))


def test_parquet_is_read_as_text(tmp_path):
    frame = pd.DataFrame({
        "patient_id": ["007", "008"],
        "visit_date": pd.to_datetime(["2024-01-01", "2024-01-08"]),
        "intervention": ["usual_care", "orthotics"],
        "pain_score": [6.5, np.nan],
        "episodes": pd.array([1, None], dtype="Int64"),
    })
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    raw = read_log(path)
    assert raw.format == "parquet"
    assert raw.lines.tolist() == [2, 3]
    assert raw.cells.to_dict("list") == {
        "patient_id": ["007", "008"], "visit_date": ["2024-01-01", "2024-01-08"],
        "intervention": ["usual_care", "orthotics"], "pain_score": ["6.5", ""],
        "episodes": ["1", ""]}
