"""Notebook 02 — who was treated and what happened: flow by arm, baseline table, pain
trajectories with intervals, missingness."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis.config import UNIT_WORD
from analysis.endpoints import describe
from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.outcome_words import bin_width, report_unit, time_axis, time_phrase, words
from analysis.report.sections.common import last_report_week
from analysis.report.labels import outcome_label, treatment_label

if TYPE_CHECKING:
    import pandas as pd


def _wide(table, rows: str, value: str, fmt) -> pd.DataFrame:
    """A long table (arm x ``rows``) as one row per ``rows`` value and one column per treatment;
    withheld cells say so."""
    import pandas as pd

    cells = table.assign(_shown=[("withheld" if getattr(r, "suppressed", False) is True
                                   or pd.isna(getattr(r, value)) else fmt(r, getattr(r, value)))
                                  for r in table.itertuples(index=False)])
    wide = cells.pivot(index=rows, columns="arm", values="_shown")
    order = list(dict.fromkeys(table["arm"]))
    wide = wide[[a for a in order if a in wide.columns]]
    wide.columns = [treatment_label(a) for a in wide.columns]
    return wide.loc[list(dict.fromkeys(table[rows]))].reset_index()


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
    tables = {"flow": flow, "baseline": baseline, "missingness": missing,
              "flow_wide": _wide(flow, "stage", "n_patients", lambda r, v: f"{v:.0f}").rename(
                  columns={"stage": "patients"}),
              "baseline_wide": _wide(baseline, "characteristic", "value",
                                     lambda r, v: f"{v:.0f}" if r.characteristic == "patients" else f"{v:.1f}"),
              "missing_wide": _wide(missing.assign(column=[_measure(ctx.cfg, c) for c in missing["column"]]),
                                    "column", "percent_missing", lambda r, v: f"{v:.0f}%").rename(
                  columns={"column": "measure (% of visits missing it)"})}
    figs = {}
    sentences = []
    if "pain_score" in visits and visits["pain_score"].notna().any():
        traj = ctx.public_table("pain_trajectories", describe.pain_trajectories(
            visits, alpha=opts.alpha, per=bin_width(ctx.cfg)), key_columns=["arm", "week"])
        tables["pain_trajectories"] = traj
        shown, x, xlabel = time_axis(ctx.cfg, traj)
        figs["pain_trajectories"] = ctx.figure("pain_trajectories", figures.bands_by_arm(
            shown, "mean", f"Average {w['word']} by {UNIT_WORD[report_unit(ctx.cfg)]} (raw data)",
            w["axis"], x=x, xlabel=xlabel,
            colours=figures.treatment_colours(ctx.cfg.interventions, ctx.cfg.control), control=ctx.cfg.control))
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


def _measure(cfg, column: str) -> str:
    return "days of exposure" if column == "exposure_days" else outcome_label(cfg, column).label
