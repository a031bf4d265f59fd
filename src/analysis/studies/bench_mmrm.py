"""Timing of the MMRM engine (for ``make bench``; not a test): us + Kenward-Roger on bcva_data and fev_data.

Methods
-------
Fits ``BCVA_CHG ~ ARMCD*AVISIT + RACE + BCVA_BL`` with an unstructured covariance over 10 visits
(55 parameters), REML and Kenward-Roger df, to the 1,000-subject bcva_data of the mmrm package,
and reports wall-clock seconds (median of ``repeat``, each fit followed by the LS-mean
differences by visit). When ``Rscript`` with nlme is on the PATH, the same model is timed in the
same run with ``nlme::gls(correlation = corSymm, weights = varIdent, method = "REML")``, which
fits but gives no Kenward-Roger df; it takes about ten minutes, so :func:`mmrm_rows` can instead
reuse the last measured nlme time from ``NLME_STORE`` (with the date it was measured) or skip it.
``FEV1 ~ ARMCD*AVISIT + RACE + SEX`` (us, REML, KR) on fev_data (200 subjects x 4 visits) is
timed against the 56 ms R's mmrm package publishes for its FEV example (a different machine:
the ratio is indicative only; the row's note adds the CPU-time median, which the machine's other
load disturbs less than wall-clock time). Speed is reported, never asserted (house style).

References: Sabanes Bove et al., mmrm (R package), data sets ``bcva_data`` and ``fev_data`` and
its README's comparison (mmrm 56 ms, PROC GLIMMIX 100 ms, lmer 247 ms); Pinheiro & Bates (2000),
Mixed-Effects Models in S and S-PLUS (nlme).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import json
import statistics
import time
from datetime import date
from pathlib import Path

import pandas as pd

from analysis.models.mmrm import fit_mmrm

MODEL = "ARMCD*AVISIT + RACE + BCVA_BL"
FEV_MODEL = "ARMCD*AVISIT + RACE + SEX"
REFERENCE_DIR = Path(__file__).resolve().parents[3] / "tests" / "reference" / "mmrm"
#: The last nlme::gls time on bcva_data (written whenever nlme is run by ``mmrm_rows``).
NLME_STORE = REFERENCE_DIR / "nlme_bcva_timing.json"
#: R mmrm's published time for its FEV example (README comparison table), seconds.
R_MMRM_FEV_SECONDS = 0.056

R_SCRIPT = """
suppressPackageStartupMessages(library(nlme))
d <- read.csv(commandArgs(TRUE)[1])
d <- d[!is.na(d$BCVA_CHG), ]
d$AVISIT <- factor(d$AVISIT); d$ARMCD <- factor(d$ARMCD); d$RACE <- factor(d$RACE)
t <- system.time(fit <- gls(BCVA_CHG ~ ARMCD * AVISIT + RACE + BCVA_BL, data = d,
    correlation = corSymm(form = ~ VISITN | USUBJID), weights = varIdent(form = ~ 1 | AVISIT),
    method = "REML"))[["elapsed"]]
cat(sprintf("%.6f %.8f\\n", t, -2 * as.numeric(logLik(fit))))
"""


def time_mmrm(path: str | Path, repeat: int = 3, with_r: bool = True) -> dict:
    """Time the us + KR MMRM on bcva_data (and nlme::gls when R is available).

    Parameters
    ----------
    path : str or Path
        ``bcva_data.csv`` (columns USUBJID, VISITN, AVISIT, ARMCD, RACE, BCVA_BL, BCVA_CHG).
    repeat : int
        Our fit is timed this many times; the best is reported.
    with_r : bool
        Also time nlme::gls if ``Rscript`` is found.

    Returns
    -------
    dict
        ``seconds`` (ours), ``neg2_reml``, ``n_subjects``, ``n_obs``, ``n_theta``, and when R ran
        ``nlme_seconds``, ``nlme_neg2_reml`` and ``ratio`` (nlme / ours).
    """
    data = pd.read_csv(path)
    best, fit, seconds = float("inf"), None, []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fit = fit_mmrm(data, "BCVA_CHG", MODEL, "AVISIT", "USUBJID", covariance="us",
                       df="kenward-roger", reference={"ARMCD": "CTL"})
        fit.lsmean_diffs("ARMCD", "CTL", by="AVISIT")
        seconds.append(time.perf_counter() - t0)
        best = min(best, seconds[-1])
    out = {"seconds": best, "all_seconds": seconds, "neg2_reml": fit.neg2_loglik, "n_subjects": fit.n_subjects,
           "n_obs": fit.n_obs, "n_theta": len(fit.theta), "converged": fit.health["converged"]}
    rscript = shutil.which("Rscript")
    if with_r and rscript:
        with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
            fh.write(R_SCRIPT)
        proc = subprocess.run([rscript, fh.name, str(path)], capture_output=True, text=True)
        Path(fh.name).unlink(missing_ok=True)
        if proc.returncode == 0 and proc.stdout.strip():
            secs, ll = (float(x) for x in proc.stdout.split()[:2])
            out |= {"nlme_seconds": secs, "nlme_neg2_reml": ll, "ratio": secs / best}
        else:
            out["nlme_error"] = proc.stderr.strip()[-500:]
    return out


def time_fev(path: str | Path, repeat: int = 10) -> dict:
    """Time the us + KR MMRM on fev_data (median of ``repeat`` after one warm-up fit)."""
    data = pd.read_csv(path)

    def fit():
        res = fit_mmrm(data, "FEV1", FEV_MODEL, "AVISIT", "USUBJID", covariance="us",
                       df="kenward-roger", reference={"ARMCD": "PBO"})
        res.lsmean_diffs("ARMCD", "PBO", by="AVISIT")
        return res

    res, seconds, cpu = fit(), [], []
    for _ in range(max(1, repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        fit()
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"seconds": seconds, "cpu_seconds": cpu, "neg2_reml": res.neg2_loglik,
            "n_obs": res.n_obs, "n_subjects": res.n_subjects}


def _bench_row(model, data_set, engine, seconds, reference_seconds=None, n=None, rows=None,
               crit=None, note=""):
    """One bench.json row (the keys of ``analysis.studies.bench``'s rows, plus data_set, ratio)."""
    med = float(statistics.median(seconds)) if seconds else None
    ratio = med / reference_seconds if med is not None and reference_seconds else None
    return {"model": model, "data_set": data_set, "n_patients": n, "engine": engine,
            "seconds_median": med, "runs": len(seconds), "ratio": ratio, "ratio_to_lme4": None,
            "max_rel_diff_to_lme4": None, "reml_criterion": crit, "reml_minus_lme4": None,
            "n_rows": rows, "peak_rss_mb": None, "note": note}


def mmrm_rows(nlme: str = "run", repeat: int = 3, reference_dir: Path = REFERENCE_DIR) -> list[dict]:
    """The MMRM rows of ``make bench``: bcva us+KR against nlme::gls, fev us+KR against 56 ms.

    Parameters
    ----------
    nlme : {"run", "stored", "skip"}
        ``run``: time nlme::gls in this run (about ten minutes) and store its time in
        ``NLME_STORE``; ``stored``: reuse the stored time (its date in the row's note);
        ``skip``: no nlme row and no ratio.

    Returns
    -------
    list of dict
        ``ratio`` is our seconds over the reference's (nlme's in this run or stored, or the
        published 56 ms): below 1 is faster.
    """
    if nlme not in ("run", "stored", "skip"):
        raise ValueError(f"nlme must be run, stored or skip; got {nlme!r}")
    bcva = time_mmrm(reference_dir / "bcva_data.csv", repeat=repeat, with_r=nlme == "run")
    ref, nlme_row = None, None
    if nlme == "run" and "nlme_seconds" in bcva:
        NLME_STORE.write_text(json.dumps({"date": date.today().isoformat(),
                                          "seconds": bcva["nlme_seconds"],
                                          "neg2_reml": bcva["nlme_neg2_reml"]}, indent=2) + "\n")
        ref, how = bcva["nlme_seconds"], "measured in this run"
    elif nlme == "run":
        how = "failed: " + bcva.get("nlme_error", "Rscript not found")
    if nlme == "stored" and not NLME_STORE.exists():
        how = f"no stored time ({NLME_STORE.name} not found)"
    elif nlme == "stored" or (nlme == "run" and ref is None and NLME_STORE.exists()):
        stored = json.loads(NLME_STORE.read_text())
        ref, how = stored["seconds"], f"stored, measured on {stored['date']}"
        bcva.setdefault("nlme_neg2_reml", stored["neg2_reml"])
    if nlme != "skip":
        nlme_row = _bench_row("mmrm us+KR", "bcva_data", "nlme", [ref] if ref else [], ref, 1000,
                              bcva["n_obs"], bcva.get("nlme_neg2_reml"),
                              f"nlme::gls(corSymm, varIdent, REML), no KR df; {how}")
    rows = [_bench_row("mmrm us+KR", "bcva_data", "mmrm", bcva["all_seconds"], ref,
                       bcva["n_subjects"], bcva["n_obs"], bcva["neg2_reml"],
                       f"{bcva['n_theta']} covariance parameters; converged {bcva['converged']}")]
    rows += [nlme_row] if nlme_row else []
    fev = time_fev(reference_dir / "fev_data.csv", repeat=max(10, repeat))
    rows.append(_bench_row("mmrm us+KR", "fev_data", "mmrm", fev["seconds"], R_MMRM_FEV_SECONDS,
                           fev["n_subjects"], fev["n_obs"], fev["neg2_reml"],
                           "ratio to R mmrm's published 56 ms (another machine); CPU seconds "
                           f"median {statistics.median(fev.get('cpu_seconds', [float('nan')])):.3f} "
                           "(less sensitive to the machine's other load)"))
    rows.append(_bench_row("mmrm us+KR", "fev_data", "mmrm (R, published)", [R_MMRM_FEV_SECONDS],
                           R_MMRM_FEV_SECONDS, 200, fev["n_obs"],
                           note="mmrm README comparison; not run here"))
    return rows


if __name__ == "__main__":  # python -m analysis.studies.bench_mmrm [run|stored|skip]
    import sys

    for row in mmrm_rows(sys.argv[1] if len(sys.argv) > 1 else "stored"):
        print(row)
