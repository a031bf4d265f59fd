"""Executing a run's notebooks with papermill: one kernel per worker, 02–07 side by side.

The order of a run is the pipeline's: ``01_validate`` first (it writes ``private/visits.parquet``,
which every later notebook reads), then ``02``–``07``, which read only that table and write only
files named after themselves (checked: none writes a file another of them writes or reads), then
``08_claims`` (it reads the fits 03–06 saved) and ``09_summary`` (it reads every results
fragment). So consecutive notebooks numbered 02–07 form one *stage* that runs on up to
``workers`` kernels at once; every other notebook is a stage of its own. A stage runs side by side
only when the visit table already exists (a run of, say, 03 and 04 alone would otherwise have both
prepare it at once). Inside a stage the notebooks start longest first (:data:`LONGEST_FIRST`,
the order of their wall-clock seconds in the 20,000-patient suite), each on the first kernel that
is free: the longest-processing-time rule, so that a long notebook started last does not keep one
kernel busy while the other waits at the end of the stage. Which notebook runs where changes no
file of the run (tested: one kernel and two give the same results).

Each notebook is executed and saved by ``papermill.execute_notebook`` exactly as before (the
injected-parameters cell, outputs, metadata), in a kernel of the run's
:class:`~analysis.run.kernel.KernelPool` through the engine
:data:`~analysis.run.papermill_engine.ENGINE`.
The manifest and the pages list notebooks in pipeline order whatever order they finished in.

A failed notebook ends the run: no notebook starts after it, the ones already running side by
side finish (their pages are kept), and the error is that of the first failed notebook in
pipeline order.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path

#: Notebook numbers that may run side by side (see the module docstring).
SIDE_BY_SIDE = frozenset({"02", "03", "04", "05", "06", "07"})
#: Kernels a run uses by default, at most: two keep the peak memory of a 1M-patient run within
#: reach of one machine (each kernel holds its own copy of the visit table and its models).
DEFAULT_MAX_WORKERS = 2
#: Notebooks of a side-by-side stage by descending wall-clock seconds in the 20,000-patient suite
#: (``python /work/helpers/prof_suite.py 20000``, docs/engine.md); others follow in pipeline order.
LONGEST_FIRST = ("04", "03", "06", "07", "05", "02")


def default_workers() -> int:
    """``min(os.cpu_count(), DEFAULT_MAX_WORKERS)``: one kernel on a one-core machine."""
    return max(1, min(os.cpu_count() or 1, DEFAULT_MAX_WORKERS))


def stages(sources: list[Path]) -> list[list[Path]]:
    """The run's notebooks cut into stages: runs of consecutive 02–07 notebooks, and the others
    one by one (pipeline order is kept inside and between stages)."""
    out: list[list[Path]] = []
    for source in sources:
        if source.name[:2] in SIDE_BY_SIDE and out and out[-1][-1].name[:2] in SIDE_BY_SIDE:
            out[-1].append(source)
        else:
            out.append([source])
    return out


def longest_first(stage: list[Path]) -> list[Path]:
    """``stage`` in the order its notebooks start (:data:`LONGEST_FIRST`, then pipeline order)."""
    rank = {number: i for i, number in enumerate(LONGEST_FIRST)}
    return sorted(stage, key=lambda s: rank.get(s.name[:2], len(rank)))


def kernels_needed(sources: list[Path], workers: int, visits_ready: bool = False) -> int:
    """The kernels :func:`execute_notebooks` will use for ``sources``: the widest stage (a stage
    after the first runs side by side, as does the first when the visit table exists already)."""
    widths = [min(workers, len(stage)) if (i or visits_ready) and stage[0].name[:2] in SIDE_BY_SIDE
              else 1 for i, stage in enumerate(stages(sources))]
    return max(widths, default=1)


@dataclass
class Executed:
    """What :func:`execute_notebooks` did: the saved notebooks in pipeline order, the error of the
    first failed one (or None), and each notebook's wall-clock seconds."""

    notebooks: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def progress_bar(step: str) -> dict:
    """papermill's tqdm bar for one notebook: its name, cells done, elapsed time."""
    return {"desc": step, "unit": "cell", "leave": True,
            "bar_format": "{desc:<24} {bar:24} {n_fmt}/{total_fmt} cells  {elapsed}"}


def execute_one(source: Path, out_nb: Path, parameters: dict, km, progress: dict | bool = False) -> None:
    """Execute one notebook source (jupytext py:percent) into ``out_nb`` in the running kernel ``km``."""
    import jupytext
    import papermill

    from analysis.run.kernel import KERNEL_NAME
    from analysis.run.papermill_engine import ENGINE

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{source.stem}.ipynb"
        jupytext.write(notebook, src, fmt="ipynb")
        # No cwd: the kernel already runs in the project root, and papermill's chdir would change
        # the working directory of the whole runner process while other notebooks run.
        papermill.execute_notebook(str(src), str(out_nb), parameters=parameters,
                                   kernel_name=KERNEL_NAME, progress_bar=progress,
                                   engine_name=ENGINE, km=km)


def _cells_done(out_nb: Path) -> tuple[int, int]:
    import nbformat

    if not out_nb.exists():
        return 0, 0
    cells = nbformat.read(out_nb, as_version=4).cells
    done = sum(c.get("metadata", {}).get("papermill", {}).get("status") not in (None, "pending")
               for c in cells)
    return done, len(cells)


def _finished_line(step: str, out_nb: Path, seconds: float) -> str:
    """The line a finished bar would leave, for notebooks that ran side by side."""
    from tqdm import tqdm

    done, total = _cells_done(out_nb)
    return tqdm.format_meter(done, total, seconds, prefix=step, unit="cell",
                             bar_format=progress_bar(step)["bar_format"])


def execute_notebooks(sources: list[Path], run_dir: Path, parameters: dict, pool, workers: int,
                      progress: bool, on_saved=None) -> Executed:
    """Execute ``sources`` into ``run_dir/notebooks`` on ``pool`` (see the module docstring).

    Parameters
    ----------
    sources : list of Path
        Notebook sources in pipeline order.
    run_dir : Path
        The (staging) run folder.
    parameters : dict
        papermill parameters of every notebook.
    pool : KernelPool
        The run's kernels; grown to ``workers`` for a stage that runs side by side.
    workers : int
        Kernels a stage may use at once (1: every notebook in one kernel, in order).
    progress : bool
        Progress bars on stderr.
    on_saved : callable, optional
        Called in this thread with the stem of each notebook saved without error, as it is saved.
    """
    from tqdm import tqdm

    result = Executed()
    total = len(sources)
    number = {s: i for i, s in enumerate(sources, 1)}
    failures: dict[Path, str] = {}
    visits = run_dir / "private" / "visits.parquet"

    def start(source: Path, worker, side_by_side: bool):
        out_nb = run_dir / "notebooks" / f"{source.stem}.ipynb"
        step = f"[{number[source]}/{total}] {source.stem}"
        bar: dict | bool = False
        if progress and not side_by_side:
            bar = progress_bar(step)
        elif progress and sys.stderr.isatty():  # live bars, one line per kernel; cleared when done
            bar = {**progress_bar(step), "leave": False, "position": worker.slot}
        t0 = time.perf_counter()

        def task(km):
            execute_one(source, out_nb, parameters, km, bar)
            return time.perf_counter() - t0
        return worker.submit(task), out_nb, step, t0

    def finish(source: Path, future, out_nb: Path, step: str, t0: float, side_by_side: bool) -> None:
        try:
            result.seconds[source.stem] = future.result()
        except Exception as exc:  # noqa: BLE001 — any notebook failure ends the run as failed
            result.seconds[source.stem] = time.perf_counter() - t0
            text = str(exc).strip()
            failures[source] = (f"{source.stem}: {type(exc).__name__}: "
                                f"{text.splitlines()[-1] if text else ''}")
            if not out_nb.exists():
                failures[source] += "\n" + traceback.format_exc(limit=3)
            if progress:
                print(f"{step} failed", file=sys.stderr)
        else:
            if progress and side_by_side:
                tqdm.write(_finished_line(step, out_nb, result.seconds[source.stem]), file=sys.stderr)
            if on_saved is not None:
                on_saved(source.stem)

    for stage in stages(sources):
        if failures:
            break
        width = min(workers, len(stage)) if visits.exists() else 1
        kernels = pool.grow(width)
        side_by_side = width > 1
        pending = longest_first(stage) if side_by_side else list(stage)
        running: dict = {}
        idle = list(kernels)
        while pending or running:
            while pending and idle and not failures:
                source = pending.pop(0)
                worker = idle.pop(0)
                future, out_nb, step, t0 = start(source, worker, side_by_side)
                running[future] = (source, worker, out_nb, step, t0)
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: number[running[f][0]]):
                source, worker, out_nb, step, t0 = running.pop(future)
                finish(source, future, out_nb, step, t0, side_by_side)
                idle.append(worker)
            idle.sort(key=lambda w: w.slot)
    result.notebooks = [s.stem for s in sources
                        if (run_dir / "notebooks" / f"{s.stem}.ipynb").exists()]
    if failures:
        result.error = failures[min(failures, key=lambda s: number[s])]
    return result
