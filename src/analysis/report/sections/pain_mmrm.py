"""Notebook 03 when ``models.pain.analysis`` is ``mmrm``: LS-means by visit, differences vs control
at every visit, the covariance and correlation matrices (researcher view), the missing-data
assumption, missingness patterns by arm and the delta-adjusted tipping-point table.

Sentences (each tested in tests/report/test_pain_mmrm_section.py):

* one difference sentence per active arm at the last visit
  (:func:`analysis.report.wording.difference_sentence`, the outcome's label and direction);
* :func:`mar_sentence`: the MAR assumption, always, with the number of patients with at least
  one missed scheduled visit (withheld below the disclosure threshold);
* :func:`tipping_sentence` when the sensitivity analysis ran.
"""

from __future__ import annotations

import pandas as pd

from analysis.config import outcome_meta
from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.sections.common import health_table, public_model_table
from analysis.report.outcome_words import time_phrase, words
from analysis.report.wording import difference_sentence


def mar_sentence(patterns: pd.DataFrame, threshold: int) -> str:
    """The missing-data assumption, with how many patients missed a scheduled visit."""
    n_missing = int(patterns.loc[patterns["pattern"].str.contains(r"\."), "n_patients"].sum())
    n_all = int(patterns["n_patients"].sum())
    count = (f"{n_missing} of {n_all} patients" if n_missing == 0 or n_missing >= threshold
             else f"fewer than {threshold} of {n_all} patients")
    return (f"{count} missed at least one scheduled visit. The model uses every observed visit and "
            "assumes the missed ones are missing at random (MAR): given a patient's arm, "
            "covariates and observed scores, whether a score is missing does not depend on its "
            "value. The tipping-point table (when configured) shows how far that can be "
            "stretched.")


def tipping_sentence(table: pd.DataFrame, arm: str, control: str, alpha: float) -> str | None:
    """The smallest delta at which the primary-visit difference of ``arm`` stops being significant."""
    part = table[table["arm"] == arm].sort_values("delta")
    if part.empty:
        return None
    lost = part[part["p_value"] >= alpha]
    if part["p_value"].iloc[0] >= alpha:
        return (f"{arm} vs {control} at the primary visit is not significant at {alpha:g} even "
                f"under MAR (delta {part['delta'].iloc[0]:g}).")
    if lost.empty:
        return (f"{arm} vs {control} at the primary visit stays significant at {alpha:g} for every "
                f"delta tried (up to {part['delta'].max():g}).")
    return (f"{arm} vs {control} at the primary visit stops being significant at {alpha:g} when "
            f"imputed values after dropout in {arm} are shifted by delta = {lost['delta'].iloc[0]:g} "
            "(the tipping point).")


def run_mmrm(ctx: RunContext, result, counts: dict) -> Section:
    """Write the MMRM's tables, figures and results fragment; return the section."""
    cfg, opts = ctx.cfg, ctx.cfg.models.pain
    meta = outcome_meta(cfg, opts.outcome)
    health = health_table({"pain": result.health})
    ctx.public_table("pain_health", health, count_column=None)
    patterns = ctx.public_table("pain_missingness_patterns", result.patterns,
                                key_columns=["pattern", "arm"])
    if not result.health.estimated:
        ctx.results("models.pain", {"analysis": "mmrm", "status": result.health.status,
                                    "health": result.health.to_dict(), "formula": result.formula})
        why = result.health.status.removeprefix("not estimable: ")
        return Section([f"The pain MMRM could not be estimated ({why})."],
                       {"health": health, "missingness_patterns": patterns}, {})
    tables = {
        "lsmeans": public_model_table(ctx, "pain_lsmeans", result.lsmeans, counts),
        "differences": public_model_table(ctx, "pain_lsmean_differences", result.differences, counts),
        "covariance_matrix": result.covariance_matrix.reset_index(names="visit"),
        "correlation_matrix": result.correlation_matrix.reset_index(names="visit"),
        "missingness_patterns": patterns,
        "health": health,
    }
    for name in ("covariance_matrix", "correlation_matrix"):
        ctx.public_table(f"pain_{name}", tables[name], count_column=None)
    unit = f" ({meta.unit})" if meta.unit else ""
    figs = {"lsmeans": ctx.figure("pain_lsmeans", figures.bands_by_arm(
        tables["lsmeans"], "estimate", f"{meta.label}: LS-means by visit (MMRM)", meta.label + unit))}
    last = result.differences["week"].max()
    diffs = tables["differences"]
    w = words(cfg, opts.outcome)
    sentences = [difference_sentence(r.arm, cfg.control, r.estimate, r.conf_low, r.conf_high,
                                     w["word"], last, w["lower_is_better"],
                                     when=time_phrase(cfg, last), points=w["points"])
                 for r in diffs[diffs["week"] == last].itertuples()]
    sentences.append(mar_sentence(result.patterns, cfg.disclosure_threshold))
    fragment = {"analysis": "mmrm", "status": result.health.status, "formula": result.formula,
                "covariance": result.covariance, "df": opts.df, "vcov": opts.vcov,
                "method": opts.method, "n_obs": result.n_obs, "n_patients": result.n_patients,
                "lsmeans": tables["lsmeans"], "differences": diffs,
                "missingness_patterns": patterns, "health": result.health.to_dict(),
                "assumption": "missing at random (MAR)"}
    if opts.sensitivity.delta:
        from analysis.endpoints.pain_tipping import tipping_point

        tip = tipping_point(result, opts.sensitivity.delta, opts.sensitivity.imputations,
                            seed=cfg.seed, alpha=cfg.models.alpha, better=meta.better)
        tables["tipping_point"] = public_model_table(ctx, "pain_tipping_point", tip, counts)
        fragment["tipping_point"] = tables["tipping_point"]
        for arm in dict.fromkeys(tip["arm"]):
            sentences.append(tipping_sentence(tip, arm, cfg.control, cfg.models.alpha))
    ctx.results("models.pain", fragment)
    return Section([s for s in sentences if s], tables, figs)
