"""The ``outcomes`` command line: validate, simulate, run, batch, verify, demo.

Every user-facing problem (bad config, unreadable or invalid log, identifying data) ends with a
message on stderr and exit code 2, never a traceback. Exit code 1 is kept for a run that failed
while executing (a notebook error).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.errors import IdentifierError, OutcomesError, ValidationFailed


def _cmd_validate(args: argparse.Namespace) -> int:
    from analysis.config import load_config
    from analysis.intake.validate import validate_log, write_validation_failure
    from analysis.run.memory import reuse_freed_memory

    cfg = load_config(args.config)
    log_path = Path(args.log) if args.log else cfg.data
    report_dir = Path(args.out) if args.out else Path("reports") / cfg.name
    try:
        with reuse_freed_memory():
            result = validate_log(cfg, path=log_path)
    except (ValidationFailed, IdentifierError) as exc:
        written = write_validation_failure(exc, report_dir)
        print(str(exc), file=sys.stderr)
        print(exc.summary() if hasattr(exc, "summary") else "", file=sys.stderr, end="")
        print(f"report: {written}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from analysis.studies.simulate import write_simulation
    from analysis.studies.truth import truth_from_file

    log_path, truth_path = write_simulation(
        Path(args.out), n_patients=args.patients, n_clinics=args.clinics, seed=args.seed,
        weeks=args.weeks, effects=truth_from_file(args.truth) if args.truth else None,
        truth_file=args.truth,
    )
    print(f"wrote {log_path} and {truth_path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from analysis.run.runner import run_suite
    from analysis.run.startup import skip_iri_grammar

    skip_iri_grammar()  # 1.6-2.4 s of CPU this process never uses (analysis.run.startup)

    outcome = run_suite(args.config, out=args.out, progress=not args.quiet, workers=args.workers)
    if outcome.status == "refused":
        print(f"error: {outcome.error}", file=sys.stderr)
        print(f"report: {outcome.run_dir / 'validation_report.csv'}", file=sys.stderr)
    elif outcome.status == "failed":
        print(f"error: run failed: {outcome.error}", file=sys.stderr)
    else:  # the result line: all that --quiet prints
        print(f"{outcome.status}: {outcome.run_dir / 'index.html'}", file=sys.stderr)
    return outcome.exit_code


def _cmd_batch(args: argparse.Namespace) -> int:
    from analysis.run.batch import format_table, run_batch

    outcome = run_batch(args.config, scheduler=args.scheduler, workers=args.workers, progress=not args.quiet)
    print(format_table(outcome))
    return outcome.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    from analysis.report.context import resolve_path

    args.config = str(resolve_path(args.config))
    args.out = str(resolve_path(args.out))
    return _cmd_run(args)


def _cmd_verify(args: argparse.Namespace) -> int:
    from analysis.run.startup import skip_iri_grammar
    from analysis.run.verify import verify_run

    skip_iri_grammar()  # as in `outcomes run`: the rerun executes the notebooks

    report = verify_run(args.run_dir, rerun=not args.no_rerun)
    print(report.text())
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="outcomes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate a log against the data contract and the anonymity guard")
    p.add_argument("log", nargs="?", help="the log (default: the config's `data`)")
    p.add_argument("--config", required=True, help="run config (YAML)")
    p.add_argument("--out", help="folder for validation_report.csv (default reports/<name>/)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("simulate", help="write a synthetic log and the truth it was drawn from")
    p.add_argument("--patients", type=int, default=300)
    p.add_argument("--clinics", type=int, default=6)
    p.add_argument("--weeks", type=float, default=12.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--truth", help="YAML of Truth fields to change (per-arm maps complete from the defaults)")
    p.add_argument("--out", required=True, help="the log's path (.csv); truth goes beside it as .truth.json")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("run", help="run the notebook suite into a report folder")
    p.add_argument("--config", required=True, help="run config (YAML)")
    p.add_argument("--out", help="run folder (default reports/<name>/)")
    p.add_argument("--workers", type=int, help="kernels notebooks 02-07 may use side by side "
                                               "(default: 2 on a machine with 2 or more cores, else 1)")
    p.add_argument("--quiet", action="store_true", help="print only the result line, no progress bars")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("batch", help="run many configs (e.g. one per clinic) on a Dask cluster")
    p.add_argument("--config", required=True, help="batch file (YAML; see docs/benchmarking.md)")
    p.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786 "
                                       "(default: a local cluster)")
    p.add_argument("--workers", type=int, help="local workers (default one per core); with --scheduler, "
                                               "wait for this many workers")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser("verify", help="check a run's inputs and every output against its manifest, "
                                         "rerun and diff results.json")
    p.add_argument("run_dir")
    p.add_argument("--no-rerun", action="store_true",
                   help="check input and output hashes only (no rerun of the suite)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("demo", help="run the suite on the bundled example log")
    p.add_argument("--config", default="config/demo.yaml")
    p.add_argument("--out", default="reports/demo")
    p.add_argument("--workers", type=int, help="kernels notebooks 02-07 may use side by side "
                                               "(default: 2 on a machine with 2 or more cores, else 1)")
    p.add_argument("--quiet", action="store_true", help="print only the result line, no progress bars")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from analysis.run.memory import no_huge_pages

    no_huge_pages()  # this process and the kernels it starts (docs/engine.md, analysis.run.memory)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except OutcomesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
