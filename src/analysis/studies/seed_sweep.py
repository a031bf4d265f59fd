"""Seed sweep of the demo: are its verdicts a property of the truth, or of one draw?

``python -m analysis.studies.seed_sweep --patients 1200 --seed 20261121 --neighbours 10`` draws
the demo log (same clinics, weeks and ``--truth`` as the bundled one) with the demo's seed and
with each of the next ``--neighbours`` seeds, runs the real pipeline on each (validation, arms,
the claims' models, verdicts; no bootstrap) and prints a Markdown table of the verdicts, with,
per claim, on how many of the neighbouring seeds the verdict equals the demo's. The table in
data/example/README.md is its output.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from analysis.audit.claims import fit_claim_models, load_claims
from analysis.audit.verdicts import audit_claims
from analysis.config import load_config
from analysis.intake.arms import assign_arms
from analysis.intake.validate import validate_log
from analysis.studies.simulate import write_simulation
from analysis.studies.truth import truth_from_file

ROOT = Path(__file__).resolve().parents[3]


def verdicts_for_seed(seed: int, n_patients: int, truth_path, config_path) -> dict[str, str]:
    """Claim id -> verdict on the demo log drawn with ``seed``."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "clinic_log.csv"
        write_simulation(log, n_patients=n_patients, n_clinics=6, seed=seed, weeks=12.0,
                         effects=truth_from_file(truth_path))
        cfg = load_config(config_path)
        cfg = cfg.model_copy(update={"data": log})
        visits = assign_arms(validate_log(cfg).data, cfg.control).data
        claims = load_claims(cfg.claims)
        audit = audit_claims(claims, fit_claim_models(visits, claims, cfg), cfg)
    return dict(zip(audit["id"], audit["verdict"]))


def sweep(seed: int, neighbours: int, n_patients: int, truth_path, config_path) -> str:
    """The Markdown table: one row per seed, one column per claim, and the agreement row."""
    seeds = [seed] + [seed + k for k in range(1, neighbours + 1)]
    rows = {}
    for s in seeds:
        t = time.perf_counter()
        rows[s] = verdicts_for_seed(s, n_patients, truth_path, config_path)
        print(f"seed {s}: {time.perf_counter() - t:.0f} s", flush=True)
    ids = list(rows[seed])
    lines = ["| seed | " + " | ".join(ids) + " |", "|---" * (len(ids) + 1) + "|"]
    for s in seeds:
        mark = " (demo)" if s == seed else ""
        lines.append(f"| {s}{mark} | " + " | ".join(rows[s][i] for i in ids) + " |")
    same = [sum(rows[s][i] == rows[seed][i] for s in seeds[1:]) for i in ids]
    lines.append(f"| same as the demo, of {neighbours} | " + " | ".join(map(str, same)) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=1200)
    p.add_argument("--seed", type=int, default=20261121)
    p.add_argument("--neighbours", type=int, default=10)
    p.add_argument("--truth", default=str(ROOT / "data/example/demo_truth.yaml"))
    p.add_argument("--config", default=str(ROOT / "config/demo.yaml"))
    args = p.parse_args(argv)
    print(sweep(args.seed, args.neighbours, args.patients, args.truth, args.config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
