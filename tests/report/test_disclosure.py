"""Disclosure control: rows resting on fewer patients than the threshold lose their numbers."""

import numpy as np
import pandas as pd

from analysis.report.disclosure import DisclosureLog, display_count, suppress_small_cells


def test_rows_below_threshold_are_blanked_and_logged():
    table = pd.DataFrame({"arm": ["a", "b", "c"], "mean": [1.5, 2.5, 3.5], "n_patients": [11, 10, 40]})
    log = DisclosureLog(11)
    out = suppress_small_cells(table, 11, log, table_name="t")
    # b is below 11; a (the next smallest) goes too, or 61 patients in all minus a and c gives b.
    assert out["suppressed"].tolist() == [True, True, False]
    assert np.isnan(out.loc[1, "mean"]) and np.isnan(out.loc[1, "n_patients"]) and np.isnan(out.loc[0, "mean"])
    assert out.loc[2, "mean"] == 3.5 and out.loc[2, "n_patients"] == 40
    assert log.entries == [
        {"table": "t", "row": "arm=a", "below_threshold": False,
         "reason": "complementary suppression (a total minus the shown rows would reveal a small row)"},
        {"table": "t", "row": "arm=b", "reason": "fewer than 11 patients", "below_threshold": True}]


def test_suppressed_rows_resting_together_on_fewer_than_k_take_a_third_with_them():
    table = pd.DataFrame({"arm": list("abcd"), "n_patients": [3, 4, 30, 50]})
    out = suppress_small_cells(table, 11, DisclosureLog(11))
    assert out["suppressed"].tolist() == [True, True, True, False]


def test_a_share_times_its_denominator_never_reveals_a_small_count():
    # The case: 0.375 of 16 assessable = 6 responders; 22 - 16 = 6 not assessable.
    table = pd.DataFrame({"arm": ["x", "y"], "estimate": [0.375, 0.5], "conf_low": [0.18, 0.3],
                          "conf_high": [0.61, 0.7], "n_patients": [22, 40], "n_assessable": [16, 40],
                          "n_not_assessable": [6, 0], "n_responders": [6, 20]})
    out = suppress_small_cells(table, 11, DisclosureLog(11), shares={"estimate": "n_assessable", "conf_low": "n_assessable",
                                                                 "conf_high": "n_assessable"})
    x = out.iloc[0]
    assert np.isnan(x["n_responders"]) and np.isnan(x["n_not_assessable"])
    assert np.isnan(x["n_assessable"])  # 22 - 16 would give the 6 not assessable
    assert np.isnan(x["estimate"]) and np.isnan(x["conf_low"]) and np.isnan(x["conf_high"])
    y = out.iloc[1]
    assert y["estimate"] == 0.5 and y["n_responders"] == 20 and y["n_assessable"] == 40
    for row in out.itertuples():  # no published combination leaves 1..10
        counts = [v for v in (row.n_patients, row.n_assessable, row.n_not_assessable, row.n_responders)
                  if not np.isnan(v)]
        assert not [a - b for a in counts for b in counts if 0 < a - b < 11]


def test_a_total_minus_a_sum_of_parts_is_checked_too():
    table = pd.DataFrame({"arm": ["x"], "n_patients": [40], "n_a": [15], "n_b": [20], "n_c": [0]})
    out = suppress_small_cells(table, 11, DisclosureLog(11))
    assert np.isnan(out.loc[0, "n_a"])  # 40 - 15 - 20 = 5


def test_log_never_holds_the_small_count():
    table = pd.DataFrame({"arm": ["a"], "n_patients": [3]})
    log = DisclosureLog(5)
    suppress_small_cells(table, 5, log)
    assert "3" not in str(log.entries)


def test_display_count():
    assert display_count(12, 11) == "12"
    assert display_count(11, 11) == "11"
    assert display_count(4, 11) == "<11"
    assert display_count(float("nan"), 11) == "—"
