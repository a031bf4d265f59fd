"""Page header, navigation, labels, the audit page and the figures' look (no notebook run needed)."""

from pathlib import Path

import matplotlib.collections
import pandas as pd
import pytest

from analysis.config import RunConfig
from analysis.report import figures
from analysis.report.context import Section
from analysis.report.html import data_period, page_navigation, report_header
from analysis.report.labels import column_label, outcome_label, page_title, treatment_label
from analysis.report.pages import render_audit


def _cfg(**extra) -> RunConfig:
    return RunConfig(name="t", data=Path("log.csv"), **extra)


def test_data_period_is_months_from_the_data_never_days():
    assert data_period(("2025-01", "2026-03"), 60.0) == "Visits from January 2025 to March 2026"
    assert data_period(("2025-05", "2025-05"), 3.0) == "Visits in May 2025"
    assert data_period(None, 23.6) == "Follow-up of up to 24 weeks (the log has no visit dates)"
    assert data_period(None, None) == "Data period unknown"


class _Validated:
    def __init__(self, months):
        self.data = pd.DataFrame({"clinic_id": ["C1", "C2", "C2"], "week": [0.0, 4.0, 12.0]})
        self.visit_months = months


def test_header_names_the_clinic_period_and_disclosure():
    header = report_header(_cfg(label="Knee clinics", disclosure_threshold=7), _Validated(("2025-02", "2025-09")))
    assert header.label == "Knee clinics"
    assert header.clinic == "2 clinics, pooled"
    assert header.period == "Visits from February 2025 to September 2025"
    assert "at least 7 patients" in header.disclosure
    mine = report_header(_cfg(benchmarking={"clinic_id": "C2"}), _Validated(None))
    assert mine.label == "t" and mine.clinic.startswith("Clinic C2") and "12 weeks" in mine.period


def test_navigation_links_previous_next_dashboard_and_the_other_view():
    order = ["01_validate", "03_pain", "09_summary"]
    first = page_navigation("01_validate", order, "owner")
    assert first["prev"] is None and first["next"] == {"href": "03_pain.html", "title": "Pain"}
    assert first["root"] == "../" and first["other"]["href"] == "../researcher/01_validate.html"
    last = page_navigation("09_summary", order, "researcher")
    assert last["next"] is None and last["prev"]["title"] == "Pain"
    assert last["other"]["href"] == "../owner/09_summary.html"


def test_labels_have_no_code_names():
    assert treatment_label("deep_tissue_massage") == "deep tissue massage"
    assert column_label("n_patients") == "patients" and column_label("std_error") == "std. error"
    assert column_label("some_new_column") == "some new column"
    assert outcome_label(_cfg(), "pain_score").axis == "Pain (points, 0–10)"
    own = _cfg(outcomes={"pain_score": {"label": "Throat pain", "unit": "mm"}})
    assert outcome_label(own, "pain_score").axis == "Throat pain (mm, 0–10)"
    assert outcome_label(_cfg(models={"strength": {"unit": "kg"}}), "strength").unit == "kg"
    assert page_title("03_pain") == "Pain" and page_title("10_new_thing") == "New thing"


def test_displayed_tables_have_readable_headers_words_and_whole_counts():
    table = pd.DataFrame({"arm": ["deep_tissue_massage", "usual_care"], "estimate": [0.123, -1.5],
                          "n_patients": [63.0, 93.0]})
    html = Section(tables={"t": table}).table("t").to_html()
    assert "deep tissue massage" in html and "deep_tissue_massage" not in html
    assert ">patients<" in html and "n_patients" not in html and ">treatment<" in html
    assert ">63<" in html and "63.00" not in html


def test_audit_page_shows_the_manifest_and_how_to_check_it(tmp_path):
    manifest = {
        "run_id": "t-1", "status": "succeeded", "error": None, "started_utc": "x", "finished_utc": "y",
        "seconds": 1.0, "seed": 5, "git": {"commit": "abc123", "dirty": True},
        "inputs": [{"role": "log", "path": "/d/log.csv", "sha256": "f" * 64, "rows_read": 3, "rows_used": 3,
                    "patients": 2}, {"role": "config", "path": "/d/run.yaml", "sha256": "e" * 64}],
        "config": {"name": "<b>t</b>"}, "packages": {"numpy": "2.3.5"}, "notebooks": ["01_validate"],
        "warnings": ["UserWarning: careful"],
        "disclosure": {"threshold": 11, "suppressed": [{"section": "01_validate", "table": "k_anonymity"}] * 3},
        "outputs": {"index.html": "a" * 64},
    }
    header = report_header(_cfg())
    page = render_audit(tmp_path, manifest, header).read_text()
    assert "f" * 64 in page and "abc123" in page and "uncommitted changes" in page
    assert f"outcomes run --config /d/run.yaml --out {tmp_path}-rerun" in page and f"outcomes verify {tmp_path}" in page
    assert "<td>k_anonymity</td><td>3</td>" in page and "UserWarning: careful" in page
    assert "&lt;b&gt;t&lt;/b&gt;" in page and "<b>t</b>" not in page  # config text shown, not run
    assert "<title>t — How this report was made</title>" in page and 'name="viewport"' in page
    manifest["inputs"][1]["path"] = "../in/run.yaml"  # relative to the run folder, as the runner writes
    (tmp_path / "staging").mkdir()
    staged = render_audit(tmp_path / "staging", manifest, header, target=tmp_path / "run").read_text()
    assert f"--config {tmp_path / 'in' / 'run.yaml'} --out {tmp_path / 'run'}-rerun" in staged


def test_one_colour_per_treatment_and_the_control_grey():
    colours = figures.treatment_colours(["a", "usual_care", "b", "c"], "usual_care")
    assert colours["usual_care"] == figures.CONTROL_COLOUR
    assert [colours[k] for k in "abc"] == figures.OKABE_ITO[:3]
    assert figures.treatment_colours(["c", "b", "a", "usual_care"], "usual_care")["a"] == figures.OKABE_ITO[2]


@pytest.mark.parametrize("n_treated", [1, 2, 4])
def test_pain_bands_facet_so_that_no_panel_has_more_than_three(n_treated):
    arms = ["usual_care"] + [f"t{i}" for i in range(n_treated)]
    table = pd.DataFrame([{"arm": a, "week": w, "estimate": 5 - w / 10, "conf_low": 4 - w / 10,
                           "conf_high": 6 - w / 10} for a in arms for w in (0, 4, 8, 12)])
    colours = figures.treatment_colours(arms, "usual_care")
    fig = figures.bands_by_arm(table, "estimate", "Pain", "pain (points)", colours=colours, control="usual_care")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == (n_treated if n_treated > 2 else 1)
    for ax in panels:
        bands = [c for c in ax.collections if isinstance(c, matplotlib.collections.PolyCollection)]
        assert len(bands) <= 3
        assert ax.get_xlabel() in ("", "weeks since the first visit")
    lines = {ln.get_label(): ln.get_color() for ax in panels for ln in ax.get_lines()}
    assert lines["usual care (comparison)"] == figures.CONTROL_COLOUR
    assert lines["t0"] == colours["t0"]


def test_relabelled_outcomes_name_their_pages():
    # docs/wording.md, "Outcome pages": built-in labels keep the built-in titles and questions
    from analysis.report.labels import outcome_pages, page_question

    assert outcome_pages(_cfg()) == {}
    assert page_question("04_episodes") == "Did patients have fewer knee-pain episodes?"
    fev = _cfg(outcomes={"pain_score": {"label": "FEV1", "better": "higher"},
                         "episodes": {"label": "Exacerbations", "better": "lower"},
                         "strength": {"label": "Grip strength"}})
    pages = outcome_pages(fev)
    assert page_title("03_pain", pages) == "FEV1"
    assert page_question("03_pain", pages) == "Did FEV1 improve more with a treatment than without it?"
    assert page_question("04_episodes", pages) == "Did patients have fewer exacerbations?"
    # strength's built-in better direction (higher) is kept under the new label
    assert page_question("05_strength", pages) == "Did grip strength improve with a treatment?"
    unknown = outcome_pages(_cfg(outcomes={"episodes": {"label": "Falls", "better": "higher"}}))
    assert unknown["episodes"][1] == "Did patients have more falls?"
    assert page_title("07_benchmarking", pages) == "Clinic comparison"
    nav = page_navigation("02_describe", ["02_describe", "03_pain"], "owner", pages)
    assert nav["next"]["title"] == "FEV1"
    assert report_header(fev).pages == pages


def test_captions_and_claim_nouns_follow_the_labels():
    from analysis.report.html import FIGURE_CAPTIONS, caption_words
    from analysis.report.outcome_words import claim_noun

    built_in = {k: v.format(control="usual care", **caption_words(_cfg())) for k, v in FIGURE_CAPTIONS.items()}
    assert built_in["pain_marginal_means"] == "Pain over the weeks with each treatment, against usual care."
    assert built_in["episode_rate_ratios"].startswith("Knee-pain episodes with each treatment")
    own = _cfg(outcomes={"pain_score": {"label": "FEV1"}, "episodes": {"label": "Seizures"}},
               time_unit="months")
    words = caption_words(own)
    assert FIGURE_CAPTIONS["pain_marginal_means"].format(control="placebo", **words) == \
        "FEV1 over the months with each treatment, against placebo."
    assert FIGURE_CAPTIONS["episode_rate_ratios"].format(control="placebo", **words).startswith("Seizures with")
    assert claim_noun(_cfg(), "episodes") is None and claim_noun(_cfg(), "responders") is None
    assert claim_noun(own, "episodes") == "seizures" and claim_noun(own, "pain") == "FEV1"
