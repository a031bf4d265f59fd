r"""Calibration study: interval coverage and claim-verdict type-I error on simulated logs.

Methods
-------
For :math:`r = 0, \dots, R - 1` two logs are drawn with :func:`analysis.studies.simulate.simulate_log`
(``n_patients`` patients, ``n_clinics`` clinics, the five default arms, 12 weeks):

* an *effect* log from ``Truth()`` with seed :math:`s_0 + r` (deep-tissue massage: pain slope
  :math:`-0.12` vs :math:`-0.08` a week, episode rate ratio :math:`0.75`);
* a *null* log from ``Truth.null()`` with seed :math:`s_0 + 100000 + r` (every arm as usual care).

Each log goes the suite's way: written as CSV, read by :func:`analysis.intake.validate.validate_log`,
arms by :func:`analysis.intake.arms.assign_arms`, then the pain LMM
(:func:`analysis.endpoints.pain.fit_pain_model`: REML, Satterthwaite df, 95 % t intervals) and both episode
estimands (:func:`analysis.endpoints.episodes.fit_episode_models`: NB2 GLMM by Laplace ML, and NB2 GEE
with robust SE; Wald :math:`z` intervals). No notebook runs.

**Coverage** of an estimand is the share of logs whose :math:`1-\alpha` interval contains the
truth, among the logs where it was estimated; the truths come from the simulation's truth
(:func:`analysis.studies.simulate.truth_dict`):

* ``pain_slope_difference`` -- ``derived.pain_slope_difference_vs_usual_care``;
* ``pain_difference_week_12`` -- ``derived.mean_pain_latent`` at week 12, arm minus control (on
  the latent scale: recorded scores are rounded and clipped to 0..10, so this one can be off by
  the clipping);
* ``episode_rate_ratio_patient_level`` and ``..._population_averaged`` -- ``episodes.rate_ratio``
  (equal for both estimands with a log link, see :mod:`analysis.studies.simulate`).

**Type-I error** of a claim is the share of *null* logs in which the claim is graded
``supported`` by :func:`analysis.audit.verdicts.audit_claims` (the suite's own rules, Holm p-values
beside them, verdicts on unadjusted intervals). The claims (:data:`CLAIMS`) are about deep-tissue
massage vs usual care: the clinic page's "62 % fewer knee-pain episodes", "fewer episodes"
(direction), "2 points less pain at week 12" and "less pain at week 12" (direction). Under the
null a claim is supported only when its interval excludes no effect in the claimed direction, so
each rate should be at most :math:`\alpha/2 = 2.5\,\%` (nominal) and the goal is :math:`\le 5\,\%`.

Every rate comes with a 95 % Wilson score interval (Monte-Carlo error; Wilson 1927). Goals: coverage
94-96 % (95 % nominal; with 500 logs the Monte-Carlo SE is about 1 point), type-I error <= 5 %.

References: Morris TP, White IR, Crowther MJ (2019) Using simulation studies to evaluate
statistical methods. Stat Med 38:2074-2102.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

ARM, CONTROL = "deep_tissue_massage", "usual_care"
DEFAULT_SEED = 20261200
NULL_OFFSET = 100_000
WEEK = 12.0

CLAIMS = {"multiplicity": {"method": "holm"}, "claims": [
    {"id": "dtm-episodes-62", "text": "62% fewer knee pain episodes", "outcome": "episodes",
     "measure": "percent_reduction", "value": 62},
    {"id": "dtm-episodes-fewer", "text": "fewer knee pain episodes", "outcome": "episodes",
     "measure": "direction", "direction": "decrease"},
    {"id": "dtm-pain-2-points", "text": "2 points less knee pain at 12 weeks", "outcome": "pain",
     "measure": "mean_difference", "value": 2, "week": WEEK},
    {"id": "dtm-pain-less", "text": "less knee pain at 12 weeks", "outcome": "pain",
     "measure": "direction", "direction": "decrease", "week": WEEK},
]}
for _claim in CLAIMS["claims"]:
    _claim.update(source="calibration study (analysis.studies.calibration)", intervention=ARM,
                  comparator=CONTROL)

ESTIMANDS = ("pain_slope_difference", "pain_difference_week_12",
             "episode_rate_ratio_patient_level", "episode_rate_ratio_population_averaged")
TABLE_COLUMNS = ["kind", "scenario", "name", "n_logs", "n_estimated", "count", "rate",
                 "rate_low", "rate_high", "goal", "meets_goal", "truth", "mean_estimate",
                 "mean_interval_width"]


def truths(truth: dict) -> dict[str, float]:
    """The true value of each estimand (rate ratios on the ratio scale)."""
    latent = truth["derived"]["mean_pain_latent"]
    rr = truth["episodes"]["rate_ratio"][ARM] / truth["episodes"]["rate_ratio"][CONTROL]
    return {"pain_slope_difference":
            truth["derived"]["pain_slope_difference_vs_usual_care"][ARM],
            "pain_difference_week_12": latent[ARM]["week_12"] - latent[CONTROL]["week_12"],
            "episode_rate_ratio_patient_level": rr,
            "episode_rate_ratio_population_averaged": rr}


#: A verdict is *wrong* when it contradicts the truth the log was drawn from: under the null every
#: claim is false, so "supported" and "overstated" (both say an effect exists) are wrong; under the
#: claimed truth every claim holds, so "overstated" and "contradicted" are wrong.
WRONG = {"null": ("supported", "overstated"), "claimed": ("overstated", "contradicted")}


def claimed_truth():
    """The world the claims describe: 62 % fewer episodes and 2 points less pain at week 12."""
    from analysis.studies.truth import Truth

    base = Truth().pain_slope_per_week[CONTROL]
    return Truth(episode_rate_ratio={ARM: 0.38}, pain_slope_per_week={ARM: base - 2.0 / WEEK})


def one_log(seed: int, null: bool | str, n_patients: int = 200, n_clinics: int = 4,
            resamples: int = 0) -> dict:
    """Simulate, validate and fit one log; return its intervals, truths and claim verdicts.

    Parameters
    ----------
    seed : int
        The simulation seed.
    null : bool
        Draw from ``Truth.null()`` (no arm differs from usual care) instead of ``Truth()``.
    n_patients, n_clinics : int
        Size of the log.

    Returns
    -------
    dict
        ``seed``, ``scenario``; per estimand ``<name>_estimate``, ``_low``, ``_high`` (NaN
        when not estimated) and ``_truth``; per claim ``verdict_<id>``.
    """
    from analysis.audit.claims import fit_claim_models, parse_claims
    from analysis.audit.verdicts import audit_claims
    from analysis.config import parse_config
    from analysis.endpoints.episodes import fit_episode_models
    from analysis.endpoints.pain import fit_pain_model
    from analysis.intake.arms import assign_arms
    from analysis.intake.validate import validate_log
    from analysis.studies.simulate import simulate_log
    from analysis.studies.truth import Truth

    scenario = null if isinstance(null, str) else ("null" if null else "effect")
    effects = {"null": Truth.null(), "effect": Truth(), "claimed": None}[scenario]
    log, truth = simulate_log(n_patients, n_clinics, seed=seed,
                              effects=claimed_truth() if effects is None else effects)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        log.to_csv(path, index=False)
        cfg = parse_config({"name": "calibration", "data": str(path)})
        visits = assign_arms(validate_log(cfg).data, CONTROL).data
    # Marginal means only at the week the estimands and claims need: the same model and
    # estimands, a third of the grid (the grid's design rows are most of a fit's time).
    options = cfg.models.pain.model_copy(update={"weeks": [WEEK]})
    pain = fit_pain_model(visits, options, control=CONTROL, alpha=cfg.models.alpha)
    episodes = fit_episode_models(visits, CONTROL, alpha=cfg.models.alpha)
    row = {"seed": seed, "scenario": scenario}
    found = {name: (math.nan, math.nan, math.nan) for name in ESTIMANDS}
    slope = pain.slope_differences
    slope = slope[slope["term"].str.contains(ARM, regex=False)]
    if len(slope):
        found["pain_slope_difference"] = tuple(slope.iloc[0][["estimate", "conf_low", "conf_high"]])
    grid = pain.grid
    term = grid[(grid["kind"] == "difference") & (grid["arm"] == ARM) & (grid["week"] == WEEK)]
    if len(term):
        hit = pain.contrasts[pain.contrasts["term"] == term.iloc[0]["term"]]
        if len(hit):
            found["pain_difference_week_12"] = tuple(hit.iloc[0][["estimate", "conf_low",
                                                                  "conf_high"]])
    for estimand in ("patient_level", "population_averaged"):
        rr = episodes.rate_ratios
        hit = rr[(rr["estimand"] == estimand) & (rr["arm"] == ARM)]
        if len(hit) and hit.iloc[0]["status"] == "estimated":
            found[f"episode_rate_ratio_{estimand}"] = tuple(
                hit.iloc[0][["rate_ratio", "rr_conf_low", "rr_conf_high"]])
    true = truths(truth)
    for name, (est, low, high) in found.items():
        row.update({f"{name}_estimate": float(est), f"{name}_low": float(low),
                    f"{name}_high": float(high), f"{name}_truth": true[name]})
    claims = parse_claims(CLAIMS, source="calibration claims")
    bundle = fit_claim_models(visits, claims, cfg, fitted={"pain": pain, "episodes": episodes})
    audit = audit_claims(claims, bundle, cfg)
    row.update({f"verdict_{c}": v for c, v in zip(audit["id"], audit["verdict"])})
    if resamples:
        from analysis.audit.firmness import assess_firmness

        rows, _ = assess_firmness(visits, claims, cfg, bundle, resamples, seed=seed)
        row.update({f"firm_{r['id']}": r["firmness"].startswith("firm") for r in rows})
    return row


def _job(args) -> dict:
    return one_log(*args)


def run_logs(n_logs: int, seed: int = DEFAULT_SEED, n_patients: int = 200, n_clinics: int = 4,
             processes: int = 2, resamples: int = 0,
             firmness_logs: int | None = None) -> pd.DataFrame:
    """Fit ``n_logs`` effect logs and ``n_logs`` null logs; one row per log.

    Parameters
    ----------
    n_logs : int
        Logs per scenario (effect and null).
    seed : int
        :math:`s_0`: effect log ``r`` uses ``seed + r``, null log ``r`` uses
        ``seed + 100000 + r``.
    n_patients, n_clinics : int
        Size of each log.
    processes : int
        Worker processes (1 = in this process).
    resamples : int
        With > 0, each log's verdicts are also graded for firmness (alternatives and this many
        bootstrap resamples) and a third scenario, ``claimed`` (:func:`claimed_truth`, seeds
        ``seed + 200000 + r``), is added.
    firmness_logs : int, optional
        Grade firmness on the first this many logs of each scenario only (default: all
        ``n_logs``); the claimed-truth scenario then has this many logs. Coverage and type-I
        error still use every log.

    Returns
    -------
    DataFrame
        Rows of :func:`one_log`, effect logs first, in seed order.
    """
    n_firm = n_logs if firmness_logs is None else min(int(firmness_logs), n_logs)
    boot = [resamples if r < n_firm else 0 for r in range(n_logs)]
    jobs = [(seed + r, False, n_patients, n_clinics, boot[r]) for r in range(n_logs)]
    jobs += [(seed + NULL_OFFSET + r, True, n_patients, n_clinics, boot[r]) for r in range(n_logs)]
    if resamples:
        jobs += [(seed + 2 * NULL_OFFSET + r, "claimed", n_patients, n_clinics, resamples)
                 for r in range(n_firm)]
    if processes <= 1:
        rows = [_job(j) for j in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            rows = pool.map(_job, jobs, chunksize=max(1, len(jobs) // (8 * processes)))
    return pd.DataFrame(rows)


def _rate(count: int, n: int) -> tuple[float, float, float]:
    if n == 0:
        return math.nan, math.nan, math.nan
    low, high = proportion_confint(count, n, alpha=0.05, method="wilson")
    rate = count / n
    # Wilson's bounds carry float noise (4e-19 above a rate of 0); keep low <= rate <= high.
    return rate, min(float(low), rate), max(float(high), rate)


def summarise(logs: pd.DataFrame) -> pd.DataFrame:
    """Coverage per estimand and scenario, and each claim's ``supported`` rate per scenario.

    Returns
    -------
    DataFrame
        Columns :data:`TABLE_COLUMNS`. ``kind`` is ``coverage`` (``count`` = logs whose interval
        holds the truth, ``goal`` 0.94-0.96) or ``supported`` (``count`` = logs graded
        supported; under the null this is the type-I error, ``goal`` <= 0.05).
    """
    rows = []
    for scenario, group in logs.groupby("scenario", sort=False):
        for name in ESTIMANDS:
            low, high = group[f"{name}_low"], group[f"{name}_high"]
            truth = group[f"{name}_truth"]
            ok = low.notna() & high.notna()
            covered = int(((low <= truth) & (truth <= high))[ok].sum())
            rate, r_low, r_high = _rate(covered, int(ok.sum()))
            rows.append({"kind": "coverage", "scenario": scenario, "name": name,
                         "n_logs": len(group), "n_estimated": int(ok.sum()), "count": covered,
                         "rate": rate, "rate_low": r_low, "rate_high": r_high,
                         "goal": "0.94-0.96", "meets_goal": bool(0.94 <= rate <= 0.96),
                         "truth": float(truth.mean()),
                         "mean_estimate": float(group[f"{name}_estimate"][ok].mean()),
                         "mean_interval_width": float((high - low)[ok].mean())})
        for claim in CLAIMS["claims"]:
            verdicts = group[f"verdict_{claim['id']}"]
            graded = verdicts != "not testable"
            supported = int((verdicts == "supported").sum())
            rate, r_low, r_high = _rate(supported, int(graded.sum()))
            rows.append({"kind": "supported", "scenario": scenario, "name": claim["id"],
                         "n_logs": len(group), "n_estimated": int(graded.sum()),
                         "count": supported, "rate": rate, "rate_low": r_low,
                         "rate_high": r_high,
                         "goal": "<= 0.05" if scenario == "null" else "(power)",
                         "meets_goal": bool(rate <= 0.05) if scenario == "null" else None,
                         "truth": math.nan, "mean_estimate": math.nan,
                         "mean_interval_width": math.nan})
        for claim in CLAIMS["claims"]:
            if f"firm_{claim['id']}" not in group or scenario not in WRONG:
                continue
            graded = group[f"firm_{claim['id']}"].notna()  # logs graded for firmness
            firm = group[f"firm_{claim['id']}"].astype(str).isin(["True", "true", "1"])
            wrong = group[f"verdict_{claim['id']}"].isin(WRONG[scenario])
            count = int((firm & wrong).sum())
            rate, r_low, r_high = _rate(count, int(firm.sum()))
            rows.append({"kind": "firm_wrong", "scenario": scenario, "name": claim["id"],
                         "n_logs": int(graded.sum()), "n_estimated": int(firm.sum()), "count": count,
                         "rate": rate, "rate_low": r_low, "rate_high": r_high,
                         "goal": "(reported)", "meets_goal": None, "truth": math.nan,
                         "mean_estimate": math.nan, "mean_interval_width": math.nan})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _bars(rows: pd.DataFrame) -> list:
    """Error-bar lengths below and above each rate (never negative)."""
    return [(rows["rate"] - rows["rate_low"]).clip(lower=0),
            (rows["rate_high"] - rows["rate"]).clip(lower=0)]


def plot(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Coverage (effect and null logs) and type-I error, each with its Wilson interval (SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "clinic-outcomes"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=[3, 2])
    cov = table[table["kind"] == "coverage"].reset_index(drop=True)
    y = np.arange(len(cov))
    left.axvspan(0.94, 0.96, color="#d9ead3", label="goal 94-96 %")
    left.axvline(0.95, color="#38761d", lw=1)
    left.errorbar(cov["rate"], y, xerr=_bars(cov), fmt="o", color="#1f4e79")
    labels = [f"{n.replace('_', ' ')} ({s})" for n, s in zip(cov["name"], cov["scenario"])]
    left.set_yticks(y, labels, fontsize=8)
    left.set_xlim(min(0.85, float(cov["rate_low"].min()) - 0.01), 1.0)
    left.set_xlabel("coverage of the 95 % interval")
    left.legend(loc="lower left", fontsize=8)
    t1 = table[(table["kind"] == "supported") & (table["scenario"] == "null")]
    t1 = t1.reset_index(drop=True)
    y = np.arange(len(t1))
    right.axvspan(0, 0.05, color="#d9ead3", label="goal <= 5 %")
    right.axvline(0.025, color="#38761d", lw=1, ls="--", label="nominal 2.5 % (one-sided)")
    right.errorbar(t1["rate"], y, xerr=_bars(t1), fmt="o", color="#990000")
    right.set_yticks(y, list(t1["name"]), fontsize=8)
    right.set_xlim(0, max(0.1, float(t1["rate_high"].max()) + 0.01))
    right.set_xlabel("'supported' on null logs (type-I error)")
    right.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return path


def write_study(logs: pd.DataFrame, table: pd.DataFrame, out: Path, settings: dict) -> dict:
    """Write calibration.csv, calibration.json, calibration_logs.csv and calibration.svg."""
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "calibration.csv", index=False, lineterminator="\n", float_format="%.6g")
    logs.to_csv(out / "calibration_logs.csv", index=False, lineterminator="\n",
                float_format="%.10g")
    records = json.loads(table.to_json(orient="records"))
    payload = {"settings": settings, "table": records}
    (out / "calibration.json").write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    plot(table, out / "calibration.svg",
         f"{settings['n_logs']} effect + {settings['n_logs']} null logs of "
         f"{settings['n_patients']} patients (seeds from {settings['seed']})")
    return payload


def read_logs(path: str | Path) -> pd.DataFrame:
    """Per-log rows written by :func:`write_study` (``calibration_logs.csv``), as written."""
    # keep_default_na=False: the scenario "null" is a word here, not a missing value.
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.studies.calibration",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=500, help="logs per scenario (effect, null)")
    parser.add_argument("--out", default="reports/validation", help="output folder")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--clinics", type=int, default=4)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--firmness", type=int, default=0, metavar="B",
                        help="also grade firmness with B bootstrap resamples and add the "
                             "claimed-truth scenario (kind firm_wrong: wrong verdicts among firm ones)")
    parser.add_argument("--firmness-logs", type=int, default=None, metavar="N",
                        help="grade firmness on the first N logs of each scenario only "
                             "(default: every log)")
    parser.add_argument("--from-logs", help="summarise and plot an earlier calibration_logs.csv "
                                            "(its calibration.json beside it) without refitting")
    args = parser.parse_args(argv)
    if args.logs < 1 or args.processes < 1:
        print("error: --logs and --processes must be at least 1", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.from_logs:
        logs = read_logs(args.from_logs)
        earlier = Path(args.from_logs).with_name("calibration.json")
        settings = json.loads(earlier.read_text())["settings"]
        table = summarise(logs)
    else:
        logs = run_logs(args.logs, args.seed, args.patients, args.clinics, args.processes,
                        args.firmness, args.firmness_logs)
        table = summarise(logs)
        settings = {"n_logs": args.logs, "n_patients": args.patients,
                    "n_clinics": args.clinics, "seed": args.seed,
                    "null_seed_offset": NULL_OFFSET, "processes": args.processes,
                    "firmness_resamples": args.firmness,
                    "firmness_logs": (min(args.firmness_logs, args.logs) if args.firmness_logs
                                      is not None else args.logs) if args.firmness else 0,
                    "seconds": round(time.perf_counter() - started, 1)}
    seconds = settings["seconds"]
    write_study(logs, table, Path(args.out), settings)
    shown = table.assign(rate=table["rate"].map("{:.3f}".format))
    columns = ["kind", "scenario", "name", "n_estimated", "count", "rate"]
    print(shown[columns].to_string(index=False))
    print(f"{len(logs)} logs in {seconds:.0f} s; wrote "
          f"{args.out}/calibration.{{csv,json,svg}}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
