"""models.pain MMRM keys: defaults and refused combinations, each naming the key."""

import pytest

from analysis.config import parse_config
from analysis.errors import ConfigError

MINIMAL = {"name": "t", "data": "log.csv"}


def _pain(**pain):
    return {**MINIMAL, "models": {"pain": pain}}


def test_defaults():
    pain = parse_config(MINIMAL, source="run.yaml").models.pain
    assert pain.analysis is None            # resolved per run: trend, or mmrm for a randomised trial
    assert (pain.covariance, pain.df, pain.vcov, pain.method) == ("us", "kenward-roger", "model", "reml")
    assert pain.sensitivity.delta == [] and pain.sensitivity.imputations == 50


def test_full_mmrm_section_parses():
    cfg = parse_config(_pain(analysis="mmrm", covariance="toeph", df="satterthwaite",
                             method="ml", sensitivity={"delta": [0, 0.5, 1]}), source="run.yaml")
    assert cfg.models.pain.sensitivity.delta == [0, 0.5, 1]


@pytest.mark.parametrize("pain, expected", [
    ({"analysis": "anova"}, "models.pain.analysis"),
    ({"covariance": "un"}, "models.pain.covariance"),
    ({"df": "kr"}, "models.pain.df"),
    ({"method": "ml"}, "kenward-roger needs method: reml"),
    ({"vcov": "empirical"}, "df: kenward-roger is for vcov: model"),
    ({"analysis": "mmrm", "formula": "pain_score ~ week"}, "formula is the trend model's"),
    ({"sensitivity": {"delta": [1], "imputations": 1}}, "models.pain.sensitivity.imputations"),
    ({"sensitivity": {"deltas": [1]}}, "unknown key 'models.pain.sensitivity.deltas'"),
])
def test_bad_mmrm_options_name_the_key(pain, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(_pain(**pain), source="run.yaml")
    assert expected in str(err.value) and str(err.value).startswith("run.yaml")
