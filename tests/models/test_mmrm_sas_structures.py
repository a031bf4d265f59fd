"""SAS's covariance structures and Kenward-Roger inference on fev_data vs PROC MIXED.

Intercept-only models (CLASS AVISIT(ref='VIS4') USUBJID; MODEL FEV1 = / ddfm=satterthwaite;
REPEATED AVISIT / subject=USUBJID type=...): see tests/reference/mmrm/sas_<type>_reml.txt.
Kenward-Roger (MODEL FEV1 = ARMCD / ddfm=kr; type=un / ar(1) / cs / toep): kr_<type>.txt and
kr_<type>.csv (the LS-mean difference TRT - PBO at full precision); kr1_us.csv is ddfm=kr(linear).

-2 REML log-likelihoods are compared with the iteration history (12 digits) and must be no worse
than SAS's; covariance parameters to max(1e-4 relative, 0.005 SE) -- SAS's stopping rule allows
~0.004 SE, see test_mmrm_sas_us.py; everything else to 1e-4 relative, df to 1e-3. p-values below
1e-6 move 30 times faster than t in relative terms, so at our optimum they are compared on the log
scale (1e-3 of log p); at SAS's own printed covariance parameters (fixed_theta, PARMS / NOITER)
they are compared to 1e-4 like everything else.
"""

import numpy as np
import pandas as pd
import pytest

from analysis.models.mmrm import fit_mmrm
from mmrm_reference import REF, check, fev_data, line, tokens

VISITS = ["VIS1", "VIS2", "VIS3", "VIS4"]   # AVISIT(ref='VIS4'): SAS's order, e.g. sas_ar1_reml.txt:21

# structure -> (listing, line of the last iteration, first and last cov parm line, intercept line)
INTERCEPT_ONLY = {
    "ar1": ("sas_ar1_reml.txt", 86, 201, 202, 225),
    "ar1h": ("sas_ar1h_reml.txt", 87, 203, 207, 230),
    "cs": ("sas_cs_reml.txt", 84, 199, 200, 223),
    "csh": ("sas_csh_reml.txt", 88, 204, 208, 231),
    "toeph": ("sas_toeph_reml.txt", 87, 202, 208, 231),
    "adh": ("sas_adh_reml.txt", 86, 115, 130, 153),   # ANTE(1); Var at 115-118, Rho at 128-130
}


def _cov_lines(first, last):
    lines = list(range(first, last + 1))
    if first == 115:                  # sas_adh_reml.txt splits its table over two pages
        lines = [115, 116, 117, 118, 128, 129, 130]
    return lines


@pytest.fixture(scope="module")
def intercept_fits():
    data = fev_data()
    design = pd.DataFrame({"(Intercept)": np.ones(len(data))})
    return {name: fit_mmrm(data, "FEV1", design, "AVISIT", "USUBJID", covariance=name,
                           df="satterthwaite", visit_levels=VISITS) for name in INTERCEPT_ONLY}


@pytest.mark.parametrize("name", list(INTERCEPT_ONLY))
def test_intercept_only_structures(intercept_fits, name):
    fit = intercept_fits[name]
    listing, it_line, first, last, int_line = INTERCEPT_ONLY[name]
    sas_ll = float(tokens(listing, it_line, 2)[0])
    assert abs(fit.neg2_loglik - sas_ll) <= 1e-8 * sas_ll, f"{listing}:{it_line}"
    assert fit.neg2_loglik <= sas_ll + 1e-7
    se = fit.cov_params().std_error.to_numpy()
    for j, lineno in enumerate(_cov_lines(first, last)):
        fields = line(listing, lineno).split()
        label = fields[0]
        estimate = fields[2] if fields[1] == "USUBJID" else fields[1]   # "Residual" has no subject
        assert label == fit.theta_names[j], f"{listing}:{lineno}"
        check(fit.theta[j], estimate, abs_floor=0.005 * se[j], what=f"{listing}:{lineno} {label}")
    est, se_b, df, t, p = tokens(listing, int_line, 5)
    row = fit.coef_table().iloc[0]
    for ours, sas in [(row.estimate, est), (row.std_error, se_b), (row.statistic, t), (row.p_value, p)]:
        check(ours, sas, what=f"{listing}:{int_line}")
    check(row.df, df, rel=1e-3, what=f"{listing}:{int_line}")


KR = {"us": ("kr_us.txt", 90, 168), "ar1": ("kr_ar1.txt", 90, 160),
      "cs": ("kr_cs.txt", 88, 158), "toep": ("kr_toep.txt", 89, 161)}


# Covariance Parameter Estimates in each KR listing
KR_THETA_LINES = {"us": range(118, 128), "ar1": range(118, 120), "cs": range(116, 118),
                  "toep": range(117, 121)}


def _sas_kr_theta(name):
    out = []
    for n in KR_THETA_LINES[name]:
        fields = line(f"kr_{name}.txt", n).split()
        out.append(float(fields[2] if fields[1] == "USUBJID" else fields[1]))
    return out


def _kr_fit(name, df="kenward-roger", fixed_theta=None):
    return fit_mmrm(fev_data(), "FEV1", "ARMCD", "AVISIT", "USUBJID", covariance=name, df=df,
                    reference={"ARMCD": "PBO"}, visit_levels=VISITS, fixed_theta=fixed_theta)


@pytest.fixture(scope="module")
def kr_fits():
    return {name: _kr_fit(name) for name in KR}


def _check_csv_row(row, csv_name, log_p=True):
    sas = pd.read_csv(REF / csv_name).iloc[0]   # one row: TRT - PBO
    assert (sas.ARMCD, sas._ARMCD) == ("TRT", "PBO")
    for ours, col in [(row.estimate, "Estimate"), (row.std_error, "StdErr"),
                      (row.statistic, "tValue"), (row.conf_low, "Lower"), (row.conf_high, "Upper")]:
        assert abs(ours - sas[col]) <= 1e-4 * abs(sas[col]), f"{csv_name} {col}: {ours} vs {sas[col]}"
    assert abs(row.df - sas.DF) <= 1e-3 * sas.DF, f"{csv_name} DF: {row.df} vs {sas.DF}"
    if log_p:
        assert abs(np.log(row.p_value / sas.Probt)) <= 1e-3 * abs(np.log(sas.Probt)), csv_name
    else:
        assert abs(row.p_value - sas.Probt) <= 1e-4 * sas.Probt, f"{csv_name} Probt: {row.p_value}"


@pytest.mark.parametrize("name", list(KR))
def test_kenward_roger_difference(kr_fits, name):
    fit = kr_fits[name]
    diff = fit.lsmean_diffs("ARMCD", "PBO").iloc[0]
    _check_csv_row(diff, f"kr_{name}.csv")
    listing, it_line, ls_line = KR[name]
    sas_ll = float(tokens(listing, it_line, 2)[0])
    assert abs(fit.neg2_loglik - sas_ll) <= 1e-8 * sas_ll and fit.neg2_loglik <= sas_ll + 1e-7
    # Least Squares Means ARMCD TRT and PBO (KR SE and df): kr_<type>.txt lines ls_line, +1
    tab = fit.lsmeans("ARMCD").set_index("ARMCD")
    for lineno in (ls_line, ls_line + 1):
        fields = line(listing, lineno).split()
        est, se, df, t, p, _a, low, up = fields[-8:]
        row = tab.loc[fields[1]]
        for ours, sas in [(row.estimate, est), (row.std_error, se), (row.conf_low, low),
                          (row.conf_high, up), (row.statistic, t)]:
            check(ours, sas, what=f"{listing}:{lineno}")
        check(row.df, df, rel=1e-3, what=f"{listing}:{lineno}")


@pytest.mark.parametrize("name", list(KR))
def test_kenward_roger_at_sas_parameters(name):
    # kr_<type>.csv at the covariance parameters kr_<type>.txt prints (lines KR_THETA_LINES);
    # for ar1 the 4 printed digits of AR(1) (kr_ar1.txt:118) alone move p by 2e-4.
    fit = _kr_fit(name, fixed_theta=_sas_kr_theta(name))
    _check_csv_row(fit.lsmean_diffs("ARMCD", "PBO").iloc[0], f"kr_{name}.csv", log_p=name == "ar1")
    # Type 3 Tests of Fixed Effects, ARMCD (1 df): kr_us.txt:160, kr_ar1.txt:152, kr_cs.txt:150,
    # kr_toep.txt:153
    lineno = {"us": 160, "ar1": 152, "cs": 150, "toep": 153}[name]
    test = fit.f_test(np.array([[0.0, 1.0]]))
    _effect, num, den, chi, f, _pc, _pf = line(f"kr_{name}.txt", lineno).split()
    check(test["den_df"], den, rel=1e-3, what=f"kr_{name}.txt:{lineno}")
    check(test["f_value"], f, what=f"kr_{name}.txt:{lineno}")


def test_kenward_roger_linear_unstructured():
    # kr1_us.csv: ddfm=kr(linear). SAS's UN is linear in its parameters, so it equals kr_us.csv.
    fit = _kr_fit("us", df="kenward-roger-linear")
    _check_csv_row(fit.lsmean_diffs("ARMCD", "PBO").iloc[0], "kr1_us.csv")


def test_second_derivative_term_matters_for_ar1(kr_fits):
    # AR(1) is not linear in (rho, sigma2): dropping KR's R term must move the SE away from
    # SAS's ddfm=kr (kr_ar1.csv), which the full adjustment matches above.
    linear = _kr_fit("ar1", df="kenward-roger-linear").lsmean_diffs("ARMCD", "PBO").iloc[0]
    sas = pd.read_csv(REF / "kr_ar1.csv").iloc[0]
    assert abs(linear.std_error / sas.StdErr - 1) > 1e-3
