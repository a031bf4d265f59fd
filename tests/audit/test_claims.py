"""analysis.audit.claims: the claims file model (unknown keys by name and file, consistency rules),
the shipped clinic pages file, and the patient table a bundle counts arms with."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.audit.claims import (
    ResultsBundle,
    fit_claim_models,
    load_claims,
    parse_claims,
    patient_table,
    result_key,
)
from analysis.config import parse_config
from analysis.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[2]
CLINIC_PAGES = ROOT / "config" / "claims" / "clinic_pages.yaml"
CLAIM = {"id": "dtm-episodes", "text": "62% fewer episodes", "source": "a page",
         "outcome": "episodes", "intervention": "deep_tissue_massage",
         "comparator": "usual_care", "measure": "percent_reduction", "value": 62}


def one(**changes):
    item = {k: v for k, v in {**CLAIM, **changes}.items() if v is not None}
    return parse_claims({"claims": [item]}, source="c.yaml").claims[0]


def test_shipped_clinic_pages_file():
    cf = load_claims(CLINIC_PAGES)
    assert [c.id for c in cf.claims] == ["dtm-episodes", "dtm-strength", "foot-massage-pain",
                                         "orthotics-overpronated-pain", "taping-pain"]
    by_id = {c.id: c for c in cf.claims}
    dtm = by_id["dtm-episodes"]  # no week: resolved to the end of the arms' follow-up
    assert dtm.value == 62 and dtm.weeks[0] == 0.0 and math.isnan(dtm.weeks[1])
    assert by_id["dtm-strength"].uncontrolled and by_id["dtm-strength"].value == 80
    assert by_id["orthotics-overpronated-pain"].subgroup == "overpronated"
    assert all(c.source.startswith("clinic web page") for c in cf.claims)
    assert cf.multiplicity.method == "holm" and not cf.multiplicity.verdicts_on_adjusted


def test_defaults():
    c = one()
    assert c.weeks[0] == 0.0 and math.isnan(c.weeks[1])  # resolved by ResultsBundle.frame
    assert one(week=12).weeks == (0.0, 12.0)
    assert c.claimed_direction == "decrease" and not c.uncontrolled
    assert one(measure="direction", value=None, outcome="strength").claimed_direction == "increase"
    assert one(window=[4, 12]).weeks == (4.0, 12.0)
    assert parse_claims({"claims": [CLAIM]}).multiplicity.method == "holm"


@pytest.mark.parametrize("raw, expected", [
    ({"claims": [{**CLAIM, "valu": 62}]},
     "c.yaml: unknown key 'claims.0.valu' (id 'dtm-episodes')"),
    ({"claims": [CLAIM], "multiplicty": {}}, "c.yaml: unknown key 'multiplicty'"),
    ({"claims": [CLAIM], "multiplicity": {"method": "holm", "adjust": True}},
     "unknown key 'multiplicity.adjust'"),
    ({"claims": [{k: v for k, v in CLAIM.items() if k != "source"}]},
     "missing required key 'claims.0.source'"),
    ({"claims": []}, "claims"),
    ({"claims": [CLAIM, CLAIM]}, "repeated: ['dtm-episodes']"),
    ({"claims": [{**CLAIM, "measure": "direction"}]}, "a `direction` claim has no value"),
    ({"claims": [{**CLAIM, "value": None}]}, "needs the claimed `value`"),
    ({"claims": [{**CLAIM, "value": -62}]}, "positive number"),
    ({"claims": [{**CLAIM, "value": 120}]}, "must be below 100"),
    ({"claims": [{**CLAIM, "direction": "increase"}]}, "contradicts measure"),
    ({"claims": [{**CLAIM, "outcome": "pain"}]}, "cannot be tested on outcome 'pain'"),
    ({"claims": [{**CLAIM, "week": 12, "window": [0, 12]}]}, "either `week` or `window`"),
    ({"claims": [{**CLAIM, "window": [12, 4]}]}, "0 <= start < end"),
    ({"claims": [{**CLAIM, "comparator": "baseline"}]}, "not 'episodes'"),
    ({"claims": [{**CLAIM, "comparator": "deep_tissue_massage"}]}, "the same arm"),
    ({"claims": [{**CLAIM, "subgroup": "flat_feet"}]}, "subgroup"),
    ({"claims": [{**CLAIM, "outcome": "sleep"}]}, "outcome"),
    ({"claims": [CLAIM], "multiplicity": {"method": "none", "verdicts_on_adjusted": True}},
     "needs method: holm"),
])
def test_bad_claims_name_the_key_and_the_file(raw, expected):
    with pytest.raises(ConfigError) as err:
        parse_claims(raw, source="c.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("c.yaml")


def test_not_a_mapping_and_unsafe_yaml(tmp_path):
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        parse_claims([CLAIM], source="c.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("claims: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_claims(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_claims(tmp_path / "missing.yaml")


def test_result_key_routes_each_claim():
    assert result_key(one()) == ("episodes", None, None)
    assert result_key(one(outcome="pain", measure="direction", value=None,
                          subgroup="overpronated")) == ("moderator", None, None)
    assert result_key(one(outcome="strength", measure="percent_increase", value=10,
                          subgroup="overpronated")) == ("strength", "overpronated", None)
    assert result_key(one(outcome="responders", measure="responder_rate", value=10,
                          week=8)) == ("responders", None, 8.0)


def test_patient_table_and_arm_counts():
    visits = pd.DataFrame({
        "patient_id": ["a", "a", "b", "c", "d"],
        "arm": pd.Categorical(["x", "x", "x", "y", "y"]),
        "foot_posture_index": [7, 7, 2, np.nan, 5],
    })
    patients = patient_table(visits, overpronated_above=5.0)
    assert list(patients["patient_id"]) == ["a", "b", "c", "d"]
    # 5 is not above the threshold; a missing index is in neither subgroup
    np.testing.assert_array_equal(patients["overpronated"], [1.0, 0.0, np.nan, 0.0])
    bundle = ResultsBundle(patients, control="y")
    assert bundle.arm_counts() == {"x": 2, "y": 2}
    assert bundle.arm_counts("overpronated") == {"x": 1}
    assert bundle.arm_counts("not_overpronated") == {"x": 1, "y": 1}


def test_fit_claim_models_needs_arms():
    cfg = parse_config({"name": "t", "data": "unused.csv"})
    with pytest.raises(InputError, match="assign_arms"):
        fit_claim_models(pd.DataFrame({"patient_id": ["a"]}), parse_claims({"claims": [CLAIM]}),
                         cfg)


def test_fit_claim_models_reuses_fitted_results():
    visits = pd.DataFrame({"patient_id": ["a", "b"], "arm": ["usual_care", "deep_tissue_massage"],
                           "foot_posture_index": [1, 8]})
    cfg = parse_config({"name": "t", "data": "unused.csv"})
    already = object()
    bundle = fit_claim_models(visits, parse_claims({"claims": [CLAIM]}), cfg,
                              fitted={"episodes": already})
    assert bundle.results == {("episodes", None, None): already}  # nothing refitted


def test_weeks_is_the_window_key_spelled_as_the_issue_does():
    # `weeks: [from, to]` and `window: [from, to]` are one key (docs/claims.md)
    by_weeks = parse_claims({"claims": [{**CLAIM, "weeks": [0, 4]}]}).claims[0]
    by_window = parse_claims({"claims": [{**CLAIM, "window": [0, 4]}]}).claims[0]
    assert by_weeks.window == by_window.window == (0.0, 4.0)
    assert by_weeks.weeks == (0.0, 4.0)
    with pytest.raises(ConfigError, match="window"):
        parse_claims({"claims": [{**CLAIM, "weeks": [4, 0]}]})
