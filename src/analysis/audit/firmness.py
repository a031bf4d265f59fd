"""How firm a verdict is: the claim graded again under declared alternative analyses and under a
patient-level bootstrap (docs/claims.md, "Firmness").

Alternatives (each changes one declared choice of the run config, refits, and re-grades):

* ``random intercept`` / ``random slope`` — the other random structure of the pain, moderator
  and strength models;
* ``with clinic level`` / ``without clinic level`` — a clinic intercept added or dropped;
* ``without covariates`` — the config's covariates dropped (only when it has some);
* ``population-averaged`` / ``patient-level`` — for episodes, the other count estimand (already
  fitted beside the primary one).

Bootstrap: ``resamples`` resamples of patients within clinic (seeded), every claim re-estimated
in each (:mod:`analysis.audit.firmness_bootstrap`: linear mixed models by fixed-variance GLS,
episode count models by Fisher scoring / one Newton step at the full-data variance parameters,
responder shares exactly) and graded by the audit's own rule
(:func:`analysis.audit.verdicts.grade_estimate`).

Rule: **firm** when every alternative gives the same verdict and, where resampled, at least
90 % of resamples do; otherwise **depends on the analysis: <the alternatives that flip it>** or
**depends on the sample: same verdict in N % of resamples**. A claim that could not be resampled
says so and why.
"""

from __future__ import annotations

import math

from analysis.audit.claims import ClaimsFile, ResultsBundle, fit_claim_models
from analysis.audit.estimands import estimate_claim
from analysis.audit.estimate import NotTestable
from analysis.audit.firmness_bootstrap import bootstrap_verdicts
from analysis.audit.verdicts import audit_estimates

FIRM_SHARE = 0.9


def alternatives(cfg) -> list[tuple[str, tuple[str, ...], object]]:
    """The declared alternative analyses: (name, outcomes it concerns, run config)."""
    m = cfg.models
    out = []
    other = "intercept" if m.pain.random == "slope" else "slope"
    out.append((f"random {other}", ("pain", "strength"),
                cfg.model_copy(update={"models": m.model_copy(update={
                    "pain": m.pain.model_copy(update={"random": other})})})))
    clinic = not m.pain.clinic_level
    out.append((f"{'with' if clinic else 'without'} clinic level", ("pain", "strength"),
                cfg.model_copy(update={"models": m.model_copy(update={
                    "pain": m.pain.model_copy(update={"clinic_level": clinic})})})))
    if m.pain.covariates:
        out.append(("without covariates", ("pain",), cfg.model_copy(update={"models": m.model_copy(
            update={"pain": m.pain.model_copy(update={"covariates": []})})})))
    if m.strength.covariates:
        out.append(("without covariates", ("strength",), cfg.model_copy(update={
            "models": m.model_copy(update={"strength": m.strength.model_copy(
                update={"covariates": []})})})))
    primary = m.episodes.primary
    other_est = "population_averaged" if primary == "patient_level" else "patient_level"
    out.append((other_est.replace("_", "-"), ("episodes",), cfg.model_copy(update={
        "models": m.model_copy(update={"episodes": m.episodes.model_copy(
            update={"primary": other_est})})})))
    if m.episodes.covariates:
        out.append(("without covariates", ("episodes",), cfg.model_copy(update={
            "models": m.model_copy(update={"episodes": m.episodes.model_copy(
                update={"covariates": []})})})))
    return out


def _estimates(claims, bundle, cfg) -> list:
    out = []
    for claim in claims.claims:
        try:
            out.append(estimate_claim(claim, bundle, cfg))
        except NotTestable as exc:
            out.append(str(exc))
    return out


def _verdicts(claims, estimates, cfg) -> list[str]:
    # graded as the audit grades them (Holm included): the one rule of analysis.audit.verdicts
    return list(audit_estimates(claims, estimates, cfg.models.alpha)["verdict"])


def grade_alternatives(data, claims: ClaimsFile, cfg, bundle: ResultsBundle,
                       primary: list) -> dict[str, list]:
    """Verdict of every claim under each alternative (None where it does not concern the claim)."""
    out = {}
    for name, outcomes, alt_cfg in alternatives(cfg):
        idx = [i for i, c in enumerate(claims.claims) if c.outcome in outcomes]
        if not idx:
            continue
        if name in ("patient-level", "population-averaged"):
            alt_bundle = bundle  # both count estimands are fitted already
        else:
            subset = claims.model_copy(update={"claims": [claims.claims[i] for i in idx]})
            alt_bundle = fit_claim_models(data, subset, alt_cfg)
        ests = list(primary)
        for i in idx:
            try:
                ests[i] = estimate_claim(claims.claims[i], alt_bundle, alt_cfg)
            except NotTestable as exc:
                ests[i] = str(exc)
        verdicts = _verdicts(claims, ests, cfg)
        out[name] = [verdicts[i] if i in idx else None for i in range(len(claims.claims))]
    return out


def firmness_words(verdict: str, by_alternative: dict[str, str | None], share: float,
                   not_resampled: str | None = None) -> str:
    """``firm``, ``depends on the analysis: random intercept``, ``depends on the sample: …``.

    ``not_resampled`` is the reason, in words, when the claim could not be resampled.
    """
    if verdict == "not testable":
        return "not graded"
    flips = [f"{name} gives {v}" for name, v in by_alternative.items()
             if v is not None and v != verdict]
    if flips:
        return "depends on the analysis: " + "; ".join(flips)
    if math.isfinite(share) and share < FIRM_SHARE:
        return f"depends on the sample: same verdict in {100 * share:.0f} % of resamples"
    if not math.isfinite(share):
        why = f": {not_resampled}" if not_resampled else ""
        return f"firm across the alternative analyses (not resampled{why})"
    return "firm"


def assess_firmness(data, claims: ClaimsFile, cfg, bundle: ResultsBundle,
                    resamples: int = 200, seed: int = 1) -> tuple[list[dict], dict]:
    """Firmness of every claim: per-alternative verdicts, bootstrap share, the words.

    Returns
    -------
    rows : list of dict
        Per claim: ``id``, ``verdict``, ``alternatives`` (name -> verdict), ``share_alternatives``
        (share of the alternatives concerning it with the same verdict), ``share_resamples``,
        ``firmness`` (words).
    info : dict
        Bootstrap settings and which claims were resampled.
    """
    primary = _estimates(claims, bundle, cfg)
    verdicts = _verdicts(claims, primary, cfg)
    alts = grade_alternatives(data, claims, cfg, bundle, primary)
    shares, info = (bootstrap_verdicts(claims, cfg, bundle, primary, resamples, seed)
                    if resamples > 0 else ([math.nan] * len(primary), {"resamples": 0}))
    rows = []
    for i, claim in enumerate(claims.claims):
        mine = {name: v[i] for name, v in alts.items() if v[i] is not None}
        agree = [v == verdicts[i] for v in mine.values()]
        rows.append({"id": claim.id, "verdict": verdicts[i], "alternatives": mine,
                     "share_alternatives": (sum(agree) / len(agree)) if agree else math.nan,
                     "share_resamples": shares[i],
                     "firmness": firmness_words(verdicts[i], mine, shares[i],
                                                _why_not(info, claim.id))})
    return rows, info


def _why_not(info: dict, claim_id: str) -> str | None:
    if not info.get("resamples"):
        return "the bootstrap is off (firmness: resamples: 0)"
    reason = info.get("skipped", {}).get(claim_id)
    return reason.removeprefix("not resampled: ") if reason else None
