"""Notebook 03 — the pain model: fixed effects, marginal means by arm over weeks, contrasts
against control, diagnostics (researcher view), fit health."""

from __future__ import annotations

import numpy as np

from analysis.audit.model_text import lmm_result_words
from analysis.config import outcome_meta
from analysis.endpoints.pain import fit_pain_model
from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.outcome_words import time_axis, time_phrase, words
from analysis.report.sections.common import (
    arm_counts,
    has_values,
    health_table,
    not_analysed,
    plain_table,
    public_model_table,
    report_weeks,
    status_sentence,
)
from analysis.report.wording import difference_sentence


def run(ctx: RunContext) -> Section:
    cfg = ctx.cfg
    opts = cfg.models.pain
    visits = ctx.visits()
    if not has_values(visits, opts.outcome):
        return not_analysed(ctx, "models.pain", f"the log has no {opts.outcome} values")
    weeks = report_weeks(ctx, visits)
    if not weeks:
        return not_analysed(ctx, "models.pain", f"no visit time has at least {cfg.disclosure_threshold} "
                            f"patients with {opts.outcome} in every arm")
    opts = opts.model_copy(update={"weeks": weeks})
    result = fit_pain_model(visits, opts, control=cfg.control, alpha=cfg.models.alpha,
                            design=cfg.design)
    ctx.save_fit("pain", result)  # the claims audit (08) grades on this fit
    counts = arm_counts(visits, opts.outcome)
    if result.analysis == "mmrm":
        from analysis.report.sections.pain_mmrm import run_mmrm

        return run_mmrm(ctx, result, counts)
    health = health_table({"pain": result.health})
    ctx.public_table("pain_health", health, count_column=None)
    if not result.health.estimated:
        ctx.results("models.pain", {"status": result.health.status, "health": result.health.to_dict(),
                                    "formula": result.formula})
        return Section([status_sentence("pain model", result.health)], {"health": health}, {})

    tables = {
        "fixed_effects": public_model_table(ctx, "pain_fixed_effects", result.fixed_effects, counts),
        "marginal_means": public_model_table(
            ctx, "pain_marginal_means", result.marginal_means.merge(
                result.grid[["term", "arm", "week"]], on="term", how="left"), counts),
        "contrasts": public_model_table(ctx, "pain_contrasts", result.contrasts.merge(
            result.grid[["term", "arm", "week"]], on="term", how="left"), counts),
        "slope_differences": public_model_table(ctx, "pain_slope_differences", result.slope_differences, counts),
        "variance_components": result.variance_components,
        "health": health,
    }
    ctx.public_table("pain_variance_components", result.variance_components, count_column=None)
    shown, x, xlabel = time_axis(cfg, tables["marginal_means"])
    figs = {"marginal_means": ctx.figure("pain_marginal_means", figures.bands_by_arm(
        shown, "estimate", f"{words(cfg, opts.outcome)['Word']} predicted by the model, by treatment",
        words(cfg, opts.outcome)["axis"], x=x, xlabel=xlabel,
        colours=figures.treatment_colours(cfg.interventions, cfg.control), control=cfg.control))}
    fit = result.fit
    if fit is not None and fit.residuals is not None:
        re_cols = fit.random_effects.select_dtypes("number")
        figs["diagnostics"] = ctx.figure("pain_diagnostics", figures.residual_diagnostics(
            np.asarray(fit.fitted), np.asarray(fit.residuals), re_cols))
    last_week = max(weeks)
    contrasts = tables["contrasts"]
    w = words(cfg, opts.outcome)
    meta = outcome_meta(cfg, opts.outcome)
    mcid = meta.mcid.points if meta.mcid is not None else None
    sentences = [difference_sentence(r.arm, cfg.control, r.estimate, r.conf_low, r.conf_high, w["word"],
                                     last_week, w["lower_is_better"], when=time_phrase(cfg, last_week),
                                     points=w["points"], mcid=mcid)
                 for r in contrasts[contrasts["week"] == last_week].itertuples()]
    details = [f"Model fitted: {lmm_result_words(result)}."]  # names REML, df: researcher view
    out_of_range = _outside_range(result.marginal_means, meta.range)
    if out_of_range:
        result.health.add_warning(out_of_range)
        sentences.append(f"Fit-health warning: {out_of_range}; no headline is drawn from this model.")
    dose = _dose_response(ctx, visits, counts) if cfg.models.dose_response else None
    if dose is not None:
        tables["dose_response"] = dose
    ctx.results("models.pain", {
        "dose_response": dose,
        "status": result.health.status, "formula": result.formula, "n_obs": result.n_obs,
        "n_patients": result.n_patients, "fixed_effects": tables["fixed_effects"],
        "variance_components": result.variance_components, "health": result.health.to_dict(),
        "marginal_means": tables["marginal_means"], "contrasts": contrasts,
        "slope_differences": tables["slope_differences"], "weeks": weeks,
        "model": lmm_result_words(result), "out_of_range": out_of_range,
    })
    tables["by_week"] = plain_table(contrasts, {
        "arm": "treatment", "week": "week", "estimate": "difference in pain (points)",
        "conf_low": "95% interval, low", "conf_high": "95% interval, high", "n_patients": "patients"})
    return Section(sentences, tables, figs, details=details)


def _outside_range(means, scale) -> str | None:
    """Why the model's means leave the outcome's range (e.g. below 0 on 0-10 pain), or None."""
    if scale is None or means.empty:
        return None
    est = means["estimate"].astype(float)
    low, high = float(est.min()), float(est.max())
    if low < scale.min or high > scale.max:
        return (f"the model predicts mean pain from {low:.1f} to {high:.1f}, outside the scale's "
                f"{scale.min:g} to {scale.max:g}")
    return None


def _dose_response(ctx: RunContext, visits, counts):
    """Pain on week plus the cumulative sessions of each non-control intervention received.

    Each ``sessions_<intervention>`` coefficient is the change in pain per session delivered,
    the time-varying-covariate analysis of patients who switch treatment.
    """
    from analysis.config import PainModelOptions
    from analysis.intake.arms import session_column

    opts = ctx.cfg.models.pain
    columns = [session_column(i) for i in ctx.cfg.interventions
               if i != ctx.cfg.control and session_column(i) in visits and visits[session_column(i)].max() > 0]
    if not columns:
        return None
    formula = f"{opts.outcome} ~ week + " + " + ".join(columns)
    dose_opts = PainModelOptions(**{**opts.model_dump(), "formula": formula, "covariates": [],
                                    "analysis": "trend"})
    result = fit_pain_model(visits, dose_opts, control=ctx.cfg.control, alpha=ctx.cfg.models.alpha)
    if not result.health.estimated:
        return None
    table = result.fixed_effects.copy()
    table["arm"] = [t.removeprefix("sessions_") if t.startswith("sessions_") else None for t in table["term"]]
    return public_model_table(ctx, "pain_dose_response", table, counts)
