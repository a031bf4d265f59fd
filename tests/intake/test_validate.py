"""The data contract: every validator is fed bad input and its report row (line, column, check,
message) is checked; a valid log comes back as the documented long table."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.config import parse_config
from analysis.errors import ConfigError, ValidationFailed
from analysis.intake.validate import REPORT_COLUMNS, validate_log, write_validation_failure

HEADER = ("patient_id,visit_date,intervention,pain_score,episodes,exposure_days,strength,"
          "foot_posture_index")
GOOD = "P1,2024-01-01,usual_care,5,1,7,120,3"


def write(tmp_path, text: str, name: str = "log.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def config(path, **extra):
    return parse_config({"name": "t", "data": str(path), **extra})


def failures_of(tmp_path, text: str, **extra) -> pd.DataFrame:
    path = write(tmp_path, text)
    with pytest.raises(ValidationFailed) as info:
        validate_log(config(path, **extra))
    report = info.value.report
    assert list(report.columns) == REPORT_COLUMNS
    return report


def only_failure(tmp_path, text: str, **extra) -> dict:
    report = failures_of(tmp_path, text, **extra)
    assert len(report) == 1, report.to_string()
    return report.iloc[0].to_dict()


# --------------------------------------------------------------------- one validator each

def row(**changes) -> str:
    """A second visit (patient P2, 2024-01-08) with some cells changed."""
    fields = dict(zip(HEADER.split(","), GOOD.split(",")))
    fields.update(patient_id="P2", visit_date="2024-01-08")
    fields.update(changes)
    return ",".join(fields.values())


@pytest.mark.parametrize("changes, column, check, words", [
    ({"pain_score": "abc"}, "pain_score", "type", "must be a number"),
    ({"pain_score": "11"}, "pain_score", "out_of_range", "between 0 and 10"),
    ({"pain_score": "-0.5"}, "pain_score", "out_of_range", "between 0 and 10"),
    ({"episodes": "-1"}, "episodes", "negative", "0 or more"),
    ({"episodes": "1.5"}, "episodes", "not_integer", "whole number"),
    ({"pain_score": "NaN"}, "pain_score", "not_finite", "finite"),
    ({"strength": "inf"}, "strength", "not_finite", "finite"),
    ({"strength": "1e400"}, "strength", "not_finite", "finite"),
    ({"exposure_days": "0"}, "exposure_days", "not_positive", "greater than 0"),
    ({"strength": "-2"}, "strength", "not_positive", "greater than 0"),
    ({"foot_posture_index": "13"}, "foot_posture_index", "out_of_range", "between -12 and 12"),
    ({"foot_posture_index": "2.5"}, "foot_posture_index", "not_integer", "whole number"),
    ({"exposure_days": ""}, "exposure_days", "exposure_missing", "where episodes is given"),
    ({"visit_date": "08/01/2024"}, "visit_date", "date_parse", "YYYY-MM-DD"),
    ({"visit_date": "1899-12-31"}, "visit_date", "date_range", "before 1900"),
    ({"visit_date": "1066-10-14"}, "visit_date", "date_range", "before 1900"),
    ({"visit_date": "2999-01-01"}, "visit_date", "future_date", "future"),
    ({"visit_date": "2200-01-01"}, "visit_date", "future_date", "future"),
    ({"patient_id": "P1", "visit_date": "2024-01-01"}, "visit_date", "duplicate_visit",
     "first on line 2"),
    ({"patient_id": ""}, "patient_id", "missing", "required"),
    ({"intervention": ""}, "intervention", "missing", "required"),
    ({"visit_date": ""}, "visit_date", "missing", "required"),
])
def test_each_validator_reports_line_column_value(tmp_path, changes, column, check, words):
    failure = only_failure(tmp_path, f"{HEADER}\n{GOOD}\n{row(**changes)}\n")
    where = (failure["line"], failure["column"], failure["check"], failure["value"])
    assert where == (3, column, check, changes[column])
    assert words in failure["message"]


def test_unknown_label_lists_allowed_set_and_points_to_labels(tmp_path):
    failure = only_failure(tmp_path, f"{HEADER}\n{GOOD}\n{row(intervention='reiki')}\n")
    where = (failure["line"], failure["column"], failure["check"], failure["value"])
    assert where == (3, "intervention", "unknown_label", "reiki")
    assert "usual_care" in failure["message"] and "deep_tissue_massage" in failure["message"]
    assert "labels:" in failure["message"]


def test_decimal_comma_only_when_delimiter_is_not_comma(tmp_path):
    text = HEADER.replace(",", ";") + "\nP1;2024-01-01;usual_care;6,5;1;7;120,5;3\n"
    report = failures_of(tmp_path, text)
    assert report[["line", "column", "check", "value"]].values.tolist() == [
        [2, "pain_score", "decimal_comma", "6,5"], [2, "strength", "decimal_comma", "120,5"]]
    assert "6.5" in report["message"].iloc[0]  # the hint shows the point form
    comma = only_failure(tmp_path, f'{HEADER}\nP1,2024-01-01,usual_care,"6,5",1,7,120,3\n')
    assert comma["check"] == "type"


def test_visits_going_back_in_time_name_the_previous_line(tmp_path):
    text = (f"{HEADER}\n{row(patient_id='P1', visit_date='2024-02-01')}\n{row()}\n"
            f"{row(patient_id='P1', visit_date='2024-01-15')}\n")
    failure = only_failure(tmp_path, text)
    assert (failure["line"], failure["column"], failure["check"]) == (4, "visit_date", "time_order")
    assert "previous visit on line 2" in failure["message"]


def test_missing_required_columns_and_broken_mapping(tmp_path):
    report = failures_of(tmp_path, "pain_score\n5\n")
    assert sorted(report["column"]) == ["intervention", "patient_id", "visit_date"]
    assert set(report["check"]) == {"missing_column"} and set(report["line"]) == {1}
    assert "columns:" in report["message"].iloc[0]
    failure = only_failure(tmp_path, f"{HEADER}\n{GOOD}\n", columns={"strength": "Kraft"})
    assert (failure["column"], failure["check"]) == ("Kraft", "missing_column")
    assert "'strength' to 'Kraft'" in failure["message"]


def test_episodes_without_exposure_column(tmp_path):
    text = "patient_id,visit_date,intervention,episodes\nP1,2024-01-01,usual_care,2\n"
    failure = only_failure(tmp_path, text)
    where = (failure["line"], failure["column"], failure["check"])
    assert where == (1, "exposure_days", "missing_column")


@pytest.mark.parametrize("text, check", [
    ("", "empty_file"),
    (HEADER + "\n", "no_data_rows"),
    (HEADER + ",pain_score\n" + GOOD + ",5\n", "duplicate_header"),
])
def test_file_level_faults(tmp_path, text, check):
    failure = only_failure(tmp_path, text)
    assert (failure["line"], failure["check"]) == (1, check)


def test_ten_different_faults_are_all_reported_at_once(tmp_path):
    text = "\n".join([
        HEADER,
        GOOD,
        "P1,2024-01-08,usual_care,12,1,7,120,3",             # 3 pain out of range
        "P1,2024-01-15,usual_care,5,-2,7,120,3",             # 4 negative count
        "P1,2024-01-22,usual_care,5,1,7,120",                # 5 short row
        "P2,2024-01-01,reiki,5,1,7,120,3",                   # 6 unknown label
        "P2,2024-01-08,usual_care,five,1,7,120,3",           # 7 not a number
        "P2,2024-13-45,usual_care,5,1,7,120,3",              # 8 unparseable date
        "P2,2024-01-22,usual_care,5,1,7,0,3",                # 9 strength not positive
        "P9,2024-01-01,usual_care,5,1,7,120,3,oops",         # 10 long row
        "P3,2024-01-01,usual_care,5,1.5,7,120,3",            # 11 non-integer count
        "P3,2024-01-01,usual_care,5,1,7,120,3",              # 12 duplicate visit
    ]) + "\n"
    report = failures_of(tmp_path, text)
    found = set(map(tuple, report[["line", "column", "check"]].values.tolist()))
    assert found == {
        (3, "pain_score", "out_of_range"), (4, "episodes", "negative"),
        (5, "foot_posture_index", "short_row"), (6, "intervention", "unknown_label"),
        (7, "pain_score", "type"), (8, "visit_date", "date_parse"),
        (9, "strength", "not_positive"), (10, "(field 9)", "long_row"),
        (11, "episodes", "not_integer"), (12, "visit_date", "duplicate_visit"),
    }
    assert report["line"].is_monotonic_increasing


def test_arm_column_rules(tmp_path):
    head = "patient_id,visit_date,intervention,arm"
    text = (f"{head}\nP1,2024-01-01,usual_care,Kontrolle\nP1,2024-01-08,usual_care,orthotics\n"
            "P2,2024-01-01,orthotics,placebo\n")
    report = failures_of(tmp_path, text, models={"arm_column": "arm"},
                         labels={"arm": {"Kontrolle": "usual_care"}})
    assert report[["line", "column", "check"]].values.tolist() == [
        [3, "arm", "arm_changes"], [4, "arm", "unknown_label"]]
    missing = failures_of(tmp_path, f"{HEADER}\n{GOOD}\n", models={"arm_column": "arm"})
    assert missing[["line", "column", "check"]].values.tolist() == [[1, "arm", "missing_column"]]
    with pytest.raises(ConfigError, match="arm_column"):
        validate_log(config(write(tmp_path, f"{HEADER}\n{GOOD}\n"), models={"arm_column": "group"}))


def test_scales_from_config(tmp_path):
    text = f"{HEADER}\n{row(pain_score='55')}\n{row(pain_score='101', visit_date='2024-01-15')}\n"
    failure = only_failure(tmp_path, text, scales={"pain_score": {"min": 0, "max": 100}})
    assert (failure["line"], failure["check"]) == (3, "out_of_range")
    assert "between 0 and 100" in failure["message"]


def test_unknown_labels_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="labels"):
        validate_log(config(write(tmp_path, f"{HEADER}\n{GOOD}\n"),
                            labels={"Behandlung": {"a": "b"}}))


# --------------------------------------------------------------------- valid logs

def test_valid_log_becomes_the_contract_table(tmp_path):
    text = (f"{HEADER},age_band,sex,therapist_code\n"
            "007,2024-01-01,orthotics,7,1,7,140,4,35-54,F,T1\n"
            "007,2024-01-08,orthotics,6,2,7,150.5,4,35-54,F,T1\n"
            "010,2024-03-01,usual_care,,0,14,,,18-34,M,T2\n"
            "007,2024-01-29,orthotics,4,,,160,4,35-54,F,T1\n")
    path = write(tmp_path, text)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = validate_log(config(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # success writes nothing
    data = result.data
    assert list(data.columns) == ["patient_id", "clinic_id", "intervention", "week", "visit",
                                  "pain_score", "episodes", "exposure_days", "strength",
                                  "foot_posture_index", "age_band", "sex"]
    assert data["patient_id"].tolist() == ["007", "007", "007", "010"]
    assert data["week"].tolist() == [0.0, 1.0, 4.0, 0.0]  # days since first visit / 7
    assert data["visit"].tolist() == [1, 2, 3, 1]
    assert data["clinic_id"].unique().tolist() == ["all"]
    assert data["pain_score"].isna().tolist() == [False, False, False, True]
    assert str(data["episodes"].dtype) == "float64" and str(data["visit"].dtype) == "int64"
    assert (result.n_rows_read, result.n_rows, result.n_patients) == (4, 4, 2)
    assert result.ignored == ["therapist_code"] and result.dropped == []
    assert result.columns_used["visit_date"] == "visit_date"
    summary = result.summary()
    assert "rows: 4 read, 4 valid; patients: 2" in summary
    assert "'therapist_code'" in summary and "orthotics 3 rows / 1 patients" in summary
    assert "fewer than 11" in summary  # k-anonymity groups below the threshold are listed


@pytest.mark.parametrize("unit, times, weeks", [("days", ["0", "14", "3.5"], [0.0, 2.0, 0.5]),
                                                ("weeks", ["0", "2", "0.5"], [0.0, 2.0, 0.5])])
def test_numeric_time_becomes_week(tmp_path, unit, times, weeks):
    rows = [f"P1,{times[0]},usual_care", f"P1,{times[1]},usual_care", f"P2,{times[2]},usual_care"]
    path = write(tmp_path, "patient_id,time,intervention\n" + "\n".join(rows) + "\n")
    data = validate_log(config(path, time_unit=unit)).data
    assert data["week"].tolist() == weeks


def test_german_log_validates_through_the_config_alone(tmp_path):
    text = ("Pat-Nr;Praxis;Datum;Behandlung;Schmerz (NRS);Fußhaltung;Bemerkung\n"
            "0042;Köln;2024-01-02;Tiefengewebsmassage;6.5;+4;x\n"
            "0042;Köln;2024-01-16;Tiefengewebsmassage;5;+3;x\n"
            "0107;Köln;2024-01-03;Kontrolle;7;-2;x\n")
    path = write(tmp_path, text, encoding="latin-1")
    cfg = config(path, read={"delimiter": ";", "encoding": "latin-1"}, drop=["Bemerkung"],
                 columns={"patient_id": "Pat-Nr", "clinic_id": "Praxis", "visit_date": "Datum",
                          "intervention": "Behandlung", "pain_score": "Schmerz (NRS)",
                          "foot_posture_index": "Fußhaltung"},
                 labels={"intervention": {"Tiefengewebsmassage": "deep_tissue_massage",
                                          "Kontrolle": "usual_care"}})
    result = validate_log(cfg)
    assert result.data["intervention"].tolist() == ["deep_tissue_massage"] * 2 + ["usual_care"]
    assert result.data["patient_id"].tolist() == ["0042", "0042", "0107"]
    assert result.data["clinic_id"].tolist() == ["Köln"] * 3
    assert result.data["foot_posture_index"].tolist() == [4.0, 3.0, -2.0]
    assert result.dropped == ["Bemerkung"] and result.ignored == []


def test_bom_log_validates(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\n{GOOD}\n".encode())
    assert validate_log(config(path)).columns_used["patient_id"] == "patient_id"


def test_xlsx_and_parquet_validate_with_sheet_lines(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.append(["patient_id", "visit_date", "intervention", "pain_score"])
    book.active.append(["007", pd.Timestamp("2024-01-01").to_pydatetime(), "usual_care", 5])
    book.active.append([])
    book.active.append(["007", pd.Timestamp("2024-01-08").to_pydatetime(), "usual_care", 15])
    book.save(tmp_path / "log.xlsx")
    with pytest.raises(ValidationFailed) as info:
        validate_log(config(tmp_path / "log.xlsx"))
    assert info.value.report[["line", "column", "check", "value"]].values.tolist() == [
        [4, "pain_score", "out_of_range", "15"]]
    frame = pd.DataFrame({"patient_id": ["007", "007"], "time": [0.0, 2.0],
                          "intervention": ["usual_care", "usual_care"], "pain_score": [5.0, 4.0]})
    frame.to_parquet(tmp_path / "log.parquet")
    data = validate_log(config(tmp_path / "log.parquet")).data
    assert data["patient_id"].tolist() == ["007", "007"] and data["week"].tolist() == [0.0, 2.0]


# --------------------------------------------------------------------- the report file

def test_report_file_escapes_formulas_and_is_the_only_file(tmp_path):
    path = write(tmp_path, f"{HEADER}\nP1,2024-01-01,=HYPERLINK(1),5,-1,7,120,3\n")
    with pytest.raises(ValidationFailed) as info:
        validate_log(config(path))
    out = tmp_path / "out"
    written = write_validation_failure(info.value, out)
    assert [p.name for p in out.iterdir()] == ["validation_report.csv"] and written.parent == out
    text = written.read_text()
    assert "'=HYPERLINK(1)" in text and ",'-1," in text
    back = pd.read_csv(written, dtype=str)
    assert list(back.columns) == REPORT_COLUMNS and len(back) == 2


def test_summary_is_capped(tmp_path):
    rows = [f"P{i},2024-01-01,usual_care,99,1,7,120,3" for i in range(60)]
    path = write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValidationFailed) as info:
        validate_log(config(path))
    lines = info.value.summary().splitlines()
    assert len(lines) == 51 and lines[-1].strip().startswith("... and 10 more")
    assert lines[0].startswith("  line 2, column 'pain_score': out_of_range")
    assert "60 validation failures" in str(info.value)
