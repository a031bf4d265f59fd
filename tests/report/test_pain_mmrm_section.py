"""Sentences of the pain MMRM section (analysis.report.sections.pain_mmrm): MAR and tipping point."""

import pandas as pd

from analysis.report.sections.pain_mmrm import mar_sentence, tipping_sentence

PATTERNS = pd.DataFrame({"pattern": ["XXX", "XX.", "X.X", "XXX"], "arm": ["a", "a", "b", "b"],
                         "n_patients": [40, 12, 3, 30]})


def test_mar_sentence_counts_patients_with_a_missed_visit():
    text = mar_sentence(PATTERNS, threshold=11)
    assert text.startswith("15 of 85 patients missed at least one scheduled visit.")
    assert "missing at random (MAR)" in text


def test_mar_sentence_withholds_a_small_count():
    few = PATTERNS[PATTERNS["pattern"] != "XX."]
    assert mar_sentence(few, threshold=11).startswith("fewer than 11 of 73 patients missed")
    assert mar_sentence(PATTERNS[PATTERNS["pattern"] == "XXX"], 11).startswith("0 of 70 patients")


def _tip(p_values):
    return pd.DataFrame({"delta": [0.0, 1.0, 2.0][: len(p_values)], "arm": "a", "p_value": p_values})


def test_tipping_sentence_names_the_first_delta_that_loses_significance():
    assert "stops being significant at 0.05 when imputed values after dropout in a are shifted " \
           "by delta = 2 (the tipping point)" in tipping_sentence(_tip([0.001, 0.03, 0.07]), "a", "c", 0.05)
    assert "stays significant at 0.05 for every delta tried (up to 2)" in tipping_sentence(
        _tip([0.001, 0.01, 0.02]), "a", "c", 0.05)
    assert "not significant at 0.05 even under MAR" in tipping_sentence(_tip([0.2, 0.3]), "a", "c", 0.05)
    assert tipping_sentence(_tip([0.2]), "other", "c", 0.05) is None
