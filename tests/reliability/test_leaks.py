"""Leaks: after a demo-like run, no file meant for readers holds a patient id, a visit date or
a patient count below the disclosure threshold.

Files meant for readers are everything in the run folder but ``private/``: index.html, the owner
and researcher HTML pages (the executed notebooks' outputs), the SVG figures (their text
elements, read as XML), tables/*.csv, results.json and its fragments, the manifest, the logs and
the executed notebooks. tests/run/test_runner.py has a shorter version of this scan; this one also
reads the SVG text as text, un-escapes the HTML, looks for dates in other formats and reads every
patient count, in CSV, JSON and the HTML tables.
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from analysis.report.disclosure import DisclosureLog, suppress_small_cells
from analysis.run.runner import run_suite

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "data" / "example" / "clinic_log.csv"
CLAIMS = ROOT / "config" / "claims" / "clinic_pages.yaml"
K = 11
#: Columns and keys named n_* that do not count patients in the data.
NOT_PATIENT_COUNTS = {"n_needed_per_arm", "n_clinics", "n_obs", "n_visits", "n_arms",
                      "n_rows", "n_groups", "n_logs"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("leaks")
    shutil.copy(EXAMPLE, folder / "log.csv")
    shutil.copy(CLAIMS, folder / "claims.yaml")
    (folder / "run.yaml").write_text("name: leaks\ndata: log.csv\nclaims: claims.yaml\n")
    outcome = run_suite(folder / "run.yaml", out=folder / "run", progress=False)
    assert outcome.status == "succeeded", outcome.error
    return folder / "run"


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return pd.read_csv(EXAMPLE, dtype=str)


def reader_files(run_dir: Path) -> list[Path]:
    return [p for p in sorted(run_dir.rglob("*")) if p.is_file()
            and p.relative_to(run_dir).parts[0] != "private"]


def readable_text(path: Path) -> str:
    """What a reader of the file sees: SVG text elements, HTML and JSON un-escaped."""
    raw = path.read_text(encoding="utf-8", errors="ignore")
    if path.suffix == ".svg":
        tree = ET.fromstring(raw)
        texts = [t for el in tree.iter() if el.tag.endswith("text") or el.tag.endswith("tspan")
                 for t in el.itertext()]
        return "\n".join(texts) + "\n" + raw  # the markup too: ids in titles or attributes
    if path.suffix in (".html", ".ipynb", ".json"):
        return html.unescape(raw.replace("\\u002D", "-").replace("\\/", "/"))
    return raw


def date_spellings(iso: str) -> set[str]:
    y, m, d = iso.split("-")
    return {iso, f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}.{m}.{y}", f"{y}/{m}/{d}"}


def test_the_scan_covers_every_kind_of_reader_file(demo_run):
    kinds = {p.suffix for p in reader_files(demo_run)}
    assert {".html", ".svg", ".csv", ".json", ".ipynb"} <= kinds
    assert (demo_run / "index.html").exists() and list(demo_run.glob("owner/*.html"))
    svg_text = readable_text(next(demo_run.glob("figures/*.svg")))
    assert "<text" in svg_text  # figures keep text as text (svg.fonttype none), so it is scanned


def test_no_patient_id_or_visit_date_in_any_reader_file(demo_run, log):
    ids = set(log["patient_id"])
    dates = set().union(*(date_spellings(d[:10]) for d in set(log["visit_date"])))
    id_token = re.compile(r"(?<![A-Za-z0-9])P\d{4}(?![0-9])")
    date_token = re.compile(r"\d{4}[-/]\d{2}[-/]\d{2}|\d{2}[./]\d{2}[./]\d{4}")
    found = []
    files = reader_files(demo_run)
    assert len(files) > 40
    for path in files:
        text = readable_text(path)
        hits = set(id_token.findall(text)) & ids
        hits |= set(date_token.findall(text)) & dates
        if hits:
            found.append(f"{path.relative_to(demo_run)}: {sorted(hits)[:5]}")
    assert not found, "\n".join(found)


def _small(value) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return np.isfinite(number) and 0 < number < K


# Patient counts under their readable headers (analysis.report.labels.column_label and the owners'
# tables of the sections).
PATIENT_COUNT_HEADERS = {"patients", "patients who switched", "assessable", "responders", "patients assessed",
                         "patients with relief"}


def _count_column(name) -> bool:
    name = str(name).strip()
    if name in PATIENT_COUNT_HEADERS or (name.startswith("patients ") and name != "patients needed per arm"):
        return True
    return name.startswith("n_") and name not in NOT_PATIENT_COUNTS


def test_no_patient_count_below_the_threshold_in_tables(demo_run):
    found = []
    for path in sorted(demo_run.glob("tables/*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                found += [f"{path.name}: {c}={v}" for c, v in row.items()
                          if _count_column(c) and _small(v)]
    assert not found, found


def _json_counts(node, where=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if _count_column(key) and _small(value) and not isinstance(value, bool):
                yield f"{where}.{key}={value}"
            yield from _json_counts(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _json_counts(value, f"{where}[{i}]")


def test_no_patient_count_below_the_threshold_in_json(demo_run):
    found = []
    for path in [demo_run / "results.json", *sorted(demo_run.glob("results/*.json"))]:
        found += [f"{path.name}{hit}" for hit in _json_counts(json.loads(path.read_text()))]
    assert not found, found


def test_no_patient_count_below_the_threshold_in_html_tables(demo_run):
    found, tables = [], 0
    for path in sorted(demo_run.glob("owner/*.html")) + sorted(demo_run.glob("researcher/*.html")) + [demo_run / "index.html"]:
        soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
        for table in soup.find_all("table"):
            rows = table.find_all("tr")
            if not rows:
                continue
            header = [c.get_text(strip=True) for c in rows[0].find_all(["th", "td"])]
            counts = [i for i, h in enumerate(header) if _count_column(h)]
            tables += 1
            for row in rows[1:]:
                cells = [c.get_text(strip=True) for c in row.find_all(["th", "td"])]
                found += [f"{path.name}: {header[i]}={cells[i]}" for i in counts
                          if i < len(cells) and _small(cells[i])]
    assert tables > 10
    assert not found, found


def test_a_small_count_beside_a_large_row_is_withheld():
    # The rule that keeps responder counts out: the row rests on 12 patients, one responded.
    table = pd.DataFrame({"arm": ["a", "b"], "estimate": [0.1, 0.5], "n_patients": [12, 40],
                          "n_responders": [1, 20], "n_assessable": [9, 30]})
    log = DisclosureLog(K)
    out = suppress_small_cells(table, K, log, table_name="responders", key_columns=["arm"])
    assert out["suppressed"].tolist() == [False, False]
    assert np.isnan(out.loc[0, "n_responders"]) and np.isnan(out.loc[0, "n_assessable"])
    assert out.loc[1, "n_responders"] == 20 and out.loc[0, "estimate"] == 0.1
    # b: 40 patients - 30 assessable = 10 not assessable, below 11: n_assessable is withheld too.
    assert {e["row"] for e in log.entries} == {"arm=a: n_responders", "arm=a: n_assessable",
                                               "arm=b: n_assessable"}
    assert all(e["below_threshold"] for e in log.entries if e["row"].startswith("arm=a"))
    assert not next(e for e in log.entries if e["row"] == "arm=b: n_assessable")["below_threshold"]
