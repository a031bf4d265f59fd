"""analysis.report.wording: the sentences of claims and comparisons (docs/wording.md rules)."""

import math

import pytest

from analysis.audit.claims import parse_claims
from analysis.audit.estimate import Estimate
from analysis.audit.verdicts import audit_estimates
from analysis.report.wording import (
    claim_sentence,
    claim_when,
    difference_sentence,
    percent_sentence,
    strength_sentence,
)

Z975 = 1.959963984540054


def claims_file(**kw):
    base = {"id": "c1", "text": "words", "source": "a page", "outcome": "episodes",
            "intervention": "deep_tissue_massage", "comparator": "usual_care",
            "measure": "percent_reduction", "value": 62, "week": 12}
    return parse_claims({"claims": [{**base, **kw}]})


def row_of(cf, est):
    return audit_estimates(cf, [est]).iloc[0].to_dict()


def ratio(rr, low, high):
    se = (math.log(high) - math.log(low)) / (2 * Z975)
    return Estimate("rr", "ratio", rr, low, high, 0.01, se, 1.0,
                    {"deep_tissue_massage": 100, "usual_care": 100})


def difference(d, low, high, **kw):
    return Estimate("d", "difference", d, low, high, 0.04, (high - low) / (2 * Z975), 0.0,
                    {"foot_massage": 100, "usual_care": 100}, **kw)


def test_overstated_episodes_claim():
    row = row_of(claims_file(), ratio(0.78, 0.66, 0.92))
    assert claim_sentence(row, when=claim_when("episodes", 0, 12, False)) == (
        "With deep-tissue massage vs usual care over weeks 0–12: 22 % fewer episodes (8 to 34 %), "
        "well short of the 62 % claimed.")


def test_claim_sentence_names_a_relabelled_outcome_by_its_noun():
    row = row_of(claims_file(), ratio(0.78, 0.66, 0.92))
    assert claim_sentence(row, when=claim_when("episodes", 0, 12, False), noun="seizures") == (
        "With deep-tissue massage vs usual care over weeks 0–12: 22 % fewer seizures (8 to 34 %), "
        "well short of the 62 % claimed.")


def test_direction_only_pain_claim_states_the_mcid():
    cf = claims_file(outcome="pain", intervention="foot_massage", measure="direction", value=None)
    row = row_of(cf, difference(-0.34, -0.86, 0.18))
    assert claim_sentence(row, mcid=2.0, when=" at week 12") == (
        "With foot massage vs usual care at week 12: 0.3 points less pain (from 0.9 less to 0.2 "
        "more) — less than the 2 points patients notice; that fits no difference too, so the "
        "data cannot tell whether it helps.")


def test_supported_small_pain_effect_is_said_against_the_mcid():
    cf = claims_file(outcome="pain", intervention="foot_massage", measure="direction", value=None)
    row = row_of(cf, difference(-0.7, -1.3, -0.2))
    assert row["verdict"] == "supported"
    assert claim_sentence(row, mcid=2.0, when=" at week 12") == (
        "With foot massage vs usual care at week 12: 0.7 points less pain (0.2 to 1.3) — less "
        "than the 2 points patients notice, as claimed.")


def test_before_after_claim_shows_both_changes_on_the_percent_scale():
    cf = claims_file(outcome="strength", comparator="baseline", measure="percent_increase",
                     value=80)
    pre = Estimate("pre", "ratio", 1.20, 1.15, 1.25, 0.001, 0.02, 1.0,
                   {"deep_tissue_massage": 70})
    # usual care changed by +5.5 %: its log change is log(1.055) / log(1.20) of the arm's
    share = math.log(1.055) / math.log(1.20)
    est = Estimate("ctl", "ratio", 1.20 / 1.055, 1.09, 1.18, 0.001, 0.02, 1.0,
                   {"deep_tissue_massage": 70, "usual_care": 70}, pre_post=pre,
                   share_of_change_in_control=share)
    row = row_of(cf, est)
    assert claim_sentence(row, when=" from week 0 to 12") == (
        "With deep-tissue massage from week 0 to 12, strength changed +20 % vs +5.5 % with usual "
        "care; compared with usual care that is 14 % more strength (9 to 18 %), well short of "
        "the 80 % claimed.")


def test_not_testable_sentence_gives_the_reason():
    cf = claims_file()
    row = audit_estimates(cf, ["the log follows arm 'x' only to week 6"]).iloc[0].to_dict()
    assert claim_sentence(row) == ("This claim cannot be checked with these data: the log "
                                   "follows arm 'x' only to week 6.")


def test_responder_claim_in_whole_percentage_points():
    cf = claims_file(outcome="responders", measure="responder_rate", value=20)
    est = Estimate("p", "proportion_difference", 0.12, 0.02, 0.22, 0.02, float("nan"), 0.0,
                   {"deep_tissue_massage": 60, "usual_care": 60})
    assert claim_sentence(row_of(cf, est), when=" at week 12") == (
        "With deep-tissue massage vs usual care at week 12: 12 percentage points more responders "
        "(2 to 22 percentage points), in line with the 20 percentage points claimed.")


@pytest.mark.parametrize("estimate, low, high, mcid, expected", [
    (-0.7, -1.3, -0.2, 2.0, "At week 12, orthotics vs usual care: 0.7 points less pain (0.2 to "
                            "1.3) — less than the 2 points patients notice; better, by less "
                            "than patients notice."),
    (-2.4, -3.1, -1.6, 2.0, "At week 12, orthotics vs usual care: 2.4 points less pain (1.6 to "
                            "3.1) — at least the 2 points patients notice; clearly better."),
    (-0.004, -0.5, 0.5, 2.0, "At week 12, orthotics vs usual care: about the same pain (from "
                             "0.5 less to 0.5 more) — less than the 2 points patients notice; "
                             "no clear difference."),
])
def test_pain_contrast_sentences(estimate, low, high, mcid, expected):
    assert difference_sentence("orthotics", "usual_care", estimate, low, high, "pain", 12,
                               mcid=mcid) == expected


def test_episode_and_strength_sentences():
    assert percent_sentence("patella_taping", "usual_care", -6, -28, 12, "episodes") == (
        "Patella taping vs usual care: 6 % more episodes (from 28 % more to 12 % fewer); "
        "no clear difference.")
    assert strength_sentence("deep_tissue_massage", "usual_care", 20.2, 5.5, 1.14, 1.09, 1.18,
                             12) == ("Deep tissue massage: strength +20 % vs +5.5 % with usual "
                                     "care over 12 weeks; better.")
