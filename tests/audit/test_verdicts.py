"""analysis.audit.verdicts: the verdict rules on hand-made intervals, Holm, power, plain sentences.

Holm's numbers are checked against a hand computation of the definition (Holm 1979: order the m
p-values, multiply the i-th smallest by m - i + 1, take the running maximum, cap at 1) and against
R 4.2.2's ``p.adjust(p, method = "holm")``, whose output is written beside each case.
The normal quantiles are R's ``qnorm(0.975)`` = 1.95996398454005 and ``qnorm(0.8)`` =
0.841621233572914.
"""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.audit.claims import parse_claims
from analysis.audit.estimate import Estimate
from analysis.audit.verdicts import (
    AUDIT_COLUMNS,
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_TESTABLE,
    OVERSTATED,
    SUPPORTED,
    audit_estimates,
    claimed_effect,
    effect_to_units,
    grade,
    harmonic_n,
    holm_adjust,
    holm_levels,
    minimum_detectable_effect,
    patients_needed,
    records,
)

SOURCE = "clinic web page (knee pain and feet), as quoted in the project brief"
Z975, Z80 = 1.95996398454005, 0.841621233572914  # R: qnorm(0.975), qnorm(0.8)


def claim(**kw):
    base = {"id": "c1", "text": "words", "source": SOURCE, "outcome": "episodes",
            "intervention": "deep_tissue_massage", "comparator": "usual_care",
            "measure": "percent_reduction", "value": 62, "week": 12}
    return {**base, **kw}


def claims_file(*items, adjusted=False):
    return parse_claims({"claims": list(items),
                         "multiplicity": {"method": "holm", "verdicts_on_adjusted": adjusted}})


def ratio(rr, low, high, p=0.01, se=None, n=(100, 100), alpha=0.05):
    se = se if se is not None else (math.log(high) - math.log(low)) / (2 * Z975)
    return Estimate("rate ratio of episodes, test", "ratio", rr, low, high, p, se, 1.0,
                    {"deep_tissue_massage": n[0], "usual_care": n[1]}, alpha=alpha)


def difference(d, low, high, p=0.01, se=0.2, scale="difference"):
    return Estimate("difference in mean pain, test", scale, d, low, high, p, se, 0.0,
                    {"foot_massage": 60, "usual_care": 60})


# --- the rules on the claim-positive scale (0 = no effect, claimed value 1) -------------------

@pytest.mark.parametrize("low, high, claimed, verdict, words", [
    (0.5, 1.5, 1.0, SUPPORTED, "contains the claimed value"),
    (1.2, 1.8, 1.0, SUPPORTED, "conservative"),
    (0.2, 0.6, 1.0, OVERSTATED, "wholly short"),
    (-0.3, 1.4, 1.0, INCONCLUSIVE, "both no effect and the claimed value"),
    (-0.3, 0.6, 1.0, CONTRADICTED, "excludes the claimed value and contains no effect"),
    (-0.9, -0.2, 1.0, CONTRADICTED, "other side of no effect"),
    (0.1, 0.4, None, SUPPORTED, "excludes no effect"),
    (-0.1, 0.4, None, INCONCLUSIVE, "contains no effect"),
    (-0.4, -0.1, None, CONTRADICTED, "other side"),
])
def test_each_branch(low, high, claimed, verdict, words):
    got, reason = grade(low, high, claimed)
    assert got == verdict
    assert words in reason


def test_boundaries_are_inclusive_for_the_claim_and_strict_for_no_effect():
    assert grade(0.0, 2.0, 1.0)[0] == INCONCLUSIVE  # touching 0 does not exclude no effect
    assert grade(0.5, 1.0, 1.0)[0] == SUPPORTED  # the claimed value at the upper end
    assert grade(0.0, 0.5, None)[0] == INCONCLUSIVE


@pytest.mark.parametrize("low, high, claimed", [(1.0, 0.0, 1.0), (np.nan, 1.0, 1.0),
                                                (0.0, 1.0, -1.0), (0.0, 1.0, 0.0)])
def test_grade_refuses_bad_input(low, high, claimed):
    with pytest.raises(ValueError):
        grade(low, high, claimed)


# --- the same rules through hand-made Estimates on their natural scales ------------------------

def test_overstated_episodes_claim():
    table = audit_estimates(claims_file(claim()), [ratio(0.78, 0.66, 0.92)])
    row = table.iloc[0]
    assert row["verdict"] == OVERSTATED
    assert row["estimate"] == pytest.approx(22.0)
    assert (row["conf_low"], row["conf_high"]) == pytest.approx((8.0, 34.0))
    assert row["units"] == "percent fewer episodes"
    assert row["plain"] is None  # worded by the report: tests/report/test_wording.py


@pytest.mark.parametrize("rr, low, high, verdict", [
    (0.40, 0.30, 0.55, SUPPORTED),  # contains 0.38
    (0.25, 0.20, 0.33, SUPPORTED),  # wholly beyond 62 % fewer: conservative claim
    (0.70, 0.35, 1.20, INCONCLUSIVE),
    (0.90, 0.70, 1.10, CONTRADICTED),  # excludes 0.38, contains 1
    (1.30, 1.10, 1.50, CONTRADICTED),  # more episodes
])
def test_ratio_verdicts_on_the_log_scale(rr, low, high, verdict):
    assert audit_estimates(claims_file(claim()), [ratio(rr, low, high)]).iloc[0]["verdict"] \
        == verdict


def test_ratio_claim_is_compared_on_the_log_scale_not_the_percent_scale():
    # claim 50 % more strength; interval 1.2 to 1.5 contains 1.5 exactly
    c = claim(outcome="strength", measure="percent_increase", value=50)
    est = Estimate("ratio of strength change", "ratio", 1.3, 1.2, 1.5, 0.001, 0.05, 1.0, {})
    assert audit_estimates(claims_file(c), [est]).iloc[0]["verdict"] == SUPPORTED
    assert claimed_effect(parse_claims({"claims": [c]}).claims[0]) == pytest.approx(math.log(1.5))


@pytest.mark.parametrize("d, low, high, verdict", [
    (-0.8, -1.3, -0.3, SUPPORTED),  # less pain, as claimed
    (-0.3, -0.8, 0.2, INCONCLUSIVE),
    (0.6, 0.2, 1.0, CONTRADICTED),  # more pain
])
def test_direction_only_pain_claims(d, low, high, verdict):
    c = claim(outcome="pain", intervention="foot_massage", measure="direction", value=None)
    row = audit_estimates(claims_file(c), [difference(d, low, high)]).iloc[0]
    assert row["verdict"] == verdict
    assert row["estimate"] == pytest.approx(-d)  # points less pain
    assert row["claimed"] is None and math.isnan(row["n_needed_per_arm"])


def test_responder_claim_in_percentage_points():
    c = claim(outcome="responders", measure="responder_rate", value=20)
    est = difference(0.12, 0.02, 0.22, scale="proportion_difference", se=float("nan"))
    row = audit_estimates(claims_file(c), [est]).iloc[0]
    assert row["verdict"] == SUPPORTED
    assert (row["estimate"], row["conf_low"], row["conf_high"]) == pytest.approx((12, 2, 22))
    assert row["units"] == "percentage points more responders"


def test_not_testable_keeps_the_reason_and_leaves_the_others_alone():
    reason = "arm 'deep_tissue_massage' has fewer than 11 patients (the disclosure threshold)"
    cf = claims_file(claim(), claim(id="c2"))
    table = audit_estimates(cf, [reason, ratio(0.78, 0.66, 0.92, p=0.004)])
    assert list(table.columns) == AUDIT_COLUMNS
    first, second = table.iloc[0], table.iloc[1]
    assert first["verdict"] == NOT_TESTABLE and first["reason"] == reason
    assert pd.isna(first["estimate"])
    assert second["verdict"] == OVERSTATED
    assert second["p_holm"] == pytest.approx(0.004)  # m = 1: untestable claims are not counted


# --- Holm ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("p, r_holm", [
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") -> 0.03 0.06 0.06 0.02
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
    # R: p.adjust(c(0.2, 0.6, 0.01, 0.5, 0.02), "holm") -> 0.60 1.00 0.05 1.00 0.08
    ([0.2, 0.6, 0.01, 0.5, 0.02], [0.60, 1.00, 0.05, 1.00, 0.08]),
    # R: p.adjust(c(0.01, 0.01, 0.04), "holm") -> 0.03 0.03 0.04
    ([0.01, 0.01, 0.04], [0.03, 0.03, 0.04]),
])
def test_holm_equals_the_definition_and_r(p, r_holm):
    m = len(p)
    order = np.argsort(p, kind="stable")
    by_hand = np.empty(m)
    running = 0.0
    for i, index in enumerate(order):  # Holm (1979): (m - i) p_(i+1), running max, cap 1
        running = max(running, min(1.0, (m - i) * p[index]))
        by_hand[index] = running
    np.testing.assert_allclose(holm_adjust(p), by_hand, rtol=1e-12)
    np.testing.assert_allclose(holm_adjust(p), r_holm, rtol=1e-12)


def test_holm_skips_nan():
    got = holm_adjust([0.01, np.nan, 0.04])
    assert got[0] == pytest.approx(0.02) and np.isnan(got[1]) and got[2] == pytest.approx(0.04)


def test_holm_levels_step_down():
    np.testing.assert_allclose(holm_levels([0.01, 0.04, 0.03, 0.005], 0.05),
                               [0.05 / 3, 0.05 / 1, 0.05 / 2, 0.05 / 4])


def test_grading_on_holm_intervals_widens_and_respects_the_step_down():
    # two claims: p = 0.001 (level alpha/2) and p = 0.04 (level alpha/1)
    a = ratio(0.40, 0.30, 0.55, p=0.001, se=0.15)
    b = ratio(0.80, 0.65, 0.985, p=0.04, se=0.1)
    plain = audit_estimates(claims_file(claim(), claim(id="c2")), [a, b])
    holm = audit_estimates(claims_file(claim(), claim(id="c2"), adjusted=True), [a, b])
    assert list(holm["confidence"]) == pytest.approx([1 - 0.025, 1 - 0.05])
    assert holm.iloc[0]["conf_high"] - holm.iloc[0]["conf_low"] > \
        plain.iloc[0]["conf_high"] - plain.iloc[0]["conf_low"]
    # the second is Holm-rejected (p_holm = max(0.002, 0.04) = 0.04 <= 0.05): excluded 1
    assert holm.iloc[1]["p_holm"] == pytest.approx(0.04)
    assert holm.iloc[1]["verdict"] == OVERSTATED


def test_step_down_guard_when_holm_does_not_reject():
    # p 0.03 and 0.04: p_holm = 0.06 and 0.06; each interval at its own level excludes 1 but
    # Holm stops at the first: neither may count as excluding no effect
    a = ratio(0.80, 0.70, 0.91, p=0.03, se=0.03)
    b = ratio(0.85, 0.75, 0.96, p=0.04, se=0.03)
    table = audit_estimates(claims_file(claim(), claim(id="c2"), adjusted=True), [a, b])
    assert list(table["p_holm"]) == pytest.approx([0.06, 0.06])
    assert list(table["verdict"]) == [CONTRADICTED, CONTRADICTED]
    assert "step-down stopped" in table.iloc[0]["reason"]


# --- power ---------------------------------------------------------------------------------------

def test_minimum_detectable_effect():
    assert minimum_detectable_effect(0.1, 0.05) == pytest.approx((Z975 + Z80) * 0.1, rel=1e-12)
    # in units: 100 (1 - exp(-0.28016)) = 24.43 % fewer episodes
    assert effect_to_units(minimum_detectable_effect(0.1), "ratio", -1) == pytest.approx(
        100 * (1 - math.exp(-0.2801585218)), rel=1e-9)


def test_patients_needed():
    # 100 per arm, SE 0.1, claim 62 % fewer: 100 * (0.2801585218 / -log(0.38))^2 = 8.38 -> 9
    assert patients_needed(100, 0.1, -math.log(0.38)) == 9
    # claiming exactly the MDE needs the patients there are now
    assert patients_needed(50, 0.2, (Z975 + Z80) * 0.2) == 50
    assert math.isnan(patients_needed(50, float("nan"), 1.0))


def test_harmonic_n_is_the_equal_arm_size_with_the_same_variance():
    assert harmonic_n([60, 120]) == pytest.approx(80.0)  # 1/60 + 1/120 = 2/80


def test_audit_reports_mde_and_n_needed_in_claim_units():
    row = audit_estimates(claims_file(claim()), [ratio(0.78, 0.66, 0.92, se=0.1,
                                                       n=(60, 120))]).iloc[0]
    assert row["mde"] == pytest.approx(100 * (1 - math.exp(-(Z975 + Z80) * 0.1)), rel=1e-9)
    assert row["n_needed_per_arm"] == math.ceil(80 * ((Z975 + Z80) * 0.1 / -math.log(0.38)) ** 2)


def test_records_are_json_ready():
    out = records(audit_estimates(claims_file(claim()), ["no patients in arm 'x'"]))
    assert out[0]["verdict"] == NOT_TESTABLE and out[0]["mde"] is None
    assert isinstance(pd.Series(out[0]).to_dict(), dict)


def test_units_label_takes_a_relabelled_outcomes_word_and_unit():
    from analysis.audit.verdicts import units_label

    episodes = claims_file(claim()).claims[0]
    assert units_label(episodes, "ratio") == "percent fewer episodes"
    assert units_label(episodes, "ratio", "seizures") == "percent fewer seizures"
    pain = claims_file(claim(outcome="pain", measure="direction", direction="increase",
                             value=None)).claims[0]
    assert units_label(pain, "difference") == "points more pain"
    assert units_label(pain, "difference", "FEV1", "L") == "L more FEV1"
