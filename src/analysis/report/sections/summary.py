"""Notebook 09 — the few things a clinic owner must know, in plain words, read back from the
result fragments the earlier notebooks wrote (never from their kernels)."""

from __future__ import annotations

import pandas as pd

from analysis.report.context import RunContext, Section
from analysis.report.outcome_words import design_sentence, time_phrase, words
from analysis.report.wording import pretty_arm
from analysis.results import merge_fragments

HEADLINE_FIGURES = ["claims_forest", "pain_marginal_means", "episode_rate_ratios", "strength_percent_change",
                    "responder_proportions"]


def _clear(rows: list[dict], null: float, better_below: bool) -> list[str]:
    """Arms whose interval lies wholly on the better side of no effect."""
    out = []
    for r in rows:
        low, high = r.get("conf_low"), r.get("conf_high")
        if low is None or high is None:
            continue
        if (better_below and high < null) or (not better_below and low > null):
            out.append(pretty_arm(r.get("arm") or ""))
    return out


def _sentence(what: str, arms: list[str], control: str) -> str:
    if arms:
        return f"{what}: {', '.join(arms)} did clearly better than {pretty_arm(control)}."
    return f"{what}: no treatment did clearly better than {pretty_arm(control)}."


def _status(section: dict | None) -> str | None:
    if section is None:
        return "not run"
    status = section.get("status")
    if isinstance(status, dict):
        bad = [f"{k}: {v}" for k, v in status.items() if v != "estimated"]
        return "; ".join(bad) or None
    return None if status in (None, "estimated") else status


def run(ctx: RunContext) -> Section:
    results = merge_fragments(ctx.run_dir / "results")
    cfg = ctx.cfg
    models = results.get("models", {})
    data = results.get("data", {})
    control = cfg.control
    headlines = [f"{data.get('n_patients', '?')} patients from {data.get('n_clinics', '?')} clinic(s) were analysed; "
                 f"each treatment is compared with {pretty_arm(control)}."]
    claims = results.get("claims") or []
    if claims:
        counts = pd.Series([c["verdict"] for c in claims]).value_counts()
        headlines.append("Claims checked: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".")
    pain = models.get("pain", {})
    # the trend model's contrasts at its weeks, or (analysis: mmrm) the differences at each visit
    contrasts = pain.get("contrasts") or pain.get("differences") or []
    weeks = [r["week"] for r in contrasts if r.get("week") is not None]
    if weeks:
        last = max(weeks)
        rows = [r for r in contrasts if r.get("week") == last]
        w = words(cfg, cfg.models.pain.outcome)
        headlines.append(_sentence(f"{w['Word']} at {time_phrase(cfg, last)}",
                                   _clear(rows, 0.0, w["lower_is_better"]), control))
    episodes = models.get("episodes", {})
    if episodes.get("rate_ratios"):
        rows = [dict(r, conf_low=r["rr_conf_low"], conf_high=r["rr_conf_high"])
                for r in episodes["rate_ratios"] if r["estimand"] == episodes["primary"]]
        e = words(cfg, "episodes")
        headlines.append(_sentence(e["Word"], _clear(rows, 1.0, e["lower_is_better"]), control))
    strength = models.get("strength", {})
    if strength.get("ratio_vs_control"):
        rows = [dict(r, arm=r["term"].split(": ")[-1].split(" / ")[0]) for r in strength["ratio_vs_control"]]
        g = words(cfg, "strength")
        headlines.append(_sentence(g["Word"], _clear(rows, 1.0, g["lower_is_better"]), control))
    headlines.append(design_sentence(cfg))
    not_analysed = []
    for name in ("pain", "episodes", "strength", "responders", "moderator"):
        status = _status(models.get(name))
        if status:
            not_analysed.append(f"{name}: {status}")
    figures = [f for f in HEADLINE_FIGURES if (ctx.run_dir / "figures" / f"{f}.svg").exists()]
    ctx.results("summary", {"headlines": headlines, "not_analysed": not_analysed, "figures": figures})
    table = pd.DataFrame({"not analysed": not_analysed}) if not_analysed else pd.DataFrame()
    return Section(headlines, {"not_analysed": table} if not_analysed else {}, {})
