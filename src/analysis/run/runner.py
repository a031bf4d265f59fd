"""``outcomes run``: execute the notebook suite with papermill into one run folder.

Order of work, so that a bad input never leaves a report that looks final:

1. the config is validated (unknown keys refused by name) before any notebook starts;
2. the log is validated and anonymity-checked in-process; on failure only
   ``validation_report.csv`` is written and the exit code is 2; then every user-given model
   formula and covariate is checked (:func:`check_model_formulas`) against the validated columns
   and the claims file is read, so that an unsafe formula or a bad claims file is refused (exit
   code 2) before any notebook starts;
3. notebooks run in pipeline order (``notebooks/NN_*.py``, jupytext py:percent, converted in
   memory) in the run's kernels (:mod:`analysis.run.kernel`: one kernel per worker, started while
   the log is validated, reset between notebooks), 02–07 side by side when there are two or more
   workers (:mod:`analysis.run.execute`); each executed notebook is saved and, as soon as it is,
   rendered to HTML twice (``owner/``: code hidden, researcher-only cells removed;
   ``researcher/``: with code) while the next notebooks run;
4. the result fragments are merged into ``results.json`` only when every notebook succeeded;
5. ``index.html``, ``audit.html`` and ``manifest.json`` are written last, all saying ``failed``
   when a notebook failed (exit code 1, no ``results.json``).
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from analysis.config import load_config
from analysis.errors import ConfigError, IdentifierError, ValidationFailed
from analysis.report.context import keep_validation, project_root
from analysis.results import merge_fragments, write_json
from analysis.run.folder import check_target, commit, discard, new_staging
from analysis.run.manifest import build_manifest, output_hashes, utc_now

NOTEBOOK_DIR = "notebooks"
#: Columns that identify a patient or the clinic they attend: never a model term or outcome.
IDENTIFYING_COLUMNS = ("patient_id", "clinic_id")


@dataclass
class RunOutcome:
    run_dir: Path
    status: str  # "succeeded" | "failed" | "refused"
    exit_code: int
    error: str | None = None
    #: Kernels started for the run, and each executed notebook's wall-clock seconds.
    kernel_starts: int = 0
    notebook_seconds: dict[str, float] = field(default_factory=dict)


def notebook_sources(root: Path | None = None) -> list[Path]:
    """The suite's notebooks in pipeline order (``notebooks/NN_name.py``)."""
    folder = (root or project_root(Path(__file__).parent)) / NOTEBOOK_DIR
    return sorted(p for p in folder.glob("[0-9][0-9]_*.py"))


def check_model_formulas(cfg, columns) -> None:
    """Check every user-given formula, covariate and outcome of ``cfg.models`` before any fit.

    patsy evaluates formula terms as Python, so a formula such as
    ``pain_score ~ __import__('os').system('...')`` must be refused before a notebook runs it.
    Each text goes through :func:`analysis.models.formulas.check_formula` with the validated columns
    plus those the models derive (``arm``, ``baseline_<outcome>``, ``overpronated``,
    ``sessions_<intervention>``).

    Parameters
    ----------
    cfg : RunConfig
    columns : iterable of str
        Columns of the validated table.

    Raises
    ------
    ConfigError
        Naming the config key and the refused token.
    """
    from analysis.intake.arms import session_column
    from analysis.models.formulas import check_formula

    m = cfg.models
    allowed = set(columns) | {"arm", "week", "visit", "overpronated", "baseline_pain",
                              f"baseline_{m.pain.outcome}"}
    allowed |= {session_column(i) for i in cfg.interventions}
    texts = [("models.pain.formula", m.pain.formula)] if m.pain.formula is not None else []
    for section in ("pain", "episodes", "strength"):
        texts += [(f"models.{section}.covariates[{i}]", c)
                  for i, c in enumerate(getattr(m, section).covariates)]
    forbidden = {c: f"{c} identifies patients or their clinic; it may not be a model term"
                 for c in IDENTIFYING_COLUMNS}
    for key, text in texts:
        try:
            check_formula(text, allowed, forbidden)
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    # The outcome is looked up as a column (an absent one is "not analysed"), never evaluated;
    # it must still be a plain name, since the default formula puts it on the left-hand side.
    if not m.pain.outcome.isidentifier() or m.pain.outcome.startswith("__"):
        raise ConfigError(f"models.pain.outcome: {m.pain.outcome!r} is not a column name")
    if m.pain.outcome in IDENTIFYING_COLUMNS:
        raise ConfigError(f"models.pain.outcome: {m.pain.outcome} identifies patients or their "
                          "clinic; it cannot be an outcome")


def check_enough_patients(cfg, validated) -> None:
    """Refuse a log with fewer patients than ``disclosure_threshold``: every number would rest on them.

    The run then publishes nothing but the refusal (``validation_report.csv``, one row); the
    message says "fewer than k", never the exact small count.
    """
    import pandas as pd

    if validated.n_patients >= cfg.disclosure_threshold:
        return
    k = cfg.disclosure_threshold
    report = pd.DataFrame([{"line": 1, "column": "patient_id", "check": "below_disclosure_threshold",
                            "value": "", "message": f"the log has fewer than disclosure_threshold ({k}) "
                            "patients, so every number would rest on fewer; nothing is published"}])
    raise ValidationFailed(report, path=str(validated.path))


def check_weeks_within_data(cfg, data) -> None:
    """Weeks the config asks about must lie within the data's follow-up (no extrapolation)."""
    if "week" not in data or not data["week"].notna().any():
        return
    last = float(data["week"].max())
    # Only weeks the user wrote are checked: the defaults adapt to short logs by themselves.
    asked = []
    if "weeks" in cfg.models.pain.model_fields_set:
        asked += [(f"models.pain.weeks[{i}]", w) for i, w in enumerate(cfg.models.pain.weeks or [])]
    if cfg.models.responders.week is not None:
        asked.append(("models.responders.week", cfg.models.responders.week))
    if cfg.benchmarking.week is not None:
        asked.append(("benchmarking.week", cfg.benchmarking.week))
    for key, week in asked:
        if week > last + cfg.models.responders.window:
            raise ConfigError(f"{key}: week {week:g} is after the last visit in the data (week "
                              f"{last:.3g}); choose weeks within the follow-up")


def run_suite(config: str | Path, out: str | Path | None = None, progress: bool = True,
              notebooks: list[Path] | None = None, workers: int | None = None) -> RunOutcome:
    """Run the notebook suite for one config.

    Parameters
    ----------
    config : path
        The run config.
    out : path, optional
        The run folder (default ``reports/<name>/`` under the project root).
    progress : bool
        Show a progress bar per notebook (cells done, elapsed time) on stderr. The result line is
        the command line's to print (``outcomes run``), so batch workers stay silent.
    notebooks : list of Path, optional
        Notebook sources to run (default: all of ``notebooks/NN_*.py``).
    workers : int, optional
        Kernels the independent notebooks 02–07 may use at once (default
        :func:`analysis.run.execute.default_workers`: two when the machine has two cores or more;
        1 runs every notebook in one kernel, one after another). The results do not depend on it.
    """
    from analysis.run.execute import default_workers

    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers: {workers} is not a number of kernels (1 or more)")
    started = utc_now()
    config_path = Path(config).resolve()
    cfg = load_config(config_path)
    root = project_root(Path(__file__).parent)
    protected = {"the log": cfg.data, "the config": config_path, "the claims file": cfg.claims,
                 "the project root": root}
    target = check_target(Path(out) if out else root / "reports" / cfg.name, protected)
    staging = new_staging(target)
    try:
        outcome = _run_into(staging, target, cfg, config_path, root, started, progress, notebooks,
                            workers)
        commit(staging, target, protected)
    finally:
        discard(staging)  # a no-op after commit; an interrupted run leaves the old folder as it was
    return outcome


def _run_into(run_dir: Path, target: Path, cfg, config_path: Path, root: Path, started: str,
              progress: bool, notebooks: list[Path] | None, workers: int) -> RunOutcome:
    """Validate, pre-flight and execute into the staging folder ``run_dir``."""
    from analysis.run.execute import kernels_needed
    from analysis.run.kernel import KernelPool

    sources = notebooks or notebook_sources(root)
    # Every kernel the run will use starts and imports the library while we validate.
    pool = KernelPool(root, size=kernels_needed(sources, workers))
    try:
        outcome = _validate_and_execute(run_dir, target, cfg, config_path, root, started, progress,
                                        sources, workers, pool)
    except BaseException:
        pool.close(now=True)
        raise
    pool.close(now=outcome.status == "refused")
    outcome.kernel_starts = pool.kernel_starts
    return outcome


def _validate_and_execute(run_dir: Path, target: Path, cfg, config_path: Path, root: Path,
                          started: str, progress: bool, sources: list[Path], workers: int,
                          pool) -> RunOutcome:
    # Imported once the kernels are starting (pool): papermill, nbformat and nbconvert take
    # 1-2 s, which the kernels' warm-up now overlaps instead of waiting for.
    from analysis.intake.validate import validate_log, write_validation_failure
    from analysis.report.html import render_dashboard, render_notebook_html, report_header
    from analysis.report.pages import render_audit
    from analysis.run import papermill_engine  # noqa: F401 — registers the engine
    from analysis.run.execute import execute_notebooks
    from analysis.run.memory import reuse_freed_memory

    try:
        with reuse_freed_memory():  # freed arrays reused, not faulted in again (run/memory.py)
            validated = validate_log(cfg)
        check_enough_patients(cfg, validated)
    except (ValidationFailed, IdentifierError) as exc:
        write_validation_failure(exc, run_dir)
        # The failures themselves (line, column, check), so `outcomes run` names them too.
        return RunOutcome(target, "refused", 2, f"{exc}\n{exc.summary()}".rstrip())
    check_model_formulas(cfg, validated.data.columns)
    check_weeks_within_data(cfg, validated.data)
    if cfg.claims is not None:  # a bad claims file is refused now, not in notebook 08
        from analysis.audit.claims import load_claims

        load_claims(cfg.claims)

    keep_validation(run_dir, cfg, validated)  # 01 reuses it instead of validating again
    params = {"config": str(config_path), "run_dir": str(run_dir)}
    (run_dir / "notebooks").mkdir(exist_ok=True)
    header = report_header(cfg, validated)
    planned = [s.stem for s in sources]
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, ThreadPoolExecutor(1) as pages:
        warnings.simplefilter("always")
        rendered = []  # each page as soon as its notebook is saved, while the next ones run

        def render(stem: str) -> None:
            path = run_dir / "notebooks" / f"{stem}.ipynb"
            rendered.append(pages.submit(render_notebook_html, path, run_dir, header, order=planned))

        done = execute_notebooks(sources, run_dir, params, pool, workers, progress, on_saved=render)
        pool.release()  # the kernels shut down while the pages, results and manifest are written
        for page in rendered:
            page.result()
        if done.notebooks != planned:  # a failed run: previous/next only name pages that exist
            for stem in done.notebooks:
                render_notebook_html(run_dir / "notebooks" / f"{stem}.ipynb", run_dir, header,
                                     order=done.notebooks)
        captured = sorted({f"{w.category.__name__}: {w.message}" for w in caught})

    error, executed = done.error, done.notebooks
    status = "failed" if error else "succeeded"
    results = None
    if not error:
        results = merge_fragments(run_dir / "results")
        write_json(run_dir / "results.json", results)
    render_dashboard(run_dir, cfg, results, status=status, error=error, notebooks=executed, header=header)
    manifest = build_manifest(
        run_dir=run_dir, target=target, cfg=cfg, config_path=config_path, validated=validated, status=status,
        error=error, started=started, finished=utc_now(), warnings=captured,
        notebooks=executed, seconds=time.perf_counter() - t0,
    )
    render_audit(run_dir, manifest, header, target=target)
    manifest["outputs"] = output_hashes(run_dir)  # now with audit.html
    write_json(run_dir / "manifest.json", manifest)
    return RunOutcome(target, status, 0 if not error else 1, error,
                      notebook_seconds={k: round(v, 2) for k, v in done.seconds.items()})
