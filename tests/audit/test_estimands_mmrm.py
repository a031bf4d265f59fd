"""Pain claims graded on the MMRM when models.pain.analysis is mmrm (fev_data, tests/reference/mmrm/)."""

from pathlib import Path

import pandas as pd
import pytest

from analysis.audit.claims import parse_claims
from analysis.audit.estimands import estimate_pain
from analysis.audit.estimate import NotTestable
from analysis.config import PainModelOptions
from analysis.endpoints.pain import fit_pain_model

REF = Path(__file__).parents[1] / "reference" / "mmrm"
CLAIM = {"id": "c1", "text": "FEV1 up at week 4", "source": "test", "outcome": "pain",
         "intervention": "TRT", "comparator": "PBO", "measure": "mean_difference", "value": 4.0,
         "direction": "increase", "week": 4}


def _claim(**kw):
    return parse_claims({"claims": [{**CLAIM, **kw}]}).claims[0]


@pytest.fixture(scope="module")
def result():
    d = pd.read_csv(REF / "fev_data.csv").rename(
        columns={"USUBJID": "patient_id", "ARMCD": "arm", "VISITN": "week"})
    return fit_pain_model(d, PainModelOptions(outcome="FEV1", covariates=["RACE", "SEX"],
                                              analysis="mmrm"), control="PBO")


def test_claim_at_week_uses_the_mmrm_contrast_at_that_visit(result):
    est = estimate_pain(_claim(), result, {"TRT": 100, "PBO": 100})
    row = result.difference_at("TRT", 4)
    assert (est.estimate, est.conf_low, est.conf_high, est.df) == (
        row.estimate, row.conf_low, row.conf_high, row.df)
    assert "at week 4, TRT vs PBO (MMRM LS-means, us covariance, Kenward-Roger df)" in est.estimand_text


@pytest.mark.parametrize("kw, message", [
    ({"week": 3.5}, "week 3.5 is not a scheduled visit of the pain MMRM (visits: 1, 2, 3, 4)"),
    ({"week": None, "window": [1, 4]}, "not a change over a window or before/after"),
    ({"comparator": "baseline"}, "not a change over a window or before/after"),
    ({"comparator": "XYZ"}, "compares each arm with 'PBO', not with 'XYZ'"),
])
def test_not_testable_on_the_mmrm_says_why(result, kw, message):
    with pytest.raises(NotTestable, match=message.replace("(", r"\(").replace(")", r"\)")):
        estimate_pain(_claim(**kw), result, {"TRT": 100, "PBO": 100})
