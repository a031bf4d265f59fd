"""A whole run on a log that ends at week 6 (issue 13, Done-when): claims about week 12 are
"not testable" with the reason, and no page, table header or results.json value speaks of
week 12 (a sentence, a number at week 12, "12 weeks", a column "12", a `week: 12` field).

The log is the simulator's (``simulate_log(weeks=6)``: weekly visits to week 4, then week 6),
200 patients in 4 clinics, run through :func:`analysis.run.runner.run_suite` as ``outcomes run``
does, with 20 firmness resamples to keep the run short.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

from analysis.run.runner import run_suite
from analysis.studies.simulate import write_simulation

LATE = {"week": 12}  # every claim below but the last asks about week 12 (or weeks 0-12)
CLAIMS = {"firmness": {"resamples": 20}, "claims": [
    {"id": "taping", "text": "patella taping reduces pain", "outcome": "pain",
     "intervention": "patella_taping", "comparator": "usual_care", "measure": "direction",
     "direction": "decrease", **LATE},
    {"id": "strength", "text": "massage makes legs stronger", "outcome": "strength",
     "intervention": "deep_tissue_massage", "comparator": "baseline",
     "measure": "percent_increase", "value": 80, **LATE},
    {"id": "episodes", "text": "massage means fewer episodes", "outcome": "episodes",
     "intervention": "deep_tissue_massage", "comparator": "usual_care",
     "measure": "percent_reduction", "value": 62, "weeks": [0, 12]},
    {"id": "responders", "text": "massage patients respond more often",
     "outcome": "responders", "intervention": "deep_tissue_massage",
     "comparator": "usual_care", "measure": "responder_rate", "value": 10, **LATE},
    {"id": "orthotics", "text": "orthotics help overpronated feet", "outcome": "pain",
     "intervention": "orthotics", "comparator": "usual_care", "measure": "direction",
     "direction": "decrease", "subgroup": "overpronated", **LATE},
    {"id": "foot-massage", "text": "foot massage eases pain", "outcome": "pain",
     "intervention": "foot_massage", "comparator": "usual_care", "measure": "direction",
     "direction": "decrease"},  # no time named: graded where the follow-up ends
]}
LATE_IDS = [c["id"] for c in CLAIMS["claims"] if c["id"] != "foot-massage"]
#: The not-testable reason (analysis.endpoints.timegrid.beyond_follow_up) is the one place where
#: week 12 may be named: it says that nothing can be said there.
REASON = re.compile(r"the log follows arm '[a-z_]+' only to week [0-9.]+ \(the last time enough "
                    r"patients are still observed\), so nothing can be said at week 12\.?")
#: Ways week 12 can be said: "week 12", "Week 12:", "weeks 0–12", "12 weeks", "12-week",
#: "week_12", "wk 12", and in JSON a "week": 12 field or a "weeks": [0, 12] list.
WEEK_12 = re.compile(
    r"(?i)weeks?[\W_]{0,3}(?:\d+(?:\.\d+)?\s*(?:–|-|to|,)\s*)?12(?:\.0+)?(?![\d.])"
    r"|(?<![\d.])12(?:\.0+)?[ -]?weeks?\b|\bwk\W?12(?!\d)"
    r"|\"weeks?\"\s*:\s*\[[^\]]*(?<![\d.])12(?:\.0+)?(?![\d.])")


def week_12_mentions(text: str) -> list[str]:
    """Each mention of week 12 in ``text`` (the not-testable reason taken out), with context."""
    text = REASON.sub("", text)
    return [text[max(0, m.start() - 60):m.end() + 30] for m in WEEK_12.finditer(text)]


@pytest.mark.parametrize("said", [
    "Pain at week 12: 0.7 points less", "over weeks 0–12: 20 % fewer", "after 12 weeks",
    "a 12-week course", "week_12", '"week": 12.0', '"weeks": [0.0, 12.0]', "Week 12 (mean)"])
def test_the_scan_finds_each_way_of_saying_week_12(said):
    assert week_12_mentions(f"before {said} after")


@pytest.mark.parametrize("said", [
    "at week 6", "weeks 0–6", "n_patients: 12", "12 patients", "12.5 %", "week 1.2",
    "12 \n \n week slope",  # a count of 12 in one cell, the next row's term in the next
    "so nothing can be said at week 12"])
def test_the_scan_leaves_other_numbers_alone(said):
    if "nothing can be said" in said:
        said = ("the log follows arm 'orthotics' only to week 6 (the last time enough patients "
                "are still observed), so nothing can be said at week 12.")
    assert week_12_mentions(said) == []


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("week6")
    write_simulation(folder / "log.csv", n_patients=200, n_clinics=4, seed=6, weeks=6)
    for claim in CLAIMS["claims"]:
        claim.setdefault("source", "a test page")
    (folder / "claims.yaml").write_text(yaml.safe_dump(CLAIMS, sort_keys=False))
    (folder / "run.yaml").write_text("name: week6\ndata: log.csv\nclaims: claims.yaml\n")
    outcome = run_suite(folder / "run.yaml", out=folder / "run", progress=False)
    assert outcome.status == "succeeded", outcome.error
    return folder / "run"


def _visible(page: Path) -> str:
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    for hidden in soup(["script", "style"]):
        hidden.decompose()
    return soup.get_text(" ")


def _pages(run_dir: Path) -> list[Path]:
    return (sorted(run_dir.glob("*.html")) + sorted((run_dir / "owner").glob("*.html"))
            + sorted((run_dir / "researcher").glob("*.html")))


def test_week_12_claims_are_not_testable_with_the_reason(short_run):
    claims = {c["id"]: c for c in json.loads((short_run / "results.json").read_text())["claims"]}
    dashboard = " ".join(_visible(short_run / "index.html").split())
    for claim_id in LATE_IDS:
        row = claims[claim_id]
        assert row["verdict"] == "not testable" and row["firmness"] == "not graded"
        assert REASON.fullmatch(row["reason"] + "."), row["reason"]
        assert row["estimate"] is None and row["conf_low"] is None
        assert " ".join(row["reason"].split()) in dashboard  # the dashboard says why
    assert claims["foot-massage"]["verdict"] != "not testable"  # graded where follow-up ends


def test_no_page_and_no_results_value_speaks_of_week_12(short_run):
    pages = _pages(short_run)
    assert {p.parent.name for p in pages} >= {"owner", "researcher"} and len(pages) >= 19
    found = {}
    for page in pages:
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        headers = [th.get_text(" ", strip=True) for th in soup.find_all("th")]
        bad = week_12_mentions(_visible(page)) + [h for h in headers
                                                  if re.fullmatch(r"12(\.0+)?", h)]
        if bad:
            found[str(page.relative_to(short_run))] = bad
    raw = html.unescape((short_run / "results.json").read_text(encoding="utf-8"))
    if week_12_mentions(raw):
        found["results.json"] = week_12_mentions(raw)
    assert found == {}
