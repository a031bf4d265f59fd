"""Property tests (hypothesis): valid logs always pass and round-trip; one bad cell is always
caught at its own file line and column.

Logs are drawn with interleaved patients, ids with leading zeros, random delimiters, quoting,
byte-order marks, blank lines and quoted newlines in an ignored column, so that the file line of
every row differs from its position. The measurement columns come from a pandera schema's
hypothesis strategy (pain in range, strength > 0, ...), which reaches subnormal and huge floats.
100 examples per property by default; ``pytest -m slow`` runs 1,000.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math

import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.config import DEFAULT_INTERVENTIONS, parse_config
from analysis.errors import ValidationFailed
from analysis.intake.validate import validate_log

DEFAULT = settings(max_examples=100, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(DEFAULT, max_examples=1000)

#: The measurement columns as a pandera schema; its strategy draws valid values.
MEASURES = pa.DataFrameSchema({
    "pain_score": pa.Column(float, pa.Check.in_range(0, 10)),
    "episodes": pa.Column(int, pa.Check.in_range(0, 40)),
    "exposure_days": pa.Column(float, pa.Check.in_range(0.5, 400)),
    "strength": pa.Column(float, pa.Check.gt(0)),
    "foot_posture_index": pa.Column(int, pa.Check.in_range(-12, 12)),
})
COLUMNS = ["patient_id", "clinic_id", "visit_date", "intervention", "pain_score", "episodes",
           "exposure_days", "strength", "foot_posture_index", "age_band", "sex", "site_label"]
CLINICS = ["C1", "007", "north", "Süd", "0"]
SITE_LABELS = ["North\nwing", "South", "", "east, annex", 'the "old" room']


@st.composite
def valid_logs(draw):
    """A valid log: (rows as dicts in file order, dates by patient) plus how to write it."""
    n_patients = draw(st.integers(1, 6))
    ids = draw(st.lists(st.integers(0, 9999), min_size=n_patients, max_size=n_patients,
                        unique=True))
    ids = [f"{i:04d}" for i in ids]  # leading zeros must survive
    visits = {pid: draw(st.integers(1, 4)) for pid in ids}
    # Interleave the patients' visits in a random file order.
    order = draw(st.permutations([pid for pid in ids for _ in range(visits[pid])]))
    dates = {}
    for pid in ids:
        start = draw(st.dates(dt.date(1950, 1, 1), dt.date(2024, 12, 31)))
        gaps = draw(st.lists(st.integers(1, 60), min_size=visits[pid] - 1,
                             max_size=visits[pid] - 1))
        dates[pid] = [start + dt.timedelta(days=sum(gaps[:k])) for k in range(visits[pid])]
    measures = draw(MEASURES.strategy(size=len(order)))
    clinic = {pid: draw(st.sampled_from(CLINICS)) for pid in ids}
    seen: dict[str, int] = {}
    rows = []
    for pos, pid in enumerate(order):
        k = seen.get(pid, 0)
        seen[pid] = k + 1
        m = measures.iloc[pos]
        blank_pain = draw(st.booleans()) and draw(st.booleans())  # a quarter are missing
        rows.append({
            "patient_id": pid, "clinic_id": clinic[pid], "visit_date": dates[pid][k].isoformat(),
            "intervention": draw(st.sampled_from(DEFAULT_INTERVENTIONS)),
            "pain_score": "" if blank_pain else repr(float(m["pain_score"])),
            "episodes": str(int(m["episodes"])), "exposure_days": repr(float(m["exposure_days"])),
            "strength": repr(float(m["strength"])),
            "foot_posture_index": str(int(m["foot_posture_index"])),
            "age_band": draw(st.sampled_from(["18-34", "35-54", ""])),
            "sex": draw(st.sampled_from(["F", "M", ""])),
            "site_label": draw(st.sampled_from(SITE_LABELS)),
        })
    style = {"delimiter": draw(st.sampled_from([",", ";", "\t", "|"])),
             "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
             "bom": draw(st.booleans()), "crlf": draw(st.booleans()),
             "blank_lines": draw(st.lists(st.integers(0, 2), min_size=len(rows),
                                          max_size=len(rows)))}
    return rows, dates, style


def write_log(path, rows, style) -> list[int]:
    """Write the rows; return each row's file line (header = 1) as a person counts lines."""
    buffer = io.StringIO()
    newline = "\r\n" if style["crlf"] else "\n"
    writer = csv.writer(buffer, delimiter=style["delimiter"], quoting=style["quoting"],
                        lineterminator=newline)
    writer.writerow(COLUMNS)
    lines = []
    for row, blanks in zip(rows, style["blank_lines"]):
        buffer.write(newline * blanks)
        lines.append(buffer.getvalue().count("\n") + 1)
        writer.writerow([row[c] for c in COLUMNS])
    data = buffer.getvalue().encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if style["bom"] else b"") + data)
    return lines


def config_for(path):
    return parse_config({"name": "p", "data": str(path)})


def check_round_trip(tmp_path_factory, log):
    rows, dates, style = log
    path = tmp_path_factory.mktemp("prop") / "log.csv"
    write_log(path, rows, style)
    result = validate_log(config_for(path))
    data = result.data
    assert result.n_rows_read == result.n_rows == len(rows)
    assert result.n_patients == len(dates)
    assert set(data["patient_id"]) == set(dates)  # "0042" stays "0042"
    assert result.ignored == ["site_label"]
    for pid, group in data.groupby("patient_id"):
        days = [(d - dates[pid][0]).days / 7 for d in dates[pid]]
        assert group["week"].tolist() == days
        assert group["visit"].tolist() == list(range(1, len(days) + 1))
        given = [r for r in rows if r["patient_id"] == pid]  # file order = time order
        for name in ("pain_score", "exposure_days", "strength", "episodes",
                     "foot_posture_index"):
            expected = [float(r[name]) if r[name] else math.nan for r in given]
            got = group[name].tolist()
            assert all((math.isnan(e) and math.isnan(g)) or e == g
                       for e, g in zip(expected, got)), (name, expected, got)
        assert group["clinic_id"].tolist() == [r["clinic_id"] for r in given]
        assert group["age_band"].tolist() == [r["age_band"] or None for r in given]


@DEFAULT
@given(log=valid_logs())
def test_valid_logs_pass_and_round_trip(tmp_path_factory, log):
    check_round_trip(tmp_path_factory, log)


@pytest.mark.slow
@SLOW
@given(log=valid_logs())
def test_valid_logs_pass_and_round_trip_1000(tmp_path_factory, log):
    check_round_trip(tmp_path_factory, log)


#: One bad value per column, and the checks it may be reported under. Each keeps every other
#: row valid: dates that do not parse (rather than real but misplaced ones) cannot put a later
#: visit out of order.
MUTATIONS = {
    "patient_id": [("", {"missing"}), ("   ", {"missing"})],
    "visit_date": [("2024-02-30", {"date_parse"}), ("1066-10-14", {"date_range"}),
                   ("", {"missing"}), ("16.01.2024", {"date_parse"})],
    "intervention": [("reiki", {"unknown_label"}), ("", {"missing"})],
    "clinic_id": [("", {"missing"})],
    "pain_score": [("10.5", {"out_of_range"}), ("-1", {"out_of_range"}), ("NaN", {"not_finite"}),
                   ("six", {"type"}), ("1e400", {"not_finite"}), ("NA", {"type"})],
    "episodes": [("-1", {"negative"}), ("2.5", {"not_integer"}), ("inf", {"not_finite"})],
    "exposure_days": [("0", {"not_positive"}), ("-7", {"not_positive"}),
                      ("", {"exposure_missing"})],
    "strength": [("0", {"not_positive"}), ("-0.1", {"not_positive"}), ("Infinity", {"not_finite"})],
    "foot_posture_index": [("13", {"out_of_range"}), ("-12.5", {"out_of_range", "not_integer"}),
                           ("0.5", {"not_integer"})],
}


@st.composite
def mutated_logs(draw):
    rows, dates, style = draw(valid_logs())
    position = draw(st.integers(0, len(rows) - 1))
    column = draw(st.sampled_from(sorted(MUTATIONS)))
    value, checks = draw(st.sampled_from(MUTATIONS[column]))
    rows = [dict(r) for r in rows]
    rows[position][column] = value
    if style["delimiter"] == "," and "," in value:
        checks = checks | {"type"}
    return rows, style, position, column, checks


def check_mutation(tmp_path_factory, case):
    rows, style, position, column, checks = case
    path = tmp_path_factory.mktemp("mut") / "log.csv"
    lines = write_log(path, rows, style)
    with pytest.raises(ValidationFailed) as info:
        validate_log(config_for(path))
    report = info.value.report
    line = lines[position]
    assert set(report["line"]) == {line}, report.to_string()
    assert set(report["column"]) == {column}, report.to_string()
    assert set(report["check"]) <= checks and len(report), report.to_string()


@DEFAULT
@given(case=mutated_logs())
def test_one_bad_cell_is_rejected_at_its_file_line(tmp_path_factory, case):
    check_mutation(tmp_path_factory, case)


@pytest.mark.slow
@SLOW
@given(case=mutated_logs())
def test_one_bad_cell_is_rejected_at_its_file_line_1000(tmp_path_factory, case):
    check_mutation(tmp_path_factory, case)
