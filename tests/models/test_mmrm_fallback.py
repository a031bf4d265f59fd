"""MMRM fallback chain, "not estimable" outcomes, input validation, and parameter recovery.

The chain tests use fev_data (tests/reference/mmrm) edited so that ``us`` cannot be fitted; the
recovery tests simulate from a known covariance (a correctness check, not a regression check).
"""

import numpy as np
import pandas as pd
import pytest

from analysis.errors import ConfigError
from analysis.models.mmrm import NotEstimable, fit_mmrm, fit_mmrm_chain
from analysis.models.mmrm_covariance import CovarianceStructure
from mmrm_reference import fev_data

VISITS = ["VIS1", "VIS2", "VIS3", "VIS4"]


def _no_vis1_with_vis4():
    data = fev_data().dropna(subset=["FEV1"])
    has_vis1 = set(data.loc[data.AVISIT == "VIS1", "USUBJID"])
    return data[~((data.AVISIT == "VIS4") & data.USUBJID.isin(has_vis1))]


def test_chain_falls_back_from_us_and_toeph_to_ar1h():
    data = _no_vis1_with_vis4()    # no subject is seen at VIS1 and VIS4: UN(4,1), TOEPH(3) unknown
    res = fit_mmrm_chain(data, "FEV1", "ARMCD*AVISIT", "AVISIT", "USUBJID", df="satterthwaite",
                         reference={"ARMCD": "PBO"}, visit_levels=VISITS)
    assert res.estimable and res.covariance == "ar1h"
    steps = res.health["fallback"]
    assert [s["covariance"] for s in steps] == ["us", "toeph", "ar1h"]
    assert [s["status"] for s in steps] == ["failed", "failed", "fitted"]
    assert "VIS4/VIS1" in steps[0]["reason"]   # UN(4,1)
    assert "TOEPH(3)" in steps[1]["reason"]
    assert res.health["converged"]


def test_nothing_fits_is_not_estimable_with_reasons():
    data = fev_data().dropna(subset=["FEV1"]).groupby("USUBJID").head(1)   # one visit each
    res = fit_mmrm_chain(data, "FEV1", "ARMCD", "AVISIT", "USUBJID", visit_levels=VISITS)
    assert not res.estimable
    assert res.status.startswith("not estimable: ")
    assert [s["status"] for s in res.fallback] == ["failed"] * 3
    assert "ARH(1)" in res.fallback[2]["reason"]


def test_more_parameters_than_information():
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"id": np.repeat(["a", "b", "c"], 4), "visit": VISITS * 3,
                         "y": rng.normal(size=12), "arm": np.repeat(["x", "y", "x"], 4)})
    with pytest.raises(NotEstimable, match="10 covariance parameters and 2 fixed effects but only 12"):
        fit_mmrm(data, "y", "arm", "visit", "id", covariance="us")


def test_visit_with_one_subject():
    data = fev_data().dropna(subset=["FEV1"])
    complete = data.USUBJID.value_counts().loc[lambda c: c == 4].index[0]   # seen at all visits
    keep = (data.AVISIT != "VIS4") | (data.USUBJID == complete)
    with pytest.raises(NotEstimable, match="VIS4 have fewer than 2 subjects"):
        fit_mmrm(data[keep], "FEV1", "ARMCD", "AVISIT", "USUBJID", covariance="us")


@pytest.mark.parametrize("kwargs, message", [
    (dict(covariance="un"), "covariance must be one of"),
    (dict(method="reml2"), "method must be"),
    (dict(df="kr"), "df must be one of"),
    (dict(vcov="hc3"), "vcov must be one of"),
    (dict(method="ml"), "Kenward-Roger needs method='reml'"),
    (dict(vcov="empirical"), "Kenward-Roger adjusts the model-based"),
    (dict(df="satterthwaite", vcov="cr2"), "Satterthwaite df here are for vcov='model'"),
    (dict(reference={"ARMCD": "placebo"}), "reference level 'placebo' of 'ARMCD'"),
    (dict(fixed="ARMCD:AVISIT"), "needs its lower-order term ARMCD"),
    (dict(fixed="ARMCD + DOSE"), "model variables not in the data: DOSE"),
    (dict(visit_levels=["VIS1", "VIS2"]), "are not in visit_levels"),
    (dict(alpha=1.5), "alpha must be in"),
])
def test_bad_options_are_refused(kwargs, message):
    args = dict(fixed="ARMCD*AVISIT")
    args.update(kwargs)
    fixed = args.pop("fixed")
    with pytest.raises(ConfigError, match=message):
        fit_mmrm(fev_data(), "FEV1", fixed, "AVISIT", "USUBJID", **args)


def test_duplicate_visit_rows_are_refused():
    data = fev_data()
    with pytest.raises(ConfigError, match="two rows for the same visit"):
        fit_mmrm(pd.concat([data, data.head(3)]), "FEV1", "ARMCD", "AVISIT", "USUBJID")


def _simulate(name, theta, n=600, seed=11):
    rng = np.random.default_rng(seed)
    sigma = CovarianceStructure(name, 4).sigma(np.array(theta))
    e = rng.multivariate_normal(np.zeros(4), sigma, size=n)
    arm = rng.integers(0, 2, n)
    y = 10 + np.array([0, 1, 2, 3]) + 2 * arm[:, None] + e
    data = pd.DataFrame({"id": np.repeat(np.arange(n).astype(str), 4), "visit": VISITS * n,
                         "arm": np.repeat(np.where(arm, "T", "P"), 4), "y": y.ravel()})
    drop = rng.random(len(data)) < 0.15   # missing completely at random
    return data[~drop]


@pytest.mark.parametrize("name, theta", [
    ("adh", [40.0, 25.0, 15.0, 90.0, 0.7, 0.2, 0.4]),
    ("ad", [0.6, 0.3, 0.5, 30.0]),
    ("toep", [12.0, 5.0, -3.0, 30.0]),
    ("csh", [40.0, 25.0, 15.0, 90.0, 0.3]),
])
def test_parameter_recovery(name, theta):
    # Parameter recovery: each estimate within 4 SE of the truth it was simulated from.
    fit = fit_mmrm(_simulate(name, theta), "y", "arm + visit", "visit", "id", covariance=name,
                   reference={"arm": "P", "visit": "VIS1"})
    est = fit.cov_params()
    assert np.all(np.abs(est.estimate - theta) < 4 * est.std_error), est
    arm = fit.coef_table().set_index("term").loc["arm[T]"]
    assert abs(arm.estimate - 2) < 4 * arm.std_error
