"""Unstructured MMRM on fev_data vs R: nlme::gls + emmeans + clubSandwich.

Numbers from tests/reference/mmrm/r_mmrm_nlme.json, written by r_mmrm_nlme.R (beside it):
gls(FEV1 ~ ARMCD * AVISIT + RACE + SEX, correlation = corSymm(form = ~ VISITN | USUBJID),
weights = varIdent(form = ~ 1 | AVISIT), method = "REML"); emmeans(fit, ~ ARMCD | AVISIT);
vcovCR(fit, cluster = USUBJID, type = "CR0" / "CR2"). nlme's optimum is ours to ~3e-5 of the
variances (its -2 log-likelihood is higher than ours by 2e-7), so estimates are compared to
1e-3 of their SE and SEs to 1e-4 relative. emmeans' df for gls are "appx-satterthwaite" (numerical
derivatives of nlme's apVar), so df are compared to 2e-2 only; SAS is the df reference
(test_mmrm_sas_us.py).
"""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.models.mmrm import fit_mmrm
from analysis.models.mmrm_lsmeans import lsmean_rows
from mmrm_reference import REF, fev_data

R = json.loads((REF / "r_mmrm_nlme.json").read_text())
VISITS = ["VIS1", "VIS2", "VIS3", "VIS4"]
REFERENCE = dict(ARMCD="PBO", AVISIT="VIS1", RACE="Asian", SEX="Male")


def _ours(r_name):
    # R's names: ARMCDTRT, ARMCDTRT:AVISITVIS2, RACEWhite ... -> ARMCD[TRT], ...
    out = []
    for part in r_name.split(":"):
        for var in ("ARMCD", "AVISIT", "RACE", "SEX"):
            if part.startswith(var):
                part = f"{var}[{part[len(var):]}]"
        out.append(part)
    return ":".join(out)


def _fit(**kw):
    return fit_mmrm(fev_data(), "FEV1", "ARMCD*AVISIT + RACE + SEX", "AVISIT", "USUBJID",
                    reference=REFERENCE, visit_levels=VISITS, **kw)


@pytest.fixture(scope="module")
def fit():
    return _fit(df="satterthwaite")


@pytest.fixture(scope="module")
def order(fit):
    return [fit.columns.index(_ours(n)) for n in R["coef_names"]]


def test_coefficients_and_vcov(fit, order):
    se_r = np.sqrt(np.diag(R["vcov"]))
    assert np.all(np.abs(fit.beta[order] - R["coef"]) <= 1e-3 * se_r)          # coef(fit)
    assert np.allclose(np.sqrt(np.diag(fit.vcov))[order], se_r, rtol=1e-4, atol=0)  # vcov(fit)
    assert fit.n_obs == R["n_obs"]


def test_covariance_and_loglik(fit):
    sigma = np.array(R["sigma"])                       # getVarCov(fit, individual = <4 visits>)
    scale = np.sqrt(np.outer(np.diag(sigma), np.diag(sigma)))
    assert np.max(np.abs(fit.sigma - sigma) / scale) < 1e-4
    # logLik(fit): nlme's REML log-likelihood is PROC MIXED's, no log|X'X| term
    assert abs(fit.neg2_loglik + 2 * R["logLik_reml"]) < 1e-6 * fit.neg2_loglik
    assert fit.neg2_loglik <= -2 * R["logLik_reml"] + 1e-7


@pytest.mark.parametrize("weights, key", [("equal", "lsmeans_equal"),
                                          ("proportional", "lsmeans_proportional")])
def test_lsmeans(fit, weights, key):
    ref = pd.DataFrame(R[key])                         # summary(emmeans(...))
    ours = fit.lsmeans(("AVISIT", "ARMCD"), weights=weights)
    m = ours.merge(ref, on=["AVISIT", "ARMCD"], suffixes=("", "_r"))
    assert len(m) == 8
    assert np.all(np.abs(m.estimate - m.estimate_r) <= 1e-3 * m.SE)
    assert np.allclose(m.std_error, m.SE, rtol=1e-4, atol=0)
    assert np.allclose(m.df, m.df_r, rtol=2e-2)


def test_proportional_weights_are_observed_frequencies(fit, order):
    # emm_pr@linfct: the l vectors emmeans used with the RACE x SEX frequencies of the fitted rows
    grid, L = lsmean_rows(fit, ("ARMCD", "AVISIT"), weights="proportional")
    linfct = np.array(R["lsmeans_proportional_linfct"])
    emm_order = sorted(range(len(grid)), key=lambda j: (grid.AVISIT[j], grid.ARMCD[j]))
    assert np.allclose(L[emm_order][:, order], linfct, atol=1e-12)


def test_differences_vs_control(fit):
    ref = pd.DataFrame(R["diff_equal"])                # contrast(emm, "trt.vs.ctrl")
    m = fit.lsmean_diffs("ARMCD", "PBO", by="AVISIT").merge(ref, on="AVISIT", suffixes=("", "_r"))
    assert len(m) == 4
    assert np.all(np.abs(m.estimate - m.estimate_r) <= 1e-3 * m.SE)
    assert np.allclose(m.std_error, m.SE, rtol=1e-4, atol=0)
    assert np.allclose(m.df, m.df_r, rtol=2e-2)


@pytest.mark.parametrize("vcov, key", [("empirical", "vcov_cr0"), ("cr2", "vcov_cr2")])
def test_robust_vcov(order, vcov, key):
    fit = _fit(df="residual", vcov=vcov)
    ref = np.array(R[key])                             # vcovCR(fit, type = "CR0" / "CR2")
    ours = fit.vcov[np.ix_(order, order)]
    assert np.allclose(np.sqrt(np.diag(ours)), np.sqrt(np.diag(ref)), rtol=1e-4, atol=0)
    assert np.max(np.abs(ours - ref)) < 1e-4 * np.max(np.abs(ref))
    model = _fit(df="residual").vcov[np.ix_(order, order)]
    assert np.max(np.abs(np.sqrt(np.diag(model)) / np.sqrt(np.diag(ref)) - 1)) > 1e-3
