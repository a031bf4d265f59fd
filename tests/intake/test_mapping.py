"""Mapping a real export onto the contract by config alone (issue 12): wide files, time units,
labelled visits, constants, missing-value tokens, covariates, patient keys, whitespace files.

Real public data (tests/reference/README.md): mmrm's ``fev_data.csv`` (R ``write.csv``: missing is
``NA``, visits VIS1-VIS4, baseline FEV1_BL) and MASS's ``epil.csv`` (seizure counts per 2-week
period). Wide versions are built here from the long files, so every wide value can be checked
against the long file it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import parse_config
from analysis.errors import ConfigError, IdentifierError, ValidationFailed
from analysis.intake.validate import validate_log

REF = Path(__file__).resolve().parents[1] / "reference"
FEV = REF / "mmrm" / "fev_data.csv"
EPIL = REF / "epil.csv"

FEV_CONFIG = {
    "name": "fev", "data": str(FEV),
    "columns": {"patient_id": "USUBJID", "visit": "AVISIT", "intervention": "ARMCD",
                "pain_score": "FEV1", "sex": "SEX"},
    "interventions": ["PBO", "TRT"], "control": "PBO", "read": {"missing": ["NA"]},
    "visits": {"VIS1": 1, "VIS2": 2, "VIS3": 3, "VIS4": 4}, "time_unit": "months",
    "covariates": {"FEV1_BL": "number", "RACE": "category"},
    "baseline": {"column": "FEV1_BL"}, "drop": ["VISITN", "VISITN2", "WEIGHT"],
    "outcomes": {"FEV1": {"label": "FEV1", "better": "higher", "range": {"min": 0, "max": 100}}},
}


def fev_long() -> pd.DataFrame:
    return pd.read_csv(FEV)  # pandas reads "NA" as missing: the independent reading


def cfg(**changes):
    return parse_config({**FEV_CONFIG, **changes})


def test_fev_labelled_visits_na_tokens_and_covariates():
    log = validate_log(cfg())
    data, ref = log.data, fev_long()
    assert len(data) == 800 and log.n_patients == 200
    # 263 of 800 FEV1 values are NA (mmrm's documentation of fev_data)
    assert data["pain_score"].isna().sum() == 263 == ref["FEV1"].isna().sum()
    assert any("263 cell(s) 'NA'" in n for n in log.notes)
    # visit is the label, ordered by nominal time; week is the month converted (30.4375 d / 7)
    assert data["visit"].cat.ordered and list(data["visit"].cat.categories) == [
        "VIS1", "VIS2", "VIS3", "VIS4"]
    month = data.loc[data["visit"] == "VIS3", "week"].unique()
    assert month == pytest.approx([3 * 30.4375 / 7], abs=1e-12)
    merged = data.merge(ref, left_on=["patient_id", "visit"], right_on=["USUBJID", "AVISIT"])
    assert len(merged) == 800
    np.testing.assert_allclose(merged["pain_score"], merged["FEV1"], rtol=0, atol=0)
    np.testing.assert_allclose(merged["FEV1_BL_x"], merged["FEV1_BL_y"], rtol=0, atol=0)
    assert (merged["RACE_x"] == merged["RACE_y"]).all()


def wide_fev(tmp_path: Path, name: str = "wide.csv") -> Path:
    """One row per patient, FEV1_VIS1..4 columns, NA kept as the string R writes."""
    ref = fev_long()
    wide = ref.pivot(index="USUBJID", columns="AVISIT", values="FEV1")
    wide.columns = [f"FEV1_{v}" for v in wide.columns]
    keep = ref.drop_duplicates("USUBJID").set_index("USUBJID")[["ARMCD", "SEX", "RACE", "FEV1_BL"]]
    out = keep.join(wide).reset_index()
    path = tmp_path / name
    out.to_csv(path, index=False, na_rep="NA")
    return path


def wide_config(path: Path, **changes):
    raw = {**FEV_CONFIG, "data": str(path), "drop": [],
           "columns": {"patient_id": "USUBJID", "intervention": "ARMCD", "sex": "SEX"},
           "reshape": {"id_columns": ["USUBJID", "ARMCD"],
                       "patterns": [{"pattern": "FEV1_(?P<visit>VIS[0-9])", "into": "pain_score"}]},
           "outcomes": {"pain_score": FEV_CONFIG["outcomes"]["FEV1"]}, **changes}
    return parse_config(raw)


def test_wide_file_by_pattern_equals_the_long_file(tmp_path):
    long = validate_log(cfg()).data
    wide = validate_log(wide_config(wide_fev(tmp_path))).data
    cols = ["patient_id", "visit", "week", "pain_score", "FEV1_BL", "RACE", "intervention"]
    pd.testing.assert_frame_equal(
        wide[cols].sort_values(["patient_id", "week"]).reset_index(drop=True),
        long[cols].sort_values(["patient_id", "week"]).reset_index(drop=True))


def test_wide_value_columns_in_hours(tmp_path):
    path = wide_fev(tmp_path)
    text = path.read_text().replace("FEV1_VIS1", "pain_30min").replace("FEV1_VIS2", "pain_4h")
    path.write_text(text)
    raw = {**FEV_CONFIG, "data": str(path), "drop": ["FEV1_VIS3", "FEV1_VIS4"], "visits": {},
           "outcomes": {"pain_score": FEV_CONFIG["outcomes"]["FEV1"]},
           "time_unit": "hours", "columns": {"patient_id": "USUBJID", "intervention": "ARMCD"},
           "reshape": {"id_columns": ["USUBJID"], "into": "pain_score",
                       "value_columns": {"pain_30min": 0.5, "pain_4h": 4}}}
    data = validate_log(parse_config(raw)).data
    assert sorted(data["week"].unique()) == pytest.approx([0.5 / 168, 4 / 168])
    assert len(data) == 400


def test_reshaped_failure_points_at_the_file_line_and_column(tmp_path):
    path = wide_fev(tmp_path)
    lines = path.read_text().splitlines()
    cells = lines[9].split(",")  # file line 10
    cells[-2] = "999"  # FEV1_VIS3: out of the declared 0-100 range
    lines[9] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationFailed) as info:
        validate_log(wide_config(path))
    report = info.value.report
    assert report[["line", "column", "check", "value"]].values.tolist() == [
        [10, "FEV1_VIS3", "out_of_range", "999"]]


@pytest.mark.parametrize("change, key", [
    ({"reshape": {"id_columns": ["USUBJID"], "into": "pain_score", "pattern": "PEF_(?P<time>.+)"}},
     "reshape.pattern: 'PEF_(?P<time>.+)' matches no column"),
    ({"reshape": {"id_columns": ["NOPE"], "into": "pain_score", "pattern": "FEV1_(?P<visit>.+)"}},
     "reshape.id_columns"),
    ({"visits": {"VIS1": 1, "VIS2": 2, "VIS3": 3, "VIS4": 4, "VIS5": 5}},
     "visits: label(s) ['VIS5'] do not occur"),
])
def test_bad_reshape_or_visits_key_is_named(tmp_path, change, key):
    with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]").replace("?", r"\?")
                       .replace("+", r"\+").replace(".", r"\.")):
        validate_log(wide_config(wide_fev(tmp_path), **change))


def test_unknown_visit_label_is_a_failure_at_its_line(tmp_path):
    text = FEV.read_text().splitlines()
    text[3] = text[3].replace('"VIS3"', '"VIS9"')  # file line 4
    path = tmp_path / "fev.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(ValidationFailed) as info:
        validate_log(cfg(data=str(path)))
    rows = info.value.report[["line", "column", "check", "value"]].values.tolist()
    assert rows == [[4, "AVISIT", "unknown_visit", "VIS9"]]


def test_missing_token_that_is_a_valid_value_is_refused():
    with pytest.raises(ConfigError, match=r"read.missing: '5' is a valid pain_score"):
        validate_log(cfg(read={"missing": ["NA", "5"]}))


def test_na_without_the_token_is_a_type_error():
    with pytest.raises(ValidationFailed) as info:
        validate_log(cfg(read={"missing": []}))
    report = info.value.report
    assert set(report["check"]) == {"type"} and len(report) == 263
    assert set(report["column"]) == {"FEV1"}


def test_covariate_that_looks_identifying_is_named(tmp_path):
    ref = fev_long()
    ref["nhs_number"] = "943 476 5919"
    path = tmp_path / "fev.csv"
    ref.to_csv(path, index=False, na_rep="NA")
    with pytest.raises(ConfigError, match=r"covariates.nhs_number: the column looks like a direct "
                                          "identifier"):
        validate_log(cfg(data=str(path), covariates={"nhs_number": "category"}))
    with pytest.raises(IdentifierError):  # and as an unused column the guard refuses it
        validate_log(cfg(data=str(path)))


def test_covariate_the_file_lacks_is_named():
    with pytest.raises(ConfigError, match=r"covariates.AGE: the file has no column 'AGE'"):
        validate_log(cfg(covariates={"AGE": "number"}))


EPIL_CONFIG = {
    "name": "epil", "data": str(EPIL),
    "columns": {"patient_id": "subject", "visit": "period", "intervention": "trt",
                "episodes": "y"},
    "interventions": ["placebo", "progabide"], "control": "placebo",
    "visits": {"1": 2, "2": 4, "3": 6, "4": 8}, "constants": {"exposure_days": 14},
    "covariates": {"base": "number", "age": "number"}, "drop": ["V4", "lbase", "lage"],
}


def test_epil_constant_exposure_and_labelled_periods():
    data = validate_log(parse_config(EPIL_CONFIG)).data
    ref = pd.read_csv(EPIL)
    assert len(data) == 236 and data["patient_id"].nunique() == 59
    assert (data["exposure_days"] == 14).all()
    assert sorted(data["week"].unique()) == [2, 4, 6, 8]
    assert data["episodes"].sum() == ref["y"].sum()
    # MASS::epil: y = 21 for subject 8, period 3 (tests/reference/README.md)
    assert data.loc[(data["patient_id"] == "8") & (data["visit"] == "3"), "episodes"].item() == 21


def test_constant_for_a_column_the_file_has_is_named():
    raw = {**EPIL_CONFIG, "columns": {**EPIL_CONFIG["columns"], "exposure_days": "age"},
           "covariates": {"base": "number"}}
    with pytest.raises(ConfigError, match=r"constants.exposure_days: the file already has"):
        validate_log(parse_config(raw))


def test_patient_in_two_clinics_names_both_and_their_first_lines(tmp_path):
    text = ("patient_id,clinic_id,time,intervention,pain_score\n"
            "P1,C1,0,usual_care,5\nP1,C1,4,usual_care,4\nP2,C1,0,usual_care,6\n"
            "P1,C2,0,usual_care,7\nP1,C2,4,usual_care,6\n")
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(ValidationFailed) as info:
        validate_log(parse_config({"name": "t", "data": str(path)}))
    report = info.value.report
    rows = report[report["check"] == "patient_in_two_clinics"]
    assert rows[["line", "column"]].values.tolist() == [[5, "clinic_id"]]
    message = rows["message"].item()
    assert "'C1' (first on line 2)" in message and "'C2' (first on line 5)" in message
    data = validate_log(parse_config({"name": "t", "data": str(path),
                                      "patient_key": ["clinic_id", "patient_id"]})).data
    assert data["patient_id"].nunique() == 3


def test_whitespace_separated_file_is_sniffed(tmp_path):
    ref = pd.read_csv(EPIL)
    path = tmp_path / "epil.txt"
    ref.to_csv(path, index=False, sep=" ")  # R write.table style: quoted text, spaces between
    log = validate_log(parse_config({**EPIL_CONFIG, "data": str(path)}))
    assert "delimiter 'whitespace'" in log.read_as
    assert len(log.data) == 236 and log.data["episodes"].sum() == ref["y"].sum()
