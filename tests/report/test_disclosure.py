"""Disclosure control: rows resting on fewer patients than the threshold lose their numbers."""

import numpy as np
import pandas as pd

from analysis.report.disclosure import DisclosureLog, display_count, suppress_small_cells


def test_rows_below_threshold_are_blanked_and_logged():
    table = pd.DataFrame({"arm": ["a", "b", "c"], "mean": [1.5, 2.5, 3.5], "n_patients": [11, 10, 40]})
    log = DisclosureLog(11)
    out = suppress_small_cells(table, 11, log, table_name="t")
    assert out["suppressed"].tolist() == [False, True, False]
    assert np.isnan(out.loc[1, "mean"]) and np.isnan(out.loc[1, "n_patients"])
    assert out.loc[0, "mean"] == 1.5 and out.loc[2, "n_patients"] == 40
    assert log.entries == [{"table": "t", "row": "arm=b", "reason": "fewer than 11 patients",
                            "below_threshold": True}]


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
