"""Timing of the MMRM engine (for ``make bench``; not a test): us + Kenward-Roger on bcva_data.

Methods
-------
Fits ``BCVA_CHG ~ ARMCD*AVISIT + RACE + BCVA_BL`` with an unstructured covariance over 10 visits
(55 parameters), REML and Kenward-Roger df, to the 1,000-subject bcva_data of the mmrm package,
and reports wall-clock seconds (best of ``repeat``). When ``Rscript`` with nlme is on the PATH,
the same model is timed in the same run with ``nlme::gls(correlation = corSymm, weights =
varIdent, method = "REML")``, which fits but gives no Kenward-Roger df. Speed is reported, never
asserted (house style).

References: Sabanes Bove et al., mmrm (R package), data set ``bcva_data``; Pinheiro & Bates
(2000), Mixed-Effects Models in S and S-PLUS (nlme).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from analysis.models.mmrm import fit_mmrm

MODEL = "ARMCD*AVISIT + RACE + BCVA_BL"

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
    best, fit = float("inf"), None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fit = fit_mmrm(data, "BCVA_CHG", MODEL, "AVISIT", "USUBJID", covariance="us",
                       df="kenward-roger", reference={"ARMCD": "CTL"})
        fit.lsmean_diffs("ARMCD", "CTL", by="AVISIT")
        best = min(best, time.perf_counter() - t0)
    out = {"seconds": best, "neg2_reml": fit.neg2_loglik, "n_subjects": fit.n_subjects,
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


if __name__ == "__main__":  # python -m analysis.studies.bench_mmrm tests/reference/mmrm/bcva_data.csv
    import sys

    print(time_mmrm(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/mmrm/bcva_data.csv"))
