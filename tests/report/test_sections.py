"""Notebook steps called directly (without papermill): dose-response, no claims file, no control arm."""

import json
import shutil
from pathlib import Path

import pandas as pd

from analysis.report.context import open_run
from analysis.report.sections import claims as claims_report
from analysis.report.sections import intake
from analysis.report.sections import pain as pain_report

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "data" / "example" / "clinic_log.csv"


def _run(tmp_path, extra: str = "", log: pd.DataFrame | None = None):
    if log is None:
        shutil.copy(EXAMPLE, tmp_path / "log.csv")
    else:
        log.to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "run.yaml").write_text("name: t\ndata: log.csv\n" + extra)
    return open_run(tmp_path / "run.yaml", tmp_path / "run", section="test")


def test_dose_response_reports_a_per_session_effect_for_each_treatment(tmp_path):
    ctx = _run(tmp_path, "models:\n  dose_response: true\n")
    out = pain_report.run(ctx)
    dose = out.tables["dose_response"]
    terms = set(dose["term"])
    assert {"sessions_deep_tissue_massage", "sessions_foot_massage", "week"} <= terms
    assert "sessions_usual_care" not in terms  # the comparator is the reference, not a dose
    saved = json.loads((ctx.run_dir / "results" / "models.pain.json").read_text())
    assert [r["term"] for r in saved["dose_response"]] == list(dose["term"])
    # Sessions accrue about weekly-to-fortnightly, so one session's effect is a fraction of a point.
    dtm = dose.set_index("term").loc["sessions_deep_tissue_massage"]
    assert -1 < dtm["estimate"] < 0.5 and dtm["conf_low"] < dtm["estimate"] < dtm["conf_high"]


def test_without_claims_file_the_claims_section_says_so(tmp_path):
    ctx = _run(tmp_path)
    out = claims_report.run(ctx)
    assert "No claims file" in out.sentences[0]
    assert json.loads((ctx.run_dir / "results" / "claims.json").read_text()) == []


def test_log_without_control_arm_says_so(tmp_path):
    log = pd.read_csv(EXAMPLE, dtype=str)
    log = log[~log["patient_id"].isin(log.loc[log["intervention"] == "usual_care", "patient_id"])]
    ctx = _run(tmp_path, log=log)
    out = intake.run(ctx)
    assert any("no usual_care (comparison) arm" in s for s in out.sentences)
    data = json.loads((ctx.run_dir / "results" / "data.json").read_text())
    assert data["control_present"] is False


def test_claims_graded_on_saved_fits_equal_claims_refitted(tmp_path):
    from analysis.report.sections import episodes as episodes_report
    from analysis.report.sections import responders as responders_report
    from analysis.report.sections import strength as strength_report

    claims = ROOT / "config" / "claims" / "clinic_pages.yaml"
    ctx = _run(tmp_path, f"claims: {claims}\n")
    for section in (pain_report, episodes_report, strength_report, responders_report):
        section.run(ctx)
    assert set(ctx.saved_fits()) == {"pain", "episodes", "strength", "responders", "moderator"}
    saved = claims_report.run(ctx).tables["verdicts"]
    shutil.rmtree(ctx.run_dir / "private" / "fits")  # as 08 run alone: it fits them itself
    assert ctx.saved_fits() == {}
    refit = claims_report.run(ctx).tables["verdicts"]
    pd.testing.assert_frame_equal(saved, refit)
    assert saved["estimate"].notna().any()


def test_saved_fits_of_another_config_are_not_used(tmp_path):
    ctx = _run(tmp_path)
    ctx.visits()  # prepares private/visits.parquet, which the fits are keyed on
    ctx.save_fit("pain", "a result")
    assert ctx.saved_fits() == {"pain": "a result"}
    other = _run(tmp_path, "models:\n  alpha: 0.1\n")  # same run folder, other models
    assert other.saved_fits() == {}
