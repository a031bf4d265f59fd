"""The pain MMRM endpoint: dispatch from the config, tables, fallback chain, missingness patterns,
and the delta-adjusted tipping point (fev_data of R's mmrm package, tests/reference/mmrm/)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import PainModelOptions
from analysis.endpoints.pain import fit_pain_model
from analysis.endpoints.pain_mmrm import (
    fallback_chain,
    fit_pain_mmrm,
    has_scheduled_visits,
    missingness_patterns,
    resolve_analysis,
)
from analysis.endpoints.pain_tipping import tipping_point
from analysis.models.mmrm import fit_mmrm

REF = Path(__file__).parents[1] / "reference" / "mmrm"


@pytest.fixture(scope="module")
def fev():
    d = pd.read_csv(REF / "fev_data.csv")
    return d.rename(columns={"USUBJID": "patient_id", "ARMCD": "arm", "VISITN": "week"})


@pytest.fixture(scope="module")
def opts():
    return PainModelOptions(outcome="FEV1", covariates=["RACE", "SEX"], analysis="mmrm")


@pytest.fixture(scope="module")
def result(fev, opts):
    return fit_pain_model(fev, opts, control="PBO")


def test_dispatch_and_tables_equal_the_engine(fev, result):
    assert result.analysis == "mmrm" and result.health.estimated
    assert result.formula == "arm*visit + RACE + SEX"
    direct = fit_mmrm(fev.assign(v=fev["week"].astype(str)), "FEV1", "arm*v + RACE + SEX", "v",
                      "patient_id", reference={"arm": "PBO"})
    ours = result.differences.set_index("week")
    theirs = direct.lsmean_diffs("arm", "PBO", by="v").set_index("v")
    for week in (1, 2, 3, 4):
        for col in ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high"):
            assert ours.loc[float(week), col] == pytest.approx(theirs.loc[str(week), col], rel=1e-10)
    assert list(result.lsmeans["arm"].unique()) == ["PBO", "TRT"]
    assert len(result.lsmeans) == 8
    assert list(result.covariance_matrix.index) == ["week 1", "week 2", "week 3", "week 4"]
    assert np.allclose(np.diag(result.correlation_matrix), 1.0)


def test_differences_match_sas(fev):
    # SAS PROC MIXED, type=un, REML, ddfm=satterthwaite (sas_log_reml.txt:225, 238, 247, 252:
    # TRT - PBO at VIS2, VIS3, VIS4, VIS1), the same model through the endpoint's options. Our
    # optimum is SAS's to 0.005 SE (test_mmrm_sas_us.py explains), so the estimate is held to
    # 0.01 SE, the SE to 1e-3 relative and the df to SAS's printed integer.
    opts = PainModelOptions(outcome="FEV1", covariates=["RACE", "SEX"], analysis="mmrm",
                            df="satterthwaite")
    result = fit_pain_model(fev, opts, control="PBO")
    listing = (REF / "sas_log_reml.txt").read_text().split("\n")   # form feeds stay in lines
    for week, lineno in [(2, 225), (3, 238), (4, 247), (1, 252)]:
        fields = listing[lineno - 1].split()
        assert (fields[1], fields[2], fields[4]) == (f"VIS{week}", "TRT", "PBO")
        est, se, df = float(fields[5]), float(fields[6]), float(fields[7])
        row = result.difference_at("TRT", week)
        assert abs(row.estimate - est) < 0.01 * se
        assert row.std_error == pytest.approx(se, rel=1e-3)
        assert abs(row.df - df) <= 0.5 + 1e-3 * df


def test_missingness_patterns_count_every_patient(fev, result):
    pats = result.patterns
    assert pats["n_patients"].sum() == fev["patient_id"].nunique() == 200
    complete = pats[pats["pattern"] == "XXXX"].set_index("arm")["n_patients"]
    per_patient = fev.dropna(subset=["FEV1"]).groupby("patient_id").size()
    arms = fev.drop_duplicates("patient_id").set_index("patient_id")["arm"]
    assert complete.sum() == (per_patient == 4).sum()
    assert complete["TRT"] == ((per_patient == 4) & (arms[per_patient.index] == "TRT")).sum()
    assert pats.set_index(["pattern", "arm"]).loc[("XXX.", "PBO"), "monotone_dropout"]
    assert not pats.set_index(["pattern", "arm"]).loc[("XX.X", "PBO"), "monotone_dropout"]


def test_patterns_with_no_observed_visit():
    d = pd.DataFrame({"patient_id": [1, 1, 2, 2], "arm": ["a", "a", "b", "b"],
                      "week": [2.0, 4.0, 2.0, 4.0], "y": [1.0, np.nan, np.nan, np.nan]})
    tab = missingness_patterns(d, "y", "arm", "week", "patient_id", [2.0, 4.0])
    assert set(zip(tab["pattern"], tab["arm"])) == {("X.", "a"), ("..", "b")}


def test_resolve_analysis(fev):
    trend = PainModelOptions()
    assert has_scheduled_visits(fev)
    assert resolve_analysis(trend, "randomised", fev) == "mmrm"
    assert resolve_analysis(trend, "observational", fev) == "trend"
    assert resolve_analysis(PainModelOptions(analysis="trend"), "randomised", fev) == "trend"
    spread = fev.assign(week=fev["week"] + np.arange(len(fev)) * 0.01)   # no common schedule
    assert resolve_analysis(trend, "randomised", spread) == "trend"


def test_fallback_chain_is_reported(fev):
    assert fallback_chain("us") == ("us", "toeph", "ar1h")
    assert fallback_chain("cs") == ("cs",)
    # no patient seen at both weeks 1 and 4: neither us (UN(4,1)) nor toeph (TOEPH(3), lag 3)
    # is estimable, ar1h is
    cut = fev[~((fev["week"] == 4) & fev["patient_id"].isin(
        fev.loc[(fev["week"] == 1) & fev["FEV1"].notna(), "patient_id"]))]
    res = fit_pain_mmrm(cut, PainModelOptions(outcome="FEV1", analysis="mmrm"), control="PBO")
    assert res.health.estimated and res.covariance == "ar1h"
    us, toeph = res.health.fallback_steps
    assert us.startswith("us: us: no subject is observed at both visits of 4/1")
    assert toeph.startswith("toeph: toeph: no subject's observed visits inform TOEPH(3)")


def test_not_estimable_without_control(fev):
    res = fit_pain_mmrm(fev, PainModelOptions(outcome="FEV1", analysis="mmrm"), control="nobody")
    assert not res.health.estimated and "control arm 'nobody'" in res.health.status


@pytest.fixture(scope="module")
def tipping(result):
    return tipping_point(result, [0.0, 2.0, 6.0], n_imputations=30, seed=11, better="higher")


def test_tipping_point_at_delta_zero_is_the_mmrm_under_mar(result, tipping):
    mar = result.difference_at("TRT", 4)
    row = tipping[tipping["delta"] == 0].iloc[0]
    assert abs(row.estimate - mar.estimate) < 0.25 * mar.std_error
    assert row.std_error == pytest.approx(mar.std_error, rel=0.15)


def test_tipping_point_shifts_against_the_active_arm(result, tipping):
    est = tipping.set_index("delta")["estimate"]
    shifted = tipping["n_patients_shifted"].iloc[0]
    assert shifted > 0
    # a shift of delta in every shifted TRT patient moves the ANCOVA estimate by about
    # delta x (shifted / n_TRT) (least squares with balanced covariates), downwards for 'higher'
    n_trt = result.fit.data.drop_duplicates("patient_id")["arm"].eq("TRT").sum()
    assert est[2.0] - est[0.0] == pytest.approx(-2.0 * shifted / n_trt, rel=0.2)
    assert est[6.0] < est[2.0] < est[0.0]


def test_tipping_point_is_seeded(result, tipping):
    again = tipping_point(result, [0.0, 2.0, 6.0], n_imputations=30, seed=11, better="higher")
    pd.testing.assert_frame_equal(again, tipping)
    other = tipping_point(result, [0.0], n_imputations=30, seed=12, better="higher")
    assert other["estimate"].iloc[0] != tipping["estimate"].iloc[0]


def test_unscheduled_times_are_not_estimable_with_the_reason(fev):
    spread = fev.assign(week=fev["week"] + np.arange(len(fev)) * 0.01)
    res = fit_pain_mmrm(spread, PainModelOptions(outcome="FEV1", analysis="mmrm"), control="PBO")
    assert not res.health.estimated
    assert "the MMRM needs scheduled visits" in res.health.status and "537 distinct times" in res.health.status
