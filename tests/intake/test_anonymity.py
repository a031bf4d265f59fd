"""The anonymity guard refuses direct identifiers (by column name and by content) without ever
echoing them, and k_anonymity counts distinct patients per quasi-identifier combination."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.config import parse_config
from analysis.errors import IdentifierError
from analysis.intake.anonymity import k_anonymity, name_kind, nhs_check_digit_ok
from analysis.intake.validate import validate_log, write_validation_failure

HEADER = "patient_id,visit_date,intervention,pain_score"
ROWS = ["P1,2024-01-01,usual_care,5", "P1,2024-01-08,usual_care,4", "P2,2024-01-01,orthotics,6",
        "P2,2024-01-08,orthotics,5"]


def log_with(tmp_path, column: str, values: list[str], **extra):
    """A valid log plus one extra column; returns its config."""
    quoted = [f'"{v}"' for v in values]
    text = f"{HEADER},{column}\n" + "\n".join(f"{r},{v}" for r, v in zip(ROWS, quoted)) + "\n"
    path = tmp_path / "log.csv"
    path.write_text(text, encoding="utf-8")
    return parse_config({"name": "t", "data": str(path), **extra})


def refused(cfg) -> IdentifierError:
    with pytest.raises(IdentifierError) as info:
        validate_log(cfg)
    return info.value


def test_email_column_is_refused_by_name_without_echoing_values(tmp_path):
    emails = ["jane.doe@example.org", "jd@example.org", "tom@clinic.example.co.uk", "t@x.org"]
    cfg = log_with(tmp_path, "contact", emails)
    exc = refused(cfg)
    assert exc.findings == [{"column": "contact", "kind": "email", "basis": "content",
                             "lines": [2, 3, 4, 5]}]
    assert "'contact'" in str(exc) and "drop:" in str(exc)
    written = write_validation_failure(exc, tmp_path / "out")
    report = written.read_text()
    for text in (str(exc), exc.summary(), report):
        assert not any(e in text for e in emails)
        assert "example" not in text
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["validation_report.csv"]
    assert pd.read_csv(written)["line"].tolist() == [2, 3, 4, 5]
    # drop: is the only way through
    result = validate_log(log_with(tmp_path, "contact", emails, drop=["contact"]))
    assert result.dropped == ["contact"]


@pytest.mark.parametrize("values, kind", [
    (["+44 20 7946 0958", "", "", ""], "phone"),
    (["07700 900123", "07700 900456", "", ""], "phone"),
    (["(212) 555-0123", "", "", ""], "phone"),
    (["SW1A 1AA", "M1 1AE", "", ""], "postcode"),
    (["90210-1234", "", "", ""], "zip_plus4"),
    (["943 476 5919", "", "", ""], "nhs_number"),
    (["9434765919", "", "", ""], "nhs_number"),
    (["078-05-1120", "", "", ""], "ssn"),
    (["12 High Street", "3a Mill Lane", "", ""], "street_address"),
    (["knee felt much better after the long run", "sore on the stairs again this week",
      "missed last session because of work", "no change since last visit at all"], "free_text"),
    (["Jane Smith", "Tom O'Neil", "Anna-Lena Müller", "Jane Smith"], "person_name"),
])
def test_identifying_content_is_found(tmp_path, values, kind):
    exc = refused(log_with(tmp_path, "extra", values))
    (finding,) = exc.findings
    assert (finding["column"], finding["kind"], finding["basis"]) == ("extra", kind, "content")
    assert finding["lines"][0] == 2
    assert not any(v and v in str(exc) + exc.summary() for v in values)


@pytest.mark.parametrize("values", [
    ["SW1A", "M1", "EC1", "B2"],  # outward codes alone are coarse enough
    ["9434765918", "1234567890", "", ""],  # 10 digits, invalid NHS check digit
    ["T1", "T2", "T1", "T2"],
    ["knee", "ankle", "hip", ""],
    ["2.5", "3", "-1", "1e3"],
])
def test_harmless_extra_columns_are_ignored(tmp_path, values):
    result = validate_log(log_with(tmp_path, "extra", values))
    assert result.ignored == ["extra"] and "extra" not in result.data


def test_nhs_check_digit():
    ok = nhs_check_digit_ok(pd.Series(["9434765919", "9434765918", "4010232137", "0000000000"]))
    assert ok.tolist() == [True, False, True, True]


@pytest.mark.parametrize("column, kind", [
    ("Surname", "person_name"), ("first_name", "person_name"), ("PatientName", "person_name"),
    ("Email", "email"), ("mobile_no", "phone"), ("Tel", "phone"),
    ("home_address", "street_address"),
    ("Postcode", "postcode"), ("zip", "postcode"), ("NHS no", "nhs_number"), ("SSN", "ssn"),
    ("insurance_id", "insurance_number"), ("DOB", "date_of_birth"),
    ("date_of_birth", "date_of_birth"),
    ("Notes", "free_text"), ("comment", "free_text"), ("Geburtsdatum", "date_of_birth"),
])
def test_identifying_column_names(column, kind):
    assert name_kind(column) == kind


@pytest.mark.parametrize("column", ["clinic_name", "intervention name", "hotel", "tele_session",
                                    "age_band", "pain_score", "therapist_code", "zipper"])
def test_harmless_column_names(column):
    assert name_kind(column) is None


def test_column_refused_by_name_even_if_values_look_harmless(tmp_path):
    exc = refused(log_with(tmp_path, "Surname", ["A", "B", "C", "D"]))
    assert exc.findings == [{"column": "Surname", "kind": "person_name", "basis": "column name",
                             "lines": [2, 3, 4, 5]}]


@pytest.mark.parametrize("column, values", [
    ("dob", ["1961-03-14", "1961-03-14", "1975-11-02", "1975-11-02"]),
    ("age", ["14/03/1961", "14/03/1961", "02/11/1975", "02/11/1975"]),
])
def test_exact_dates_of_birth(tmp_path, column, values):
    (finding,) = refused(log_with(tmp_path, column, values)).findings
    assert (finding["kind"], finding["basis"]) == ("date_of_birth", "content")


def test_age_band_with_full_dates_is_a_date_of_birth(tmp_path):
    dates = ["1961-03-14", "1961-03-14", "1975-11-02", "1975-11-02"]
    exc = refused(log_with(tmp_path, "age_band", dates))
    assert exc.findings[0]["kind"] == "date_of_birth"


@pytest.mark.parametrize("ids, kind", [
    (["a.b@example.org", "a.b@example.org", "c@example.org", "c@example.org"], "email"),
    (["943 476 5919", "943 476 5919", "401 023 2137", "401 023 2137"], "nhs_number"),
])
def test_patient_id_must_be_a_pseudonym(tmp_path, ids, kind):
    text = HEADER + "\n" + "\n".join(f"{i},{r.split(',', 1)[1]}" for i, r in zip(ids, ROWS)) + "\n"
    path = tmp_path / "log.csv"
    path.write_text(text)
    (finding,) = refused(parse_config({"name": "t", "data": str(path)})).findings
    assert (finding["column"], finding["kind"]) == ("patient_id", kind)


def test_mapped_identifier_column_is_still_refused(tmp_path):
    cfg = log_with(tmp_path, "Patient Name", ["Jane Smith"] * 2 + ["Tom Jones"] * 2)
    assert refused(cfg).findings[0]["column"] == "Patient Name"


def test_k_anonymity_counts_distinct_patients():
    data = pd.DataFrame({
        "patient_id": ["a", "a", "b", "c", "d", "e"],
        "sex": ["F", "F", "F", "M", "M", None],
        "age_band": ["18-34"] * 6,
        "clinic_id": ["X"] * 6,
    })
    table = k_anonymity(data, ("age_band", "sex", "clinic_id", "not_there"), threshold=2)
    assert list(table.columns) == ["age_band", "sex", "clinic_id", "n_patients", "below_threshold"]
    assert table["sex"].tolist() == ["(missing)", "F", "M"]
    assert table["n_patients"].tolist() == [1, 2, 2]
    assert table["below_threshold"].tolist() == [True, False, False]


def test_k_anonymity_in_the_validated_log(tmp_path):
    text = "patient_id,visit_date,intervention,sex\n" + "\n".join(
        f"P{i},2024-01-01,usual_care,{'F' if i < 12 else 'M'}" for i in range(15)) + "\n"
    path = tmp_path / "log.csv"
    path.write_text(text)
    result = validate_log(parse_config({"name": "t", "data": str(path)}))
    k = result.k_anonymity
    assert k[["sex", "clinic_id", "n_patients", "below_threshold"]].values.tolist() == [
        ["F", "all", 12, False], ["M", "all", 3, True]]
    summary = result.summary()
    assert "1 of 2 group(s) have fewer than 11 patients" in summary
    assert "sex=M, clinic_id=all: fewer than 11" in summary
