"""Pain claims graded on the MMRM (``models.pain.analysis: mmrm``): the LS-mean difference at the visit.

Methods
-------
A claim about pain at week ``W`` (arm vs the control arm) is graded on the MMRM's difference of
LS-means, arm - control, at the scheduled visit ``W`` (:mod:`analysis.endpoints.pain_mmrm`), with
the fit's df method (Kenward-Roger by default) and its interval. A claim whose week is not a
scheduled visit, a claim about the change over a window, and a before/after claim are not
testable on the MMRM (it estimates a mean at each visit, not a trend), and say so; the trend model
(``analysis: trend``) answers those. Nothing is estimated here.
"""

from __future__ import annotations

from analysis.audit.claims import Claim
from analysis.audit.estimate import Estimate, NotTestable, _wald, arm_words


def estimate_pain_mmrm(claim: Claim, result, n_per_arm: dict | None = None,
                       alpha: float = 0.05) -> Estimate:
    """The MMRM difference arm - control at the claim's week (see the module docstring).

    Raises
    ------
    NotTestable
        The model is not estimable, the comparator is not its control, the claim is about a
        window or before/after, or its week is not a scheduled visit.
    """
    if claim.uncontrolled or claim.window is not None:
        raise NotTestable("the pain MMRM estimates the difference at each scheduled visit, not a "
                          "change over a window or before/after; use models.pain.analysis: trend")
    control = result.control
    if claim.comparator != control:
        raise NotTestable(f"the pain MMRM compares each arm with {control!r}, not with "
                          f"{claim.comparator!r}")
    if not result.health.estimated:
        raise NotTestable(f"the pain MMRM is {result.health.status}")
    week = float(claim.weeks[1])
    row = result.difference_at(claim.intervention, week)
    if row is None:
        visits = ", ".join(f"{w:g}" for w in sorted(set(result.differences["week"])))
        raise NotTestable(f"week {week:g} is not a scheduled visit of the pain MMRM "
                          f"(visits: {visits}) or {claim.intervention!r} is not an arm of it")
    arm, ctrl = arm_words(claim.intervention), arm_words(control)
    df_name = {"kenward-roger": "Kenward-Roger", "satterthwaite": "Satterthwaite",
               "residual": "residual", "between-within": "between-within"}.get(
        getattr(result, "df_method", "kenward-roger"), "Kenward-Roger")
    text = (f"difference in mean pain (0–10) at week {week:g}, {arm} vs {ctrl} "
            f"(MMRM LS-means, {result.covariance} covariance, {df_name} df)")
    return _wald(text, "difference", row, dict(n_per_arm or {}), alpha)
