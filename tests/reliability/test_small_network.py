"""A small simulated network (120 patients, 2 clinics) through the whole suite: no reader-facing
number is a count below the disclosure threshold, and no share times a published count of its row
gives one (the responder tables published 0.375 of 16 assessable = 6 responders before).

Checked on every file a reader gets: every table in ``tables/`` and every number in
``results.json`` whose key is a count (``n_*``). ``n_clinics`` (the network's number of clinics)
is not a count of patients and is exempt; ``n_clinics_below_threshold`` is not.
"""

import json
import math

import pandas as pd
import pytest

from analysis.run.runner import run_suite
from analysis.studies.simulate import simulate_log

K = 11


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    folder = tmp_path_factory.mktemp("network")
    log, _ = simulate_log(120, 2, seed=15)
    log.to_csv(folder / "log.csv", index=False)
    (folder / "run.yaml").write_text("name: network\ndata: log.csv\n")
    outcome = run_suite(folder / "run.yaml", out=folder / "run", progress=False)
    assert outcome.status == "succeeded", outcome.error
    return folder / "run"


def _counts_in(value, key=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _counts_in(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _counts_in(v, key)
    elif key.startswith("n_") and key != "n_clinics" and isinstance(value, (int, float)) \
            and not isinstance(value, bool) and not math.isnan(value):
        yield key, value


def test_no_count_below_the_threshold_in_results_json(network):
    results = json.loads((network / "results.json").read_text())
    small = [(k, v) for k, v in _counts_in(results) if 0 < v < K]
    assert not small, small


def test_no_count_below_the_threshold_and_no_recoverable_share_in_any_table(network):
    tables = sorted((network / "tables").glob("*.csv"))
    assert len(tables) >= 10
    checked = 0
    for path in tables:
        table = pd.read_csv(path)
        counts = [c for c in table.columns if c.startswith("n_")]
        for c in counts:
            values = pd.to_numeric(table[c], errors="coerce").dropna()
            assert not ((values > 0) & (values < K)).any(), f"{path.name}: {c} below {K}"
            checked += len(values)
        for column in ("estimate", "conf_low", "conf_high"):
            if column not in table or not counts or "responder" not in path.name:
                continue
            for _, row in table.iterrows():
                share = pd.to_numeric(row[column], errors="coerce")
                if pd.isna(share) or not 0 <= share <= 1:
                    continue
                for c in counts:
                    d = pd.to_numeric(row[c], errors="coerce")
                    if pd.isna(d):
                        continue
                    implied = share * d
                    for small in (implied, d - implied):
                        exact = abs(small - round(small)) < 0.01
                        assert not (exact and 0.5 <= small < K - 0.5), \
                            f"{path.name}: {column} {share} x {c} {d} gives {small:.2f}"
        # Totals minus parts on one row: no two published counts differ by 1..K-1.
        for _, row in table[counts].apply(pd.to_numeric, errors="coerce").iterrows():
            vals = [v for v in row.tolist() if not pd.isna(v)]
            if path.name.startswith("responder"):
                assert not [(a, b) for a in vals for b in vals if 0 < a - b < K], (path.name, vals)
    assert checked > 20
