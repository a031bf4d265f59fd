"""Notebook 08 — the claims audit: each published claim compiled to an estimand, graded by the
rules of docs/claims.md, with a forest plot against the claimed values."""

from __future__ import annotations

import pandas as pd

from analysis.audit.claims import fit_claim_models, load_claims
from analysis.audit.firmness import assess_firmness
from analysis.audit.verdicts import audit_claims, records, units_label
from analysis.config import outcome_meta
from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.outcome_words import claim_noun, outcome_column
from analysis.report.wording import claim_sentence, claim_when

SHOWN = ["id", "text", "verdict", "estimand", "estimate", "conf_low", "conf_high", "claimed", "units",
         "p_holm", "mde", "n_needed_per_arm", "reason"]


def relabel(audit: pd.DataFrame, claims, cfg) -> None:
    """The ``units`` of claims on an outcome the run config relabels, in its own word and unit
    ("percent fewer seizures"; docs/wording.md, "Outcome pages"), in place."""
    for i, claim in zip(audit.index, claims.claims):
        noun, scale = claim_noun(cfg, claim.outcome), audit.at[i, "scale"]
        if noun is None or not isinstance(scale, str):
            continue
        unit = outcome_meta(cfg, outcome_column(cfg, claim.outcome)).unit
        audit.at[i, "units"] = units_label(claim, scale, noun, unit)


def run(ctx: RunContext) -> Section:
    cfg = ctx.cfg
    if cfg.claims is None:
        ctx.results("claims", [])
        return Section(["No claims file is named in the run config (`claims:`), so no claim was audited."],
                       {}, {}, not_shown="no claims file in the run config")
    claims = load_claims(cfg.claims)
    # the models 03-06 fitted and saved are graded as they are; only the others are fitted here
    bundle = fit_claim_models(ctx.visits(), claims, cfg, fitted=ctx.saved_fits())
    audit = audit_claims(claims, bundle, cfg)
    meta = outcome_meta(cfg, cfg.models.pain.outcome)
    mcid = meta.mcid.points if meta.mcid is not None else None
    frames = {c.id: bundle.frame(c) for c in claims.claims}
    relabel(audit, claims, cfg)
    audit["plain"] = [claim_sentence(r, mcid if r["outcome"] == "pain" else None,
                                     claim_when(r["outcome"], *frames[r["id"]][:2], c.window is not None),
                                     noun=claim_noun(cfg, r["outcome"]))
                      for r, c in zip(audit.to_dict(orient="records"), claims.claims)]
    rows, boot = assess_firmness(ctx.visits(), claims, cfg, bundle, claims.firmness.resamples, seed=cfg.seed)
    for col in ("firmness", "share_alternatives", "share_resamples", "alternatives"):
        audit[col] = [r[col] for r in rows]
    # Counts behind a claim are arm sizes; claims on arms below the threshold are already not testable.
    ctx.public_table("claims", audit.drop(columns=["secondary", "notes"]), count_column=None)
    ctx.results("claims", records(audit))
    ctx.results("claims_firmness", {**boot, "rule": "firm: the same verdict under every alternative analysis "
                                                    "and in at least 90 % of patient-level resamples"})
    figs = {}
    if audit["estimate"].notna().any():
        figs["forest"] = ctx.figure("claims_forest", figures.claims_forest(audit))
    # The analysis each verdict rests on names models and df: researcher view (say_details).
    sentences = [f"“{r.text}” — **{r.verdict}** ({r.firmness}). {r.plain}" for r in audit.itertuples()]
    notes = [f"“{r.text}”: analysis {r.analysis or 'none'}." for r in audit.itertuples()]
    details = audit[["id", "estimand", "uncontrolled", "share_of_change_in_control", "secondary"]].copy()
    details["secondary"] = details["secondary"].map(lambda s: "" if s is None or (isinstance(s, float) and pd.isna(s)) else str(s))
    plain = audit[["text", "verdict", "estimate", "conf_low", "conf_high", "claimed", "units"]].rename(columns={
        "text": "claim", "estimate": "what the data show", "conf_low": "95% interval, low",
        "conf_high": "95% interval, high", "units": "measured in"})
    return Section(sentences, {"verdicts": audit[SHOWN], "details": details, "plain": plain}, figs,
                   details=notes)
