"""Notebook 06 — responders (≥ 2 points or ≥ 30 % less pain at the chosen week) and foot-posture
moderation (does a treatment's pain slope differ for overpronated feet?)."""

from __future__ import annotations

import math

from analysis.endpoints.baseline import baseline_scores
from analysis.endpoints.moderator import fit_moderator_model
from analysis.endpoints.responders import responder_analysis
from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.outcome_words import responder_thresholds, time_phrase, words
from analysis.report.sections.common import (
    has_values,
    health_table,
    last_report_week,
    not_analysed,
    plain_table,
    public_model_table,
)
from analysis.report.wording import certainty, pretty_arm


def run(ctx: RunContext) -> Section:
    cfg = ctx.cfg
    visits = ctx.visits()
    if not has_values(visits, "pain_score"):
        ctx.results("models.moderator", {"status": "not analysed: the log has no pain scores"})
        return not_analysed(ctx, "models.responders", "the log has no pain scores")
    r_opts = cfg.models.responders
    week = r_opts.week if r_opts.week is not None else last_report_week(ctx, visits)
    if week is None:
        ctx.results("models.moderator", {"status": "not analysed: no visit time every arm reaches"})
        return not_analysed(ctx, "models.responders", "no visit time has enough patients in every arm")
    r_opts = r_opts.model_copy(update={"week": week})
    w = words(cfg, "pain_score")
    min_points, min_percent = responder_thresholds(cfg)
    resp = responder_analysis(visits, cfg.control, week=r_opts.week, min_points=min_points,
                              min_percent=min_percent, window=r_opts.window, alpha=cfg.models.alpha,
                              better=w["better"] or "lower",
                              baseline=baseline_scores(visits, "pain_score", cfg.baseline))
    ctx.save_fit("responders", resp)  # the claims audit (08) grades on these
    shares = {"estimate": "n_assessable", "conf_low": "n_assessable", "conf_high": "n_assessable"}
    proportions = ctx.public_table("responder_proportions", resp.proportions, key_columns=["arm"],
                                   shares=shares)
    # A difference plus a published share gives the other share: a withheld share withholds the
    # differences it enters (the control's enters every difference).
    withheld = set(proportions.loc[proportions["estimate"].isna(), "arm"].astype(str))
    differences = resp.differences.copy()
    hidden = differences["arm"].astype(str).isin(withheld) | (str(cfg.control) in withheld)
    differences.loc[hidden, [c for c in differences.columns if c in [*shares, "std_error", "statistic", "p_value"]]] = float("nan")
    differences = ctx.public_table("responder_differences", differences, key_columns=["arm"])
    shares_pct = proportions.assign(**{c: 100 * proportions[c] for c in ("estimate", "conf_low", "conf_high")})
    tables = {"proportions": proportions, "differences": differences,
              "shares": plain_table(shares_pct, {
                  "arm": "treatment", "estimate": "% with noticeable relief", "conf_low": "95% interval, low",
                  "conf_high": "95% interval, high", "n_assessable": "patients assessed",
                  "n_responders": "patients with relief"})}
    pct = shares_pct
    figs = {"responders": ctx.figure("responder_proportions", figures.bars_by_arm(
        pct, "estimate", "conf_low", "conf_high",
        f"Share of patients with clinically important {'relief' if w['lower_is_better'] else 'improvement'} "
        f"at {time_phrase(cfg, r_opts.week)}", "share of patients (%)",
        colours=figures.treatment_colours(cfg.interventions, cfg.control), control=cfg.control))}
    rule = " or ".join(
        [f"{min_points:g} {w['points']}"] * math.isfinite(min_points)
        + [f"{min_percent:g}%"] * math.isfinite(min_percent))
    # "less pain" (the default's words); otherwise the direction of improvement: "higher FEV1"
    change = "less" if w["word"] == "pain" else "lower" if w["lower_is_better"] else "higher"
    sentences = [
        f"{pretty_arm(r.arm).capitalize()}: {100 * r.estimate:.0f}% of assessable patients had at least "
        f"{rule} {change} {w['word']} at {time_phrase(cfg, r_opts.week)} "
        f"(95% interval {100 * r.conf_low:.0f}% to {100 * r.conf_high:.0f}%)."
        for r in proportions.dropna(subset=["estimate"]).itertuples()
    ]
    for r in differences.dropna(subset=["estimate"]).itertuples():
        sentences.append(f"{pretty_arm(r.arm).capitalize()} vs {pretty_arm(cfg.control)}: "
                         f"{100 * r.estimate:+.0f} percentage points ({certainty(r.conf_low, r.conf_high)}).")
    results = {"status": "estimated", "definition": resp.definition, "proportions": proportions,
               "differences": differences}
    ctx.results("models.responders", results)

    if has_values(visits, "foot_posture_index"):
        threshold = cfg.models.moderator.overpronated_above
        mod = fit_moderator_model(visits, cfg.models.pain, control=cfg.control, threshold=threshold,
                                  alpha=cfg.models.alpha)
        ctx.save_fit("moderator", mod)
        tables["moderator_health"] = health_table({"moderator": mod.health})
        if mod.health.estimated:
            sub = mod.n_patients.groupby("arm")["n_patients"].min()
            counts = {str(a): int(n) for a, n in sub.items()}
            by_foot = public_model_table(ctx, "moderator_by_foot", mod.slope_difference_by_foot, counts)
            vs_control = public_model_table(ctx, "moderator_vs_control", mod.vs_control, counts)
            tables.update({"moderator_by_foot": by_foot, "moderator_vs_control": vs_control})
            for r in by_foot.dropna(subset=["estimate"]).itertuples():
                arm = r.term.split(": ")[-1]
                sentences.append(
                    f"{pretty_arm(arm).capitalize()}: weekly pain change in overpronated feet (FPI > +{threshold:g}) "
                    f"differs from other feet by {r.estimate:+.3f} points a week ({certainty(r.conf_low, r.conf_high)}).")
            ctx.results("models.moderator", {"threshold": threshold, "by_foot": by_foot,
                                             "vs_control": vs_control, "health": mod.health.to_dict(),
                                             "status": mod.health.status})
        else:
            ctx.results("models.moderator", {"status": mod.health.status, "health": mod.health.to_dict()})
            sentences.append(f"Foot-posture moderation could not be estimated ({mod.health.status}).")
    else:
        ctx.results("models.moderator", {"status": "not analysed: the log has no foot posture index"})
    return Section(sentences, tables, figs)
