"""``outcomes run``: execute the notebook suite with papermill into one run folder.

Order of work, so that a bad input never leaves a report that looks final:

1. the config is validated (unknown keys refused by name) before any notebook starts;
2. the log is validated and anonymity-checked in-process; on failure only
   ``validation_report.csv`` is written and the exit code is 2; then every user-given model
   formula and covariate is checked (:func:`check_model_formulas`) against the validated columns
   and the claims file is read, so that an unsafe formula or a bad claims file is refused (exit
   code 2) before any notebook starts;
3. notebooks run in order (``notebooks/NN_*.py``, jupytext py:percent, converted in memory); each
   executed notebook is saved; when the loop ends each is rendered to HTML twice
   (``owner/``: code hidden, researcher-only cells removed; ``researcher/``: with code);
4. the result fragments are merged into ``results.json`` only when every notebook succeeded;
5. ``index.html``, ``audit.html`` and ``manifest.json`` are written last, all saying ``failed``
   when a notebook failed (exit code 1, no ``results.json``).
"""

from __future__ import annotations

import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from analysis.config import load_config
from analysis.errors import ConfigError, IdentifierError, OutcomesError, ValidationFailed
from analysis.report.context import project_root
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


def _progress_bar(step: str) -> dict:
    """papermill's tqdm bar for one notebook: its name, cells done, elapsed time."""
    return {"desc": step, "unit": "cell", "leave": True,
            "bar_format": "{desc:<24} {bar:24} {n_fmt}/{total_fmt} cells  {elapsed}"}


def _execute(source: Path, out_nb: Path, parameters: dict, cwd: Path, progress: dict | bool = False) -> None:
    import jupytext
    import papermill

    from analysis.run.kernel import kernel_options

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{source.stem}.ipynb"
        jupytext.write(notebook, src, fmt="ipynb")
        papermill.execute_notebook(
            str(src), str(out_nb), parameters=parameters, kernel_name="python3",
            progress_bar=progress, cwd=str(cwd), **kernel_options(Path(tmp)),
        )


def run_suite(config: str | Path, out: str | Path | None = None, progress: bool = True,
              notebooks: list[Path] | None = None) -> RunOutcome:
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
    """
    started = utc_now()
    config_path = Path(config).resolve()
    cfg = load_config(config_path)
    root = project_root(Path(__file__).parent)
    protected = {"the log": cfg.data, "the config": config_path, "the claims file": cfg.claims,
                 "the project root": root}
    target = check_target(Path(out) if out else root / "reports" / cfg.name, protected)
    staging = new_staging(target)
    try:
        outcome = _run_into(staging, target, cfg, config_path, root, started, progress, notebooks)
        commit(staging, target, protected)
    finally:
        discard(staging)  # a no-op after commit; an interrupted run leaves the old folder as it was
    return outcome


def _run_into(run_dir: Path, target: Path, cfg, config_path: Path, root: Path, started: str,
              progress: bool, notebooks: list[Path] | None) -> RunOutcome:
    """Validate, pre-flight and execute into the staging folder ``run_dir``."""
    from analysis.intake.validate import validate_log, write_validation_failure
    from analysis.report.html import render_dashboard, render_notebook_html, report_header
    from analysis.report.pages import render_audit

    try:
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

    sources = notebooks or notebook_sources(root)
    params = {"config": str(config_path), "run_dir": str(run_dir)}
    (run_dir / "notebooks").mkdir(exist_ok=True)
    captured: list[str] = []
    error = None
    executed: list[str] = []
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, source in enumerate(sources, 1):
            out_nb = run_dir / "notebooks" / f"{source.stem}.ipynb"
            bar = _progress_bar(f"[{i}/{len(sources)}] {source.stem}") if progress else False
            try:
                _execute(source, out_nb, params, root, bar)
            except Exception as exc:  # noqa: BLE001 — any notebook failure ends the run as failed
                error = f"{source.stem}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
                if not out_nb.exists():
                    error += "\n" + traceback.format_exc(limit=3)
                if progress:
                    print(f"[{i}/{len(sources)}] {source.stem} failed", file=sys.stderr)
                break
            finally:
                if out_nb.exists():
                    executed.append(source.stem)
        captured = sorted({f"{w.category.__name__}: {w.message}" for w in caught})

    status = "failed" if error else "succeeded"
    header = report_header(cfg, validated)
    for stem in executed:  # after the loop, so that previous/next links only name pages that exist
        render_notebook_html(run_dir / "notebooks" / f"{stem}.ipynb", run_dir, header, order=executed)
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
    return RunOutcome(target, status, 0 if not error else 1, error)
