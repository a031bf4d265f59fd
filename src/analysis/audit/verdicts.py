"""Verdicts on published claims: deterministic rules, Holm adjustment, power and plain words.

Methods
-------
**Scale.** Every interval is put on the *claim-positive* model scale :math:`g`: the log ratio
(ratios) or the difference, multiplied by +1 when the claim says "increase" and -1 when it says
"decrease". No effect is :math:`g = 0`; the claimed value :math:`c > 0` (62 % fewer episodes:
:math:`c = -\\log 0.38`). With :math:`[l, h]` the :math:`1-\\alpha` interval of the graded
estimand (docs/claims.md has the table):

* *supported* -- :math:`l > 0` and :math:`l \\le c \\le h`, or :math:`l > c` (conservative claim);
* *overstated* -- :math:`l > 0` and :math:`h < c`;
* *inconclusive* -- :math:`l \\le 0 \\le h` and :math:`c \\le h`;
* *contradicted* -- :math:`l \\le 0 \\le h` and :math:`h < c`, or :math:`h < 0`;
* direction-only claims: *supported* if :math:`l > 0`, *contradicted* if :math:`h < 0`, else
  *inconclusive*;
* *not testable* -- arm, comparator or outcome missing, or an arm below the disclosure threshold.

**Multiplicity.** Holm (1979): with the :math:`m` testable claims' p-values ordered
:math:`p_{(1)} \\le \\dots \\le p_{(m)}`, the adjusted value is
:math:`\\tilde p_{(i)} = \\min(1, \\max_{j \\le i} (m - j + 1)\\,p_{(j)})` (R's
``p.adjust(method = "holm")``; here ``statsmodels.stats.multitest.multipletests``). Graded on
adjusted intervals, the claim of rank :math:`i` uses level :math:`1 - \\alpha/(m - i + 1)`, and
"excludes no effect" also needs :math:`\\tilde p \\le \\alpha`, because Holm's step-down stops at
the first non-rejection.

**Power.** Minimum detectable effect at 80 % power, two-sided :math:`\\alpha`:
:math:`\\mathrm{MDE} = (z_{1-\\alpha/2} + z_{0.8})\\,\\mathrm{SE}` on the model scale, reported in
the claim's units. Patients per arm to test the claimed value:
:math:`n = n_{\\text{now}}\\,((z_{1-\\alpha/2} + z_{0.8})\\,\\mathrm{SE} / c)^2` with SE scaled
as :math:`1/\\sqrt{n}`; :math:`n_{\\text{now}}` is the harmonic mean of the two arms' patients
(the equal-arm size with the same :math:`1/n_1 + 1/n_2`).

Reference: Holm S (1979) A simple sequentially rejective multiple test procedure. Scand J Stat
6:65-70.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.audit.claims import Claim, ClaimsFile
from analysis.audit.estimands import estimate_claim
from analysis.audit.estimate import Estimate, NotTestable
from analysis.results import to_jsonable

SUPPORTED, OVERSTATED, INCONCLUSIVE, CONTRADICTED, NOT_TESTABLE = (
    "supported", "overstated", "inconclusive", "contradicted", "not testable")
VERDICTS = (SUPPORTED, OVERSTATED, INCONCLUSIVE, CONTRADICTED, NOT_TESTABLE)
POWER = 0.8


def claim_sign(claim: Claim) -> int:
    """+1 when the claim says the outcome goes up, -1 when it says it goes down."""
    return 1 if claim.claimed_direction == "increase" else -1


def to_effect(value: float, scale: str, sign: int) -> float:
    """A natural-scale value on the claim-positive model scale (log for ratios)."""
    base = math.log(value) if scale == "ratio" else float(value)
    return sign * base


def claimed_effect(claim: Claim) -> float | None:
    """The claimed size on the claim-positive model scale (None for a direction-only claim).

    62 % fewer episodes -> -log(0.38); 80 % more strength -> log(1.8); 2 points -> 2;
    10 percentage points more responders -> 0.10.
    """
    if claim.value is None:
        return None
    v = float(claim.value)
    if claim.measure == "percent_reduction":
        return -math.log(1 - v / 100)
    if claim.measure == "percent_increase":
        return math.log(1 + v / 100)
    if claim.measure == "responder_rate":
        return v / 100
    return v


def effect_to_units(effect: float, scale: str, sign: int) -> float:
    """A claim-positive model-scale value in the claim's units (percent, points, points of %).

    Ratios: percent fewer (decrease claims, 100(1 - RR)) or percent more (increase claims,
    100(RR - 1)); differences: outcome units; proportions: percentage points. Monotone
    increasing, so interval ends map to interval ends.
    """
    if not math.isfinite(effect):
        return math.nan
    if scale == "ratio":
        return 100 * (1 - math.exp(-effect)) if sign < 0 else 100 * (math.exp(effect) - 1)
    return 100 * effect if scale == "proportion_difference" else effect


def grade(low: float, high: float, claimed: float | None = None) -> tuple[str, str]:
    """Verdict for an interval on the claim-positive scale (0 = no effect).

    Parameters
    ----------
    low, high : float
        Interval ends, claimed direction positive (log scale for ratios).
    claimed : float or None
        The claimed size on that scale (> 0), None for a direction-only claim.

    Returns
    -------
    (verdict, reason) : tuple of str
    """
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"grade: need a finite interval with low <= high, got [{low}, {high}]")
    if claimed is not None and not claimed > 0:
        raise ValueError(f"grade: the claimed value must be > 0 on the claim scale, got {claimed}")
    if high < 0:
        return CONTRADICTED, "the interval lies wholly on the other side of no effect"
    if claimed is None:
        if low > 0:
            return SUPPORTED, "the interval excludes no effect, in the claimed direction"
        return INCONCLUSIVE, "the interval contains no effect"
    if low > 0:
        if low > claimed:
            return SUPPORTED, ("the interval excludes no effect and lies wholly beyond the "
                               "claimed value (a conservative claim)")
        if claimed <= high:
            return SUPPORTED, "the interval excludes no effect and contains the claimed value"
        return OVERSTATED, ("the interval excludes no effect but lies wholly short of the "
                            "claimed value")
    if claimed <= high:
        return INCONCLUSIVE, "the interval contains both no effect and the claimed value"
    return CONTRADICTED, "the interval excludes the claimed value and contains no effect"


def holm_adjust(p_values) -> np.ndarray:
    """Holm-adjusted p-values; NaN entries (untestable claims) are left out of m and stay NaN.

    Parameters
    ----------
    p_values : array_like of float

    Returns
    -------
    ndarray
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def holm_levels(p_values, alpha: float = 0.05) -> np.ndarray:
    """Holm's step-down alpha per claim: alpha / (m - rank + 1), rank 1 = smallest p.

    Ties are ranked in the order given (a stable sort). NaN entries stay NaN.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    for rank, index in enumerate(ok[np.argsort(p[ok], kind="stable")], start=1):
        out[index] = alpha / (m - rank + 1)
    return out


def _z_sum(alpha: float, power: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def minimum_detectable_effect(std_error: float, alpha: float = 0.05, power: float = POWER) -> float:
    """MDE on the model scale: (z_{1-alpha/2} + z_power) * SE."""
    return _z_sum(alpha, power) * float(std_error)


def patients_needed(n_per_arm: float, std_error: float, claimed: float, alpha: float = 0.05,
                    power: float = POWER) -> float:
    """Patients per arm for ``power`` to detect ``claimed`` (model scale), SE scaling 1/sqrt(n).

    Parameters
    ----------
    n_per_arm : float
        Patients per arm behind ``std_error`` (harmonic mean of the two arms).
    std_error : float
        SE of the estimate on the model scale.
    claimed : float
        The claimed effect on the model scale (its sign is ignored).

    Returns
    -------
    float
        n_per_arm * (MDE / claimed)^2 rounded up; NaN when it cannot be computed.
    """
    if not (claimed and math.isfinite(std_error) and n_per_arm and math.isfinite(n_per_arm)):
        return math.nan
    need = n_per_arm * (minimum_detectable_effect(std_error, alpha, power) / abs(claimed)) ** 2
    # guard against 40.0000000001 becoming 41
    return float(math.ceil(round(need, 9)))


def harmonic_n(counts) -> float:
    """Harmonic mean of patient counts (the equal-arm size with the same variance factor)."""
    counts = [float(c) for c in counts if c]
    return len(counts) / sum(1 / c for c in counts) if counts else math.nan


#: Columns of :func:`audit_claims`, one row per claim (docs/claims.md describes each).
AUDIT_COLUMNS = [
    "id", "text", "source", "outcome", "intervention", "comparator", "subgroup", "verdict",
    "reason", "estimand", "scale", "units", "estimate", "conf_low", "conf_high", "confidence",
    "claimed", "direction", "p_value", "p_holm", "mde", "n_needed_per_arm", "n_per_arm",
    "uncontrolled", "pre_post", "share_of_change_in_control", "secondary", "plain", "notes",
    "analysis"]

#: Columns :func:`analysis.audit.firmness.assess_firmness` adds (docs/claims.md, "Firmness").
FIRMNESS_COLUMNS = ["firmness", "share_alternatives", "share_resamples", "alternatives"]

#: (word when the outcome goes up, word when it goes down, noun) per claim outcome: the units
#: label here and the claim sentences of analysis.report.wording
CLAIM_WORDS = {"episodes": ("more", "fewer", "episodes"), "pain": ("more", "less", "pain"),
          "strength": ("more", "less", "strength"), "responders": ("more", "fewer", "responders")}


def audit_claims(claims: ClaimsFile, bundle, cfg) -> pd.DataFrame:
    """Grade every claim of a claims file against the fitted results.

    Parameters
    ----------
    claims : ClaimsFile
    bundle : ResultsBundle
        From :func:`analysis.audit.claims.fit_claim_models`.
    cfg : RunConfig
        ``models.alpha``, ``disclosure_threshold``, ``control``, ``models.episodes.primary``.

    Returns
    -------
    DataFrame
        One row per claim, columns :data:`AUDIT_COLUMNS`. ``estimate``, ``conf_low``,
        ``conf_high``, ``claimed`` and ``mde`` are in the claim's ``units``, positive in the
        claimed direction (e.g. percent fewer episodes); the interval is the one graded.
    """
    found = []
    for claim in claims.claims:
        try:
            found.append(estimate_claim(claim, bundle, cfg))
        except NotTestable as exc:
            found.append(str(exc))
    # a claim that named no time is graded (and worded) at the end of its arms' follow-up
    claims = claims.model_copy(update={"claims": [bundle.resolved(c) for c in claims.claims]})
    return audit_estimates(claims, found, cfg.models.alpha)


def audit_estimates(claims: ClaimsFile, estimates: list, alpha: float = 0.05) -> pd.DataFrame:
    """Grade claims given their estimates (an :class:`Estimate`, or a reason string if none).

    Parameters
    ----------
    claims : ClaimsFile
    estimates : list of Estimate or str
        One per claim, in order; a string is the reason the claim is not testable.
    alpha : float
        1 - confidence level of the graded intervals (before any Holm step-down).

    Returns
    -------
    DataFrame
        As :func:`audit_claims`.
    """
    p = np.array([e.p_value if isinstance(e, Estimate) else np.nan for e in estimates])
    holm = claims.multiplicity.method == "holm"
    p_holm = holm_adjust(p) if holm else np.full(len(p), np.nan)
    adjusted = claims.multiplicity.verdicts_on_adjusted
    levels = holm_levels(p, alpha) if adjusted else np.full(len(p), alpha)
    rows = [_not_testable(c, e) if isinstance(e, str) else
            _graded(c, e, ph, lv, alpha, adjusted)
            for c, e, ph, lv in zip(claims.claims, estimates, p_holm, levels)]
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS)


def records(table: pd.DataFrame) -> list[dict]:
    """The audit table as JSON-ready records for results.json (NaN -> null), with the firmness
    columns of :func:`analysis.audit.firmness.assess_firmness` when they were added."""
    extra = [c for c in FIRMNESS_COLUMNS if c in table.columns]
    return to_jsonable(table[AUDIT_COLUMNS + extra])


def _base(claim: Claim) -> dict:
    return {"id": claim.id, "text": claim.text, "source": claim.source,
            "outcome": claim.outcome, "intervention": claim.intervention,
            "comparator": claim.comparator, "subgroup": claim.subgroup,
            "claimed": claim.value, "direction": claim.claimed_direction,
            "uncontrolled": claim.uncontrolled}


def _not_testable(claim: Claim, reason: str) -> dict:
    return {**{c: None for c in AUDIT_COLUMNS}, **_base(claim), "verdict": NOT_TESTABLE,
            "reason": reason, "plain": None,
            "notes": []}


def effect_interval(claim: Claim, est: Estimate, alpha: float | None = None
                    ) -> tuple[float, float]:
    """The (1 - ``alpha``) interval of ``est`` on the claim-positive model scale, low <= high."""
    sign = claim_sign(claim)
    low, high = sorted(to_effect(v, est.scale, sign) for v in est.interval(alpha))
    return low, high


def grade_estimate(claim: Claim, est: Estimate, alpha: float | None = None) -> tuple[str, str]:
    """The one verdict rule: :func:`grade` of ``est``'s (1 - ``alpha``) interval against the
    claim (the audit's :func:`audit_estimates` and the firmness checks both grade through it).

    Returns
    -------
    (verdict, reason) : tuple of str
    """
    return grade(*effect_interval(claim, est, alpha), claimed_effect(claim))


def _in_units(est: Estimate | None, claim: Claim, alpha: float | None = None) -> dict | None:
    """Estimate and interval in the claim's units (claimed direction positive)."""
    if est is None:
        return None
    sign = claim_sign(claim)
    low, high = effect_interval(claim, est, alpha)
    units = [effect_to_units(v, est.scale, sign)
             for v in (to_effect(est.estimate, est.scale, sign), low, high)]
    return {"estimand": est.estimand_text, "estimate": units[0], "conf_low": units[1],
            "conf_high": units[2], "effect_low": low, "effect_high": high}


def units_label(claim: Claim, scale: str, noun: str | None = None, points: str | None = None) -> str:
    """What the numbers of a row mean, e.g. ``percent fewer episodes``; ``noun`` and ``points``
    (the outcome's word and unit when the run config relabels it: ``percent fewer seizures``,
    ``L more FEV1``) replace the built-in ones."""
    up, down, built_in = CLAIM_WORDS[claim.outcome]
    noun = noun or built_in
    unit = {"ratio": "percent", "difference": points or "points",
            "proportion_difference": "percentage points"}[scale]
    return f"{unit} {up if claim_sign(claim) > 0 else down} {noun}"


def _graded(claim, est: Estimate, p_holm, level, alpha, adjusted) -> dict:
    sign, c = claim_sign(claim), claimed_effect(claim)
    shown = _in_units(est, claim, level)
    low, high = shown["effect_low"], shown["effect_high"]
    verdict, reason = grade_estimate(claim, est, level)
    if adjusted and not p_holm <= alpha and (low > 0 or high < 0):
        # Holm stops at the first non-rejection: later intervals may not exclude no effect
        verdict, reason = grade(min(low, 0.0), max(high, 0.0), c)
        reason += (f" (Holm's step-down stopped before this claim: adjusted p "
                   f"{p_holm:.3g} > {alpha:g}, so no effect is not excluded)")
    if est.pre_post is not None:
        reason = ("a before/after claim, graded on the controlled estimate (arm vs control): "
                  + reason)
    elif claim.uncontrolled:
        reason = ("a before/after claim graded on the uncontrolled change (no control arm): "
                  + reason)
    se = est.model_std_error()
    n_now = harmonic_n(est.n_per_arm.values())
    other = {k: _in_units(v, claim) for k, v in (("secondary", est.secondary),
                                                 ("pre_post", est.pre_post))}
    for value in other.values():
        if value is not None:
            del value["effect_low"], value["effect_high"]
    row = {**_base(claim), "verdict": verdict, "reason": reason, "estimand": est.estimand_text,
           "scale": est.scale, "units": units_label(claim, est.scale),
           "estimate": shown["estimate"], "conf_low": shown["conf_low"],
           "conf_high": shown["conf_high"], "confidence": 1 - level, "p_value": est.p_value,
           "p_holm": p_holm, "mde": effect_to_units(minimum_detectable_effect(se, alpha),
                                                     est.scale, sign),
           "n_needed_per_arm": patients_needed(n_now, se, c, alpha) if c else math.nan,
           "n_per_arm": dict(est.n_per_arm), **other,
           "share_of_change_in_control": est.share_of_change_in_control,
           "notes": list(est.notes), "analysis": est.analysis or None}
    row["plain"] = None  # the sentence is the report's (analysis.report.wording.claim_sentence)
    return row
