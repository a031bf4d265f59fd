"""Unstructured MMRM on fev_data vs SAS PROC MIXED (REML and ML, Satterthwaite df).

See tests/reference/mmrm/sas_log_reml.txt and sas_log.txt for the source of every number
(PROC MIXED: CLASS RACE(ref='Asian') AVISIT(ref='VIS1') SEX(ref='Male') ARMCD(ref='PBO');
MODEL FEV1 = ARMCD AVISIT ARMCD*AVISIT RACE SEX / ddfm=satterthwaite; REPEATED AVISIT /
subject=USUBJID type=un; LSMEANS AVISIT*ARMCD / pdiff=all). Numbers are read from the listing
at the cited line; each is compared to 1e-4 relative (df to 1e-3) or to the digits SAS printed.

Two fits are tested. (1) Our optimum: SAS stops when its relative Hessian criterion
g'H^-1 g / |f| < 1e-8, which leaves it up to sqrt(0.5e-8 |f|) ~ 0.004 standard errors from the
optimum; ours has a lower -2 log-likelihood than SAS's (asserted) and agrees with nlme's
(test_mmrm_r_nlme.py), so its covariance parameters are held to max(1e-4 relative, 0.005 SE) and
its fixed effects to 0.005 SE. At that distance SEs and df differ from SAS's by up to 2e-4.
(2) Everything else (estimates, SEs, df, t, p, CIs, type 3 tests, LS-means, differences) is
computed at SAS's own printed covariance parameters (fixed_theta, as PARMS / NOITER would) and
held to 1e-4 relative, df to 1e-3 -- which tests the inference, not SAS's stopping point.
"""

import numpy as np
import pytest

from analysis.models.mmrm import fit_mmrm
from analysis.models.mmrm_lsmeans import lsmean_rows, type3_tests
from mmrm_reference import check, fev_data, line, tokens

REFERENCE = dict(ARMCD="PBO", AVISIT="VIS1", RACE="Asian", SEX="Male")
# SAS orders CLASS levels with ref= last: AVISIT VIS2 VIS3 VIS4 VIS1 (sas_log_reml.txt:23), and
# indexes the REPEATED (UN(i,j)) rows in that order.
SAS_VISITS = ["VIS2", "VIS3", "VIS4", "VIS1"]
MODEL = "ARMCD*AVISIT + RACE + SEX"

# listing line -> our column name ("Solution for Fixed Effects", reference rows are 0 in SAS)
FIXED_LINES = {167: "(Intercept)", 168: "ARMCD[TRT]", 170: "AVISIT[VIS2]", 171: "AVISIT[VIS3]",
               172: "AVISIT[VIS4]", 174: "ARMCD[TRT]:AVISIT[VIS2]",
               176: "ARMCD[TRT]:AVISIT[VIS3]", 178: "ARMCD[TRT]:AVISIT[VIS4]",
               182: "RACE[Black or African American]", 183: "RACE[White]", 185: "SEX[Female]"}


def _sas_theta(listing):
    # Covariance Parameter Estimates, UN(1,1)..UN(4,4): lines 129-138 of both listings
    return [float(line(listing, n).split()[2]) for n in range(129, 139)]


def _fit(method, fixed_theta=None):
    return fit_mmrm(fev_data(), "FEV1", MODEL, "AVISIT", "USUBJID", covariance="us",
                    method=method, df="satterthwaite", reference=REFERENCE,
                    visit_levels=SAS_VISITS, fixed_theta=fixed_theta)


@pytest.fixture(scope="module")
def reml_opt():
    return _fit("reml")


@pytest.fixture(scope="module")
def ml_opt():
    return _fit("ml")


@pytest.fixture(scope="module")
def reml():
    return _fit("reml", _sas_theta("sas_log_reml.txt"))


@pytest.fixture(scope="module")
def ml():
    return _fit("ml", _sas_theta("sas_log.txt"))


@pytest.mark.parametrize("listing, lineno, method", [
    ("sas_log_reml.txt", 101, "reml"),   # Iteration History, last "-2 Res Log Like"
    ("sas_log.txt", 101, "ml"),          # Iteration History, last "-2 Log Like"
])
def test_neg2_loglik(reml_opt, ml_opt, reml, ml, listing, lineno, method):
    fit = reml_opt if method == "reml" else ml_opt
    sas = float(tokens(listing, lineno, 2)[0])
    assert abs(fit.neg2_loglik - sas) <= 1e-8 * sas
    assert fit.neg2_loglik <= sas + 1e-7      # at least as good an optimum as SAS's
    assert fit.health["converged"]
    # at SAS's printed (rounded) parameters the criterion is SAS's to the rounding
    at_sas = reml if method == "reml" else ml
    assert abs(at_sas.neg2_loglik - sas) <= 1e-9 * sas


@pytest.mark.parametrize("listing, first, method", [
    ("sas_log_reml.txt", 129, "reml"),   # Covariance Parameter Estimates UN(1,1)..UN(4,4)
    ("sas_log.txt", 129, "ml"),
])
def test_covariance_parameters(reml_opt, ml_opt, listing, first, method):
    fit = reml_opt if method == "reml" else ml_opt
    se = fit.cov_params().std_error.to_numpy()
    for j in range(10):
        label, _, estimate = line(listing, first + j).split()[:3]
        assert label == fit.theta_names[j]
        check(fit.theta[j], estimate, abs_floor=0.005 * se[j], what=f"{listing}:{first + j} {label}")


def test_r_matrix_of_pt1(reml_opt):
    # sas_log_reml.txt:112-113, 121: R and its correlation for PT1 (observed at VIS2 and VIS4)
    sigma, corr = reml_opt.covariance_matrix(), reml_opt.correlation_matrix()
    se = reml_opt.cov_params().std_error.to_numpy()
    check(sigma.loc["VIS2", "VIS2"], tokens("sas_log_reml.txt", 112, 2)[0], abs_floor=0.005 * se[0])
    check(sigma.loc["VIS2", "VIS4"], tokens("sas_log_reml.txt", 112, 2)[1], abs_floor=0.005 * se[3])
    check(sigma.loc["VIS4", "VIS4"], tokens("sas_log_reml.txt", 113, 2)[1], abs_floor=0.005 * se[5])
    check(corr.loc["VIS2", "VIS4"], tokens("sas_log_reml.txt", 121, 2)[1])


@pytest.mark.parametrize("listing, method", [("sas_log_reml.txt", "reml"), ("sas_log.txt", "ml")])
def test_fixed_effects_at_our_optimum(reml_opt, ml_opt, listing, method):
    fit = reml_opt if method == "reml" else ml_opt
    tab = fit.coef_table().set_index("term")
    for lineno, term in FIXED_LINES.items():
        est, se = tokens(listing, lineno, 5)[:2]
        check(tab.loc[term].estimate, est, abs_floor=0.005 * float(se), what=f"{listing}:{lineno}")


@pytest.mark.parametrize("listing, method", [("sas_log_reml.txt", "reml"), ("sas_log.txt", "ml")])
def test_fixed_effects(reml, ml, listing, method):
    fit = reml if method == "reml" else ml
    tab = fit.coef_table().set_index("term")
    for lineno, term in FIXED_LINES.items():
        est, se, df, t, p = tokens(listing, lineno, 5)
        row = tab.loc[term]
        where = f"{listing}:{lineno} {term}"
        check(row.estimate, est, what=where)
        check(row.std_error, se, what=where)
        check(row.df, df, rel=1e-3, what=where)
        check(row.statistic, t, what=where)
        check(row.p_value, p, what=where)


@pytest.mark.parametrize("listing, first, method", [("sas_log_reml.txt", 194, "reml"),
                                                    ("sas_log.txt", 194, "ml")])
def test_type3_tests(reml, ml, listing, first, method):
    # Type 3 Tests of Fixed Effects: Effect, Num DF, Den DF, Chi-Square, F Value, Pr>ChiSq, Pr>F
    fit = reml if method == "reml" else ml
    ours = type3_tests(fit).set_index("effect")
    sas_names = {"ARMCD": "ARMCD", "AVISIT": "AVISIT", "AVISIT*ARMCD": "ARMCD:AVISIT",
                 "RACE": "RACE", "SEX": "SEX"}
    for lineno in range(first, first + 5):
        effect, num, den, chi, f, p_chi, p_f = line(listing, lineno).split()
        row = ours.loc[sas_names[effect]]
        where = f"{listing}:{lineno} {effect}"
        assert row.num_df == int(num)
        check(row.den_df, den, rel=1e-3, what=where)
        check(row.f_value, f, what=where)
        check(row.f_value * row.num_df, chi, what=where)
        check(row.p_value, p_f, what=where)


def test_lsmeans(reml):
    # sas_log_reml.txt:210-217 Least Squares Means AVISIT*ARMCD (equal weights over RACE, SEX)
    tab = reml.lsmeans(("AVISIT", "ARMCD")).set_index(["AVISIT", "ARMCD"])
    for lineno in range(210, 218):
        fields = line("sas_log_reml.txt", lineno).split()
        est, se, df, t, p, _alpha, low, up = fields[-8:]
        row = tab.loc[(fields[1], fields[2])]
        where = f"sas_log_reml.txt:{lineno}"
        for ours, sas in [(row.estimate, est), (row.std_error, se), (row.statistic, t),
                          (row.p_value, p), (row.conf_low, low), (row.conf_high, up)]:
            check(ours, sas, what=where)
        check(row.df, df, rel=1e-3, what=where)


def test_all_pairwise_lsmean_differences(reml):
    # sas_log_reml.txt:225-252 Differences of Least Squares Means (all 28 pairs, pdiff=all)
    grid, L = lsmean_rows(reml, ("AVISIT", "ARMCD"))
    cell = {(a, b): L[j] for j, (a, b) in enumerate(grid.itertuples(index=False))}
    for lineno in range(225, 253):
        fields = line("sas_log_reml.txt", lineno).split()
        l = cell[(fields[1], fields[2])] - cell[(fields[3], fields[4])]
        row = reml.contrast(l).iloc[0]
        est, se, df, t, p, _alpha, low, up = fields[-8:]
        where = f"sas_log_reml.txt:{lineno}"
        for ours, sas in [(row.estimate, est), (row.std_error, se), (row.statistic, t),
                          (row.p_value, p), (row.conf_low, low), (row.conf_high, up)]:
            check(ours, sas, what=where)
        check(row.df, df, rel=1e-3, what=where)


def test_differences_vs_control_and_slices(reml):
    # TRT - PBO at each visit: sas_log_reml.txt:225 (VIS2), 238 (VIS3), 247 (VIS4), 252 (VIS1);
    # their F tests: Tests of Effect Slices, sas_log_reml.txt:264-267.
    diffs = reml.lsmean_diffs("ARMCD", "PBO", by="AVISIT").set_index("AVISIT")
    for visit, lineno, slice_line in [("VIS2", 225, 264), ("VIS3", 238, 265),
                                      ("VIS4", 247, 266), ("VIS1", 252, 267)]:
        row = diffs.loc[visit]
        est, se, df = tokens("sas_log_reml.txt", lineno, 8)[:3]
        check(row.estimate, est, what=f"line {lineno}")
        check(row.std_error, se, what=f"line {lineno}")
        check(row.df, df, rel=1e-3, what=f"line {lineno}")
        _num, den, f, p = tokens("sas_log_reml.txt", slice_line, 4)
        check(row.statistic ** 2, f, what=f"line {slice_line}")
        check(row.df, den, rel=1e-3, what=f"line {slice_line}")
        check(row.p_value, p, what=f"line {slice_line}")


def test_equal_weights_are_not_proportional(reml):
    # The SAS listing's LS-means are equal-weight ones; proportional weights must give other
    # numbers here (RACE is unbalanced), or the tests above could not tell the two apart.
    eq = reml.lsmeans(("AVISIT", "ARMCD"), weights="equal").estimate.to_numpy()
    pr = reml.lsmeans(("AVISIT", "ARMCD"), weights="proportional").estimate.to_numpy()
    assert np.max(np.abs(eq - pr)) > 0.1
