"""Malformed clinic logs, one distinct fault each, and what the suite must do with them.

Every case is a small log built from the same valid base (six patients, three visits each, all
contract columns) with one fault put in: an encoding, a structural fault, a key, a value, a
spreadsheet formula, a direct identifier, or a damaged file of another format. Each case says
what must happen:

* ``refused`` -- exit 2, ``validation_report.csv`` lists exactly the expected failures (file
  line, file column, check);
* ``unreadable`` -- exit 2, an :class:`~analysis.errors.InputError` message naming the line (when
  there is one), nothing written;
* ``identifier`` -- exit 2, the identifying column named, its values never echoed;
* ``accepted`` -- valid input that looks like a fault (a byte-order mark, a declared encoding,
  ids with leading zeros, formula-like clinic ids): validation passes and the values round-trip.

The million-row log is not in this list; :func:`write_million_rows` writes it on demand.

Run as a script to write every case into a folder (``python generate_bad_logs.py OUT``): each
case gets ``<name>.<ext>`` and ``<name>.yaml`` (its run config) and ``cases.json`` lists them.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

HEADER = ["patient_id", "clinic_id", "visit_date", "intervention", "pain_score", "episodes",
          "exposure_days", "strength", "foot_posture_index", "age_band", "sex"]
_ARMS = ["usual_care", "deep_tissue_massage", "orthotics", "usual_care", "foot_massage",
         "deep_tissue_massage"]


def base_rows() -> list[list[str]]:
    """Six patients (P01..P06) with three weekly visits each: lines 2..19 of the file."""
    rows = []
    for i in range(6):
        start = dt.date(2024, 1, 1) + dt.timedelta(days=3 * i)
        for j in range(3):
            rows.append([f"P{i + 1:02d}", f"C{i % 2 + 1}", str(start + dt.timedelta(weeks=j)),
                         _ARMS[i], str(6 - j + i % 3), str(j % 2), "14" if j == 0 else "7",
                         f"{240 + 5 * i + j:.1f}", str(i - 2), ["35-54", "55-74"][i % 2],
                         "FM"[i % 2]])
    return rows


def line_of(row: int) -> int:
    """File line of base row ``row`` (0-based): the header is line 1."""
    return row + 2


def to_csv(header, rows, delimiter=",", newline="\n") -> str:
    return newline.join(delimiter.join(r) for r in [header] + rows) + newline


def with_cell(row: int, column: str, value: str, header=None) -> str:
    """The base log with one cell changed."""
    header = header or HEADER
    rows = base_rows()
    rows[row][header.index(column)] = value
    return to_csv(header, rows)


def with_column(name: str, values, at_end=True) -> str:
    """The base log with an extra column (``values`` one per row, or a function of the row)."""
    rows = base_rows()
    for i, r in enumerate(rows):
        r.append(values(i) if callable(values) else values[i % len(values)])
    return to_csv(HEADER + [name], rows)


@dataclass
class Case:
    """One malformed (or valid but odd-looking) log and the outcome it must have."""

    name: str
    group: str  # encoding | structure | keys | values | formula | identifier | format
    fault: str  # the fault, in words
    outcome: str  # refused | unreadable | identifier | accepted
    data: bytes | None = None  # file content; None: written by `writer`
    suffix: str = ".csv"
    config: dict = field(default_factory=dict)
    expect: list = field(default_factory=list)  # refused: [(line, file column, check)]
    line: int | None = None  # unreadable: the line the message must name
    words: str = ""  # a phrase the message must contain
    column: str = ""  # identifier: the column that must be named
    secret: str = ""  # identifier: a value that must never be echoed
    writer: str = ""  # name of a function below that writes the file (xlsx, parquet)

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write the log and its run config into ``folder``; return (log, config)."""
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / f"{self.name}{self.suffix}"
        if self.writer:
            WRITERS[self.writer](log)
        elif self.data is not None:
            log.write_bytes(self.data)
        config = folder / f"{self.name}.yaml"
        raw = {"name": self.name, "data": log.name, **self.config}
        config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
        return log, config


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _write_xlsx_with_fault(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for i, r in enumerate(base_rows()):
        values = list(r)
        if i == 4:
            values[HEADER.index("pain_score")] = "12"
        sheet.append(values)
    book.save(path)


def _write_parquet_with_fault(path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(base_rows(), columns=HEADER)
    frame.loc[7, "episodes"] = "-3"
    frame.to_parquet(path, index=False)


WRITERS = {"xlsx_fault": _write_xlsx_with_fault, "parquet_fault": _write_parquet_with_fault}


def _today_plus(days: int) -> str:
    return str(dt.date.today() + dt.timedelta(days=days))


def cases() -> list[Case]:
    """Every case: at least 60 distinct faults plus the valid look-alikes."""
    P, L = "pain_score", line_of
    out: list[Case] = []

    def refused(name, group, fault, text, expect, **kw):
        out.append(Case(name, group, fault, "refused", _utf8(text) if isinstance(text, str)
                        else text, expect=expect, **kw))

    def unreadable(name, group, fault, data, line=None, words="", **kw):
        out.append(Case(name, group, fault, "unreadable", data, line=line, words=words, **kw))

    def identifier(name, fault, column, values, secret, by_name=False):
        if column == "patient_id":  # the id column itself, one value per patient
            rows = base_rows()
            for i, r in enumerate(rows):
                r[0] = values[i // 3]
            text = to_csv(HEADER, rows)
        else:
            text = with_column(column, values)
        out.append(Case(name, "identifier", fault, "identifier", _utf8(text), column=column,
                        secret=secret, words="column name" if by_name else ""))

    def accepted(name, group, fault, data, **kw):
        out.append(Case(name, group, fault, "accepted", data, **kw))

    base = to_csv(HEADER, base_rows())
    # P02's clinic (all three visits: one patient id belongs to one clinic) is "Zürich".
    latin_row = base.replace("P02,C2,", "P02,Zürich,")

    # ------------------------------------------------------------------ encodings
    accepted("bom_undeclared", "encoding", "UTF-8 byte-order mark, no encoding declared",
             codecs.BOM_UTF8 + _utf8(base))
    accepted("bom_declared_utf8", "encoding", "UTF-8 byte-order mark, read.encoding utf-8",
             codecs.BOM_UTF8 + _utf8(base), config={"read": {"encoding": "utf-8"}})
    accepted("latin1_declared", "encoding", "Latin-1 bytes with read.encoding latin-1",
             latin_row.encode("latin-1"), config={"read": {"encoding": "latin-1"}})
    accepted("utf16_declared", "encoding", "UTF-16 with read.encoding utf-16",
             base.encode("utf-16"), config={"read": {"encoding": "utf-16"}})
    unreadable("bom_declared_latin1", "encoding", "UTF-8 byte-order mark but latin-1 declared",
               codecs.BOM_UTF8 + _utf8(base), words="byte-order mark",
               config={"read": {"encoding": "latin-1"}})
    unreadable("utf16_le_undeclared", "encoding", "UTF-16 LE with BOM, not declared",
               codecs.BOM_UTF16_LE + base.encode("utf-16-le"), words="UTF-16")
    unreadable("utf16_be_undeclared", "encoding", "UTF-16 BE with BOM, not declared",
               codecs.BOM_UTF16_BE + base.encode("utf-16-be"), words="UTF-16")
    unreadable("utf16_no_bom", "encoding", "UTF-16 LE without BOM (NUL bytes)",
               base.encode("utf-16-le"), line=1, words="NUL byte")
    unreadable("latin1_undeclared", "encoding", "Latin-1 byte (0xFC) in a UTF-8 file",
               latin_row.encode("latin-1"), line=L(3), words="0xFC")
    unreadable("cp1252_undeclared", "encoding", "Windows-1252 quote (0x92) in a UTF-8 file",
               with_cell(9, "clinic_id", "St’Ives").encode("cp1252"), line=L(9), words="0x92")
    unreadable("nul_byte", "encoding", "a NUL byte inside a cell",
               _utf8(with_cell(12, "clinic_id", "C\x001")), line=L(12), words="NUL byte")
    unreadable("truncated_utf8", "encoding", "file ends inside a multi-byte character",
               _utf8(base) + "é".encode("utf-8")[:1], line=len(base_rows()) + 2,
               words="cannot be decoded")

    # ------------------------------------------------------------------ structure
    rows = base_rows()
    rows[5][HEADER.index(P)] = "6,5"
    refused("semicolon_decimal_comma", "structure", "';' delimiter with a decimal comma",
            to_csv(HEADER, rows, delimiter=";"), [(L(5), P, "decimal_comma")])
    refused("tab_decimal_comma", "structure", "tab delimiter with a decimal comma",
            to_csv(HEADER, rows, delimiter="\t"), [(L(5), P, "decimal_comma")])
    refused("pipe_decimal_comma", "structure", "'|' delimiter with a thousands point and comma",
            to_csv(HEADER, [r if i != 5 else r[:4] + ["1.234,5"] + r[5:]
                            for i, r in enumerate(base_rows())], delimiter="|"),
            [(L(5), P, "decimal_comma")])
    refused("comma_file_quoted_decimal_comma", "structure", 'a quoted "6,5" in a comma file',
            with_cell(5, P, '"6,5"'), [(L(5), P, "type")])
    rows = base_rows()
    rows[8] = ";".join(rows[8]).split(",")  # one row written with the other delimiter
    refused("mixed_delimiters", "structure", "one row uses ';' in a ',' file",
            to_csv(HEADER, rows), [(L(8), "clinic_id", "short_row")])
    refused("declared_wrong_delimiter", "structure", "read.delimiter ';' on a ',' file",
            base, [(1, "intervention", "missing_column"), (1, "patient_id", "missing_column"),
                   (1, "visit_date", "missing_column")], config={"read": {"delimiter": ";"}})
    rows = base_rows()
    rows[10] = rows[10][:7]
    refused("short_row", "structure", "a row with fewer fields than the header",
            to_csv(HEADER, rows), [(L(10), "strength", "short_row")])
    refused("long_row", "structure", "an unquoted comma inside a value",
            with_cell(11, "clinic_id", "C1,annex"), [(L(11), "(field 12)", "long_row")])
    refused("duplicate_header", "structure", "the pain_score column twice",
            to_csv(HEADER[:-1] + [P], [r[:-1] + [r[4]] for r in base_rows()]),
            [(1, P, "duplicate_header")])
    refused("empty_file", "structure", "0 bytes", b"", [(1, "", "empty_file")])
    refused("blank_lines_only", "structure", "only blank lines", "\n\n  \n\r\n",
            [(1, "", "empty_file")])
    refused("header_only", "structure", "a header and no rows", to_csv(HEADER, []),
            [(1, "", "no_data_rows")])
    rows = [r + ['"North\nwing"' if i < 4 else "South"] for i, r in enumerate(base_rows())]
    rows[10][HEADER.index(P)] = "11"
    # Rows 0-3 span two lines each, so row 10 starts on line 2 + 10 + 4.
    refused("quoted_newlines", "structure", "quoted newlines in an ignored column; a fault after "
            "them is reported at its own line", to_csv(HEADER + ["site_label"], rows),
            [(16, P, "out_of_range")])
    refused("crlf_endings", "structure", "CRLF line endings, value fault on line 9",
            to_csv(HEADER, [r if i != 7 else r[:4] + ["-2"] + r[5:]
                            for i, r in enumerate(base_rows())], newline="\r\n"),
            [(L(7), P, "out_of_range")])
    refused("cr_only_endings", "structure", "old Mac CR line endings, value fault on line 9",
            to_csv(HEADER, [r if i != 7 else r[:4] + ["-2"] + r[5:]
                            for i, r in enumerate(base_rows())], newline="\r"),
            [(L(7), P, "out_of_range")])
    unreadable("unclosed_quote", "structure", "a quote left open to the end of the file",
               _utf8(with_cell(15, "clinic_id", '"C1')), line=L(15), words="quote")
    refused("missing_intervention_column", "structure", "no intervention column",
            to_csv([h for h in HEADER if h != "intervention"],
                   [r[:3] + r[4:] for r in base_rows()]), [(1, "intervention", "missing_column")])
    refused("no_visit_key", "structure", "neither visit_date nor time",
            to_csv([h for h in HEADER if h != "visit_date"],
                   [r[:2] + r[3:] for r in base_rows()]), [(1, "visit_date", "missing_column")])
    refused("mapping_to_absent_column", "structure", "columns: maps pain_score to a missing column",
            base, [(1, "nprs", "missing_column")], config={"columns": {P: "nprs"}})
    refused("episodes_without_exposure", "structure", "episodes without an exposure_days column",
            to_csv([h for h in HEADER if h != "exposure_days"],
                   [r[:6] + r[7:] for r in base_rows()]), [(1, "exposure_days", "missing_column")])

    # ------------------------------------------------------------------ keys
    rows = base_rows()
    rows.insert(2, list(rows[1]))
    refused("duplicate_visit", "keys", "the same patient and date twice", to_csv(HEADER, rows),
            [(4, "visit_date", "duplicate_visit")])
    rows = base_rows()
    rows[13][0] = rows[0][0]
    rows[13][2] = rows[1][2]
    refused("duplicate_visit_far_apart", "keys", "a repeated patient-date pair 13 rows later "
            "(also back in time for that patient)", to_csv(HEADER, rows),
            [(L(13), "visit_date", "duplicate_visit"), (L(13), "visit_date", "time_order")])
    time_header = ["time" if h == "visit_date" else h for h in HEADER]
    rows = base_rows()
    for i, r in enumerate(rows):
        r[2] = str(i % 3)  # weeks 0, 1, 2
    rows[5][2] = rows[4][2]
    refused("duplicate_time", "keys", "the same patient and time twice (time column)",
            to_csv(time_header, rows), [(L(5), "time", "duplicate_visit")])
    refused("empty_patient_id", "keys", "an empty patient_id", with_cell(6, "patient_id", ""),
            [(L(6), "patient_id", "missing")])
    refused("blank_patient_id", "keys", "a patient_id of spaces only",
            with_cell(6, "patient_id", "   "), [(L(6), "patient_id", "missing")])
    arm_rows = [r + [r[3]] for r in base_rows()]
    arm_rows[7][-1] = "orthotics" if arm_rows[7][-1] != "orthotics" else "usual_care"
    refused("arm_changes", "keys", "the arm column changes within a patient",
            to_csv(HEADER + ["arm"], arm_rows), [(L(7), "arm", "arm_changes")],
            config={"models": {"arm_column": "arm"}})
    rows = base_rows()
    for r in rows:
        r[0] = {"P01": "007", "P02": "0042", "P03": "00000003"}.get(r[0], r[0])
    accepted("leading_zero_ids", "keys", "ids with leading zeros (must stay text)",
             _utf8(to_csv(HEADER, rows)))

    # ------------------------------------------------------------------ values
    for name, column, value, check in [
        ("nan_pain", P, "NaN", "not_finite"),
        ("nan_lower_pain", P, "nan", "not_finite"),
        ("inf_strength", "strength", "inf", "not_finite"),
        ("minus_infinity_exposure", "exposure_days", "-Infinity", "not_finite"),
        ("overflow_strength", "strength", "1e400", "not_finite"),
        ("na_text_pain", P, "NA", "type"),
        ("null_text_episodes", "episodes", "null", "type"),
        ("dash_pain", P, "-", "type"),
        ("words_pain", P, "5 points", "type"),
        ("hex_pain", P, "0x5", "type"),
        ("fullwidth_digit_pain", P, "５", "type"),
        ("pain_above_scale", P, "11", "out_of_range"),
        ("pain_below_scale", P, "-0.5", "out_of_range"),
        ("fpi_above_scale", "foot_posture_index", "13", "out_of_range"),
        ("fpi_fraction", "foot_posture_index", "2.5", "not_integer"),
        ("negative_episodes", "episodes", "-1", "negative"),
        ("fractional_episodes", "episodes", "1.5", "not_integer"),
        ("zero_exposure", "exposure_days", "0", "not_positive"),
        ("negative_strength", "strength", "-250", "not_positive"),
        ("exposure_missing", "exposure_days", "", "exposure_missing"),
        ("date_1899", "visit_date", "1899-12-31", "date_range"),
        ("date_1066", "visit_date", "1066-10-14", "date_range"),
        ("date_year_2999", "visit_date", "2999-01-01", "future_date"),
        ("date_tomorrow", "visit_date", _today_plus(1), "future_date"),
        ("date_feb_30", "visit_date", "2024-02-30", "date_parse"),
        ("date_day_first", "visit_date", "16/01/2024", "date_parse"),
        ("date_bad_time", "visit_date", "2024-01-16T25:00", "date_parse"),
        ("empty_visit_date", "visit_date", "", "missing"),
        ("empty_intervention", "intervention", "", "missing"),
        ("unknown_intervention", "intervention", "reiki", "unknown_label"),
        ("empty_clinic_id", "clinic_id", "", "missing"),
    ]:
        # Row 14 is patient P05's third visit (2024-01-27): dates stay in order unless changed.
        expect = [(L(14), column, check)]
        if value == "1899-12-31":  # a real date, and earlier than the patient's previous visit
            expect.append((L(14), column, "time_order"))
        refused(name, "values", f"{column} = {value!r}", with_cell(14, column, value), expect)
    rows = base_rows()
    rows[9][2], rows[10][2] = rows[10][2], rows[9][2]
    refused("visits_back_in_time", "values", "a patient's visit earlier than the row before",
            to_csv(HEADER, rows), [(L(10), "visit_date", "time_order")])
    refused("mixed_offsets_back_in_time", "values",
            "dates with mixed UTC offsets, one going back in time",
            with_cell(2, "visit_date", "2024-01-07T10:00+05:00").replace(
                "P01,C1,2024-01-08,", "P01,C1,2024-01-08T09:00-03:00,"),
            [(L(2), "visit_date", "time_order")])

    # ------------------------------------------------------------------ formula injection
    refused("formula_intervention", "formula", "an intervention cell starting with '='",
            with_cell(4, "intervention", "=cmd|' /C calc'!A0"),
            [(L(4), "intervention", "unknown_label")])
    for name, value in [("formula_equals_clinic", '=HYPERLINK("http://x.example","click")'),
                        ("formula_plus_clinic", "+1+cmd|' /C calc'!A0"),
                        ("formula_minus_clinic", "-2+3+cmd|' /C calc'!A0"),
                        ("formula_at_clinic", "@SUM(1+9)*cmd|' /C calc'!A0"),
                        ("formula_tab_clinic", "\t=1+1")]:
        cell = '"' + value.replace('"', '""') + '"'
        accepted(name, "formula", f"clinic_id {value!r}: accepted, escaped in every CSV",
                 _utf8(to_csv(HEADER, [r if r[1] != "C2" else r[:1] + [cell] + r[2:]
                                       for r in base_rows()])), secret=value)

    # ------------------------------------------------------------------ identifiers
    n = len(base_rows())

    def cycle(values):
        return lambda i: values[i % len(values)]

    identifier("id_email", "e-mail addresses in a contact column", "contact",
               cycle(["ann.smith@example.org", "bo@example.com"]), "ann.smith@example.org")
    identifier("id_email_in_patient_id", "an e-mail address used as patient_id", "patient_id",
               [f"p{i}.jones@example.org" for i in range(6)], "p5.jones@example.org")
    identifier("id_nhs_number", "NHS numbers (valid check digit)", "ref",
               cycle(["943 476 5919", "9434765870"]), "943 476 5919")
    identifier("id_ssn", "US social security numbers", "ref2",
               cycle(["123-45-6789", "987-65-4321"]), "123-45-6789")
    identifier("id_zip_plus4", "US ZIP+4 codes", "area", cycle(["90210-1234", "10001-0001"]),
               "90210-1234")
    identifier("id_phone_uk", "UK phone numbers", "contact_no",
               cycle(["020 7946 0958", "07700 900123"]), "020 7946 0958")
    identifier("id_phone_international", "international phone numbers", "contact_no2",
               cycle(["+44 20 7946 0958", "+1 212 555 0123"]), "+44 20 7946 0958")
    identifier("id_phone_us", "US phone numbers", "callback",
               cycle(["(212) 555-0123", "212-555-0199"]), "(212) 555-0123")
    identifier("id_postcode", "full UK postcodes", "area2", cycle(["SW1A 1AA", "M1 1AE"]),
               "SW1A 1AA")
    identifier("id_street_address", "street addresses", "where",
               cycle(["12 High Street", "3a Mill Lane"]), "12 High Street")
    identifier("id_date_of_birth", "full dates of birth in age_band", "age_group",
               cycle(["1961-04-02", "1975-11-30"]), "1961-04-02")
    identifier("id_free_text", "free-text sentences in an extra column", "observations",
               lambda i: f"patient {i} reported sharp pain after the long walk", "sharp pain")
    identifier("id_person_name_column", "people's names in an extra column", "who",
               cycle(["Anna Schmidt", "John Smith", "Mary O'Brien"]), "Anna Schmidt")
    identifier("id_person_name_patient_id", "people's names used as patient_id", "patient_id",
               ["Anna Schmidt", "John Smith", "Mary Jones", "Peter Brown", "Lisa Gray",
                "Tom Hardy"], "Anna Schmidt")
    for word, column in [("surname", "Surname"), ("first name", "first_name"),
                         ("e-mail (word mail)", "mail"), ("phone", "phone"),
                         ("telephone (German)", "Telefon"), ("fax", "fax"),
                         ("address", "home_address"), ("street (German)", "Straße"),
                         ("postcode", "postcode"), ("zip", "zip"), ("NHS", "NHS"),
                         ("SSN", "ssn"), ("insurance", "insurance_no"), ("MRN", "mrn"),
                         ("date of birth", "DateOfBirth"), ("DOB", "dob"),
                         ("notes", "notes"), ("comment", "Comment"), ("remark", "remarks"),
                         ("Bemerkung", "Bemerkung"), ("initials", "initials"),
                         ("Vorname", "Vorname")]:
        identifier("id_name_" + re.sub(r"[^a-z0-9]+", "_", column.lower()),
                   f"a column named for a {word}", column,
                   cycle(["x1", "x2"]), "", by_name=True)

    # ------------------------------------------------------------------ other formats
    refused("xlsx_out_of_range", "format", "an .xlsx sheet with pain 12 on sheet row 6", None,
            [(L(4), P, "out_of_range")], suffix=".xlsx", writer="xlsx_fault")
    refused("parquet_negative_episodes", "format", "a Parquet file with episodes -3", None,
            [(L(7), "episodes", "negative")], suffix=".parquet", writer="parquet_fault")
    unreadable("xlsx_damaged", "format", "random bytes named .xlsx", b"PK\x03\x04not a zip",
               suffix=".xlsx", words="cannot read .xlsx")
    unreadable("parquet_damaged", "format", "random bytes named .parquet", b"PAR1garbage",
               suffix=".parquet", words="cannot read Parquet")
    unreadable("old_xls", "format", "an old .xls workbook", b"\xd0\xcf\x11\xe0", suffix=".xls",
               words=".xls")
    unreadable("unknown_suffix", "format", "a .json file", b"{}", suffix=".json",
               words="unknown file type")
    unreadable("missing_file", "format", "the config names a file that does not exist", None,
               words="file not found")
    assert len({c.name for c in out}) == len(out), "case names must be unique"
    assert n == 18  # line_of() and the expectations above assume the base's 18 rows
    return out


def write_million_rows(path: Path, fault_value: str = "11") -> tuple[int, int]:
    """A 1,000,000-row log (100,000 patients x 10 weeks) with one bad pain score on its last row.

    Returns
    -------
    (line, n_rows) : the faulty row's file line and the number of data rows.
    """
    n_patients, n_visits = 100_000, 10
    arms = ["usual_care", "deep_tissue_massage", "orthotics", "foot_massage"]
    start = dt.date(2024, 1, 1)
    dates = [str(start + dt.timedelta(weeks=w)) for w in range(n_visits)]
    buffer = io.StringIO()
    buffer.write(",".join(HEADER) + "\n")
    for p in range(n_patients):
        arm, clinic = arms[p % 4], f"C{p % 7}"
        band, sex = ["35-54", "55-74"][p % 2], "FM"[p % 2]
        buffer.write("".join(
            f"Q{p:06d},{clinic},{d},{arm},{(p + w) % 11},{w % 3},7,{200 + w}.5,{p % 9 - 4},"
            f"{band},{sex}\n" for w, d in enumerate(dates)))
    text = buffer.getvalue()
    head, last = text[:-1].rsplit("\n", 1)
    cells = last.split(",")
    cells[4] = fault_value
    path.write_text(head + "\n" + ",".join(cells) + "\n", encoding="utf-8")
    n_rows = n_patients * n_visits
    return n_rows + 1, n_rows


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python generate_bad_logs.py OUT_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    index = []
    for case in cases():
        log, config = case.write(folder)
        record = {k: v for k, v in asdict(case).items() if k not in ("data",)}
        index.append({**record, "log": log.name, "config": config.name})
    (folder / "cases.json").write_text(json.dumps(index, indent=1, ensure_ascii=False))
    print(f"wrote {len(index)} cases to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
