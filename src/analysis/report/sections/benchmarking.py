"""Notebook 07 — clinic benchmarking: shrunken clinic effects (caterpillar plot) and a funnel plot
of adjusted pain change against clinic size, one clinic optionally highlighted as "your clinic".

Who is shown, and how (docs/benchmarking.md):

- other clinics appear only as letters (A = the largest, by patients with a pain score; ties by a
  salted hash), never by id; the highlighted clinic appears as "your clinic";
- a clinic resting on fewer patients than ``disclosure_threshold`` is not shown on its own: it is
  left out of the clinic-effect table and caterpillar plot, and pooled with the other small
  clinics into one "other small clinics" point of the funnel plot — or, when the pool is itself
  below the threshold, left out of the funnel (its patients then take no part in it at all);
- a clinic id is text from a log, so it is only ever shown HTML- and Markdown-escaped.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd

from analysis.endpoints.benchmarking import (
    clinic_letters,
    fit_clinic_effects,
    funnel,
    patient_changes,
)
from analysis.endpoints.pain import BASELINE_MAX_WEEK
from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.outcome_words import time_phrase, words
from analysis.report.sections.common import has_values, health_table, last_report_week

YOUR_CLINIC = "your clinic"
POOLED = "other small clinics"
LEVEL_WORDS = {"below 99.8% limit": "more improvement than the network (below the 99.8% limit)",
               "below 95% limit": "more improvement than the network (below the 95% limit)",
               "within limits": "within the 95% limits (no evidence of a difference from the network)",
               "above 95% limit": "less improvement than the network (above the 95% limit)",
               "above 99.8% limit": "less improvement than the network (above the 99.8% limit)"}


def level_words(flag: str, lower_is_better: bool = True) -> str:
    """A funnel flag in words; below the limits is more improvement only when lower is better."""
    text = LEVEL_WORDS[flag]
    if lower_is_better:
        return text
    return text.replace("more improvement", "\0").replace("less improvement", "more improvement") \
        .replace("\0", "less improvement")


def better_side(w: dict) -> str:
    return f"< 0 = less {w['word']}" if w["lower_is_better"] else f"> 0 = higher {w['word']}"


def markdown_text(value: str) -> str:
    """Text from a log, safe inside Markdown rendered to HTML: escaped, never markup."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~>])", r"\\\1", html.escape(str(value), quote=True))


def not_possible(ctx: RunContext, reason: str) -> Section:
    """Record and say that benchmarking could not be done, and why."""
    ctx.results("benchmarking", {"status": f"not possible: {reason}"})
    return Section([f"Benchmarking is not possible: {reason}."], {}, {},
                   not_shown=f"not shown — benchmarking is not possible: {reason}")


TECHNICAL_SENTENCES = ("Between clinics, follow-up pain", "Funnel limits:")


def run(ctx: RunContext, clinic_id: str = "") -> Section:
    """Benchmark the clinics of the log; ``clinic_id`` (else ``benchmarking.clinic_id``) is highlighted."""
    cfg, opts, k = ctx.cfg, ctx.cfg.benchmarking, ctx.cfg.disclosure_threshold
    wanted = clinic_id or opts.clinic_id
    outcome = cfg.models.pain.outcome
    visits = ctx.visits()
    if not has_values(visits, outcome):
        return not_possible(ctx, f"the log has no {outcome} values")
    recorded = visits.dropna(subset=[outcome])
    sizes = {str(c): int(n) for c, n in recorded.groupby("clinic_id")["patient_id"].nunique().items()}
    if len(sizes) < 2:
        return not_possible(ctx, "the log has one clinic (or no clinic_id column), so there is nothing "
                                 "to compare it with")
    if sum(n >= k for n in sizes.values()) < 2:
        return not_possible(ctx, f"fewer than two clinics have at least {k} patients with a pain score "
                                 "(the disclosure threshold)")

    sentences, notes = [], []
    highlighted = wanted if wanted in sizes else None
    if wanted and highlighted is None:
        notes.append(f"Clinic “{markdown_text(wanted)}” is not in this log, so no clinic is highlighted.")
    letters = clinic_letters(sizes, k, exclude=highlighted, salt=str(cfg.seed))
    labels = dict(letters)
    if highlighted is not None:
        if sizes[highlighted] >= k:
            labels[highlighted] = YOUR_CLINIC
            sentences.append(f"Clinic “{markdown_text(highlighted)}” is shown as “{YOUR_CLINIC}”; the other "
                             "clinics appear as letters (A = the largest), never by name.")
        else:
            notes.append(f"Clinic “{markdown_text(highlighted)}” has fewer than {k} patients with a pain "
                         "score, so it is not shown on its own.")
    if highlighted is None or sizes[highlighted] < k:
        sentences.append("Clinics appear as letters (A = the largest), never by name.")

    effects = fit_clinic_effects(visits, cfg.models.pain, cfg.control, cfg.models.alpha, opts.adjust_for_baseline)
    tables, figs, results = {}, {}, {}
    tables["health"] = ctx.public_table("benchmarking_health", health_table({"benchmarking": effects.health}),
                                        count_column=None)
    results["clinic_effects"] = _clinic_effects(ctx, effects, labels, tables, figs, sentences)
    week = opts.week if opts.week is not None else (last_report_week(ctx, visits) or 0.0)
    results["funnel"] = _funnel(ctx, visits, labels, week, tables, figs, sentences)

    small = sorted(c for c, n in sizes.items() if n < k)
    if small:
        # A count of clinics is a count of the people in them: below k it is not printed.
        notes.append(f"{len(small) if len(small) >= k else 'Some'} clinics with fewer than {k} patients "
                     "are not shown on their own (see the funnel plot's notes).")
    if results["clinic_effects"]["status"] != "estimated" and results["funnel"]["status"] != "estimated":
        return not_possible(ctx, f"{results['clinic_effects']['status']}; {results['funnel']['status']}")
    ctx.results("benchmarking", {
        "status": "estimated", "threshold": k,
        # The clinics below the threshold rest on fewer than k patients: their count is withheld
        # (None) as a count of patients would be; the network's number of clinics is not.
        "n_clinics": len(sizes),
        "n_clinics_below_threshold": len(small) if len(small) >= k or not small else None,
        "highlighted": {"requested": bool(wanted), "in_log": highlighted is not None,
                        "shown": highlighted is not None and sizes[highlighted] >= k,
                        "label": YOUR_CLINIC if highlighted is not None and sizes[highlighted] >= k else None},
        "labels": "letters from the largest clinic (A) down; ties by a salted SHA-256 of the id",
        **results,
    })
    # How the model and the funnel limits were set (SD, τ², χ² test) is for researchers.
    details = [s for s in sentences if s.startswith(TECHNICAL_SENTENCES)]
    plain = [s for s in sentences if not s.startswith(TECHNICAL_SENTENCES)]
    return Section(plain + notes, tables, figs, details=details)


def _clinic_effects(ctx, effects, labels, tables, figs, sentences) -> dict:
    """Caterpillar plot and table of the shrunken clinic effects (labelled clinics only)."""
    w = words(ctx.cfg, ctx.cfg.models.pain.outcome)
    if effects.reason is not None:
        sentences.append(f"Clinic effects could not be estimated ({effects.reason}).")
        return {"status": f"not estimated: {effects.reason}", "formula": effects.formula,
                "health": effects.health.to_dict()}
    table = effects.table[effects.table["clinic"].isin(labels)].copy()
    table["term"] = table["clinic"].map(labels)
    table["n_patients"] = table["clinic"].map(effects.n_patients).fillna(0).astype(int)
    table = table.drop(columns=["clinic", "raw_mean_residual"])
    table = table.sort_values("term", key=lambda s: s.map(_label_order)).reset_index(drop=True)
    public = ctx.public_table("benchmarking_clinic_effects", table, key_columns=["term"])
    tables["clinic_effects"] = public[["term", "n_patients", "estimate", "conf_low", "conf_high", "suppressed"]] \
        .rename(columns={"term": "clinic", "estimate": "effect (points)"})
    hl = YOUR_CLINIC if YOUR_CLINIC in set(public["term"]) else None
    figs["caterpillar"] = ctx.figure("benchmarking_caterpillar", figures.caterpillar(
        public, "term", "estimate", "conf_low", "conf_high",
        f"Clinic effects on {w['word']}, shrunken towards the network (95% intervals)",
        f"{w['word']} vs similar patients elsewhere ({w['points']}; {better_side(w)})", highlight=hl))
    sentences.append(f"Between clinics, follow-up {w['word']} for similar patients varies with an SD of "
                     f"{effects.clinic_sd:.2f} {w['points']} (the model's estimate; 0 means no difference beyond chance).")
    mine = public[(public["term"] == YOUR_CLINIC) & ~public["suppressed"]]
    if len(mine):
        r = mine.iloc[0]
        side = "lower" if r["estimate"] < 0 else "higher"
        clear = r["conf_high"] < 0 or r["conf_low"] > 0
        sentences.append(f"Your clinic: follow-up {w['word']} {abs(r['estimate']):.2f} {w['points']} {side} than for similar "
                         f"patients across the network (95% interval {r['conf_low']:+.2f} to {r['conf_high']:+.2f}; "
                         f"{'the data rule out no difference' if clear else 'the data cannot rule out no difference'}).")
    return {"status": "estimated", "formula": effects.formula, "clinic_sd": effects.clinic_sd,
            "sigma": effects.sigma, "health": effects.health.to_dict(),
            "interval": "conditional mode ± z × prediction-error SD (includes the uncertainty in the fixed "
                        "effects; variance parameters taken as known)",
            "rows": public}


def _funnel(ctx, visits, labels, week, tables, figs, sentences) -> dict:
    """Funnel plot and table of adjusted pain change per clinic (small clinics pooled or left out)."""
    cfg, opts, k = ctx.cfg, ctx.cfg.benchmarking, ctx.cfg.disclosure_threshold
    changes = patient_changes(visits, cfg.models.pain.outcome, week, opts.min_follow_up_week)
    counts = changes.groupby("clinic").size()
    unit_of = {c: labels[c] for c, n in counts.items() if c in labels and n >= k}
    small = [c for c in counts.index if c not in unit_of]
    pooled_n = int(counts[small].sum()) if small else 0
    if small and pooled_n >= k:
        unit_of.update({c: POOLED for c in small})
    changes["unit"] = changes["clinic"].map(unit_of)
    definition = {"week": week, "min_follow_up_week": opts.min_follow_up_week,
                  "baseline_max_week": BASELINE_MAX_WEEK,
                  "change": "last score in the follow-up window minus the baseline score",
                  "small_clinics": ("pooled as 'other small clinics'" if small and pooled_n >= k else
                                    "left out (together below the threshold)" if small else "none")}
    result = funnel(changes, "unit", opts.adjust_for_baseline, opts.overdispersion, opts.winsorize)
    if result.reason is not None:
        sentences.append(f"No funnel plot: {result.reason}.")
        return {"status": f"not estimated: {result.reason}", "definition": definition}
    units = result.units.rename(columns={"unit": "term"})
    units = units.sort_values("term", key=lambda s: s.map(_label_order)).reset_index(drop=True)
    public = ctx.public_table("benchmarking_funnel", units, key_columns=["term"])
    tables["funnel"] = public[["term", "n_patients", "adjusted_change", "lower_95", "upper_95", "flag",
                               "suppressed"]].rename(columns={"term": "clinic", "adjusted_change": "adjusted change"})
    n_max = float(units["n_patients"].max())
    grid = np.linspace(max(2.0, 0.8 * float(units["n_patients"].min())), 1.15 * n_max, 120)
    limits = pd.DataFrame({"n_patients": grid})
    for level in ("95", "99.8"):
        limits[f"lower_{level}"], limits[f"upper_{level}"] = result.limits(grid, level)
    hl = YOUR_CLINIC if YOUR_CLINIC in set(units["term"]) else None
    w = words(cfg, cfg.models.pain.outcome)
    adjusted = f"treatment and baseline {w['word']}" if opts.adjust_for_baseline else "treatment"
    relief = "(lower = more relief)" if w["lower_is_better"] else "(higher = more improvement)"
    figs["funnel"] = ctx.figure("benchmarking_funnel", figures.funnel_plot(
        public.rename(columns={"term": "label"}), limits, result.target,
        f"Change in {w['word']} by clinic, adjusted for {adjusted}\n{relief}",
        f"change in {w['word']} to {time_phrase(cfg, week).replace(' ', ' ≤ ', 1)} ({w['points']})", highlight=hl))
    sentences.append(f"Across the network, {w['word']} changed by {result.target:+.2f} {w['points']} from baseline to the last "
                     f"visit up to {time_phrase(cfg, week)}; each clinic's change is adjusted for its mix of {adjusted}.")
    d = result.dispersion
    method_words = {"none": "plain limits (chance alone)",
                    "multiplicative": f"limits widened by √φ, φ = {result.phi_used:.2f}",
                    "additive": f"limits widened by a between-clinic variance τ² = {result.tau2_used:.3f}"}
    sentences.append(f"Funnel limits: {method_words[result.method]} (overdispersion test χ² = {d['chisq']:.1f} on "
                     f"{d['df']} df, p = {d['p_value']:.2g}).")
    for row in public[~public["suppressed"]].itertuples(index=False):
        if row.term == YOUR_CLINIC:
            sentences.append(f"Your clinic's patients changed by {row.adjusted_change:+.2f} {w['points']} (adjusted): "
                             f"{level_words(row.flag, w['lower_is_better'])}.")
    outside = [f"{r.term} ({r.flag})" for r in public.itertuples(index=False)
               if r.flag not in ("within limits", None) and r.term != YOUR_CLINIC and not r.suppressed]
    if outside:
        side = "Below means more relief" if w["lower_is_better"] else "Above means more improvement"
        sentences.append("Outside the 95% limits: " + "; ".join(outside) + f". {side} than the "
                         "network; one in twenty clinics falls outside 95% limits by chance alone.")
    return {"status": "estimated", "definition": definition, "case_mix": result.case_mix,
            "n_patients": result.n_patients, "target": result.target, "sigma": result.sigma,
            "overdispersion": {"method": result.method, "phi_used": result.phi_used,
                               "tau2_used": result.tau2_used, **d},
            "limits": "target ± z × sqrt(phi_used × sigma² / n + tau2_used), z = 1.96 (95%) and 3.09 (99.8%)",
            "rows": public}


def _label_order(label: str) -> str:
    """Sort key: 'your clinic' first, then A, B, ..., Z, AA, ..., then 'other small clinics'."""
    if label == YOUR_CLINIC:
        return "0"
    if label == POOLED:
        return "2"
    return f"1{len(label):04d}{label}"
