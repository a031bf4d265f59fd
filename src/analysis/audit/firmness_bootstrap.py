"""The patient-level bootstrap of the firmness check (docs/claims.md, "Firmness").

Every resample draws patients within clinic (:func:`analysis.models.resample.cluster_weights`,
one draw shared by all claims) and re-estimates each claim's graded estimate, which is then
graded by the audit's own rule (:func:`analysis.audit.verdicts.grade_estimate`) on its plain
(1 - alpha) interval (Holm-adjusted grading is not resampled):

* pain on the MMRM (``models.pain.analysis: mmrm``): the GLS refit at the fit's residual
  covariance, the LS-mean difference at the visit with the resample's model SE and the full
  fit's df (:mod:`analysis.endpoints.pain_mmrm_resample`);
* pain, moderator and strength (linear mixed models, with or without a clinic level): the
  fixed-variance GLS refit of :mod:`analysis.models.resample`, the estimand L'beta* with SE sqrt(L'V*L) and the full fit's df;
* episodes: the graded estimand's count model re-estimated with the resample's patient weights
  (:mod:`analysis.endpoints.episodes_resample`: GEE by Fisher scoring with robust SE, GLMM by
  one Newton step with model SE; variance parameters at the full-data values), normal interval;
* responders: the responder shares recomputed exactly from weighted counts, Newcombe interval
  (:mod:`analysis.endpoints.responders_resample`).

A resample whose estimate cannot be formed (a singular information, an arm with no assessable
patient) counts as one that does not give the verdict.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import stats

from analysis.audit.claims import ClaimsFile, ResultsBundle
from analysis.audit.estimands import estimate_claim
from analysis.audit.estimate import Estimate, NotTestable
from analysis.audit.verdicts import grade_estimate
from analysis.models.resample import (
    NotResamplable,
    cluster_weights,
    patient_ids,
    resampled_betas,
    resampled_fit,
    weights_of,
)

LMM_MODELS = ("pain", "moderator", "strength")


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


def linear_estimand(claim, bundle: ResultsBundle, cfg, key) -> tuple[np.ndarray, float]:
    """The vector L with (model-scale) estimate = L'beta + base for a claim on a linear mixed model.

    Every LMM estimand here (a contrast at a week, a slope difference times the weeks, on the
    log scale for strength) is linear in the fixed effects, so L is read by evaluating the
    claim's own estimand code at the fitted beta and at beta plus each unit vector: no estimand
    is re-derived.
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


def _wald_intervals(centre, se, est: Estimate, alpha: float):
    """(estimate, low, high) on the natural scale from model-scale centres and SEs."""
    q = float((stats.t(est.df) if math.isfinite(est.df) else stats.norm).ppf(1 - alpha / 2))
    low, high = centre - q * se, centre + q * se
    if est.scale == "ratio":
        return np.exp(centre), np.exp(low), np.exp(high)
    return centre, low, high


class _Resampler:
    """The resampled (estimate, low, high) of each claim, fits shared between claims."""

    def __init__(self, bundle: ResultsBundle, cfg, W, patient_ids):
        self.bundle, self.cfg, self.W, self.ids = bundle, cfg, W, patient_ids
        self.lmm: dict = {}

    def __call__(self, claim, est: Estimate, key):
        result, alpha = self.bundle.results[key], self.cfg.models.alpha
        if getattr(result, "analysis", "trend") == "mmrm":
            from analysis.endpoints.pain_mmrm_resample import resampled_mmrm_differences

            week = self.bundle.resolved(claim).weeks[1]
            diff, se = resampled_mmrm_differences(result, claim.intervention, week, self.W,
                                                  self.ids)
            return _wald_intervals(diff, se, est, alpha)
        if key[0] in LMM_MODELS:
            if key not in self.lmm:
                W = weights_of(self.W, self.ids, patient_ids(result.fit))
                self.lmm[key] = resampled_betas(result.fit, W)
            L, base = linear_estimand(claim, self.bundle, self.cfg, key)
            betas, vcovs = self.lmm[key]
            se = np.sqrt(np.einsum("p,bpq,q->b", L, vcovs, L))
            return _wald_intervals(base + betas @ L, se, est, alpha)
        if key[0] == "episodes":
            from analysis.endpoints.episodes_resample import resampled_log_rate_ratios

            log_rr, se = resampled_log_rate_ratios(result, self.cfg.models.episodes.primary,
                                                   claim.intervention, self.W, self.ids)
            return _wald_intervals(log_rr, se, est, alpha)
        from analysis.endpoints.responders_resample import resampled_differences

        return resampled_differences(result, claim.intervention, self.W, self.ids, alpha)[:3]


def bootstrap_verdicts(claims: ClaimsFile, cfg, bundle: ResultsBundle, primary: list,
                       resamples: int = 200, seed: int = 1) -> tuple[list, dict]:
    """Share of resamples giving each claim's verdict (NaN where a claim is not resampled).

    Returns
    -------
    shares : list of float
    info : dict
        ``resamples``, ``seed``, ``resampled`` (claim ids), ``skipped`` (id -> the reason, in
        words) and, where a model failed in the resamples, ``detail`` (id -> the error).
    """
    alpha = cfg.models.alpha
    info = {"resamples": int(resamples), "seed": int(seed), "resampled": [], "skipped": {}}
    patients = bundle.patients
    strata = patients["clinic_id"] if "clinic_id" in patients else np.zeros(len(patients))
    W = cluster_weights(patients["patient_id"], strata, resamples, seed)
    resample = _Resampler(bundle, cfg, W, list(patients["patient_id"]))
    shares = [math.nan] * len(claims.claims)
    for i, claim in enumerate(claims.claims):
        est = primary[i]
        if not isinstance(est, Estimate):
            info["skipped"][claim.id] = "not testable"
            continue
        try:
            centre, low, high = resample(claim, est, bundle.key(claim))
        except NotResamplable as exc:
            info["skipped"][claim.id] = f"not resampled: {exc}"
            continue
        except (NotTestable, KeyError, AttributeError, ValueError, np.linalg.LinAlgError) as exc:
            info["skipped"][claim.id] = ("not resampled: its model could not be re-estimated in "
                                         "the resamples")
            info.setdefault("detail", {})[claim.id] = f"{type(exc).__name__}: {exc}"
            continue
        verdict0 = grade_estimate(claim, est, alpha)[0]
        same = 0
        for c, lo, hi in zip(centre, low, high):
            if not (math.isfinite(c) and math.isfinite(lo) and math.isfinite(hi)):
                continue  # not estimable in this resample: not the same verdict
            boot = replace(est, estimate=float(c), conf_low=float(lo), conf_high=float(hi),
                           interval_at=None, alpha=alpha)
            same += grade_estimate(claim, boot, alpha)[0] == verdict0
        shares[i] = same / resamples
        info["resampled"].append(claim.id)
    return shares, info
