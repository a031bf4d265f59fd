"""What a verdict rests on, in words, and counts with their nouns (docs/wording.md)."""

import pytest

from analysis.report.numbers import count_of
from analysis.report.wording import rests_on

LMM = "linear mixed model pain_score ~ week * arm, random (1 + week | patient_id), REML, Satterthwaite df, engine pls"


@pytest.mark.parametrize("analysis, words", [
    ("patient-level: negative binomial GLMM, random intercept per patient, Laplace ML, adjusted for "
     "baseline rate, log(exposure) offset",
     "each patient's episode counts over the claim's weeks, allowing for patients who have more "
     "episodes than others"),
    ("population-averaged: negative binomial GEE, exchangeable working correlation, robust SE",
     "episode rates averaged over all patients of each treatment"),
    (LMM, "each patient's scores over time, following each patient's own course"),
    (LMM.replace("pain_score ~ week * arm", "pain_score ~ week * arm * C(overpronated)"),
     "each patient's scores over time, following each patient's own course in overpronated and other feet"),
    (LMM.replace("patient_id)", "patient_id) + (1 | clinic_id)"),
     "each patient's scores over time, following each patient's own course and each clinic's own level"),
    ("linear mixed model log(strength) ~ week * arm, random (1 + week | patient_id), REML",
     "each patient's strength measurements over time, compared as percent changes"),
    ("GEE fallback pain_score ~ week * arm (exchangeable, robust SE, normal intervals) after the mixed "
     "model failed", "the average scores of each treatment over time (a simpler back-up analysis: the "
                     "first model could not be fitted)"),
    ("difference of LS-means at visit 4 (MMRM LS-means, us covariance, Kenward-Roger df)",
     "the scores at each scheduled visit, compared visit by visit"),
    ("something else", "the data of each treatment"),
    (None, ""),
])
def test_rests_on_follows_the_rules_table(analysis, words):
    assert rests_on(analysis) == words


def test_rests_on_words_are_free_of_jargon():
    for analysis in (LMM, "patient-level: GLMM", "population-averaged: GEE", "GEE fallback x"):
        text = rests_on(analysis)
        assert "_" not in text and "REML" not in text and "GLMM" not in text and "GEE" not in text


@pytest.mark.parametrize("n, noun, said", [
    (1200, "patient", "1,200 patients"), (1, "clinic", "1 clinic"), (6, "clinic", "6 clinics"),
    (None, "clinic", "a withheld number of clinics"), (float("nan"), "patient", "a withheld number of patients"),
])
def test_count_of(n, noun, said):
    assert count_of(n, noun) == said


def test_a_relabelled_count_is_named_by_its_word():
    # docs/wording.md, "Outcome pages"
    assert rests_on("negative-binomial GLMM (patient-level)", "seizures") == (
        "each patient's counts of seizures over the claim's weeks, allowing for patients who have "
        "more seizures than others")
    assert rests_on("GEE (population-averaged)", "seizures") == \
        "rates of seizures averaged over all patients of each treatment"
    assert rests_on("GEE (population-averaged)") == "episode rates averaged over all patients of each treatment"
