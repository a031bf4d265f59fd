"""The pain model on a real trial that came in by mapping alone (issue 12) equals R's lmer.

Data: mmrm's fev_data.csv (tests/reference/mmrm/, tests/reference/README.md), read through
config/examples/fev_labelled_visits.yaml (NA tokens, labelled visits in months, covariates) and
through a wide version of the same file built here (reshape:). Reference:
tests/reference/r_mapping_lmm.json from tests/reference/r_mapping_lmm.R (R 4.2.2, lme4 1.1-31,
lmerTest 3.1-3, REML, Satterthwaite df), which builds the long table independently in R.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.config import PainModelOptions, load_config, parse_config
from analysis.endpoints.pain import fit_pain_model
from analysis.intake.arms import assign_arms
from analysis.intake.validate import validate_log

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT / "tests" / "reference"
R = json.loads((REF / "r_mapping_lmm.json").read_text())
EXAMPLE = ROOT / "config" / "examples" / "fev_labelled_visits.yaml"


def visits_from(cfg):
    return assign_arms(validate_log(cfg).data, cfg.control).data


def wide_visits(tmp_path):
    """The same trial, one row per patient (FEV1_VIS1..4), read back with reshape:."""
    long = pd.read_csv(REF / "mmrm" / "fev_data.csv")
    wide = long.pivot(index="USUBJID", columns="AVISIT", values="FEV1")
    wide.columns = [f"FEV1_{v}" for v in wide.columns]
    keep = long.drop_duplicates("USUBJID").set_index("USUBJID")[["ARMCD", "SEX", "RACE", "FEV1_BL"]]
    keep["WEIGHT"] = 1.0  # a per-visit column in the long file; the example declares it
    path = tmp_path / "fev_wide.csv"
    keep.join(wide).reset_index().to_csv(path, index=False, na_rep="NA")
    raw = load_config(EXAMPLE).model_dump(exclude={"data", "columns", "drop"})
    raw.update(data=str(path), drop=[],
               columns={"patient_id": "USUBJID", "intervention": "ARMCD", "sex": "SEX"},
               outcomes={"pain_score": raw["outcomes"]["FEV1"]},
               reshape={"id_columns": ["USUBJID", "ARMCD"],
                        "patterns": [{"pattern": "FEV1_(?P<visit>VIS[0-9])", "into": "pain_score"}]})
    return visits_from(parse_config(raw))


# R's names -> ours (analysis.models.formulas.readable_term)
TERMS = {"(Intercept)": "(Intercept)", "week": "week", "armTRT": "arm[TRT]", "FEV1_BL": "FEV1_BL",
         "RACEBlack or African American": "RACE[Black or African American]",
         "RACEWhite": "RACE[White]", "week:armTRT": "week:arm[TRT]"}


@pytest.mark.parametrize("random, key", [("intercept", "fev_intercept_reml"),
                                         ("slope", "fev_slope_reml")])
@pytest.mark.parametrize("shape", ["long", "wide"])
def test_mapped_fev_pain_model_equals_lmer(shape, random, key, tmp_path):
    cfg = load_config(EXAMPLE)
    visits = visits_from(cfg) if shape == "long" else wide_visits(tmp_path)
    opts = PainModelOptions(covariates=["FEV1_BL", "RACE"], random=random)
    res = fit_pain_model(visits, opts, control="PBO")
    ref = R[key]
    assert res.health.status == "estimated" and res.n_obs == ref["n_obs"] == 537
    # r_mapping_lmm.json: <key>.REMLcrit (REMLcrit(m))
    assert res.fit.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-9)
    fe = res.fixed_effects.set_index("term")
    assert sorted(fe.index) == sorted(TERMS.values())
    for r_name, ours in TERMS.items():
        r = ref["fixef_satterthwaite"][r_name]  # summary(m, ddf = "Satterthwaite")$coefficients
        assert fe.loc[ours, "estimate"] == pytest.approx(r["Estimate"], rel=1e-6, abs=1e-6), ours
        assert fe.loc[ours, "std_error"] == pytest.approx(r["Std. Error"], rel=1e-6), ours
        assert fe.loc[ours, "df"] == pytest.approx(r["df"], rel=1e-6), ours
    vc = res.variance_components
    resid = vc[vc["group"] == "Residual"]["estimate"].item()
    assert resid == pytest.approx(ref["sigma"], rel=1e-6)  # sigma(m)
