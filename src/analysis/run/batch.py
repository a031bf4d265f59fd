"""``outcomes batch``: many runs of the suite at once, on a Dask cluster.

A batch file (YAML, docs/benchmarking.md) names a template run config and the runs to make from it:
listed runs, each with its own name and optional overrides (``set``), and/or one run per clinic
with that clinic highlighted (``per_clinic``). Before anything runs, every run config is built and
validated (a bad batch file is refused with exit code 2) and written to
``<out>/configs/<run>.yaml``; each run then writes ``<out>/runs/<run>/``.

Each run is one Dask task calling :func:`analysis.run.runner.run_suite` in a worker, so a batch run
makes exactly what ``outcomes run --config <out>/configs/<run>.yaml`` makes (same files, the same
``results.json`` byte for byte). Runs go to a ``distributed.LocalCluster`` (one worker process per
core, one thread each) or to an existing scheduler (``--scheduler tcp://host:8786``; its workers
must have this package installed and see the same paths). One failing run does not stop the others;
``batch_manifest.json`` lists every run's status, time, config and manifest, and the batch exits 1
when any run did not succeed.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.config import _format_errors, load_yaml, parse_config
from analysis.errors import ConfigError, OutcomesError
from analysis.report.context import project_root
from analysis.results import write_json
from analysis.run.manifest import utc_now

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: Variables Dask's nanny sets to 1 in its workers; a LocalCluster run restores the submitting
#: shell's values in the worker, so the notebook kernels do their linear algebra exactly as
#: ``outcomes run`` would from that shell.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchRun(_Model):
    """One run: its name, and the config it starts from plus overrides."""

    name: str = Field(pattern=NAME_PATTERN)
    config: Path | None = Field(None, description="a run config; default the batch's template")
    overrides: dict[str, Any] = Field(default_factory=dict, alias="set",
                                      description="keys merged into the config, e.g. {benchmarking: {clinic_id: C01}}")


class PerClinic(_Model):
    """One run per clinic, that clinic highlighted (``benchmarking.clinic_id``)."""

    clinics: list[str] = Field(min_length=1)
    name: str = Field("clinic-{clinic}", description="run name; {clinic} and {index} (1, 2, ...) are filled in")


class BatchConfig(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    template: Path | None = Field(None, description="the run config runs start from")
    out: Path | None = Field(None, description="batch folder; default reports/batch/<name>/")
    runs: list[BatchRun] = Field(default_factory=list)
    per_clinic: PerClinic | None = None

    @model_validator(mode="after")
    def _complete(self):
        if not self.runs and self.per_clinic is None:
            raise ValueError("a batch needs `runs` or `per_clinic`")
        if self.template is None and (self.per_clinic is not None or any(r.config is None for r in self.runs)):
            raise ValueError("`template` is required when a run has no `config` of its own or `per_clinic` is used")
        return self


@dataclass
class PlannedRun:
    name: str
    config: Path
    run_dir: Path
    mapping: dict


@dataclass
class BatchPlan:
    name: str
    batch_file: Path
    out: Path
    runs: list[PlannedRun]


@dataclass
class BatchOutcome:
    plan: BatchPlan
    records: list[dict]
    exit_code: int
    scheduler: str
    seconds: float
    startup_seconds: float = 0.0
    manifest: Path | None = None


# -- the plan ------------------------------------------------------------------------------------

def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _absolute_paths(mapping: dict, base: Path) -> dict:
    """``data`` and ``claims`` made absolute against ``base`` (a generated config lives elsewhere)."""
    out = dict(mapping)
    for key in ("data", "claims"):
        if isinstance(out.get(key), (str, Path)) and not Path(out[key]).is_absolute():
            out[key] = str((base / out[key]).resolve())
        elif isinstance(out.get(key), Path):
            out[key] = str(out[key])
    return out


def _run_config(path: Path) -> dict:
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a run config must be a YAML mapping of keys to values")
    return _absolute_paths(raw, path.parent)


def load_batch(path: str | Path) -> BatchPlan:
    """Read a batch file, build and validate every run config (nothing is written or run).

    Parameters
    ----------
    path : path
        The batch YAML; relative paths in it resolve against its folder.

    Returns
    -------
    BatchPlan

    Raises
    ------
    ConfigError
        Unknown keys, a missing template, duplicate run names, or a run config that does not
        validate — each named with the batch file and the run.
    """
    path = Path(path).resolve()
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a batch file must be a YAML mapping of keys to values")
    try:
        batch = BatchConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, str(path))) from None
    here = path.parent
    out = (here / batch.out).resolve() if batch.out else project_root(Path(__file__).parent) / "reports" / "batch" / batch.name
    template = _run_config((here / batch.template).resolve()) if batch.template else None
    specs: list[tuple[str, dict, dict]] = []
    for run in batch.runs:
        start = _run_config((here / run.config).resolve()) if run.config else template
        specs.append((run.name, start, _absolute_paths(run.overrides, here)))
    if batch.per_clinic is not None:
        for i, clinic in enumerate(batch.per_clinic.clinics, 1):
            try:
                name = batch.per_clinic.name.format(clinic=clinic, index=i)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"{path}: per_clinic.name: cannot fill in {exc}; use {{clinic}} and {{index}}") from None
            specs.append((name, template, {"benchmarking": {"clinic_id": clinic}}))
    seen: set[str] = set()
    runs = []
    for name, start, overrides in specs:
        if not re.fullmatch(NAME_PATTERN, name):
            raise ConfigError(f"{path}: run name {name!r} may hold only letters, digits, '_', '.' and '-'")
        if name in seen:
            raise ConfigError(f"{path}: run name {name!r} is used twice")
        seen.add(name)
        mapping = _merge(_merge(start, overrides), {"name": name})
        parse_config(mapping, source=f"{path}: run {name!r}")
        runs.append(PlannedRun(name, out / "configs" / f"{name}.yaml", out / "runs" / name, mapping))
    return BatchPlan(batch.name, path, out, runs)


def _check_out(out: Path) -> None:
    """Refuse a non-empty folder that is not a batch folder (one without batch_manifest.json)."""
    if out.exists() and any(out.iterdir()) and not (out / "batch_manifest.json").exists():
        raise OutcomesError(f"{out}: exists and is not a batch folder; choose another `out`")


def _prepare_out(out: Path) -> None:
    _check_out(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "configs").mkdir(parents=True)
    (out / "runs").mkdir()


def write_run_configs(plan: BatchPlan) -> None:
    """Write each run's config to ``<out>/configs/<run>.yaml``."""
    for run in plan.runs:
        text = (f"# generated by `outcomes batch` from {plan.batch_file}\n"
                + yaml.safe_dump(run.mapping, sort_keys=False, allow_unicode=True))
        run.config.write_text(text, encoding="utf-8")


# -- one run, in a worker ------------------------------------------------------------------------

def execute_run(config: str, out: str, env: dict | None = None) -> dict:
    """Run the suite for one config (called in a Dask worker); never raises.

    Returns
    -------
    dict
        ``status`` (succeeded / failed / refused), ``exit_code``, ``error``, ``seconds``, ``worker``.
    """
    from analysis.run.runner import run_suite

    for var, value in (env or {}).items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
    t0 = time.perf_counter()
    try:
        # One kernel per run: the batch already runs one run per Dask worker (core).
        outcome = run_suite(config, out=out, progress=False, workers=1)
        record = {"status": outcome.status, "exit_code": outcome.exit_code, "error": outcome.error}
    except OutcomesError as exc:  # e.g. a log that cannot be read at all: refused, as `outcomes run` does
        record = {"status": "refused", "exit_code": exc.exit_code, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 — a bug in one run must not stop the batch
        record = {"status": "failed", "exit_code": 1, "error": f"{type(exc).__name__}: {exc}"}
    record["seconds"] = round(time.perf_counter() - t0, 1)
    try:
        from distributed import get_worker

        record["worker"] = get_worker().address
    except (ImportError, ValueError):
        record["worker"] = None
    return record


# -- the batch -----------------------------------------------------------------------------------

def _open_client(scheduler: str | None, workers: int | None):
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")
        except (OSError, TimeoutError) as exc:
            raise OutcomesError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        if workers:
            client.wait_for_workers(workers, timeout=120)
        return client, None, f"scheduler {scheduler}"
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster, f"LocalCluster ({n} worker{'s' if n != 1 else ''}, 1 thread each)"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(plan: BatchPlan, run: PlannedRun, result: dict) -> dict:
    """One run's row of the batch manifest; paths relative to the batch folder."""
    def rel(path: Path) -> str:
        return path.relative_to(plan.out).as_posix()

    files = {key: rel(run.run_dir / name) if (run.run_dir / name).exists() else None
             for key, name in (("manifest", "manifest.json"), ("report", "index.html"),
                               ("results", "results.json"), ("validation_report", "validation_report.csv"))}
    return {"name": run.name, "status": result["status"], "exit_code": result["exit_code"],
            "error": result["error"], "seconds": result.get("seconds"), "worker": result.get("worker"),
            "config": rel(run.config), "config_sha256": _sha256(run.config), "run_dir": rel(run.run_dir), **files}


def _batch_manifest(plan, records, status, scheduler, started, seconds) -> dict:
    return {"batch_manifest_version": "1.0", "name": plan.name, "status": status,
            "batch_file": str(plan.batch_file), "batch_sha256": _sha256(plan.batch_file), "out": str(plan.out),
            "scheduler": scheduler, "started_utc": started, "finished_utc": utc_now() if seconds is not None else None,
            "seconds": seconds, "n_runs": len(plan.runs),
            "n_succeeded": sum(r["status"] == "succeeded" for r in records), "runs": records}


def run_batch(batch: str | Path, scheduler: str | None = None, workers: int | None = None,
              progress: bool = True) -> BatchOutcome:
    """Run every run of a batch file on Dask.

    Parameters
    ----------
    batch : path
        The batch YAML.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default a LocalCluster.
    workers : int, optional
        LocalCluster workers (default one per core); with ``scheduler``, wait for this many.
    progress : bool
        Print ``[k/n] run ... done/failed`` lines to stderr.

    Returns
    -------
    BatchOutcome
        ``exit_code`` 0 when every run succeeded, else 1.

    Raises
    ------
    ConfigError, OutcomesError
        A bad batch file or an unreachable scheduler (exit code 2), before any run starts.
    """
    from distributed import as_completed

    plan = load_batch(batch)
    _check_out(plan.out)
    started = utc_now()
    t_start = time.perf_counter()
    client, cluster, described = _open_client(scheduler, workers)
    env = {v: os.environ.get(v) for v in THREAD_VARIABLES} if cluster is not None else None
    startup = time.perf_counter() - t_start
    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    try:
        _prepare_out(plan.out)
        write_run_configs(plan)
        write_json(plan.out / "batch_manifest.json", _batch_manifest(plan, [], "running", described, started, None))
        futures = {client.submit(execute_run, str(run.config), str(run.run_dir), env, pure=False): run
                   for run in plan.runs}
        for k, future in enumerate(as_completed(futures), 1):
            run = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 — e.g. a worker died; the others go on
                result = {"status": "failed", "exit_code": 1, "error": f"{type(exc).__name__}: {exc}"}
            results[run.name] = result
            if progress:
                word = {"succeeded": "done", "refused": "refused"}.get(result["status"], "failed")
                took = f" ({result['seconds']:.0f} s)" if result.get("seconds") is not None else ""
                print(f"[{k}/{len(plan.runs)}] {run.name} {word}{took}", file=sys.stderr, flush=True)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    seconds = time.perf_counter() - t0
    records = [_record(plan, run, results[run.name]) for run in plan.runs]
    ok = all(r["status"] == "succeeded" for r in records)
    manifest = write_json(plan.out / "batch_manifest.json", _batch_manifest(
        plan, records, "succeeded" if ok else "failed", described, started, round(seconds, 1)))
    return BatchOutcome(plan, records, 0 if ok else 1, described, seconds, startup, manifest)


def format_table(outcome: BatchOutcome) -> str:
    """The end-of-batch table: run, status, time, where its report (or refusal) is."""
    rows = [("run", "status", "time", "report")]
    for r in outcome.records:
        where = r["report"] or r["validation_report"] or r["run_dir"]
        shown = outcome.plan.out / where
        try:
            shown = shown.relative_to(Path.cwd())
        except ValueError:
            pass
        rows.append((r["name"], r["status"], f"{r['seconds']:.0f} s" if r["seconds"] is not None else "—", str(shown)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3] for row in rows]
    failed = [r for r in outcome.records if r["status"] != "succeeded"]
    # the first line of each error (a refused log's full list is in its validation_report.csv)
    lines += [f"{r['name']}: {(r['error'] or r['status']).splitlines()[0]}" for r in failed]
    lines.append(f"{len(outcome.records) - len(failed)}/{len(outcome.records)} runs succeeded on "
                 f"{outcome.scheduler}; batch manifest: {outcome.manifest}")
    return "\n".join(lines)

