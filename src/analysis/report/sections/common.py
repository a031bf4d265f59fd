"""Pieces every model notebook shares: patient counts per arm, not-analysed sections, health rows."""

from __future__ import annotations

import pandas as pd

from analysis.endpoints.timegrid import report_weeks as _report_weeks
from analysis.report.context import RunContext, Section
from analysis.report.disclosure import attach_arm_counts


def arm_counts(visits: pd.DataFrame, column: str | None = None) -> dict[str, int]:
    """Distinct patients per arm (optionally only those with ``column`` recorded)."""
    data = visits if column is None else visits.dropna(subset=[column])
    counts = data.groupby("arm", observed=True)["patient_id"].nunique()
    return {str(arm): int(n) for arm, n in counts.items()}


def public_model_table(ctx: RunContext, name: str, table: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    """Attach patient counts to a model table, suppress small cells, write tables/<name>.csv."""
    return ctx.public_table(name, attach_arm_counts(table, counts), key_columns=["term"] if "term" in table else None)


def plain_table(table: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """A table for owners: only ``columns`` (renamed to their labels), counts as whole numbers.

    ``columns`` maps a column of ``table`` to its header; treatments are put in words when the
    table is displayed (:meth:`analysis.report.context.Section.table`). Suppressed rows stay marked.
    """
    keep = [c for c in columns if c in table]
    out = table[keep + (["suppressed"] if "suppressed" in table else [])].copy()
    for col in keep:
        if col.startswith("n_") and pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].round().astype("Int64")
    return out.rename(columns={c: columns[c] for c in keep})


def has_values(visits: pd.DataFrame, column: str) -> bool:
    return column in visits and bool(visits[column].notna().any())


def not_analysed(ctx: RunContext, key: str, reason: str) -> Section:
    """Record that an outcome was not analysed, and why, for the report and results.json."""
    ctx.results(key, {"status": f"not analysed: {reason}"})
    return Section([f"Not analysed: {reason}."], {}, {}, not_shown=f"not analysed — {reason}")


def health_table(health_by_model: dict) -> pd.DataFrame:
    """One row per fitted model: status, engine, convergence, singularity, fallbacks, warnings."""
    rows = []
    for model, health in health_by_model.items():
        h = health.to_dict()
        rows.append({"model": model, "status": h["status"], "engine": h["engine"],
                     "converged": h["converged"], "singular": h["singular"],
                     "random structure": h.get("random_structure", ""),
                     "fallbacks": "; ".join(h["fallback_steps"]) or "none",
                     "warnings": len(h["warnings"])})
    return pd.DataFrame(rows)


def status_sentence(what: str, health) -> str | None:
    if health.estimated:
        return None
    return f"The {what} could not be estimated ({health.status.removeprefix('not estimable: ')})."


def report_weeks(ctx: RunContext, visits: pd.DataFrame | None = None) -> list[float]:
    """The run's report times: ``models.pain.weeks``, else the log's own schedule (every arm with
    at least the disclosure threshold of patients with pain recorded; docs/wording.md, Times)."""
    cfg = ctx.cfg
    visits = ctx.visits() if visits is None else visits
    return _report_weeks(cfg.models.pain.weeks, visits, cfg.models.pain.outcome,
                         min_patients=cfg.disclosure_threshold)


def last_report_week(ctx: RunContext, visits: pd.DataFrame | None = None) -> float | None:
    """The last report time after baseline (None when the log has no follow-up time that every
    reportable arm reaches: only week 0, or no time at all)."""
    weeks = [w for w in report_weeks(ctx, visits) if w > 0]
    return max(weeks) if weeks else None
