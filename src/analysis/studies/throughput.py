"""Batch throughput for ``make bench``: runs per minute of identical small runs on a LocalCluster."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from analysis.run import batch
from analysis.studies.simulate import write_simulation


def batch_throughput(n_runs: int = 4, workers: int = 2, n_patients: int = 60, n_clinics: int = 3,
                     seed: int = 20261121) -> dict:
    """Runs per minute of a batch of identical small runs on a LocalCluster (for ``make bench``).

    Each run is the whole suite on a simulated log (:func:`analysis.studies.simulate.write_simulation`)
    in a temporary folder; cluster start-up is timed apart from the runs.

    Returns
    -------
    dict
        ``n_runs, workers, n_patients, n_clinics, seconds`` (first submission to last result),
        ``startup_seconds``, ``runs_per_minute``, ``succeeded``.
    """
    with tempfile.TemporaryDirectory(prefix="outcomes-throughput-") as tmp:
        folder = Path(tmp)
        write_simulation(folder / "log.csv", n_patients=n_patients, n_clinics=n_clinics, seed=seed)
        (folder / "run.yaml").write_text("name: throughput\ndata: log.csv\n", encoding="utf-8")
        spec = {"name": "throughput", "template": "run.yaml", "out": "out",
                "runs": [{"name": f"run-{i + 1:02d}"} for i in range(n_runs)]}
        (folder / "batch.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        outcome = batch.run_batch(folder / "batch.yaml", workers=workers, progress=False)
    succeeded = sum(r["status"] == "succeeded" for r in outcome.records)
    return {"n_runs": n_runs, "workers": workers, "n_patients": n_patients, "n_clinics": n_clinics,
            "seconds": round(outcome.seconds, 2), "startup_seconds": round(outcome.startup_seconds, 2),
            "runs_per_minute": round(60 * n_runs / outcome.seconds, 3), "succeeded": succeeded}
