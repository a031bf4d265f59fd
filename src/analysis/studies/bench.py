"""Benchmark: the mixed-model engines side by side, the whole suite, and reading a 1M-patient log.

``python -m analysis.studies.bench --out reports/bench`` (or ``make bench``) simulates clinic logs with
:func:`analysis.studies.simulate.simulate_log` (20 clinics, 4 arms, ~7.5 visits a patient) at 1,000,
5,000 and 20,000 patients and fits ``pain_score ~ week * arm + (week | patient)`` by REML, with
and without ``(1 | clinic)``, with every engine of :mod:`analysis.studies.bench_peers` (its
docstring: rotated rounds, one process per engine); at ``--large-sizes`` (default 1,000,000
patients) the slope model with pls (bare and as the suite calls it) and mixedlm-rs (1 thread) only.
``--old-fits`` gives the earlier rows instead: ``pls`` and ``statsmodels`` through
:func:`analysis.models.lmm.fit_lmm` in worker processes (statsmodels skipped where its time,
extrapolated from the next smaller size, passes ``--cap`` seconds), ``lme4`` and ``lmerTest``
through ``Rscript``, R and pls in alternating rounds after an untimed warm-up fit on 300 rows, each
row with its largest relative difference to lme4's numbers (fixed effects relative to
max(|estimate|, SE), SEs and SDs relative, correlations absolute) and the REML criterion minus
lme4's. Peak memory is the ``VmHWM`` of the process that ran the step (Python worker or R
process: data generation or reading included).

Then the whole suite (``outcomes run``) at ``--suite-patients``, and a ``--validate-patients`` log
written by :func:`analysis.studies.simulate.write_simulation` read, validated and given arms (in a
worker). Writes ``<out>/bench.json`` (a list of rows) and prints a table. The machine's other load
makes timings noisy: compare within a run, not across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.run.memory import no_huge_pages, reuse_freed_memory
from analysis.studies.simulate import simulate_log, write_simulation

ARMS = ["orthotics", "foot_massage", "patella_taping"]  # usual care is added: 4 arms
FORMULA = "pain_score ~ week * C(arm, Treatment(reference='usual_care'))"
MODELS = {"slope": "pain_score ~ week * arm + (week | patient)",
          "slope+clinic": "pain_score ~ week * arm + (1 | clinic) + (week | clinic:patient)"}
SLOW_RUN = 20.0  # seconds: one run is enough beyond this
R_SCRIPT = r"""
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
a <- commandArgs(TRUE); reps <- as.integer(a[3])
d <- read.csv(a[1])
d$arm <- factor(d$arm, levels = c("usual_care", "orthotics", "foot_massage", "patella_taping"))
f <- if (a[2] == "clinic") pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id) else
  pain_score ~ week * arm + (1 + week | patient_id)
for (fun in list(lme4::lmer, lmerTest::lmer)) suppressWarnings(try(fun(f, d[1:300, ], REML = TRUE), TRUE))
time_fit <- function(fun) { warn <- character(0); m <- NULL
  s <- sapply(seq_len(reps), function(i) system.time(m <<- withCallingHandlers(fun(f, d, REML = TRUE),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") }))[["elapsed"]])
  list(m = m, seconds = s, warnings = unique(warn)) }
l4 <- time_fit(lme4::lmer); lt <- time_fit(lmerTest::lmer)
v <- as.data.frame(VarCorr(l4$m)); cf <- summary(l4$m)$coefficients
hwm <- grep("VmHWM", readLines("/proc/self/status"), value = TRUE)
cat(toJSON(list(lme4 = l4$seconds, lmerTest = lt$seconds, warnings = unique(c(l4$warnings, lt$warnings)),
  REMLcrit = REMLcrit(l4$m), fixef = as.list(cf[, 1]), se = as.list(cf[, 2]),
  sdcor = setNames(as.list(v$sdcor), paste(v$grp, v$var1, v$var2, sep = ":")),
  vmhwm_kb = as.numeric(gsub("[^0-9]", "", hwm))), auto_unbox = TRUE, digits = NA))
"""


def model_table(log: pd.DataFrame) -> pd.DataFrame:
    """The model's columns of a simulated log: week since first visit, arm = first intervention."""
    day = pd.to_datetime(log["visit_date"])
    first = day.groupby(log["patient_id"]).transform("min")
    return pd.DataFrame({"patient_id": log["patient_id"], "clinic_id": log["clinic_id"],
                         "week": (day - first).dt.days / 7.0,
                         "arm": log.groupby("patient_id")["intervention"].transform("first"),
                         "pain_score": log["pain_score"].astype(float)})


def bench_data(n_patients: int, seed: int = 20261121) -> pd.DataFrame:
    """The benchmark's model table for ``n_patients`` (20 clinics, 4 arms, 12 weeks)."""
    return model_table(simulate_log(n_patients, 20, seed=seed, arms=ARMS)[0])


def _peak_mb() -> float:
    from analysis.studies.bench_peers import peak_rss_mb  # VmHWM: not the parent's memory
    return peak_rss_mb()


# -- workers (run in their own process: clean peak memory, killable at the cap) ---------------
def _fit_worker(spec: dict) -> dict:
    from analysis.models.lmm import fit_lmm

    data = bench_data(spec["n"])
    clinic = "clinic_id" if spec["clinic"] else None
    if spec["engine"] == "pls":  # untimed: first calls import and set up lazily (as R's warm-up)
        fit_lmm(data.iloc[:300], FORMULA, "patient_id", "slope", clinic=clinic, engine="pls")
    seconds, fit = [], None
    for _ in range(spec["repeats"]):
        t = time.perf_counter()
        fit = fit_lmm(data, FORMULA, "patient_id", "slope", clinic=clinic, engine=spec["engine"])
        seconds.append(time.perf_counter() - t)
        if seconds[-1] > SLOW_RUN:
            break
    fe = fit.fixed_effects.set_index("term")
    vc = fit.variance_components
    keys = vc["group"] + ":" + vc["term1"].fillna("NA") + ":" + vc["term2"].fillna("NA")
    return {"seconds": seconds, "rows": int(fit.n_obs), "REMLcrit": fit.reml_criterion,
            "fixef": fe["estimate"].to_dict(), "se": fe["std_error"].to_dict(),
            "sdcor": dict(zip(keys, vc["estimate"])), "health": fit.health.optimizer_used,
            "status": fit.health.status, "peak_mb": _peak_mb()}


def _validate_worker(spec: dict) -> dict:
    from analysis.config import RunConfig
    from analysis.intake.arms import assign_arms
    from analysis.intake.validate import validate_log

    cfg = RunConfig(name="bench", data=Path(spec["path"]))
    t = time.perf_counter()
    with reuse_freed_memory():  # as the outcomes command validates (analysis.run.memory)
        v, t_arms = validate_log(cfg), time.perf_counter()
        assign_arms(v.data, cfg.control, cfg.models.arm_column)
    end, note = time.perf_counter(), f"validate {t_arms - t:.1f} s, arms {time.perf_counter() - t_arms:.1f} s"
    return {"seconds": [end - t], "rows": int(v.n_rows), "peak_mb": _peak_mb(), "note": note}


def _tree_rss_mb(stop, peak: list) -> None:
    """Until ``stop`` is set, sample the summed resident memory of this process and every process
    under it (the notebook kernels, which run side by side) every 0.2 s; keep the largest."""
    import psutil

    me = psutil.Process()
    while not stop.wait(0.2):
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            with suppress(psutil.Error):  # a kernel that has just ended
                total += proc.memory_info().rss
        peak[0] = max(peak[0], total / 2**20)


def _suite_worker(spec: dict) -> dict:
    from analysis.run import runner, startup

    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=_tree_rss_mb, args=(stop, peak), daemon=True)
    sampler.start()
    t = time.perf_counter()
    startup.skip_iri_grammar()  # timed: `outcomes run` does it too (analysis.run.startup)
    outcome = runner.run_suite(spec["config"], out=spec["out"], progress=False,
                               workers=spec.get("workers"))
    seconds = time.perf_counter() - t
    stop.set()
    sampler.join()
    out = Path(spec["out"])
    manifest = json.loads((out / "manifest.json").read_text()) if outcome.exit_code != 2 else {}
    rows = next((i["rows_used"] for i in manifest.get("inputs", []) if i["role"] == "log"), None)
    pages = [p for p in out.rglob("*") if p.suffix in (".ipynb", ".html")]
    largest = max(pages, key=lambda p: p.stat().st_size) if pages else None
    note = (f"{outcome.kernel_starts} kernel start(s); per notebook (s): "
            + ", ".join(f"{k[:2]} {v:.1f}" for k, v in outcome.notebook_seconds.items()))
    if largest is not None:
        note += f"; largest page {largest.relative_to(out)} {largest.stat().st_size / 1e6:.2f} MB"
    return {"seconds": [seconds], "rows": rows, "peak_mb": max(_peak_mb(), peak[0]),
            "status": outcome.status + (f": {outcome.error}" if outcome.error else "") + "; " + note}


def _run_worker(spec: dict, timeout: float) -> dict | None:
    cmd = [sys.executable, "-m", "analysis.studies.bench", "--worker", json.dumps(spec)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"benchmark worker failed: {exc.stderr[-2000:]}") from None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_r(csv: Path, clinic: bool, repeats: int, timeout: float) -> dict | None:
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
    try:
        cmd = ["Rscript", fh.name, str(csv), "clinic" if clinic else "patient", str(repeats)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    finally:
        os.unlink(fh.name)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("lme4", "lmerTest", "warnings"):  # jsonlite unboxes vectors of length 1
        res[key] = list(np.atleast_1d(res[key]))
    return res


# -- comparison -------------------------------------------------------------------------------
def _r_name(term: str) -> str:
    """Our ``week:arm[orthotics]`` is R's ``week:armorthotics``."""
    return term.replace("[", "").replace("]", "")


def max_rel_diff(ours: dict, lme4: dict) -> float:
    """Largest relative difference to lme4 (see the module docstring for the scales)."""
    diffs = []
    for term, est in ours["fixef"].items():
        r_est, r_se = lme4["fixef"][_r_name(term)], lme4["se"][_r_name(term)]
        diffs.append(abs(est - r_est) / max(abs(r_est), r_se))
        diffs.append(abs(ours["se"][term] - r_se) / r_se)
    for key, value in lme4["sdcor"].items():
        if key in ours["sdcor"]:
            scale = 1.0 if key.count("NA") == 0 else abs(value)  # correlations: absolute
            diffs.append(abs(ours["sdcor"][key] - value) / scale)
    return float(max(diffs))


def _row(model, n, engine, seconds=(), base=None, diff=None, crit=None, base_crit=None,
         rows=None, peak_mb=None, note=""):
    med = float(np.median(seconds)) if len(seconds) else None
    return {"model": model, "n_patients": n, "engine": engine, "seconds_median": med,
            "runs": len(seconds), "ratio_to_lme4": med / base if med is not None and base else None,
            "max_rel_diff_to_lme4": diff, "reml_criterion": crit,
            "reml_minus_lme4": None if crit is None or base_crit is None else crit - base_crit,
            "n_rows": rows, "peak_rss_mb": peak_mb, "note": note}


def _r_rows(model, n, res, cap) -> list[dict]:
    if res is None:
        return [_row(model, n, eng, note=f"not finished within the time limit ({cap:g} s a fit)")
                for eng in ("lme4", "lmerTest")]
    base = float(np.median(res["lme4"]))
    note = "; ".join(res["warnings"])[:300]
    return [_row(model, n, eng, res[eng], base, 0.0 if eng == "lme4" else None, res["REMLcrit"],
                 res["REMLcrit"], peak_mb=res["vmhwm_kb"] / 1024, note=note)
            for eng in ("lme4", "lmerTest")]


def _merge(runs: list[dict | None]) -> dict | None:
    """One result from rounds of single runs: all seconds, the largest peak, the last numbers."""
    done = [r for r in runs if r is not None]
    if not done:
        return None
    out = dict(done[-1])
    for key in ("seconds", "lme4", "lmerTest"):
        if key in out:
            out[key] = [t for r in done for t in r[key]]
    peak = "vmhwm_kb" if "vmhwm_kb" in out else "peak_mb"
    out[peak] = max(r[peak] for r in done)
    return out


def run_benchmark(out: Path, sizes=(1000, 5000, 20000), repeats: int = 3, cap: float = 300.0,
                  use_r: bool = True, validate_patients: int = 1_000_000,
                  suite_patients: tuple[int, ...] = (20000, 1_000_000),
                  batch_runs: int = 4, mmrm_nlme: str | None = "run", peers: bool = True,
                  statsmodels_max: int = 1000, large_sizes: tuple[int, ...] = ()) -> list[dict]:
    """Run every step, write ``out/bench.json`` and return its rows (see the module docstring).

    With ``peers`` (the default) the fits are :func:`analysis.studies.bench_peers.peer_rows`: every
    engine in its own process, rotated rounds (statsmodels only up to ``statsmodels_max``
    patients). Without, the earlier rows: lme4 and pls in alternating rounds (R, then pls,
    ``repeats`` times), statsmodels after them.
    """
    if peers:
        from analysis.studies.bench_peers import run_peer_benchmark

        return run_peer_benchmark(out, sizes, repeats, cap, use_r, validate_patients, suite_patients,
                                  batch_runs, mmrm_nlme, statsmodels_max, large_sizes)
    out.mkdir(parents=True, exist_ok=True)
    have_r = use_r and shutil.which("Rscript") is not None
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        for model, clinic in (("slope", False), ("slope+clinic", True)):
            last_sm = None  # (patients, seconds) of statsmodels at the last size, to extrapolate
            for n in sizes:
                csv = work / f"d{n}.csv"
                if have_r and not csv.exists():
                    bench_data(n).to_csv(csv, index=False)
                r_runs, pls_runs = [], []
                spec = {"kind": "fit", "engine": "pls", "n": n, "clinic": clinic, "repeats": 1}
                for _ in range(repeats):
                    if have_r:
                        r_runs.append(_run_r(csv, clinic, 1, timeout=2 * max(cap, 60.0)))
                    pls_runs.append(_run_worker(spec, timeout=cap + 120.0))
                lme4 = _merge(r_runs)
                if have_r:
                    rows += _r_rows(model, n, lme4, cap)
                base = float(np.median(lme4["lme4"])) if lme4 else None
                for engine, res in (("pls", _merge(pls_runs)), ("statsmodels", None)):
                    if engine == "statsmodels":
                        guess = last_sm[1] * n / last_sm[0] if last_sm else 0.0
                        if guess > cap:
                            why = f"skipped: {guess:.0f} s > {cap:g} s extrapolated from {last_sm[0]}"
                            rows.append(_row(model, n, engine, note=why + " patients"))
                            last_sm = (n, guess)
                            continue
                        res = _run_worker({**spec, "engine": engine, "repeats": repeats},
                                          timeout=cap + 120.0)
                        last_sm = (n, min(res["seconds"]) if res else 2 * cap)
                    if res is None:
                        rows.append(_row(model, n, engine, note=f"stopped: a fit took > {cap:g} s"))
                        continue
                    for r in rows:  # the R rows fitted the same data
                        if r["n_patients"] == n and r["model"] == model and r["n_rows"] is None:
                            r["n_rows"] = res["rows"]
                    rows.append(_row(model, n, engine, res["seconds"], base,
                                     max_rel_diff(res, lme4) if lme4 else None, res["REMLcrit"],
                                     lme4["REMLcrit"] if lme4 else None, res["rows"], res["peak_mb"],
                                     note=f"{res['status']}; {res['health']}"))
                print(f"  {model}, {n} patients: done", file=sys.stderr, flush=True)
        if validate_patients:
            rows.append(_validate_step(work, validate_patients, cap))
        for n in suite_patients:
            rows.append(_suite_step(work, n, cap))
        if batch_runs:
            rows += _batch_rows(batch_runs)
        if mmrm_nlme:
            from analysis.studies.bench_mmrm import mmrm_rows

            rows += mmrm_rows(nlme=mmrm_nlme if have_r else "stored", repeat=repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not have_r:
        print("R (Rscript with lme4 and lmerTest) not found: lme4 not run; its columns are null",
              file=sys.stderr)
    (out / "bench.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def _validate_step(work: Path, n_patients: int, cap: float) -> dict:
    """Read, validate, assign arms on a simulated CSV log of ``n_patients`` (in a worker)."""
    path = work / "log.csv"
    write_simulation(path, n_patients=n_patients, n_clinics=20, seed=1, arms=ARMS)
    res = _run_worker({"kind": "validate", "path": str(path)}, timeout=cap + 120.0)
    name = "read + validate log + arms"
    if res is None:
        return _row(name, n_patients, "analysis.intake.validate", note=f"> {cap:g} s")
    return _row(name, n_patients, "analysis.intake.validate", res["seconds"], rows=res["rows"],
                peak_mb=res["peak_mb"],
                note=f"{path.stat().st_size / 1e6:.0f} MB CSV; {res['note']}")


def _suite_step(work: Path, n_patients: int, cap: float) -> dict:
    """The whole notebook suite (``outcomes run``) on a simulated log of ``n_patients``."""
    path = work / "suite" / "log.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_simulation(path, n_patients=n_patients, n_clinics=20, seed=2, arms=ARMS)
    (path.parent / "run.yaml").write_text("name: bench_suite\ndata: log.csv\n", encoding="utf-8")
    limit = 10 * cap * max(1.0, n_patients / 100_000)  # 1M patients: 8 h at the default cap
    res = _run_worker({"kind": "suite", "config": str(path.parent / "run.yaml"),
                       "out": str(work / "suite" / "run")}, timeout=limit)
    shutil.rmtree(path.parent, ignore_errors=True)  # a 1M-patient run folder holds ~2 GB
    name = "whole suite (outcomes run)"
    if res is None:
        return _row(name, n_patients, "analysis.run.runner", note=f"> {limit:g} s")
    return _row(name, n_patients, "analysis.run.runner", res["seconds"], rows=res["rows"],
                peak_mb=res["peak_mb"], note=res["status"])


def _batch_rows(n_runs: int) -> list[dict]:
    """Batch throughput on a LocalCluster with 1 and 2 workers (runs per minute in the note)."""
    from analysis.studies.throughput import batch_throughput

    rows = []
    for workers in (1, 2):
        res = batch_throughput(n_runs=n_runs, workers=workers)
        rows.append(_row(f"batch of {n_runs} small runs", res["n_patients"], f"dask, {workers} worker(s)",
                         [res["seconds"]],
                         note=f"{res['runs_per_minute']:.2f} runs/min; {res['succeeded']}/{n_runs} succeeded; "
                              f"cluster start {res['startup_seconds']:.1f} s"))
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table (also valid Markdown)."""
    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    head = ("| model | patients | rows | engine | seconds (median) | runs | × lme4 (MMRM: × reference) "
            "| max rel. diff to lme4 | REML crit. − lme4 | peak RSS MB |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        cells = [r["model"] + (f" ({r['data_set']})" if r.get("data_set") else ""), fmt(r["n_patients"], ","), fmt(r["n_rows"], ","), r["engine"],
                 fmt(r["seconds_median"], ".3f"), r["runs"],
                 fmt(r["ratio_to_lme4"] if r["ratio_to_lme4"] is not None else r.get("ratio"), ".2f"),
                 fmt(r["max_rel_diff_to_lme4"], ".1e"), fmt(r["reml_minus_lme4"], ".2g"),
                 fmt(r["peak_rss_mb"], ".0f")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    notes = [f"- {r['model']}, {r['n_patients']}, {r['engine']}: {r['note']}" for r in rows
             if r["note"] and (r["engine"] != "pls")]
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv=None) -> int:
    """Command line: ``python -m analysis.studies.bench --out reports/bench``."""
    ap = argparse.ArgumentParser(prog="python -m analysis.studies.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports/bench"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    ap.add_argument("--large-sizes", type=int, nargs="*", default=[1_000_000], help="sizes of the slope "
                    "fit timed for pls (bare, suite) and mixedlm-rs (1 thread) only (none: skip)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cap", type=float, default=300.0, help="seconds one statsmodels fit may take")
    ap.add_argument("--no-r", action="store_true", help="do not run lme4 even if R is installed")
    ap.add_argument("--validate-patients", type=int, default=1_000_000,
                    help="patients of the read + validate + arms timing (~7.5 rows each; 0: skip)")
    ap.add_argument("--suite-patients", type=int, nargs="*", default=[20000, 1_000_000],
                    help="patients of each whole-suite timing (none: skip; 1,000,000 took "
                         "16 min on the 2-core machine, see docs/engine.md)")
    ap.add_argument("--batch-runs", type=int, default=4,
                    help="runs of the batch-throughput timing with 1 and 2 workers (0: skip)")
    ap.add_argument("--mmrm-nlme", choices=["run", "stored", "skip", "none"], default="run",
                    help="MMRM rows: time nlme::gls on bcva_data in this run (~10 min), reuse its "
                         "stored time, skip it, or no MMRM rows at all (none)")
    ap.add_argument("--old-fits", action="store_true",
                    help="the earlier fit rows (pls, lme4, statsmodels in alternating rounds)")
    ap.add_argument("--statsmodels-max", type=int, default=1000,
                    help="largest size statsmodels is timed at (one 2,000-patient fit takes ~40 s)")
    ap.add_argument("--readme", type=Path, help="regenerate this README's performance table from "
                    "<out>/bench.json and stop (nothing is timed)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        no_huge_pages()  # every worker runs as `outcomes` does (as bench_peers' workers)
        workers = {"fit": _fit_worker, "validate": _validate_worker, "suite": _suite_worker}
        print(json.dumps(workers[spec["kind"]](spec)))
        return 0
    if args.readme:
        from analysis.studies.bench_peers import update_readme

        update_readme(args.readme, json.loads((args.out / "bench.json").read_text()))
        return 0
    rows = run_benchmark(args.out, tuple(args.sizes), args.repeats, args.cap, not args.no_r,
                         args.validate_patients, tuple(n for n in args.suite_patients if n),
                         args.batch_runs,
                         None if args.mmrm_nlme == "none" else args.mmrm_nlme,
                         peers=not args.old_fits, statsmodels_max=args.statsmodels_max,
                         large_sizes=tuple(args.large_sizes))
    if args.old_fits:
        print(format_table(rows))
    else:
        from analysis.studies.bench_peers import readme_table

        print(readme_table(rows))
    print(f"\nwrote {args.out / 'bench.json'}; machine load makes these timings noisy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
