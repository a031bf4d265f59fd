"""Notebook 05 — strength: percent change over the follow-up per arm and against control, from a
mixed model on log(strength)."""

from __future__ import annotations

from analysis.endpoints.strength import fit_strength_model
from analysis.endpoints.timegrid import report_weeks as _report_weeks
from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.numbers import signed_percent
from analysis.report.sections.common import (
    arm_counts,
    has_values,
    health_table,
    not_analysed,
    plain_table,
    public_model_table,
    status_sentence,
)
from analysis.report.wording import pretty_arm, strength_sentence


def run(ctx: RunContext) -> Section:
    cfg = ctx.cfg
    visits = ctx.visits()
    if not has_values(visits, "strength"):
        return not_analysed(ctx, "models.strength", "the log has no strength measurements")
    pain_opts = cfg.models.pain
    weeks = _report_weeks(cfg.models.pain.weeks, visits, "strength", min_patients=cfg.disclosure_threshold)
    if not weeks:
        return not_analysed(ctx, "models.strength", f"no visit time has at least {cfg.disclosure_threshold} "
                            "patients with strength measured in every arm")
    horizon = max(weeks)
    result = fit_strength_model(visits, cfg.models.strength, control=cfg.control, alpha=cfg.models.alpha,
                                horizon=horizon, random=pain_opts.random, clinic_level=pain_opts.clinic_level,
                                weeks=tuple(weeks), engine=pain_opts.engine,
                                optimizers=tuple(pain_opts.optimizers))
    ctx.save_fit("strength", result)  # the claims audit (08) grades on this fit
    health = health_table({"strength": result.health})
    ctx.public_table("strength_health", health, count_column=None)
    if not result.health.estimated:
        ctx.results("models.strength", {"status": result.health.status, "health": result.health.to_dict()})
        return Section([status_sentence("strength model", result.health)], {"health": health}, {})
    counts = arm_counts(visits, "strength")
    change = result.percent_change.assign(arm=result.percent_change["term"].str.split(": ").str[-1])
    change = public_model_table(ctx, "strength_percent_change", change, counts)
    ratio = public_model_table(ctx, "strength_ratio_vs_control", result.ratio_vs_control, counts)
    fixed = public_model_table(ctx, "strength_fixed_effects", result.fixed_effects, counts)
    figs = {"percent_change": ctx.figure("strength_percent_change", figures.bars_by_arm(
        change, "estimate", "conf_low", "conf_high", f"Change in strength over {horizon:g} weeks",
        "change in strength (%)", reference=0.0,
        colours=figures.treatment_colours(cfg.interventions, cfg.control), control=cfg.control))}
    by_arm = dict(zip(change["arm"].astype(str), change["estimate"]))
    control_change = by_arm.get(str(cfg.control), float("nan"))
    sentences = []
    if cfg.control in by_arm:
        sentences.append(f"{pretty_arm(cfg.control).capitalize()}: strength {signed_percent(control_change)} "
                         f"over {horizon:g} weeks.")
    for r in ratio.dropna(subset=["estimate"]).itertuples():
        arm = r.term.split(": ")[-1].split(" / ")[0]
        sentences.append(strength_sentence(arm, cfg.control, by_arm.get(arm, float("nan")), control_change,
                                           r.estimate, r.conf_low, r.conf_high, horizon))
    ctx.results("models.strength", {
        "status": result.health.status, "formula": result.formula, "unit": result.unit,
        "horizon_weeks": horizon, "percent_change": change, "ratio_vs_control": ratio,
        "fixed_effects": fixed, "variance_components": result.variance_components,
        "health": result.health.to_dict(), "n_obs": result.n_obs, "n_patients": result.n_patients,
    })
    unit = f"% change over {horizon:g} weeks"
    plain = plain_table(change, {"arm": "treatment", "estimate": unit, "conf_low": "95% interval, low",
                                 "conf_high": "95% interval, high", "n_patients": "patients"})
    return Section(sentences, {"percent_change": change, "ratio_vs_control": ratio, "fixed_effects": fixed,
                               "health": health, "change": plain}, figs)
