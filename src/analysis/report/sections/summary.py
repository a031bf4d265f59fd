"""Notebook 09 — the few things a clinic owner must know, in plain words, read back from the
result fragments the earlier notebooks wrote (never from their kernels)."""

from __future__ import annotations

import pandas as pd

from analysis.config import outcome_meta
from analysis.report.context import RunContext, Section
from analysis.report.numbers import change_phrase, count_of, mcid_phrase, missing, size_words
from analysis.report.outcome_words import design_sentence, time_phrase, words
from analysis.report.wording import headline, percent_sentence, pretty_arm, strength_sentence
from analysis.results import merge_fragments

HEADLINE_FIGURES = ["claims_forest", "pain_marginal_means", "episode_rate_ratios", "strength_percent_change",
                    "responder_proportions"]


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def _pain_headlines(pain: dict, cfg, control: str) -> list[str]:
    """One headline per arm at the last report week: size, interval, MCID, size words."""
    if pain.get("out_of_range"):
        return [f"{words(cfg, cfg.models.pain.outcome)['Word']}: no headline — fit-health warning: "
                f"{pain['out_of_range']}."]
    # the trend model's contrasts at its weeks, or (analysis: mmrm) the differences at each visit
    contrasts = pain.get("contrasts") or pain.get("differences") or []
    rows = [r for r in contrasts if r.get("week") is not None]
    if not rows:
        return []
    last = max(r["week"] for r in rows)
    meta = outcome_meta(cfg, cfg.models.pain.outcome)
    mcid = meta.mcid.points if meta.mcid is not None else None
    better = meta.better or "lower"
    w = words(cfg, cfg.models.pain.outcome)
    what = f"{w['Word']} at {time_phrase(cfg, last)}"
    out = []
    for r in rows:
        if r["week"] != last or r.get("arm") is None:
            continue
        est, low, high = _num(r.get("estimate")), _num(r.get("conf_low")), _num(r.get("conf_high"))
        if missing(est):
            out.append(f"{what}, {pretty_arm(r['arm'])} vs {pretty_arm(control)}: withheld or not estimable.")
            continue
        phrase = (change_phrase(est, low, high, w["word"], "more", "less", unit=w["points"])
                  + mcid_phrase(est, mcid, w["points"]))
        out.append(headline(what, r["arm"], control, phrase,
                            size_words(est, low, high, better, mcid)))
    return out


def _episode_headlines(episodes: dict, control: str, cfg=None) -> list[str]:
    rows = [r for r in episodes.get("rate_ratios") or [] if r.get("estimand") == episodes.get("primary")]
    # the count's label and unit from outcomes: (defaults "Knee-pain episodes", "episodes")
    w = words(cfg, "episodes") if cfg is not None else {"Word": "Knee-pain episodes", "points": "episodes"}
    return [f"{w['Word']}, " + percent_sentence(r["arm"], control, _num(r.get("percent_reduction")),
                                                _num(r.get("percent_reduction_low")),
                                                _num(r.get("percent_reduction_high")), w["points"],
                                                capital=False)
            for r in rows]


def _strength_headlines(strength: dict, control: str) -> list[str]:
    change = {r["term"].split(": ")[-1]: _num(r.get("estimate")) for r in strength.get("percent_change") or []}
    weeks = strength.get("horizon_weeks") or 0
    out = []
    for r in strength.get("ratio_vs_control") or []:
        arm = r["term"].split(": ")[-1].split(" / ")[0]
        out.append(strength_sentence(arm, control, change.get(arm, float("nan")), change.get(control, float("nan")),
                                     _num(r.get("estimate")), _num(r.get("conf_low")), _num(r.get("conf_high")),
                                     weeks))
    return out


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
    headlines = [f"{count_of(data.get('n_patients'), 'patient')} from "
                 f"{count_of(data.get('n_clinics'), 'clinic')} were analysed; "
                 f"each treatment is compared with {pretty_arm(control)}."]
    claims = results.get("claims") or []
    if claims:
        counts = pd.Series([c["verdict"] for c in claims]).value_counts()
        headlines.append("Claims checked: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".")
    headlines += _pain_headlines(models.get("pain", {}), cfg, control)
    headlines += _episode_headlines(models.get("episodes", {}), control, cfg)
    headlines += _strength_headlines(models.get("strength", {}), control)
    headlines.append(design_sentence(cfg))
    not_analysed = []
    for name in ("pain", "episodes", "strength", "responders", "moderator"):
        status = _status(models.get(name))
        if status:
            not_analysed.append(f"{name}: {status}")
    figures = [f for f in HEADLINE_FIGURES if (ctx.run_dir / "figures" / f"{f}.svg").exists()]
    ctx.results("summary", {"headlines": headlines, "not_analysed": not_analysed, "figures": figures})
    table = pd.DataFrame({"not analysed": not_analysed}) if not_analysed else pd.DataFrame()
    return Section(headlines, {"not_analysed": table} if not_analysed else {}, {},
                   not_shown="every outcome in the log was analysed")
