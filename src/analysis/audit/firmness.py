"""How firm a verdict is: the claim graded again under declared alternative analyses and under a
patient-level bootstrap (docs/claims.md, "Firmness").

Alternatives (each changes one declared choice of the run config, refits, and re-grades):

* ``random intercept`` / ``random slope`` — the other random structure of the pain, moderator
  and strength models;
* ``with clinic level`` / ``without clinic level`` — a clinic intercept added or dropped;
* ``without covariates`` — the config's covariates dropped (only when it has some);
* ``population-averaged`` / ``patient-level`` — for episodes, the other count estimand (already
  fitted beside the primary one).

Bootstrap: ``resamples`` resamples of patients within clinic (seeded), each claim on a linear
mixed model re-estimated by the fixed-variance GLS refit of :mod:`analysis.models.resample` and
graded. Count and responder claims are not resampled (a count-model refit per resample is too
slow for a report; say so rather than pretend).

Rule: **firm** when every alternative gives the same verdict and, where resampled, at least
90 % of resamples do; otherwise **depends on the analysis: <the alternatives that flip it>** or
**depends on the sample: same verdict in N % of resamples**.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from analysis.audit.claims import ClaimsFile, ResultsBundle, fit_claim_models
from analysis.audit.estimands import estimate_claim
from analysis.audit.estimate import Estimate, NotTestable
from analysis.audit.verdicts import audit_estimates
from analysis.models.resample import (
    NotResamplable,
    cluster_weights,
    resampled_betas,
    resampled_fit,
)

FIRM_SHARE = 0.9
LMM_MODELS = ("pain", "moderator", "strength")


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
    resolved = estimates
    return list(audit_estimates(claims, resolved, cfg.models.alpha)["verdict"])


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


def _boot_result(result, fit, control, alpha):
    from analysis.models.marginal import arm_tables

    if hasattr(result, "log_slopes"):  # strength: slopes of log strength from the given fit
        tabs = arm_tables(fit, "arm", control, "week", [], alpha)
        return replace(result, fit=fit, log_slopes=tabs["slopes"],
                       log_slope_differences=tabs["slope_differences"])
    if hasattr(result, "grid"):  # pain: the estimand recomputes its week from the fit
        return replace(result, fit=fit, contrasts=result.contrasts.iloc[0:0],
                       grid=result.grid.iloc[0:0])
    return replace(result, fit=fit)  # moderator: always read from the fit


def linear_estimand(claim, bundle: ResultsBundle, cfg, key) -> np.ndarray:
    """The vector L with (model-scale) estimate = L'beta for a claim on a linear mixed model.

    Every LMM estimand here (a contrast at a week, a slope difference times the weeks, on the
    log scale for strength) is linear in the fixed effects, so L is read by evaluating the
    claim's own estimand code at the fitted beta and at beta plus each unit vector: no estimand is re-derived.
    """
    result = bundle.results[key]
    fit = result.fit
    p = len(fit.fixed_effects)
    probe = ResultsBundle(bundle.patients, bundle.control, dict(bundle.results),
                          bundle.follow_up, bundle.last_time)

    def value(beta):
        probe.results[key] = _boot_result(result, resampled_fit(fit, beta, np.eye(p)),
                                          bundle.control, cfg.models.alpha)
        est = estimate_claim(claim, probe, cfg)
        return est.on_model_scale(est.estimate)

    beta = fit.beta
    base = value(beta)
    L = np.array([value(beta + np.eye(p)[j]) - base for j in range(p)])
    return L, base - L @ beta


def _verdict(claim, est: Estimate, alpha: float) -> str:
    from analysis.audit.verdicts import claim_sign, claimed_effect, grade, to_effect

    sign = claim_sign(claim)
    low, high = sorted(to_effect(v, est.scale, sign) for v in est.interval(alpha))
    return grade(low, high, claimed_effect(claim))[0]


def bootstrap_verdicts(claims: ClaimsFile, cfg, bundle: ResultsBundle, primary: list,
                       resamples: int = 200, seed: int = 1) -> tuple[list, dict]:
    """Share of resamples giving each claim's verdict (NaN where a claim is not resampled).

    Each resample draws patients within clinic (:func:`analysis.models.resample.cluster_weights`),
    refits every LMM the claims read by fixed-variance GLS, and grades each claim on
    L'beta* with SE sqrt(L'V*L) and the full fit's df. Graded on plain (1 - alpha) intervals
    (Holm-adjusted grading is not resampled).

    Returns
    -------
    shares : list of float
    info : dict
        ``resamples``, ``seed``, ``resampled`` (claim ids) and ``skipped`` (id -> reason).
    """
    from scipy import stats

    n, alpha = len(claims.claims), cfg.models.alpha
    info = {"resamples": int(resamples), "seed": int(seed), "resampled": [], "skipped": {}}
    patients = bundle.patients
    strata = patients["clinic_id"] if "clinic_id" in patients else np.zeros(len(patients))
    W_all = cluster_weights(patients["patient_id"], strata, resamples, seed)
    position = {p: j for j, p in enumerate(patients["patient_id"])}
    fits: dict = {}
    shares = [math.nan] * n
    for i, claim in enumerate(claims.claims):
        key, est = bundle.key(claim), primary[i]
        if not isinstance(est, Estimate):
            info["skipped"][claim.id] = "not testable"
            continue
        if key[0] not in LMM_MODELS:
            info["skipped"][claim.id] = (f"{claim.outcome} claims are not resampled (a count or "
                                         "responder refit per resample is too slow for a report)")
            continue
        result = bundle.results[key]
        try:
            if key not in fits:
                cols = [position[p] for p in result.fit.design.patient_labels]
                fits[key] = resampled_betas(result.fit, W_all[:, cols])
            L, base = linear_estimand(claim, bundle, cfg, key)
        except (NotResamplable, NotTestable, KeyError, AttributeError) as exc:
            info["skipped"][claim.id] = f"not resampled: {exc}"
            continue
        betas, vcovs = fits[key]
        centre = base + betas @ L
        se = np.sqrt(np.einsum("p,bpq,q->b", L, vcovs, L))
        q = float((stats.t(est.df) if math.isfinite(est.df) else stats.norm).ppf(1 - alpha / 2))
        verdict0 = _verdict(claim, est, alpha)
        same = 0
        for c, s in zip(centre, se):
            lo, hi = c - q * s, c + q * s
            vals = (math.exp(c), math.exp(lo), math.exp(hi)) if est.scale == "ratio" else (c, lo, hi)
            boot = replace(est, estimate=vals[0], conf_low=vals[1], conf_high=vals[2],
                           std_error=float(s), interval_at=None, alpha=alpha)
            same += _verdict(claim, boot, alpha) == verdict0
        shares[i] = same / resamples
        info["resampled"].append(claim.id)
    return shares, info


def firmness_words(verdict: str, by_alternative: dict[str, str | None], share: float) -> str:
    """``firm``, ``depends on the analysis: random intercept``, ``depends on the sample: …``."""
    if verdict == "not testable":
        return "not graded"
    flips = [f"{name} gives {v}" for name, v in by_alternative.items()
             if v is not None and v != verdict]
    if flips:
        return "depends on the analysis: " + "; ".join(flips)
    if math.isfinite(share) and share < FIRM_SHARE:
        return f"depends on the sample: same verdict in {100 * share:.0f} % of resamples"
    if not math.isfinite(share):
        return "firm across the alternative analyses (not resampled)"
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
                     "firmness": firmness_words(verdicts[i], mine, shares[i])})
    return rows, info
