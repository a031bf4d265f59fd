"""Notebook 02 — who was treated and what happened: flow by arm, baseline table, pain
trajectories with intervals, missingness."""

from __future__ import annotations

from analysis.config import UNIT_WORD
from analysis.endpoints import describe
from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.outcome_words import bin_width, report_unit, time_axis, time_phrase, words
from analysis.report.sections.common import last_report_week


def run(ctx: RunContext) -> Section:
    visits = ctx.visits()
    opts = ctx.cfg.models
    last = last_report_week(ctx, visits)
    # two report units before the last time
    completion_week = (last - 2 * bin_width(ctx.cfg)) if last is not None else 0.0
    flow = ctx.public_table("flow", describe.flow_by_arm(visits, completion_week), key_columns=["arm", "stage"])
    w = words(ctx.cfg, "pain_score")
    baseline = ctx.public_table("baseline", describe.baseline_by_arm(
        visits, opts.moderator.overpronated_above, ctx.cfg.baseline, w["word"]),
        key_columns=["arm", "characteristic"])
    missing = ctx.public_table("missingness", describe.missingness(visits), key_columns=["arm", "column"])
    tables = {"flow": flow, "baseline": baseline, "missingness": missing}
    figs = {}
    sentences = []
    if "pain_score" in visits and visits["pain_score"].notna().any():
        traj = ctx.public_table("pain_trajectories", describe.pain_trajectories(
            visits, alpha=opts.alpha, per=bin_width(ctx.cfg)), key_columns=["arm", "week"])
        tables["pain_trajectories"] = traj
        shown, x, xlabel = time_axis(ctx.cfg, traj)
        figs["pain_trajectories"] = ctx.figure("pain_trajectories", figures.bands_by_arm(
            shown, "mean", f"Average {w['word']} by {UNIT_WORD[report_unit(ctx.cfg)]} (raw data)",
            w["axis"], x=x, xlabel=xlabel))
        sentences.append(f"The picture shows average {w['word']} at each week in each treatment group, "
                         "with a band for the uncertainty; weeks with too few patients are left out.")
    completing = flow[flow["stage"] == "completing"]
    enrolled = flow[flow["stage"] == "enrolled"]
    if completing["n_patients"].notna().any():
        share = 100 * completing["n_patients"].sum() / enrolled["n_patients"].sum()
        sentences.append(f"{share:.0f}% of patients in the shown arms were still attending at "
                         f"{time_phrase(ctx.cfg, completion_week)} or later.")
    ctx.results("description", {"flow": flow, "baseline": baseline, "missingness": missing,
                                "completion_week": completion_week})
    return Section(sentences, tables, figs)
