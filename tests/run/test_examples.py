"""Every shape of issue 12 runs end to end through ``outcomes run`` from a config alone, on real
public data the repository ships (config/examples/, tests/reference/README.md), and its report
speaks the outcome's own words: label, direction, unit of time, design."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.run.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "config" / "examples"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def run(name: str, folder: bool = False):
        """The example's results.json (``folder``: its run folder)."""
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            assert main(["run", "--config", str(EXAMPLES / f"{name}.yaml"), "--out", str(out),
                         "--quiet"]) == 0
            cache[name] = out
        return cache[name] if folder else json.loads((cache[name] / "results.json").read_text())
    return run


def sentences(results: dict) -> str:
    return " ".join(results["summary"]["headlines"])


def test_fev_labelled_visits_report_says_fev1_higher_is_better_randomised(runs):
    r = runs("fev_labelled_visits")
    text = sentences(r)
    assert "FEV1 at month 4" in text and "Pain" not in text and "pain" not in text
    assert "randomised comparison" in text and "observational" not in text
    assert r["data"]["n_patients"] == 200
    assert r["models"]["pain"]["status"] == "estimated"
    assert "FEV1_BL" in r["models"]["pain"]["formula"]
    resp = r["models"]["responders"]["definition"]
    assert resp["better"] == "higher" and resp["baseline"] == "baseline column of the file"
    assert resp["min_points"] == 2 and resp["min_percent"] == "inf"  # mcid: 2 (points only)
    baseline = {row["characteristic"] for row in r["description"]["baseline"]}
    assert "FEV1, mean" in baseline


def test_fev_wide_reshaped_gives_the_long_files_model(runs):
    wide, long = runs("fev_wide"), runs("fev_labelled_visits")
    assert wide["models"]["pain"]["n_obs"] == long["models"]["pain"]["n_obs"] == 537
    # a randomised log with scheduled visits is analysed by MMRM (models.pain.analysis unset)
    table = "fixed_effects" if "fixed_effects" in long["models"]["pain"] else "differences"
    key = "term" if table == "fixed_effects" else "visit"
    fe_w = {str(row[key]): row["estimate"] for row in wide["models"]["pain"][table]}
    fe_l = {str(row[key]): row["estimate"] for row in long["models"]["pain"][table]}
    assert fe_w and fe_w == pytest.approx(fe_l, rel=1e-9)


def test_hours_are_spoken_in_hours(runs):
    text = sentences(runs("fev_hours"))
    assert "FEV1 at hour " in text and "week 0." not in text


def test_bcva_months(runs):
    r = runs("bcva_months")
    assert r["data"]["n_patients"] == 1000
    assert "BCVA change at month " in sentences(r)


def test_epil_constants_fit_the_episode_models(runs):
    r = runs("epil_constants")
    assert r["models"]["episodes"]["rate_ratios"]
    assert "Seizures" in sentences(r) and "Knee-pain" not in sentences(r)


def test_epil_claims_pages_and_captions_say_seizures(runs):
    # docs/wording.md, "Outcome pages": a relabelled outcome names its pages, questions, captions
    # and claim sentences by its label
    r, out = runs("epil_constants"), runs("epil_constants", folder=True)
    plain = [c["plain"] for c in r["claims"]]
    assert len(plain) == 2 and all("seizures" in p and "episodes" not in p for p in plain), plain
    assert {c["units"] for c in r["claims"]} == {"percent fewer seizures"}
    page = (out / "owner" / "04_episodes.html").read_text(encoding="utf-8")
    assert "<title>" in page and "Seizures" in page.split("</title>")[0]
    assert "Did patients have fewer seizures?" in page and "Knee-pain" not in page
    assert "% fewer seizures" in page and "% fewer episodes" not in page  # the owner's table header
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "Did patients have fewer seizures?" in index and "knee-pain" not in index.lower()
    assert "seizures" in index.split("What it rests on")[1] and "episode" not in index.split("What it rests on")[1].split("</table>")[0]
