"""Outcome, time and design words follow outcomes:, time_unit/report_unit and design:
(analysis.report.outcome_words: the rules in its docstring, one test each)."""

from __future__ import annotations

import math

import pytest

from analysis.config import parse_config
from analysis.report.outcome_words import (
    OBSERVATIONAL,
    RANDOMISED,
    design_sentence,
    outcome_word,
    responder_thresholds,
    time_phrase,
    words,
)

BASE = {"name": "t", "data": "log.csv"}


def cfg(**extra):
    return parse_config({**BASE, **extra})


@pytest.mark.parametrize("label, word", [("Pain", "pain"), ("Throat pain", "throat pain"),
                                         ("FEV1", "FEV1"), ("TWSTRS total", "TWSTRS total"),
                                         ("BDI-II", "BDI-II"), ("X-ray score", "X-ray score")])
def test_label_is_lower_cased_only_when_an_ordinary_word(label, word):
    from analysis.audit.estimands import outcome_in_words
    from analysis.config import OutcomeMeta

    assert outcome_word(label) == word
    # the estimand texts say it by the same rule (they lower-cased "X-ray score" before)
    assert outcome_in_words(OutcomeMeta(label=label)) == word


def test_defaults_reproduce_pain_0_to_10_lower_is_better():
    w = words(cfg())
    assert (w["word"], w["axis"], w["points"], w["lower_is_better"]) == ("pain", "pain (0–10)",
                                                                          "points", True)
    assert responder_thresholds(cfg()) == (2.0, 30.0)


def test_metadata_by_file_column_gives_label_axis_unit_and_direction():
    c = cfg(columns={"pain_score": "FEV1"},
            outcomes={"FEV1": {"label": "FEV1", "unit": "L", "better": "higher"}})
    w = words(c)
    assert (w["Word"], w["points"], w["lower_is_better"]) == ("FEV1", "L", False)
    assert w["axis"] == "FEV1 (0–10)"  # range still from scales: unless outcomes gives one
    c = cfg(outcomes={"pain_score": {"label": "FEV1", "unit": "L", "range": {"min": 0, "max": 80}}})
    assert words(c)["axis"] == "FEV1 (0–80)"


def test_mcid_from_outcomes_replaces_the_responder_thresholds():
    assert responder_thresholds(cfg(outcomes={"pain_score": {"mcid": 1.5}})) == (1.5, math.inf)
    assert responder_thresholds(cfg(outcomes={"pain_score": {"mcid": {"percent": 50}}})) == (
        math.inf, 50.0)
    assert responder_thresholds(cfg(models={"responders": {"min_points": 3}})) == (3.0, 30.0)


@pytest.mark.parametrize("unit, week, phrase", [
    ("weeks", 12.0, "week 12"), ("days", 2.0, "day 14"), ("hours", 4 / 168, "hour 4"),
    ("minutes", 30 / 10080, "minute 30"), ("months", 3 * 30.4375 / 7, "month 3"),
    ("years", 365.25 / 7, "year 1")])
def test_time_is_said_in_the_log_unit(unit, week, phrase):
    assert time_phrase(cfg(time_unit=unit), week) == phrase


def test_report_unit_overrides_the_log_unit():
    assert time_phrase(cfg(time_unit="days", report_unit="weeks"), 2.0) == "week 2"


def test_design_sentence_follows_design():
    assert design_sentence(cfg()) == OBSERVATIONAL
    assert design_sentence(cfg(design="randomised")) == RANDOMISED
    assert "randomised" in RANDOMISED and "not randomised" not in RANDOMISED


def test_funnel_flags_follow_the_direction_of_improvement():
    from analysis.report.sections.benchmarking import better_side, level_words

    assert level_words("below 95% limit") == "more improvement than the network (below the 95% limit)"
    assert level_words("below 95% limit", lower_is_better=False) == (
        "less improvement than the network (below the 95% limit)")
    assert level_words("above 99.8% limit", lower_is_better=False).startswith("more improvement")
    assert better_side(words(cfg())) == "< 0 = less pain"
    assert better_side(words(cfg(outcomes={"pain_score": {"label": "FEV1", "better": "higher"}}))) == (
        "> 0 = higher FEV1")
