"""From a claim to the number that tests it: the estimand in words, and its estimate.

Methods
-------
Each claim (:mod:`analysis.audit.claims`) compiles to one estimand of one fitted model; an adapter per
outcome reads it from the model's result object and returns an :class:`Estimate` on the model's
natural scale:

========== =================================== ============== ================================
outcome    estimand (arm vs comparator)        scale          model
========== =================================== ============== ================================
episodes   rate ratio over the follow-up        ratio          :mod:`analysis.endpoints.episodes` (primary
                                                               estimand from the run config;
                                                               the other one is ``secondary``)
pain       difference in mean pain at the week  difference     pain LMM, marginal contrasts
           (window: slope difference x length)                 (Satterthwaite df)
strength   ratio of strength change by the week ratio          strength model (log scale)
responders difference in responder proportions  proportion_    :mod:`analysis.endpoints.responders`
                                                difference     (Newcombe interval)
========== =================================== ============== ================================

A ``ratio`` estimate carries its standard error on the log scale; verdicts compare ratios on the
log scale. A claim about a *subgroup* (``overpronated``: foot posture index above
``models.moderator.overpronated_above``) is graded on the same estimand within that subgroup.
For pain it comes from the moderator model (``pain ~ week * arm * overpronated``, all patients,
:mod:`analysis.endpoints.moderator`) with ``overpronated`` held at the subgroup's level, and the moderator
interaction (how much more the arm's change differs from control's in overpronated than in
other feet) is reported beside it as ``secondary``; other outcomes use their model fitted to
the subgroup's patients. A *before/after* claim (comparator ``baseline``) gets the within-arm
change as ``pre_post``; when the control arm is there, the estimate graded is the controlled one
(arm vs control) and ``share_of_change_in_control`` says how much of the arm's change (model
scale: log ratio, or points) the control arm shows too. Nothing is estimated here, so no REML/ML
or df choice applies; the intervals are the models'.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from analysis.audit.claims import Claim
from analysis.audit.estimate import Estimate, NotTestable, _row, _wald, _where, arm_words
from analysis.audit.model_text import count_words, lmm_result_words
from analysis.config import outcome_meta, outcome_word


def estimate_episodes(claim: Claim, result, primary: str | None = None,
                      n_per_arm: dict | None = None, alpha: float = 0.05,
                      covariates=()) -> Estimate:
    """Rate ratio of episodes, arm vs control, from :func:`analysis.endpoints.episodes.fit_episode_models`.

    Parameters
    ----------
    claim : Claim
    result : EpisodeResult
        With ``rate_ratios`` (both estimands), ``primary`` and ``control``.
    primary : str, optional
        The estimand to grade on (run config ``models.episodes.primary``); default
        ``result.primary``. The other one becomes ``secondary``.
    n_per_arm : dict, optional
    alpha : float
        The level the model's intervals were computed at.

    Returns
    -------
    Estimate
        Scale ``ratio`` (rate ratio, SE of the log rate ratio).

    Raises
    ------
    NotTestable
        The comparator is not the model's control, or the arm has no estimable rate ratio.
    """
    if claim.comparator != result.control:
        raise NotTestable(f"the episode model compares each arm with {result.control!r}, "
                          f"not with {claim.comparator!r}")
    primary = primary or result.primary
    start, end = claim.weeks
    notes = []

    def one(estimand):
        row = _row(result.rate_ratios, estimand=estimand, arm=claim.intervention)
        if row is None:
            raise NotTestable(f"the episode model has no rate ratio for {claim.intervention!r}")
        status = result.health[estimand].status if estimand in result.health else ""
        text = (f"rate ratio of episodes, {arm_words(claim.intervention)} vs "
                f"{arm_words(result.control)}{_where(claim)}, follow-up weeks {start:g}–{end:g}, "
                f"{estimand.replace('_', '-')} ({count_words(result, estimand, covariates)})")
        try:
            return _wald(text, "ratio", row, n_per_arm or {}, alpha, ratio_from_log=True,
                         notes=notes)
        except NotTestable:
            raise NotTestable(f"the {estimand.replace('_', '-')} episode model is "
                              f"{status or 'not estimable'}") from None

    graded = one(primary)
    other = next((e for e in result.rate_ratios["estimand"].unique() if e != primary), None)
    try:
        secondary = one(other) if other else None
    except NotTestable:  # the other fit failed: the graded one still stands
        secondary = None
    return replace(graded, secondary=secondary)


def _lookup(table: pd.DataFrame, grid: pd.DataFrame, **where) -> pd.Series | None:
    """The tidy row of ``table`` whose term the ``grid`` (term, kind, arm, week) names."""
    hit = _row(grid, **where)
    return None if hit is None else _row(table, term=hit["term"])


def _scaled(row: pd.Series | None, factor: float) -> pd.Series | None:
    # the models are linear in time: the change over h weeks is h times the slope (h > 0)
    if row is None:
        return None
    out = row.copy()
    for col in ("estimate", "std_error", "conf_low", "conf_high"):
        out[col] = float(row[col]) * factor
    return out


def _needs_control(claim: Claim, control: str, what: str) -> None:
    if not claim.uncontrolled and claim.comparator != control:
        raise NotTestable(f"the {what} model compares each arm with {control!r}, not with "
                          f"{claim.comparator!r}")


def _status(result) -> str:
    return getattr(getattr(result, "health", None), "status", "") or "not estimable"


def _pre_post(claim, control_ok, arm_row, control_row, diff_row, make) -> Estimate:
    """Graded estimate of a before/after claim: controlled when possible, within-arm beside it."""
    if arm_row is None:
        raise NotTestable(f"the model has no estimate for {claim.intervention!r}")
    pre = make(arm_row, "pre_post")
    if not control_ok or control_row is None or diff_row is None:
        return replace(pre, notes=pre.notes + (
            "graded on the uncontrolled before/after change: no usable control arm, so the "
            "change cannot be separated from what happens without the treatment",))
    share = float(control_row["estimate"]) / float(arm_row["estimate"])
    controlled = make(diff_row, "controlled")
    return replace(controlled, pre_post=pre, share_of_change_in_control=share, notes=(
        "before/after claim graded on the controlled estimate (arm vs control); the "
        "uncontrolled before/after change is reported beside it",))


def estimate_pain(claim: Claim, result, n_per_arm: dict | None = None, alpha: float = 0.05,
                  control_ok: bool = True, outcome_words: str = "pain (0–10)") -> Estimate:
    """Pain: difference in mean pain at the claim's week, or in its change over a window.

    Parameters
    ----------
    claim : Claim
    result : PainResult or ModeratorResult
        :func:`analysis.endpoints.pain.fit_pain_model`; for a subgroup claim
        :func:`analysis.endpoints.moderator.fit_moderator_model`, whose model (pain ~ week * arm *
        overpronated) gives the contrasts within the subgroup and the moderator interaction.
    n_per_arm : dict, optional
    alpha : float
    control_ok : bool
        Whether the control arm may be used (present, at or above the disclosure threshold).

    Returns
    -------
    Estimate
        Scale ``difference`` (points on 0-10): arm - comparator at the week; with a window or
        a ``baseline`` comparator, the change from start to end (slope x weeks).
    """
    from analysis.models.marginal import arm_tables

    if getattr(result, "analysis", "trend") == "mmrm":  # models.pain.analysis: mmrm
        from analysis.audit.estimands_mmrm import estimate_pain_mmrm

        return estimate_pain_mmrm(claim, result, n_per_arm, alpha)
    control = result.control
    _needs_control(claim, control, "pain")
    if result.fit is None or not result.fit.estimated:
        raise NotTestable(f"the pain model is {_status(result)}")
    start, end = claim.weeks
    arm, ctrl, n = arm_words(claim.intervention), arm_words(control), dict(n_per_arm or {})
    at = {} if claim.subgroup is None else {"overpronated": int(claim.subgroup == "overpronated")}
    tabs = {"contrasts": result.contrasts, "slopes": result.slopes, "grid": result.grid,
            "slope_differences": result.slope_differences} if claim.subgroup is None else None
    if tabs is None or _lookup(tabs["contrasts"], tabs["grid"], kind="difference",
                               week=float(end)) is None:
        # within a subgroup (moderator model), or a week the pain model did not report
        tabs = arm_tables(result.fit, "arm", control, "week", [float(end)], alpha, at=at)
    grid, span = tabs["grid"], end - start

    def slope(a):
        return _scaled(_lookup(tabs["slopes"], grid, kind="slope", arm=a), span)

    def make(row, kind):
        what = {"pre_post": f"change in mean {outcome_words} from week {start:g} to {end:g} within "
                            f"{arm}{_where(claim)}, before/after (uncontrolled)",
                "controlled": f"difference in the change of mean {outcome_words} from week "
                              f"{start:g} to {end:g}, {arm} vs {ctrl}{_where(claim)}",
                "week": f"difference in mean {outcome_words} at week {end:g}, {arm} vs {ctrl}"
                        f"{_where(claim)}"}[kind]
        return _wald(f"{what} ({lmm_result_words(result)})", "difference", row, n, alpha)

    diff = _scaled(_lookup(tabs["slope_differences"], grid, kind="slope difference",
                           arm=claim.intervention), span)
    if claim.uncontrolled:
        graded = _pre_post(claim, control_ok, slope(claim.intervention), slope(control), diff,
                           make)
    else:
        row = diff if claim.window is not None else _lookup(
            tabs["contrasts"], grid, kind="difference", arm=claim.intervention, week=float(end))
        if row is None:
            raise NotTestable(f"the pain model has no estimate for {claim.intervention!r}")
        graded = make(row, "controlled" if claim.window is not None else "week")
    if claim.subgroup is None or claim.uncontrolled:
        return graded
    inter = _scaled(_row(result.vs_control, term="week slope, overpronated - not: "
                                                  f"{claim.intervention} - {control}"), span)
    try:
        secondary = None if inter is None else _wald(
            f"moderator interaction: (overpronated - other feet) difference in the change of "
            f"pain over {span:g} weeks, {arm} vs {ctrl}", "difference", inter, n, alpha)
    except NotTestable:  # not estimable (e.g. no control patient on one side): graded stands
        secondary = None
    return replace(graded, secondary=secondary)


def estimate_strength(claim: Claim, result, n_per_arm: dict | None = None, alpha: float = 0.05,
                      control_ok: bool = True) -> Estimate:
    """Strength: ratio of the change over the claim's weeks, arm vs control, or within the arm.

    Parameters
    ----------
    claim : Claim
    result : StrengthResult
        From :func:`analysis.endpoints.strength.fit_strength_model` (slopes of log strength per week).
    n_per_arm, alpha, control_ok
        As :func:`estimate_pain`.

    Returns
    -------
    Estimate
        Scale ``ratio``: exp(weeks x slope difference) (controlled) or exp(weeks x slope)
        (before/after: strength at the end / at the start); SE on the log scale.
    """
    control = result.control
    _needs_control(claim, control, "strength")
    if result.log_slopes.empty:
        raise NotTestable(f"the strength model is {_status(result)}")
    start, end = claim.weeks
    arm, ctrl, n = arm_words(claim.intervention), arm_words(control), dict(n_per_arm or {})
    span = end - start

    def slope(term):
        table = result.log_slope_differences if " - " in term else result.log_slopes
        return _scaled(_row(table, term=term), span)

    def make(row, kind):
        what = (f"ratio of strength at week {end:g} to week {start:g} within {arm}"
                f"{_where(claim)}, before/after (uncontrolled)" if kind == "pre_post" else
                f"ratio of the change in strength from week {start:g} to {end:g}, {arm} vs "
                f"{ctrl}{_where(claim)}")
        return _wald(f"{what} (log scale: {lmm_result_words(result)})", "ratio", row, n, alpha,
                     ratio_from_log=True)

    diff = slope(f"week slope: {claim.intervention} - {control}")
    if claim.uncontrolled:
        return _pre_post(claim, control_ok, slope(f"week slope: {claim.intervention}"),
                         slope(f"week slope: {control}"), diff, make)
    if diff is None:
        raise NotTestable(f"the strength model has no estimate for {claim.intervention!r}")
    return make(diff, "controlled")


def estimate_responders(claim: Claim, result, n_per_arm: dict | None = None,
                        alpha: float = 0.05) -> Estimate:
    """Responders: difference in the proportion of responders, arm - control (Newcombe).

    Parameters
    ----------
    claim : Claim
    result : ResponderResult
        From :func:`analysis.endpoints.responders.responder_analysis` at the claim's week.
    n_per_arm : dict, optional
        Not used: the assessable patients of each arm are reported.
    alpha : float

    Returns
    -------
    Estimate
        Scale ``proportion_difference``; no SE (a score interval): ``interval_at`` recomputes
        the Newcombe interval at another level.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep

    d = result.definition
    _needs_control(claim, d["control"], "responder")
    row = _row(result.differences, arm=claim.intervention)
    if row is None or not math.isfinite(float(row["estimate"])):
        raise NotTestable(f"the responder analysis has no difference for {claim.intervention!r}")
    counts = [int(row[c]) for c in ("n_responders_arm", "n_assessable_arm",
                                    "n_responders_control", "n_assessable_control")]

    def newcombe(level_alpha):
        low, high = confint_proportions_2indep(*counts, method="newcomb", compare="diff",
                                               alpha=level_alpha)
        return float(low), float(high)

    text = (f"difference in the proportion of responders (pain down by >= {d['min_points']:g} "
            f"points or >= {d['min_percent']:g} %) at week {d['week']:g}, "
            f"{arm_words(claim.intervention)} vs {arm_words(d['control'])}{_where(claim)}")
    est = _wald(text, "proportion_difference", row,
                {claim.intervention: counts[1], d["control"]: counts[3]}, alpha)
    return replace(est, interval_at=newcombe)


def estimate_claim(claim: Claim, bundle, cfg) -> Estimate:
    """The graded estimate of one claim, or :class:`NotTestable` with the reason.

    Parameters
    ----------
    claim : Claim
    bundle : ResultsBundle
        From :func:`analysis.audit.claims.fit_claim_models`.
    cfg : RunConfig
        Control arm, disclosure threshold, alpha, primary count estimand.

    Returns
    -------
    Estimate

    Raises
    ------
    NotTestable
        An arm (or the comparator) has no patients or fewer than the disclosure threshold, the
        outcome's model is missing or not estimable, or it does not compare these arms.
    """
    k, control = cfg.disclosure_threshold, cfg.control
    counts = bundle.arm_counts(claim.subgroup)
    where = f" among {claim.subgroup.replace('_', '-')} feet" if claim.subgroup else ""
    arms = [claim.intervention] + ([] if claim.uncontrolled else [claim.comparator])
    for arm in arms:
        if counts.get(arm, 0) == 0:
            raise NotTestable(f"the log has no patients in arm {arm!r}{where}")
        if counts[arm] < k:
            # the exact small count is itself disclosive: say only "fewer than k"
            raise NotTestable(f"arm {arm!r}{where} has fewer than {k} patients (the "
                              "disclosure threshold), so it is not reported")
    control_ok = counts.get(control, 0) >= k
    reason = bundle.frame(claim)[2]
    if reason is not None:
        raise NotTestable(reason)
    key, claim = bundle.key(claim), bundle.resolved(claim)
    if claim.uncontrolled and control_ok and control != claim.intervention:
        arms.append(control)
    n = {a: counts[a] for a in arms}
    result = bundle.results.get(key)
    if result is None:
        raise NotTestable(f"no {claim.outcome} results: the model was not fitted")
    if isinstance(result, str):
        raise NotTestable(result)
    alpha = cfg.models.alpha
    if claim.outcome == "episodes":
        est = estimate_episodes(claim, result, cfg.models.episodes.primary, n, alpha,
                                cfg.models.episodes.covariates)
    elif claim.outcome == "pain":
        est = estimate_pain(claim, result, n, alpha, control_ok,
                            outcome_in_words(outcome_meta(cfg, cfg.models.pain.outcome)))
    elif claim.outcome == "strength":
        est = estimate_strength(claim, result, n, alpha, control_ok)
    else:
        est = estimate_responders(claim, result, n, alpha)
    if claim.outcome == "episodes":
        primary = cfg.models.episodes.primary
        words = (f"{primary.replace('_', '-')}: "
                 f"{count_words(result, primary, cfg.models.episodes.covariates)}")
    elif claim.outcome == "responders":
        words = "responder proportions, Newcombe interval for their difference"
    else:
        words = lmm_result_words(result)
    est = replace(est, analysis=words)
    small = [a for a, m in est.n_per_arm.items() if m < k]  # e.g. few assessable responders
    if small:
        raise NotTestable(f"arm {small[0]!r}{where} has fewer than {k} patients with the "
                          "outcome (the disclosure threshold), so it is not reported")
    return est


def outcome_in_words(meta) -> str:
    """The pain model's outcome as an estimand names it: its ``outcomes:`` label as a word
    (:func:`analysis.config.outcome_word`: "Pain" -> "pain", "FEV1" stays), and its range when
    known: ``pain (0–10)``, ``TWSTRS total (0–87)``."""
    label = outcome_word(str(meta.label))
    if meta.range is not None:
        label += f" ({meta.range.min:g}–{meta.range.max:g})"
    return label
