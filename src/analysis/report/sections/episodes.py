"""Notebook 04 — knee-pain episodes: rate ratios and percent reductions against control, both
estimands (patient-level GLMM, population-averaged GEE) side by side, forest plot."""

from __future__ import annotations

from analysis.endpoints.episodes import fit_episode_models
from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.outcome_words import claim_noun, words
from analysis.report.sections.common import (
    arm_counts,
    has_values,
    health_table,
    not_analysed,
    plain_table,
    public_model_table,
)
from analysis.report.wording import percent_sentence


def run(ctx: RunContext) -> Section:
    cfg = ctx.cfg
    opts = cfg.models.episodes
    visits = ctx.visits()
    if not (has_values(visits, "episodes") and has_values(visits, "exposure_days")):
        return not_analysed(ctx, "models.episodes", "the log has no episode counts with exposure days")
    result = fit_episode_models(visits, cfg.control, family=opts.family, primary=opts.primary,
                                covariates=tuple(opts.covariates), alpha=cfg.models.alpha)
    ctx.save_fit("episodes", result)  # the claims audit (08) grades on this fit
    counts = arm_counts(visits, "episodes")
    rates = public_model_table(ctx, "episode_rate_ratios", result.rate_ratios, counts)
    health = health_table(result.health)
    ctx.public_table("episode_health", health, count_column=None)
    tables = {"rate_ratios": rates, "health": health}
    figs = {}
    shown = rates[rates["estimand"] == result.primary].dropna(subset=["rate_ratio"])
    if len(shown):  # the primary estimand; the table of the researcher view has both
        labelled = shown.assign(label=shown["arm"].str.replace("_", " "))
        figs["forest"] = ctx.figure("episode_rate_ratios", figures.forest(
            labelled, "label", "rate_ratio", "rr_conf_low", "rr_conf_high",
            f"{words(cfg, 'episodes')['Word']} compared with {cfg.control.replace('_', ' ')}",
            f"{words(cfg, 'episodes')['points']} relative to the comparison (0.5 = half as many)",
            colours=figures.treatment_colours(cfg.interventions, cfg.control),
            reference_label=f"same as {cfg.control.replace('_', ' ')}"))
    primary = rates[rates["estimand"] == result.primary]
    sentences = [percent_sentence(r.arm, cfg.control, r.percent_reduction, r.percent_reduction_low,
                                  r.percent_reduction_high, words(cfg, "episodes")["word"])
                 for r in primary.itertuples()]
    details = [f"These are {result.primary.replace('_', '-')} estimates ({result.descriptions.get(result.primary, '')}); "
               "the other estimand is shown beside them in the table."]
    ctx.results("models.episodes", {
        "primary": result.primary, "family": result.family, "control": result.control,
        "rate_ratios": rates, "estimands": result.descriptions, "notes": result.notes,
        "coefficients": result.coefficients,
        "health": {k: h.to_dict() for k, h in result.health.items()},
        "status": {k: h.status for k, h in result.health.items()},
    })
    tables["fewer_episodes"] = plain_table(primary, {
        "arm": "treatment", "percent_reduction": f"% fewer {claim_noun(cfg, 'episodes') or 'episodes'}",
        "percent_reduction_low": "95% interval, low",
        "percent_reduction_high": "95% interval, high", "n_patients": "patients"})
    return Section(sentences, tables, figs, details=details)
