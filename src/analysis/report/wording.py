"""Plain words for numbers: what a clinic owner reads before any p-value.

Every sentence follows a rule of docs/wording.md; the numbers in it come from
:mod:`analysis.report.numbers` (one decimal for points, whole percentages, direction said once,
sizes set against the MCID, "clearly" only for an interval that excludes no effect and a size at
or above the MCID).
"""

from __future__ import annotations

import math

from analysis.audit.verdicts import CLAIM_WORDS
from analysis.report.numbers import (
    NO_CLEAR,
    amount,
    change_phrase,
    mcid_phrase,
    missing,
    size_words,
    versus,
)


def pretty_arm(arm: str) -> str:
    return str(arm).replace("_", " ")


def certainty(low: float, high: float, null: float = 0.0) -> str:
    """Whether an interval rules out no effect, in words."""
    if any(map(lambda v: v is None or (isinstance(v, float) and math.isnan(v)), (low, high))):
        return "could not be estimated"
    if low > null or high < null:
        return "the data rule out no difference"
    return "the data cannot rule out no difference"


def difference_sentence(arm: str, control: str, estimate: float, low: float, high: float,
                        unit: str, week: float, lower_is_better: bool = True,
                        when: str | None = None, points: str = "points",
                        mcid: float | None = None) -> str:
    """'At week 12, orthotics vs usual care: 0.4 points less pain (…) — less than the 2 points
    patients notice; no clear difference.'

    ``unit`` is the outcome's word, ``when`` the time in the report's unit (default
    ``week <week>``), ``points`` the outcome's unit (:mod:`analysis.report.outcome_words`),
    ``mcid`` the smallest difference patients notice (None: no MCID clause)."""
    if missing(estimate):
        return f"{pretty_arm(arm).capitalize()} vs {pretty_arm(control)}: withheld or not estimable."
    words = size_words(estimate, low, high, "lower" if lower_is_better else "higher", mcid)
    when = when or f"week {week:g}"
    return (f"At {when}, {pretty_arm(arm)} vs {pretty_arm(control)}: "
            f"{change_phrase(estimate, low, high, unit, 'more', 'less', unit=points)}"
            f"{mcid_phrase(estimate, mcid, points)}; {words}.")


def percent_sentence(arm: str, control: str, pct: float, low: float, high: float, what: str,
                     capital: bool = True) -> str:
    """'Deep tissue massage vs usual care: 26 % fewer knee-pain episodes (10 to 39 %); better.'

    ``pct``, ``low``, ``high`` are percent *reductions* (100 (1 - RR)), as the episode tables hold.
    """
    if missing(pct):
        return f"{pretty_arm(arm).capitalize()} vs {pretty_arm(control)}: withheld or not estimable."
    # a reduction of r % is a change of -r %
    words = size_words(-pct, -low, -high, "lower", None)
    name = pretty_arm(arm).capitalize() if capital else pretty_arm(arm)
    return (f"{name} vs {pretty_arm(control)}: "
            f"{change_phrase(-pct, -high, -low, what, 'more', 'fewer', kind='percent')}; {words}.")


def strength_sentence(arm: str, control: str, arm_change: float, control_change: float,
                      ratio: float, low: float, high: float, weeks: float) -> str:
    """'Deep tissue massage: strength +20 % vs +5.5 % with usual care over 12 weeks; better.'

    ``arm_change``/``control_change`` are percent changes over ``weeks``; ``ratio`` and its
    interval the ratio of the two fold changes (1 = the same change).
    """
    if missing(ratio) or missing(arm_change) or missing(control_change):
        return f"{pretty_arm(arm).capitalize()} vs {pretty_arm(control)}: withheld or not estimable."
    words = size_words(math.log(ratio), math.log(low), math.log(high), "higher", None)
    return (f"{pretty_arm(arm).capitalize()}: strength {versus(arm_change, control_change, pretty_arm(control))} "
            f"over {weeks:g} weeks; {words}.")


def headline(what: str, arm: str, control: str, phrase: str, words: str) -> str:
    """'Pain at week 12, orthotics vs usual care: 0.4 points less pain (…); no clear difference.'"""
    return f"{what}, {pretty_arm(arm)} vs {pretty_arm(control)}: {phrase}; {words}."


__all__ = ["NO_CLEAR", "certainty", "difference_sentence", "headline", "percent_sentence",
           "pretty_arm", "strength_sentence"]


# --- claims ------------------------------------------------------------------------------------

_KIND = {"ratio": "percent", "difference": "points", "proportion_difference": "pp"}


def _natural(row_value, sign: int) -> float:
    return float("nan") if missing(row_value) else sign * float(row_value)


def claim_sentence(row: dict, mcid: float | None = None, when: str = "", noun: str | None = None) -> str:
    """One sentence for a clinic owner: size, interval, MCID (pain), and how it meets the claim.

    Parameters
    ----------
    row : dict
        A row of :func:`analysis.audit.verdicts.audit_claims` (claim units, claimed direction
        positive).
    mcid : float or None
        The outcome's MCID in its unit (pain points); None for outcomes without one.
    when : str
        The claim's time frame in words (" at week 12", " from week 4 to 12", "").
    noun : str or None
        The outcome's word when the run config relabels it ("seizures";
        :func:`analysis.report.outcome_words.claim_noun`); None: the built-in word.
    """
    if row["verdict"] == "not testable":
        return f"This claim cannot be checked with these data: {row['reason']}."
    up, down, built_in = CLAIM_WORDS[row["outcome"]]
    noun = noun or built_in
    sign = 1 if row["direction"] == "increase" else -1
    kind = _KIND[row["scale"]]
    arm = pretty_arm(row["intervention"]).replace("deep tissue", "deep-tissue")
    sub = f" (in {row['subgroup'].replace('_', '-')} feet)" if row.get("subgroup") else ""
    est, lo, hi = (_natural(row[c], sign) for c in ("estimate", "conf_low", "conf_high"))
    phrase = change_phrase(est, lo, hi, noun, up, down, kind=kind)
    if row["scale"] == "difference":
        phrase += mcid_phrase(est, mcid)
    pre = row.get("pre_post")
    if row.get("uncontrolled") and not pre:
        text = (f"With {arm}{sub}{when}, compared with the start: {phrase} — a before/after change "
                "with no comparison group")
    elif row.get("uncontrolled"):
        control = _control_of(row)
        arm_change = _natural(pre["estimate"], sign)
        control_change = _control_change(arm_change, row.get("share_of_change_in_control"), kind)
        both = (versus(arm_change, control_change, pretty_arm(control)) if kind == "percent" else
                f"{arm_change:+.1f} vs {control_change:+.1f} points with {pretty_arm(control)}")
        text = (f"With {arm}{sub}{when}, {noun} changed {both}; compared with "
                f"{pretty_arm(control)} that is {phrase}")
    else:
        text = f"With {arm}{sub} vs {pretty_arm(row['comparator'])}{when}: {phrase}"
    return text + _claim_tail(row, kind)


def _control_of(row: dict) -> str:
    others = [a for a in (row.get("n_per_arm") or {}) if a != row["intervention"]]
    return others[0] if others else "the control arm"


def _control_change(arm_change: float, share, kind: str) -> float:
    """The control arm's change, from its share of the arm's change on the model scale."""
    if missing(share) or missing(arm_change):
        return float("nan")
    if kind == "percent":
        return 100 * (math.exp(float(share) * math.log1p(arm_change / 100)) - 1)
    return float(share) * arm_change


def _claim_tail(row: dict, kind: str) -> str:
    verdict, claimed = row["verdict"], row.get("claimed")
    if missing(claimed):
        return {"supported": ", as claimed.", "contradicted": ", the opposite of the claim.",
                "inconclusive": "; that fits no difference too, so the data cannot tell whether "
                                "it helps."}[verdict]
    said = f"the {amount(claimed, kind)} claimed"
    if verdict == "supported":
        beyond = not missing(row.get("conf_low")) and row["conf_low"] > claimed
        return f", even more than {said}." if beyond else f", in line with {said}."
    if verdict == "overstated":
        well = "well " if row["estimate"] < claimed / 2 else ""  # under half the claim
        return f", {well}short of {said}."
    if verdict == "inconclusive":
        return f"; that fits both no difference and {said}, so the data cannot tell."
    if row["conf_high"] < 0:
        return ", the opposite of the claim."
    return f"; that rules out {said} and fits no difference at all."


def claim_when(outcome: str, start: float, end: float, window: bool) -> str:
    """The time frame of a claim in words: ' over weeks 0–12', ' at week 12', ' from week 4 to 12'."""
    if outcome == "episodes":
        return f" over weeks {start:g}–{end:g}"
    if outcome == "strength":  # a change in strength: always from a start
        return f" from week {start:g} to {end:g}"
    return f" from week {start:g} to {end:g}" if window else f" at week {end:g}"


#: What a claim's verdict rests on, in words (docs/wording.md, "What a verdict rests on"): the
#: first rule whose key is in the technical analysis text gives the sentence; later rules add.
RESTS_ON = [
    ("patient-level", "each patient's episode counts over the claim's weeks, allowing for "
                      "patients who have more episodes than others"),
    ("population-averaged", "episode rates averaged over all patients of each treatment"),
    ("mmrm", "the scores at each scheduled visit, compared visit by visit"),
    ("ls-means", "the scores at each scheduled visit, compared visit by visit"),
    ("gee fallback", "the average scores of each treatment over time"),
    ("log(strength)", "each patient's strength measurements over time, compared as percent changes"),
    ("linear mixed model", "each patient's scores over time, following each patient's own course"),
]
RESTS_ON_EXTRA = [
    ("overpronated", "in overpronated and other feet"),
    ("| clinic", "and each clinic's own level"),
    ("fallback", "(a simpler back-up analysis: the first model could not be fitted)"),
]


def rests_on(analysis: str | None, episodes: str | None = None) -> str:
    """The analysis a verdict rests on, said without statistics, e.g. "each patient's scores over
    time, following each patient's own course"; "" when no analysis was made (not testable).
    ``episodes``: the count outcome's word when the run config relabels it ("seizures";
    :func:`analysis.report.outcome_words.claim_noun`), which replaces the episode words."""
    text = str(analysis or "").lower()
    if not text:
        return ""
    base = next((words for key, words in RESTS_ON if key in text), "the data of each treatment")
    if episodes:
        base = (base.replace("episode counts", f"counts of {episodes}")
                .replace("more episodes", f"more {episodes}").replace("episode rates", f"rates of {episodes}"))
    extra = [words for key, words in RESTS_ON_EXTRA if key in text]
    return " ".join([base, *extra])
