"""Arm assignment, switchers and cumulative sessions (src/analysis/intake/arms.py).

No statistics here: every expected value below is worked out by hand from the small tables.
"""

import numpy as np
import pandas as pd
import patsy
import pytest

from analysis.errors import ConfigError, InputError
from analysis.intake.arms import add_cumulative_sessions, arm_levels, assign_arms
from analysis.intake.runs import factorize_runs


def visits(rows):
    """Visit table from (patient_id, visit, intervention) triples; week = 2 * (visit - 1)."""
    frame = pd.DataFrame(rows, columns=["patient_id", "visit", "intervention"])
    frame["clinic_id"] = "c1"
    frame["week"] = 2.0 * (frame["visit"] - 1)
    frame["pain_score"] = 5.0
    return frame


def arm_of(result, patient):
    return set(result.data.loc[result.data["patient_id"] == patient, "arm"].astype(str))


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "data, expected",
    [
        ([1, 2], "expected a pandas DataFrame, got list"),
        (pd.DataFrame({"patient_id": ["p1"], "visit": [1]}), "lacks column(s) ['intervention']"),
        (pd.DataFrame(columns=["patient_id", "visit", "intervention"]), "has no rows"),
        (pd.DataFrame({"patient_id": ["p1", None], "visit": [1, 1], "intervention": ["a", "a"]}),
         "1 row(s) have no patient_id"),
        (pd.DataFrame({"patient_id": ["p1", "p1"], "visit": [1, 2], "intervention": ["a", None]}),
         "1 row(s) have no intervention"),
    ],
)
def test_bad_input_is_refused_with_a_message(data, expected):
    with pytest.raises(InputError) as err:
        assign_arms(data, control="usual_care")
    assert expected in str(err.value)


def test_empty_control_label_is_a_config_error():
    with pytest.raises(ConfigError, match="control must be a non-empty arm label"):
        assign_arms(visits([("p1", 1, "orthotics")]), control="")


# --- default rule: most visits, ties to the earliest delivered ------------------------------------

def test_majority_intervention_is_the_arm_and_ties_go_to_the_first_visit():
    data = visits([
        ("p1", 1, "orthotics"), ("p1", 2, "orthotics"), ("p1", 3, "usual_care"),   # majority
        ("p2", 1, "usual_care"), ("p2", 2, "orthotics"),                            # 1-1 tie
        ("p3", 1, "orthotics"), ("p3", 2, "usual_care"), ("p3", 3, "usual_care"),
        ("p3", 4, "orthotics"),                                                     # 2-2 tie
        ("p4", 1, "usual_care"), ("p4", 2, "taping"), ("p4", 3, "taping"),
        ("p4", 4, "orthotics"), ("p4", 5, "orthotics"),   # tie not incl. first visit: earliest tied
    ])
    result = assign_arms(data, control="usual_care")
    assert arm_of(result, "p1") == {"orthotics"}
    assert arm_of(result, "p2") == {"usual_care"}
    assert arm_of(result, "p3") == {"orthotics"}
    assert arm_of(result, "p4") == {"taping"}


def test_first_visit_is_found_by_visit_number_not_row_order():
    data = visits([("p1", 2, "orthotics"), ("p1", 1, "usual_care")])
    assert arm_of(assign_arms(data, control="usual_care"), "p1") == {"usual_care"}


def test_duplicate_index_labels_are_harmless():
    data = visits([("p1", 1, "orthotics"), ("p1", 2, "usual_care"), ("p1", 3, "usual_care"),
                   ("p2", 1, "orthotics")])
    data.index = [0, 0, 1, 1]
    data["allocated"] = ["usual_care", "usual_care", "usual_care", "orthotics"]
    by_mode = assign_arms(data, control="usual_care")
    by_column = assign_arms(data, control="usual_care", arm_column="allocated")
    assert list(by_mode.data["arm"].astype(str)) == ["usual_care"] * 3 + ["orthotics"]
    assert list(by_column.data["arm"].astype(str)) == ["usual_care"] * 3 + ["orthotics"]
    sessions = add_cumulative_sessions(data, ["orthotics", "usual_care"])
    assert list(sessions["sessions_usual_care"]) == [0, 1, 2, 0]


def test_rows_order_and_index_are_kept():
    data = visits([("p2", 1, "orthotics"), ("p1", 1, "usual_care"), ("p2", 2, "orthotics")])
    data.index = [10, 5, 7]
    out = assign_arms(data, control="usual_care").data
    assert list(out.index) == [10, 5, 7]
    assert list(out["patient_id"]) == ["p2", "p1", "p2"]
    assert list(out["arm"].astype(str)) == ["orthotics", "usual_care", "orthotics"]
    pd.testing.assert_frame_equal(out.drop(columns="arm"), data)


# --- switchers and the per-arm table --------------------------------------------------------------

def test_switchers_are_counted_overall_and_per_arm():
    data = visits([
        ("p1", 1, "orthotics"), ("p1", 2, "orthotics"), ("p1", 3, "usual_care"),  # switcher
        ("p2", 1, "orthotics"), ("p2", 2, "orthotics"),
        ("p3", 1, "usual_care"),
        ("p4", 1, "usual_care"), ("p4", 2, "taping"), ("p4", 3, "usual_care"),    # switcher
        ("p5", 1, "taping"), ("p5", 2, "taping"),
    ])
    result = assign_arms(data, control="usual_care")
    assert result.switchers == 2
    expected = pd.DataFrame({
        "arm": ["usual_care", "orthotics", "taping"],
        "n_patients": [2, 2, 1],
        "n_switchers": [1, 1, 0],
        "n_visits": [4, 5, 2],
    })
    pd.testing.assert_frame_equal(result.table, expected)


# --- reference level -----------------------------------------------------------------------------

def test_control_is_the_reference_level_then_alphabetical():
    data = visits([("p1", 1, "taping"), ("p2", 1, "usual_care"), ("p3", 1, "orthotics"),
                   ("p4", 1, "gait")])
    result = assign_arms(data, control="usual_care")
    assert result.control_present
    assert result.arms == ["usual_care", "gait", "orthotics", "taping"]
    assert list(result.data["arm"].cat.categories) == result.arms
    assert list(result.table["arm"]) == result.arms
    # patsy's default treatment coding drops the first category: the control is the reference.
    design = patsy.dmatrix("arm", result.data, return_type="dataframe")
    assert list(design.columns) == ["Intercept", "arm[T.gait]", "arm[T.orthotics]",
                                    "arm[T.taping]"]


def test_missing_control_is_reported_not_invented():
    data = visits([("p1", 1, "taping"), ("p2", 1, "orthotics")])
    result = assign_arms(data, control="usual_care")
    assert not result.control_present
    assert result.arms == ["orthotics", "taping"]
    assert "usual_care" not in list(result.table["arm"])


def test_arm_levels_orders_and_deduplicates():
    assert arm_levels(["b", "usual_care", "a", "b"], "usual_care") == ["usual_care", "a", "b"]
    assert arm_levels(["b", "a"], "usual_care") == ["a", "b"]


# --- a configured arm column ---------------------------------------------------------------------

def test_arm_column_is_honoured_over_the_majority_intervention():
    data = visits([("p1", 1, "orthotics"), ("p1", 2, "orthotics"), ("p1", 3, "usual_care"),
                   ("p2", 1, "usual_care")])
    data["allocated"] = ["usual_care", "usual_care", "usual_care", "orthotics"]
    result = assign_arms(data, control="usual_care", arm_column="allocated")
    assert arm_of(result, "p1") == {"usual_care"}
    assert arm_of(result, "p2") == {"orthotics"}
    assert result.switchers == 1  # p1 still received two interventions
    assert "allocated" in result.data.columns


def test_arm_column_named_arm_is_used_in_place():
    data = visits([("p1", 1, "orthotics"), ("p2", 1, "orthotics")])
    data["arm"] = ["usual_care", "orthotics"]
    result = assign_arms(data, control="usual_care", arm_column="arm")
    assert list(result.data["arm"].astype(str)) == ["usual_care", "orthotics"]
    assert result.arms == ["usual_care", "orthotics"]


def test_non_constant_arm_column_is_rejected_naming_count_and_at_most_five_ids():
    rows, arms = [], []
    for i in range(7):
        rows += [(f"P{i:03d}", 1, "orthotics"), (f"P{i:03d}", 2, "orthotics")]
        arms += ["usual_care", "orthotics"]
    rows.append(("P100", 1, "orthotics"))
    arms.append("orthotics")
    data = visits(rows)
    data["arm"] = arms
    with pytest.raises(InputError) as err:
        assign_arms(data, control="usual_care", arm_column="arm")
    message = str(err.value)
    assert "arm column 'arm' is not constant within 7 patient(s)" in message
    assert "P000, P001, P002, P003, P004, ..." in message
    assert "P005" not in message and "P100" not in message


def test_unknown_or_empty_arm_column_is_rejected():
    data = visits([("p1", 1, "orthotics"), ("p1", 2, "orthotics")])
    with pytest.raises(InputError, match="configured arm column 'group'.*not in the visit table"):
        assign_arms(data, control="usual_care", arm_column="group")
    data["group"] = ["orthotics", np.nan]
    with pytest.raises(InputError,
                       match="'group' is empty on 1 row\\(s\\) of 1 patient\\(s\\) \\(p1\\)"):
        assign_arms(data, control="usual_care", arm_column="group")


# --- cumulative sessions -------------------------------------------------------------------------

def test_cumulative_sessions_on_a_hand_built_example():
    # Deliberately shuffled rows and a non-default index; a missing pain score still counts.
    data = pd.DataFrame({
        "patient_id": ["B", "A", "A", "B", "A", "A", "B"],
        "visit":      [2,   3,   1,   1,   2,   4,   3],
        "intervention": ["orthotics", "usual_care", "orthotics", "orthotics", "orthotics",
                         "orthotics", "usual_care"],
        "pain_score": [4.0, np.nan, 6.0, 5.0, 5.0, 3.0, 4.0],
    }, index=[70, 60, 40, 30, 20, 10, 0])
    out = add_cumulative_sessions(data, ["usual_care", "orthotics", "gait_retraining"])
    # A: v1 orth, v2 orth, v3 usual, v4 orth;  B: v1 orth, v2 orth, v3 usual
    expected_orth = {70: 2, 60: 2, 40: 1, 30: 1, 20: 2, 10: 3, 0: 2}
    expected_usual = {70: 0, 60: 1, 40: 0, 30: 0, 20: 0, 10: 1, 0: 1}
    assert out["sessions_orthotics"].to_dict() == expected_orth
    assert out["sessions_usual_care"].to_dict() == expected_usual
    assert (out["sessions_gait_retraining"] == 0).all()
    assert out["sessions_orthotics"].dtype == np.int64
    pd.testing.assert_frame_equal(out[data.columns], data)


def test_cumulative_sessions_sum_to_the_visit_number_when_visits_are_complete():
    rng = np.random.default_rng(7)
    n_patients, n_visits = 50, 6
    data = pd.DataFrame({
        "patient_id": np.repeat([f"p{i}" for i in range(n_patients)], n_visits),
        "visit": np.tile(np.arange(1, n_visits + 1), n_patients),
        "intervention": rng.choice(["a", "b", "c"], n_patients * n_visits),
    }).sample(frac=1, random_state=3)
    out = add_cumulative_sessions(data, ["a", "b", "c"])
    total = out[["sessions_a", "sessions_b", "sessions_c"]].sum(axis=1)
    assert (total == out["visit"]).all()


def test_cumulative_sessions_refuse_unconfigured_interventions_and_clashing_names():
    data = visits([("p1", 1, "orthotics"), ("p1", 2, "dry_needling")])
    with pytest.raises(InputError, match=r"unconfigured intervention\(s\) \['dry_needling'\]"):
        add_cumulative_sessions(data, ["orthotics", "usual_care"])
    with pytest.raises(ConfigError, match="clashing covariate names"):
        add_cumulative_sessions(visits([("p1", 1, "a b")]), ["a b", "a_b"])
    with pytest.raises(ConfigError, match="no interventions configured"):
        add_cumulative_sessions(data, [])


# --- the vectorised rule against a per-patient reading of it -------------------------------------

def _arm_by_reading(frame: pd.DataFrame) -> dict:
    """Each patient's arm read off the documented rule one patient at a time: the most frequent
    intervention; among equally frequent ones, the one at the smallest visit (then row)."""
    arms = {}
    for pid, rows in frame.assign(row=np.arange(len(frame))).groupby("patient_id"):
        counts = rows["intervention"].value_counts()
        tied = set(counts.index[counts == counts.max()])
        earliest = rows.sort_values(["visit", "row"], kind="stable")
        arms[pid] = next(k for k in earliest["intervention"] if k in tied)
    return arms


def test_arms_on_random_logs_follow_the_rule_patient_by_patient():
    rng = np.random.default_rng(11)
    n = 3000
    frame = pd.DataFrame({"patient_id": [f"p{i}" for i in rng.integers(0, 400, n)],
                          "visit": rng.integers(1, 6, n),  # repeated visit numbers: row order decides
                          "intervention": rng.choice(["usual_care", "orthotics", "taping"], n)})
    frame.index = rng.permutation(n) + 10
    result = assign_arms(frame, "usual_care")
    expected = _arm_by_reading(frame)
    assert result.data["arm"].astype(str).tolist() == frame["patient_id"].map(expected).tolist()
    switchers = frame.groupby("patient_id")["intervention"].nunique().gt(1)
    assert result.switchers == int(switchers.sum())
    assert result.table["n_patients"].sum() == frame["patient_id"].nunique()
    assert result.table["n_visits"].sum() == n
    assert result.data.index.equals(frame.index)


@pytest.mark.parametrize("values", [
    ["a", "a", "b", "c", "c", "c"], ["b", "a", "a", "c"], ["a", None, "b"], ["x"], [],
    ["P10", "P10", "P2", "P2", "P3"], ["a", "a", "a"]])
def test_patient_ids_factorized_in_runs_equal_pandas_factorize(values):
    column = pd.Series(values, dtype=object)
    codes, ids = factorize_runs(column)
    expected_codes, expected_ids = pd.factorize(column)
    np.testing.assert_array_equal(codes, expected_codes)
    pd.testing.assert_index_equal(ids, expected_ids)


def test_arms_of_a_table_in_patient_visit_order_equal_those_of_the_same_rows_shuffled():
    rng = np.random.default_rng(7)
    visits = rng.integers(1, 8, 400)
    data = pd.DataFrame({
        "patient_id": np.repeat([f"P{i:03d}" for i in range(len(visits))], visits).astype(object),
        "visit": np.concatenate([np.arange(1, v + 1) for v in visits]),
        "intervention": rng.choice(["exercise", "taping", "orthoses"], visits.sum()).astype(object)})
    shuffled = data.iloc[rng.permutation(len(data))]
    in_order, mixed = assign_arms(data, "exercise"), assign_arms(shuffled, "exercise")
    pd.testing.assert_frame_equal(in_order.data, mixed.data.loc[data.index])
    pd.testing.assert_frame_equal(in_order.table, mixed.table)
    assert in_order.switchers == mixed.switchers > 0


@pytest.mark.parametrize("seed,shuffle", [(0, False), (1, True), (2, True)])
def test_mode_from_the_table_equals_the_grouping_path(monkeypatch, seed, shuffle):
    """The patients x interventions table (few interventions) against the groupby path it skips,
    with ties in visit counts (broken by the earliest visit), one-visit patients and visit labels."""
    import analysis.intake.arms as arms

    rng = np.random.default_rng(seed)
    visits = rng.integers(1, 7, 500)
    data = pd.DataFrame({
        "patient_id": np.repeat([f"P{i:03d}" for i in range(len(visits))], visits).astype(object),
        "visit": np.concatenate([np.arange(1, v + 1) for v in visits]),
        "intervention": rng.choice(["exercise", "taping", "orthoses", "rest"],
                                   visits.sum()).astype(object)})
    if shuffle:
        data = data.iloc[rng.permutation(len(data))]
    fast = assign_arms(data, "exercise")
    monkeypatch.setattr(arms, "MODE_TABLE_CELLS_PER_ROW", 0)  # always group
    slow = assign_arms(data, "exercise")
    pd.testing.assert_frame_equal(fast.data, slow.data)
    pd.testing.assert_frame_equal(fast.table, slow.table)
    assert fast.switchers == slow.switchers > 0 and fast.arms == slow.arms
    ties = data.groupby(["patient_id", "intervention"]).size().groupby("patient_id").agg(
        lambda s: (s == s.max()).sum() > 1)
    assert ties.sum() > 20  # the tie rule is exercised
