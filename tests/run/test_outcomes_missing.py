"""A log that lacks outcomes still runs everything else, and says what was not analysed and why."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from analysis.run.runner import run_suite

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "data" / "example" / "clinic_log.csv"


def test_episodes_only_log_runs_and_reports_what_was_skipped(tmp_path):
    log = pd.read_csv(EXAMPLE, dtype=str).drop(columns=["pain_score", "strength"])
    log.to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "run.yaml").write_text("name: episodes_only\ndata: log.csv\n")
    outcome = run_suite(tmp_path / "run.yaml", out=tmp_path / "run", progress=False)
    assert outcome.status == "succeeded", outcome.error
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    models = results["models"]
    assert models["pain"]["status"] == "not analysed: the log has no pain_score values"
    assert models["strength"]["status"] == "not analysed: the log has no strength measurements"
    assert models["responders"]["status"].startswith("not analysed")
    assert models["episodes"]["rate_ratios"], "episodes must still be analysed"
    assert any(s.startswith("pain: not analysed") for s in results["summary"]["not_analysed"])
    page = (tmp_path / "run" / "index.html").read_text()
    assert "Not analysed" in page and "the log has no strength measurements" in page


def test_plain_papermill_runs_a_notebook(tmp_path):
    source = ROOT / "notebooks" / "01_validate.py"
    notebook = tmp_path / "01_validate.ipynb"
    bindir = Path(sys.executable).parent
    subprocess.run([bindir / "jupytext", "--to", "ipynb", "--output", notebook, source], check=True,
                   capture_output=True)
    subprocess.run([bindir / "papermill", notebook, tmp_path / "out.ipynb", "-p", "config", "config/demo.yaml",
                    "-p", "run_dir", str(tmp_path / "run"), "--cwd", ROOT], check=True, capture_output=True)
    assert (tmp_path / "run" / "tables" / "arms.csv").exists()
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
