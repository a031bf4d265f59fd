"""The mixed-model engines side by side: pls (bare and as the suite calls it) against lme4, lmerTest,
statsmodels, mixedlm-rs and mixedlm, in rotated rounds, one process per engine.

Each engine gets one long-lived worker process (Python or ``Rscript``) started with its thread
setting (``threads="1"``: ``OMP/OPENBLAS/MKL/RAYON_NUM_THREADS=1``; ``"default"``: the
environment as it is). The worker reads the benchmark data once (CSV written by
:func:`analysis.studies.bench.bench_data`), fits once untimed on 300 rows (imports and lazy set-up,
as R's warm-up), then fits the whole data each time the coordinator asks. Rounds rotate the order
in which the engines are asked, so that all see the same load of a shared machine; the median of
the rounds is reported.

* ``pls``, ``call="bare"``: :class:`~analysis.models.engine_pls.PlsEngine` on a pre-built design
  (criterion set-up and optimisation; no inference), as a peer on its own matrices;
* ``pls``, ``call="suite"``: :func:`analysis.endpoints.pain.fit_pain_model`, what the suite calls
  (data preparation, design, fit, Satterthwaite df, marginal means and contrasts);
* ``lme4`` / ``lmerTest``: ``lme4::lmer`` / ``lmerTest::lmer`` (which adds what Satterthwaite's df
  need); ``statsmodels``: ``MixedLM.from_formula(...).fit(reml=True)``; ``mixedlm-rs`` (its
  statsmodels API) and ``mixedlm`` (``lmer``): the PyPI packages of the ``bench`` extra. The
  statsmodels-API engines fit patient effects only, so they have no ``slope+clinic`` rows.

``reml_minus_best`` is each engine's REML criterion minus the lowest of the row's model and size:
lme4's ``REMLcrit`` for R and mixedlm, and for the statsmodels-API engines lme4's criterion
(:class:`~analysis.models.pls_deviance.PlsDeviance`) at their estimate (:math:`\\theta` from
``cov_re / scale``). ``peak_rss_mb`` is the worker's peak resident memory (data included).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")
FORMULA_SM = "pain_score ~ week * C(arm, Treatment(reference='usual_care'))"
FORMULA_LME4 = {"slope": "pain_score ~ week * arm + (1 + week | patient_id)",
                "slope+clinic": "pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id)"}
#: (engine, call, threads) of each worker; statsmodels-API engines fit patient effects only.
ENGINES = [("pls", "bare", "default"), ("pls", "suite", "default"), ("lme4", None, "1"),
           ("lmerTest", None, "1"), ("lme4", None, "default"), ("statsmodels", None, "1"),
           ("mixedlm-rs", None, "1"), ("mixedlm-rs", None, "default"), ("mixedlm", None, "1"),
           ("mixedlm", None, "default")]
#: Engines timed at the large sizes (``--large-sizes``, slope only): lme4 would take hours there.
LARGE_ENGINES = [("pls", "bare", "default"), ("pls", "suite", "default"), ("mixedlm-rs", None, "1")]
R_SERVE = r"""
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
a <- commandArgs(TRUE)
d <- read.csv(a[1]); d <- d[complete.cases(d), ]
d$arm <- factor(d$arm, levels = c("usual_care", sort(setdiff(unique(d$arm), "usual_care"))))
f <- as.formula(a[2]); fun <- if (a[3] == "lmerTest") lmerTest::lmer else lme4::lmer
suppressWarnings(try(fun(f, d[1:300, ], REML = TRUE), TRUE))
cat("ready\n"); flush(stdout())
con <- file("stdin"); open(con)
while (length(line <- readLines(con, n = 1)) > 0 && line == "fit") {
  s <- system.time(m <- suppressWarnings(fun(f, d, REML = TRUE)))[["elapsed"]]
  hwm <- grep("VmHWM", readLines("/proc/self/status"), value = TRUE)
  cat(toJSON(list(seconds = s, crit = REMLcrit(m), peak_mb = as.numeric(gsub("[^0-9]", "", hwm)) / 1024),
             auto_unbox = TRUE, digits = NA), "\n"); flush(stdout())
}
"""


def _env(threads: str) -> dict:
    """A worker's environment: its thread setting, and numpy's huge-page advice off unless the user
    set it, as in every ``outcomes`` process (:func:`analysis.run.memory.no_huge_pages`); for every
    engine alike (R reads no such variable)."""
    from analysis.run.memory import HUGEPAGE_VARIABLE

    env = dict(os.environ)
    env.setdefault(HUGEPAGE_VARIABLE, "0")
    for var in THREAD_VARS:
        if threads == "1":
            env[var] = "1"
        else:
            env.pop(var, None)
    return env


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` (Linux), the high-water mark of the
    address space since ``exec``. ``ru_maxrss`` also keeps the parent's resident memory at the
    fork that started the process: a worker started after the coordinator had simulated 1M
    patients (4.1 GB) reported 4,121 MB whatever it used. Elsewhere ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux, BSD: kilobytes


def _theta_of(cov_re, scale) -> np.ndarray:
    L = np.linalg.cholesky(np.atleast_2d(cov_re) / scale)
    return np.array([L[0, 0], L[1, 0], L[1, 1]]) if L.shape[0] == 2 else np.array([L[0, 0]])


class _Fitter:
    """One engine's fit of the benchmark model, data loaded once (runs inside the worker)."""

    def __init__(self, engine: str, call: str | None, model: str, data: pd.DataFrame):
        self.engine, self.call, self.model = engine, call, model
        self.data = data.dropna().reset_index(drop=True)
        self.clinic = model == "slope+clinic"

    def crit_at(self, cov_re, scale) -> float:
        from analysis.models.formulas import build_mixed_design
        from analysis.models.pls_deviance import PlsDeviance

        d = build_mixed_design(self.data, FORMULA_SM, "patient_id", "slope")
        return PlsDeviance(d.y, d.X, d.Z, d.patient).deviance(_theta_of(cov_re, scale))

    def fit(self, data: pd.DataFrame) -> float:
        """Fit ``data``; return the REML criterion."""
        e = self.engine
        if e == "pls" and self.call == "bare":
            from analysis.models.engine_pls import PlsEngine
            from analysis.models.formulas import build_mixed_design
            from analysis.models.health import FitHealth
            from analysis.models.pls_deviance import PlsDeviance

            if getattr(self, "_design_rows", None) != len(data):  # pre-built, untimed once
                self._design = build_mixed_design(data, FORMULA_SM, "patient_id", "slope",
                                                  clinic="clinic_id" if self.clinic else None)
                self._design_rows = len(data)
                return None
            d = self._design
            dev = PlsDeviance(d.y, d.X, d.Z, d.patient, d.clinic_of_patient)
            return dev.deviance(PlsEngine().fit(d, dev, (), FitHealth()))
        if e == "pls":
            from analysis.config import PainModelOptions
            from analysis.endpoints.pain import fit_pain_model

            return fit_pain_model(data, PainModelOptions(clinic_level=self.clinic)).fit.reml_criterion
        if e in ("statsmodels", "mixedlm-rs"):
            if e == "statsmodels":
                from statsmodels.regression.mixed_linear_model import MixedLM
                mixedlm = MixedLM.from_formula
            else:
                import mixedlm_rs
                mixedlm = mixedlm_rs.mixedlm
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = mixedlm(FORMULA_SM, data, groups=data["patient_id"], re_formula="~week").fit(reml=True)
            self._last = (np.asarray(r.cov_re, float), float(r.scale))
            return None  # the criterion is evaluated after the timing (crit_at)
        import mixedlm as mlm
        crit = mlm.lmer(FORMULA_LME4[self.model], data, REML=True).REMLcrit
        return float(crit() if callable(crit) else crit)


def serve(engine: str, call: str | None, model: str, csv: str) -> None:
    """Worker loop: warm up, say ``ready``, fit on each ``fit`` line, print one JSON line each."""
    fitter = _Fitter(engine, call, model, pd.read_csv(csv))
    small = fitter.data[fitter.data["patient_id"].isin(fitter.data["patient_id"].unique()[:40])]
    fitter.fit(small)
    if call == "bare":
        fitter.fit(fitter.data)  # builds the design once, untimed
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "fit":
            break
        t = time.perf_counter()
        crit = fitter.fit(fitter.data)
        seconds = time.perf_counter() - t
        if crit is None:
            crit = fitter.crit_at(*fitter._last)
        peak = peak_rss_mb()
        print(json.dumps({"seconds": seconds, "crit": float(crit), "peak_mb": peak}), flush=True)


def _start(engine, call, threads, model, csv: Path, r_script: Path) -> subprocess.Popen:
    if engine in ("lme4", "lmerTest"):
        cmd = ["Rscript", str(r_script), str(csv), FORMULA_LME4[model], engine]
    else:
        cmd = [sys.executable, "-m", "analysis.studies.bench_peers", "--serve",
               json.dumps([engine, call, model, str(csv)])]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=_env(threads), stderr=subprocess.DEVNULL)
    for line in proc.stdout:
        if line.strip() == "ready":
            break
    return proc


def peer_rows(csv: Path, n_patients: int, model: str, repeats: int = 3, engines=None,
              work: Path | None = None) -> list[dict]:
    """Rows of ``reports/bench/bench.json`` for one model and size (module docstring)."""
    engines = [e for e in (engines or ENGINES)
               if not (model == "slope+clinic" and e[0] in ("statsmodels", "mixedlm-rs"))]
    r_script = (work or csv.parent) / "serve.R"
    r_script.write_text(R_SERVE)
    procs, results = [], {e: [] for e in engines}
    try:
        for e in engines:
            try:
                procs.append((e, _start(*e, model, csv, r_script)))
            except OSError:  # no Rscript, or a package is missing: the row says so
                results[e] = None
        live = [(e, p) for e, p in procs if p.poll() is None]
        for r in range(repeats):
            k = r % max(len(live), 1)
            for e, p in live[k:] + live[:k]:  # rotate who goes first
                try:
                    p.stdin.write("fit\n")
                    p.stdin.flush()
                    results[e].append(json.loads(p.stdout.readline()))
                except (BrokenPipeError, json.JSONDecodeError, ValueError):
                    pass
    finally:
        for _, p in procs:
            try:
                p.stdin.write("quit\n")
                p.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            p.wait(timeout=60)
    return _rows(results, n_patients, model)


def _rows(results: dict, n_patients: int, model: str) -> list[dict]:
    med = {e: float(np.median([r["seconds"] for r in v])) for e, v in results.items() if v}
    crit = {e: v[-1]["crit"] for e, v in results.items() if v}
    best = min(crit.values()) if crit else None
    lme4 = med.get(("lme4", None, "1"))
    rs1 = med.get(("mixedlm-rs", None, "1"))
    rows = []
    for e, v in results.items():
        engine, call, threads = e
        row = {"engine": engine, "call": call, "threads": threads, "model": model,
               "n_patients": n_patients, "seconds_median": med.get(e), "runs": len(v or []),
               "ratio_to_lme4": med[e] / lme4 if e in med and lme4 else None,
               "ratio_to_mixedlm_rs": med[e] / rs1 if e in med and rs1 else None,
               "reml_minus_best": crit[e] - best if e in crit else None,
               "peak_rss_mb": max(r["peak_mb"] for r in v) if v else None}
        if not v:
            row["note"] = "did not run (engine not installed, or it failed)"
        rows.append(row)
    return rows


def run_peer_benchmark(out, sizes, repeats, cap, use_r, validate_patients, suite_patients, batch_runs,
                       mmrm_nlme, statsmodels_max, large_sizes=()) -> list[dict]:
    """:func:`analysis.studies.bench.run_benchmark` with these fit rows (its arguments); at each of
    ``large_sizes`` the slope model with :data:`LARGE_ENGINES` only (their ``ratio_to_lme4`` null)."""
    import shutil
    import tempfile

    from analysis.studies.bench import _batch_rows, _suite_step, _validate_step, bench_data

    out.mkdir(parents=True, exist_ok=True)
    have_r = use_r and shutil.which("Rscript") is not None
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        for model in ("slope", "slope+clinic"):
            for n in sizes:
                csv = work / f"d{n}.csv"
                if not csv.exists():
                    bench_data(n).to_csv(csv, index=False)
                engines = [e for e in ENGINES
                           if (have_r or e[0] not in ("lme4", "lmerTest"))
                           and (e[0] != "statsmodels" or n <= statsmodels_max)]
                rows += peer_rows(csv, n, model, repeats, engines, work)
                print(f"  {model}, {n} patients: done", file=sys.stderr, flush=True)
        for n in large_sizes:
            csv = work / f"d{n}.csv"
            bench_data(n).to_csv(csv, index=False)
            rows += peer_rows(csv, n, "slope", repeats, LARGE_ENGINES, work)
            csv.unlink()
            print(f"  slope, {n} patients (large): done", file=sys.stderr, flush=True)
        for n in suite_patients:
            rows.append(suite_row(_suite_step(work, n, cap), "whole suite", n, rows))
        if validate_patients:
            rows.append(suite_row(_validate_step(work, validate_patients, cap), "validate",
                                  validate_patients, rows))
        if batch_runs:
            rows += _batch_rows(batch_runs)
        if mmrm_nlme:
            from analysis.studies.bench_mmrm import mmrm_rows

            rows += mmrm_rows(nlme=mmrm_nlme if have_r else "stored", repeat=repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out / "bench.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(*json.loads(sys.argv[2]))


def suite_row(old: dict, model: str, n_patients: int | None, peers: list[dict]) -> dict:
    """A whole-suite or validation row of :mod:`analysis.studies.bench` in this module's shape,
    with its ratios to the lme4 (1 thread) and mixedlm-rs (1 thread) slope fits of the same size."""
    def base(engine):
        return next((r["seconds_median"] for r in peers if r["engine"] == engine and r["threads"] == "1"
                     and r["model"] == "slope" and r["n_patients"] == n_patients), None)

    sec = old.get("seconds_median")
    lme4, rs = base("lme4"), base("mixedlm-rs")
    return {"engine": "suite", "call": None, "threads": "default", "model": model,
            "n_patients": n_patients, "seconds_median": sec, "runs": old.get("runs"),
            "ratio_to_lme4": sec / lme4 if sec and lme4 else None,
            "ratio_to_mixedlm_rs": sec / rs if sec and rs else None, "reml_minus_best": None,
            "peak_rss_mb": old.get("peak_rss_mb"), "n_rows": old.get("n_rows"), "note": old.get("note", "")}


README_START, README_END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def readme_table(rows: list[dict]) -> str:
    """The README's performance table from bench.json rows of this module's shape."""
    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    lines = [("| model | patients | engine | threads | seconds (median) | × lme4 "
              "| × mixedlm-rs (1 thread) | REML − best | peak RSS MB |"), "|" + "---|" * 9]
    for r in rows:
        if r.get("engine") not in {e for e, _, _ in ENGINES} | {"suite"}:
            continue
        engine = r["engine"] + (f" ({r['call']})" if r.get("call") else "")
        lines.append("| " + " | ".join([
            r["model"], fmt(r["n_patients"], ","), engine, r["threads"], fmt(r["seconds_median"], ".2f"),
            fmt(r["ratio_to_lme4"], ".3f"), fmt(r["ratio_to_mixedlm_rs"], ".2f"),
            fmt(r["reml_minus_best"], ".1e"), fmt(r["peak_rss_mb"], ".0f")]) + " |")
    return "\n".join(lines)


def update_readme(readme: Path, rows: list[dict]) -> None:
    """Replace the table between the README's bench-table markers with :func:`readme_table`."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    readme.write_text(text[:start] + "\n" + readme_table(rows) + "\n" + text[end:], encoding="utf-8")
