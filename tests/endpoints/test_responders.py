"""Responder analysis (src/analysis/endpoints/responders.py).

Sources of the reference numbers
--------------------------------
* ``responders_reference.json`` — written by ``Rscript tests/reference/responders_reference.R
  tests/reference`` on R 4.2.2 (Debian), base ``stats::prop.test`` only; each test cites its key.
* Newcombe RG (1998a), Stat Med 17:857-872, Table I, method 3 (Wilson score, no continuity
  correction), printed to 4 decimals.
* Newcombe RG (1998b), Stat Med 17:873-890, Table II, method 10 (hybrid score), 4 decimals.
  Examples (a) 56/70 vs 48/80 and (b) 9/10 vs 3/10 as also transcribed in the tests of the R
  package propint (tests/testthat/test_Two_Independent_Props_CI.R), as are Table I's 81/263 and
  15/148 (test_Single_Proportion_CI.R).

Regression tests against those numbers come first; the parameter-recovery test on simulated data
(known truth) is the last section.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.endpoints.responders import RESULT_COLUMNS, responder_analysis
from analysis.errors import ConfigError, InputError

REFERENCE = json.loads(
    (Path(__file__).resolve().parents[1] / "reference" / "responders_reference.json").read_text()
)["cases"]

CONTROL = "usual_care"


def two_visit_patients(arm, baselines, followups, prefix=None, followup_week=12.0):
    """One row at week 0 and one at ``followup_week`` per patient."""
    prefix = prefix or arm
    rows = []
    for i, (b, f) in enumerate(zip(baselines, followups)):
        pid = f"{prefix}-{i:04d}"
        rows.append((pid, "c1", 0.0, 1, arm, b, arm))
        rows.append((pid, "c1", followup_week, 2, arm, f, arm))
    return pd.DataFrame(rows, columns=["patient_id", "clinic_id", "week", "visit", "intervention",
                                       "pain_score", "arm"])


def counts_data(arm, responders, assessable):
    """An arm with ``responders`` of ``assessable`` patients responding (6 -> 2 vs 6 -> 6)."""
    followups = [2.0] * responders + [6.0] * (assessable - responders)
    return two_visit_patients(arm, [6.0] * assessable, followups)


def single_patient(rows, arm=CONTROL):
    """(week, pain) pairs of one patient -> visit table."""
    frame = pd.DataFrame(rows, columns=["week", "pain_score"])
    frame["visit"] = np.arange(1, len(frame) + 1)
    frame["patient_id"] = "p1"
    frame["arm"] = arm
    return frame


def status(rows, **kwargs):
    return responder_analysis(single_patient(rows), control=CONTROL, **kwargs).patients.iloc[0]


# --- the responder definition's edges -------------------------------------------------------------

@pytest.mark.parametrize(
    "baseline, followup, responder",
    [
        (10.0, 8.0, True),    # exactly 2 points (20 %)
        (10.0, 8.1, False),   # 1.9 points, 19 %
        (8.2, 6.2, True),     # 2 points (24 %), though 8.2 - 6.2 = 1.9999999999999991 in floats
        (5.0, 3.5, True),     # exactly 30 % (1.5 points)
        (5.0, 3.6, False),    # 28 %, 1.4 points
        (3.0, 2.1, True),     # 30 %, though 100 * (3 - 2.1) / 3 = 29.999999999999996 in floats
        (4.0, 1.0, True),     # both criteria
        (4.0, 6.0, False),    # worse
        (0.0, 0.0, False),    # baseline 0: assessable, percent undefined, cannot respond
    ],
)
def test_responder_thresholds_are_inclusive(baseline, followup, responder):
    patient = status([(0.0, baseline), (12.0, followup)])
    assert patient["assessable"]
    assert bool(patient["responder"]) is responder


def test_baseline_zero_has_no_percent_change_and_is_counted_assessable():
    patient = status([(0.0, 0.0), (12.0, 1.0)])
    assert patient["assessable"] and not patient["responder"]
    assert math.isnan(patient["percent_reduction"])


def test_thresholds_follow_the_settings():
    rows = [(0.0, 8.0), (12.0, 5.0)]  # 3 points, 37.5 %
    assert bool(status(rows, min_points=3.0, min_percent=50.0)["responder"])
    assert not bool(status(rows, min_points=3.5, min_percent=50.0)["responder"])
    assert bool(status(rows, min_points=math.inf, min_percent=37.5)["responder"])
    assert not bool(status(rows, min_points=math.inf, min_percent=40.0)["responder"])


@pytest.mark.parametrize(
    "rows, reason",
    [
        ([(0.0, np.nan), (12.0, 3.0)], "no baseline score"),
        ([(0.0, 6.0), (9.0, 3.0), (15.0, 3.0)], "no follow-up score in window"),   # window [10, 14]
        ([(0.0, 6.0), (12.0, np.nan)], "no follow-up score in window"),
        ([(0.0, np.nan), (12.0, np.nan)], "no baseline score"),  # both missing: counted once
    ],
)
def test_patients_without_baseline_or_window_visit_are_not_assessable(rows, reason):
    result = responder_analysis(single_patient(rows), control=CONTROL)
    patient = result.patients.iloc[0]
    assert not patient["assessable"]
    assert patient["reason"] == reason
    assert pd.isna(patient["responder"])
    row = result.proportions.iloc[0]
    assert (row["n_patients"], row["n_assessable"], row["n_not_assessable"]) == (1, 0, 1)
    assert row["n_no_baseline"] + row["n_no_followup"] == 1
    assert math.isnan(row["estimate"]) and math.isnan(row["conf_low"])


@pytest.mark.parametrize(
    "rows, used_week, used_score",
    [
        ([(0, 6.0), (10.5, 1.0), (12.5, 5.0)], 12.5, 5.0),    # closest to week 12 wins
        ([(0, 6.0), (11.0, 1.0), (13.0, 5.0)], 13.0, 5.0),    # equally close: the later one
        ([(0, 6.0), (14.0, 5.0)], 14.0, 5.0),                 # window edge is inside
        ([(0, 6.0), (12.0, np.nan), (13.5, 5.0)], 13.5, 5.0),  # a missing score is skipped
    ],
)
def test_followup_visit_choice(rows, used_week, used_score):
    patient = status(rows)
    assert patient["followup_week"] == used_week
    assert patient["followup"] == used_score


def test_same_week_visits_use_the_higher_visit_number_and_baseline_the_first():
    patient = status([(0.0, 6.0), (0.0, 9.0), (12.0, 5.0), (12.0, 3.0)])
    assert patient["baseline"] == 6.0
    assert patient["followup"] == 3.0


def test_baseline_visit_is_never_its_own_followup():
    patient = status([(0.0, 6.0), (3.5, 6.0)], week=1.0, window=2.0)
    assert patient["reason"] == "no follow-up score in window"


def test_week_and_window_settings_move_the_window():
    rows = [(0.0, 6.0), (8.0, 2.0), (12.0, 6.0)]
    assert bool(status(rows, week=8.0)["responder"])
    assert not bool(status(rows, week=12.0)["responder"])
    assert status(rows, week=10.0, window=1.0)["reason"] == "no follow-up score in window"


# --- bad input and settings -----------------------------------------------------------------------

GOOD = counts_data(CONTROL, 3, 10)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"week": 0.0}, "models.responders.week = 0.0 must be a finite number of weeks above 0"),
        ({"week": float("nan")}, "models.responders.week = nan"),
        ({"window": -1.0}, "responder window = -1.0 must be a finite number of weeks, 0 or more"),
        ({"min_points": 0.0}, "models.responders.min_points = 0.0 must be above 0"),
        ({"min_percent": 150.0}, "models.responders.min_percent = 150.0 must be in (0, 100]"),
        ({"alpha": 1.5}, "models.alpha = 1.5 must be between 0 and 1"),
        ({"min_points": math.inf, "min_percent": math.inf}, "both inf"),
        ({"control": ""}, "control must be a non-empty arm label"),
    ],
)
def test_bad_settings_name_the_key(kwargs, expected):
    kwargs = {"control": CONTROL, **kwargs}
    with pytest.raises(ConfigError) as err:
        responder_analysis(GOOD, **kwargs)
    assert expected in str(err.value)


def test_bad_input_is_refused_with_a_message():
    with pytest.raises(InputError,
                       match="lacks column\\(s\\) \\['arm'\\] \\(call analysis.intake.arms.assign_arms"):
        responder_analysis(GOOD.drop(columns="arm"), control=CONTROL)
    with pytest.raises(InputError, match="has no rows"):
        responder_analysis(GOOD.iloc[:0], control=CONTROL)
    with pytest.raises(InputError, match="expected a pandas DataFrame"):
        responder_analysis(GOOD.to_dict(), control=CONTROL)
    with pytest.raises(InputError, match="column 'pain_score' must be numeric"):
        responder_analysis(GOOD.assign(pain_score="high"), control=CONTROL)
    with pytest.raises(InputError, match="1 row\\(s\\) have no week"):
        responder_analysis(GOOD.assign(week=[np.nan] + list(GOOD["week"][1:])), control=CONTROL)
    mixed = GOOD.copy()
    mixed.loc[1, "arm"] = "orthotics"
    with pytest.raises(InputError,
                       match="arm is not constant within 1 patient\\(s\\) \\(usual_care-0000\\)"):
        responder_analysis(mixed, control=CONTROL)


# --- tables ---------------------------------------------------------------------------------------

def test_tables_are_tidy_with_counts_on_every_row():
    data = pd.concat([counts_data("orthotics", 5, 12), counts_data(CONTROL, 4, 20),
                      counts_data("taping", 1, 3)])
    result = responder_analysis(data, control=CONTROL)
    props, diffs = result.proportions, result.differences
    assert list(props.columns[:9]) == ["arm", *RESULT_COLUMNS]
    assert list(diffs.columns[:10]) == ["arm", "comparison", *RESULT_COLUMNS]
    assert list(props["arm"]) == [CONTROL, "orthotics", "taping"]
    assert list(diffs["comparison"]) == ["orthotics - usual_care", "taping - usual_care"]
    assert (props["df"] == np.inf).all() and (diffs["df"] == np.inf).all()
    assert props["std_error"].isna().all() and diffs["std_error"].isna().all()
    assert list(props["n_patients"]) == [20, 12, 3]
    assert list(props["n_responders"]) == [4, 5, 1]
    # a comparison row carries the smaller arm's patient count for disclosure control
    assert list(diffs["n_patients"]) == [12, 3]
    assert list(diffs["n_patients_control"]) == [20, 20]
    assert diffs.loc[0, "estimate"] == pytest.approx(5 / 12 - 4 / 20)
    assert (props["n_assessable"] + props["n_not_assessable"] == props["n_patients"]).all()


def test_missing_control_gives_proportions_but_no_differences():
    result = responder_analysis(counts_data("orthotics", 5, 12), control=CONTROL)
    assert not result.control_present
    assert list(result.proportions["arm"]) == ["orthotics"]
    assert result.differences.empty
    assert "conf_low" in result.differences.columns


def test_all_responders_in_both_arms_has_an_interval_but_no_test():
    data = pd.concat([counts_data("orthotics", 10, 10), counts_data(CONTROL, 15, 15)])
    row = responder_analysis(data, control=CONTROL).differences.iloc[0]
    assert row["estimate"] == 0.0
    assert row["conf_low"] < 0 < row["conf_high"]
    assert math.isnan(row["statistic"]) and math.isnan(row["p_value"])


# --- Wilson interval per arm: vs R prop.test and Newcombe (1998a) Table I -------------------------

@pytest.mark.parametrize(
    "x, n, table_i",
    [
        (81, 263, (0.2553, 0.3662)),   # Newcombe 1998a Table I, method 3 (also propint's tests)
        (15, 148, (0.0624, 0.1605)),   # Newcombe 1998a Table I, method 3 (also propint's tests)
        (0, 20, (0.0000, 0.1611)),     # Newcombe 1998a Table I, method 3
        (1, 29, (0.0061, 0.1718)),     # Newcombe 1998a Table I, method 3
    ],
)
def test_wilson_interval_matches_r_and_newcombe_table_i(x, n, table_i):
    # r: responders_reference.json: cases["wilson.<x>_<n>"]  (prop.test(x, n, correct = FALSE))
    r = REFERENCE[f"wilson.{x}_{n}"]
    row = responder_analysis(counts_data(CONTROL, x, n), control=CONTROL).proportions.iloc[0]
    assert row["estimate"] == pytest.approx(x / n, rel=1e-12)
    assert row["conf_low"] == pytest.approx(r["conf_low"], rel=1e-9, abs=1e-12)
    assert row["conf_high"] == pytest.approx(r["conf_high"], rel=1e-9)
    assert (round(row["conf_low"], 4), round(row["conf_high"], 4)) == table_i


def test_wilson_interval_uses_alpha():
    # r: responders_reference.json: cases["wilson.81_263_0.90"]  (conf.level = 0.90)
    r = REFERENCE["wilson.81_263_0.90"]
    row = responder_analysis(counts_data(CONTROL, 81, 263), control=CONTROL,
                             alpha=0.10).proportions.iloc[0]
    assert row["conf_low"] == pytest.approx(r["conf_low"], rel=1e-9)
    assert row["conf_high"] == pytest.approx(r["conf_high"], rel=1e-9)


# --- risk difference: Newcombe (1998b) method 10, and the z-test vs R prop.test -------------------

@pytest.mark.parametrize(
    "x1, n1, x2, n2, table_ii",
    [
        (56, 70, 48, 80, (0.0524, 0.3339)),  # Newcombe 1998b Table II (a) (also propint's tests)
        (9, 10, 3, 10, (0.1705, 0.8090)),    # Newcombe 1998b Table II (b) (also propint's tests)
        (6, 7, 2, 7, (0.0582, 0.8062)),      # Newcombe 1998b Table II (c)
        (5, 56, 0, 29, (-0.0381, 0.1926)),   # Newcombe 1998b Table II (d)
    ],
)
def test_risk_difference_matches_newcombe_table_ii_and_r(x1, n1, x2, n2, table_ii):
    key = f"{x1}_{n1}_vs_{x2}_{n2}"
    data = pd.concat([counts_data("orthotics", x1, n1), counts_data(CONTROL, x2, n2)])
    row = responder_analysis(data, control=CONTROL).differences.iloc[0]
    # r: responders_reference.json: cases["newcombe.<key>"]  (method 10 from prop.test limits)
    ref = REFERENCE[f"newcombe.{key}"]
    assert row["estimate"] == pytest.approx(ref["estimate"], rel=1e-12)
    assert row["conf_low"] == pytest.approx(ref["conf_low"], rel=1e-9)
    assert row["conf_high"] == pytest.approx(ref["conf_high"], rel=1e-9)
    assert (round(row["conf_low"], 4), round(row["conf_high"], 4)) == table_ii
    # r: responders_reference.json: cases["ztest.<key>"]
    #    (prop.test(c(x1, x2), c(n1, n2), correct = FALSE): X-squared = z^2, p.value)
    ref = REFERENCE[f"ztest.{key}"]
    assert row["statistic"] ** 2 == pytest.approx(ref["chisq"], rel=1e-9)
    assert np.sign(row["statistic"]) == np.sign(row["estimate"])
    assert row["p_value"] == pytest.approx(ref["p_value"], rel=1e-9)


def test_risk_difference_is_arm_minus_control():
    data = pd.concat([counts_data("orthotics", 48, 80), counts_data(CONTROL, 56, 70)])
    row = responder_analysis(data, control=CONTROL).differences.iloc[0]
    ref = REFERENCE["newcombe.56_70_vs_48_80"]  # the same table with the arms swapped
    assert row["estimate"] == pytest.approx(-ref["estimate"])
    assert row["conf_low"] == pytest.approx(-ref["conf_high"], rel=1e-9)
    assert row["conf_high"] == pytest.approx(-ref["conf_low"], rel=1e-9)


# --- parameter recovery on simulated data (known truth) -------------------------------------------

def simulate_visits(truth, n_per_arm, rng):
    """Visits at weeks 0, 4, 8, 10.4 (a decoy) and 11.1-12.9; some baselines and follow-ups missing.

    A responder's score at the assessment visit falls by 50 %, at least 2 points; a non-responder's
    by at most 1 point, from baselines of 4 to 9 (so under 30 %). The decoy visit, further from
    week 12, always shows the opposite status, so choosing the wrong visit biases the estimate.
    """
    frames = []
    for arm, p in truth.items():
        n = n_per_arm
        pid = np.array([f"{arm}-{i:05d}" for i in range(n)])
        baseline = rng.integers(4, 10, n).astype(float)
        responds = rng.random(n) < p
        drop = np.where(responds, np.maximum(2.0, np.ceil(baseline / 2)), rng.integers(-2, 2, n))
        at_week = baseline - drop
        decoy = np.where(responds, baseline, np.maximum(baseline - 4, 0))
        week_12 = 12 + rng.uniform(-0.9, 0.9, n)
        weeks = [np.zeros(n), np.full(n, 4.0), np.full(n, 8.0), np.full(n, 10.4), week_12]
        scores = [baseline.copy(), baseline - 0.5, baseline - 0.5, decoy, at_week]
        scores[0][rng.random(n) < 0.08] = np.nan            # no baseline score
        no_followup = rng.random(n) < 0.10                    # left before week 10
        scores[3][no_followup] = np.nan
        scores[4][no_followup] = np.nan
        for v, (w, s) in enumerate(zip(weeks, scores), start=1):
            frames.append(pd.DataFrame({"patient_id": pid, "clinic_id": "c1", "week": w, "visit": v,
                                        "intervention": arm, "pain_score": s, "arm": arm}))
    return pd.concat(frames, ignore_index=True)


def test_recovers_known_responder_proportions_and_differences():
    truth = {CONTROL: 0.30, "orthotics": 0.45, "taping": 0.60}
    rng = np.random.default_rng(20261121)
    data = simulate_visits(truth, n_per_arm=1200, rng=rng)
    result = responder_analysis(data, control=CONTROL)

    props = result.proportions.set_index("arm")
    for arm, p in truth.items():
        assert props.loc[arm, "conf_low"] < p < props.loc[arm, "conf_high"], arm
        assert props.loc[arm, "n_patients"] == 1200
        # about 8 % lack a baseline and 10 % of the rest a follow-up: none vanish silently
        assert 0.10 < props.loc[arm, "n_not_assessable"] / 1200 < 0.26
    diffs = result.differences.set_index("arm")
    for arm in ("orthotics", "taping"):
        true_difference = truth[arm] - truth[CONTROL]
        assert diffs.loc[arm, "conf_low"] < true_difference < diffs.loc[arm, "conf_high"], arm
        assert diffs.loc[arm, "p_value"] < 1e-6
