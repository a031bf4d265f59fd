"""Episode rate ratios, both estimands (src/analysis/endpoints/episodes.py, episodes_data.py).

Sources of the reference numbers
--------------------------------
``r_counts_reference.json`` — ``Rscript tests/reference/r_counts_reference.R tests/reference``
(R 4.2.2, lme4 1.1-31, glmmTMB 1.1.5, geepack 1.3.9, MASS 7.3-58.2) on ``episodes_sim.csv``
(written by tests/reference/make_episodes_sim.py): follow-up rows (week > 0), the centred
``log_baseline_rate`` computed in R, ``offset(log(exposure_days))``, arm + age + sex.

Sections: regression tests against R; arithmetic of the table; failures that must end
``not estimable``; argument errors; last, parameter recovery on simulated data (known truth).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.endpoints.episodes import (
    RATE_RATIO_COLUMNS,
    TIDY_COLUMNS,
    add_percent_reduction,
    fit_episode_models,
)
from analysis.endpoints.episodes_data import prepare_episode_data
from analysis.errors import ConfigError
from analysis.results import dumps

REF_DIR = Path(__file__).resolve().parents[1] / "reference"
RC = json.loads((REF_DIR / "r_counts_reference.json").read_text())
CONTROL = "usual_care"
R_KEYS = {("negative_binomial", "patient_level"): "sim_glmmtmb_nbinom2",
          ("negative_binomial", "population_averaged"): "sim_gee_negbin_exch",
          ("poisson", "patient_level"): "sim_glmer_poisson",
          ("poisson", "population_averaged"): "sim_gee_poisson_exch"}


@pytest.fixture(scope="module")
def sim_log():
    return pd.read_csv(REF_DIR / "episodes_sim.csv")


@pytest.fixture(scope="module", params=["negative_binomial", "poisson"])
def sim_result(request, sim_log):
    return fit_episode_models(sim_log, CONTROL, family=request.param, covariates=["age", "sex"])


# --- regression tests against R -------------------------------------------------------------

def test_rate_ratios_match_r(sim_result):
    z = stats.norm.ppf(0.975)
    for _, row in sim_result.rate_ratios.iterrows():
        key = R_KEYS[(sim_result.family, row["estimand"])]
        # r_counts_reference.json: <key>.coef.arm<arm>.estimate / .std_error
        # (glmer bobyqa / glmmTMB nbinom2 / geeglm / hand-written NB GEE; key in R_KEYS)
        ref = RC[key]["coef"][f"arm{row['arm']}"]
        assert row["estimate"] == pytest.approx(ref["estimate"], abs=1e-4 * ref["std_error"])
        assert row["std_error"] == pytest.approx(ref["std_error"], rel=1e-4)
        assert row["rate_ratio"] == pytest.approx(np.exp(ref["estimate"]), rel=1e-4)
        assert row["rr_conf_low"] == pytest.approx(
            np.exp(ref["estimate"] - z * ref["std_error"]), rel=1e-4)
        assert row["rr_conf_high"] == pytest.approx(
            np.exp(ref["estimate"] + z * ref["std_error"]), rel=1e-4)
        assert row["status"] == "estimated"


def test_full_coefficient_tables_match_r(sim_result):
    r_terms = {"(Intercept)": "(Intercept)", "arm[T.orthotics]": "armorthotics",
               "arm[T.strength_training]": "armstrength_training",
               "log_baseline_rate": "log_baseline_rate", "age": "age", "sex[T.M]": "sexM"}
    for estimand, table in sim_result.coefficients.items():
        assert list(table.columns) == TIDY_COLUMNS
        assert list(table["term"]) == list(r_terms)
        # r_counts_reference.json: <R_KEYS[(family, estimand)]>.coef.<R term>.estimate / .std_error
        ref = RC[R_KEYS[(sim_result.family, estimand)]]["coef"]
        est = np.array([ref[r_terms[t]]["estimate"] for t in table["term"]])
        se = np.array([ref[r_terms[t]]["std_error"] for t in table["term"]])
        assert np.max(np.abs(table["estimate"] - est) / se) < 1e-4
        np.testing.assert_allclose(table["std_error"], se, rtol=1e-4)
        assert np.all(np.isinf(table["df"]))


def test_variance_parameters_match_r(sim_log):
    res = fit_episode_models(sim_log, CONTROL, covariates=["age", "sex"])
    # r_counts_reference.json: sim_glmmtmb_nbinom2.theta / .sd_patient / .logLik
    pl = res.parameters["patient_level"]
    assert pl["theta"] == pytest.approx(RC["sim_glmmtmb_nbinom2"]["theta"], rel=1e-4)
    assert pl["sd_patient"] == pytest.approx(RC["sim_glmmtmb_nbinom2"]["sd_patient"], rel=1e-4)
    assert pl["loglik"] == pytest.approx(RC["sim_glmmtmb_nbinom2"]["logLik"], abs=1e-5)
    # r_counts_reference.json: sim_gee_negbin_exch.theta (glm.nb) / .alpha (exchangeable)
    pa = res.parameters["population_averaged"]
    assert pa["nb_theta"] == pytest.approx(RC["sim_gee_negbin_exch"]["theta"], rel=1e-6)
    assert pa["working_correlation"] == pytest.approx(RC["sim_gee_negbin_exch"]["alpha"],
                                                      rel=1e-6)


# --- the table ------------------------------------------------------------------------------

def test_table_shape_and_primary_first(sim_log):
    res = fit_episode_models(sim_log, CONTROL, primary="population_averaged")
    rr = res.rate_ratios
    assert list(rr.columns) == RATE_RATIO_COLUMNS
    assert res.primary == "population_averaged"
    assert list(rr["estimand"]) == ["population_averaged"] * 2 + ["patient_level"] * 2
    assert list(rr["arm"]) == ["orthotics", "strength_training"] * 2
    assert set(res.health) == {"patient_level", "population_averaged"}
    assert all(h.status == "estimated" for h in res.health.values())
    assert "usual_care" in res.descriptions["patient_level"]
    json.loads(dumps(res.to_dict()))  # results.json-ready


def test_percent_reduction_and_swapped_bounds():
    table = pd.DataFrame({"estimate": np.log([0.75, 1.25]),
                          "conf_low": np.log([0.6, 1.0]),
                          "conf_high": np.log([0.9375, 1.5625])})
    out = add_percent_reduction(table)
    np.testing.assert_allclose(out["rate_ratio"], [0.75, 1.25])
    np.testing.assert_allclose(out["percent_reduction"], [25.0, -25.0])
    # the upper RR bound gives the lower reduction bound
    np.testing.assert_allclose(out["percent_reduction_low"], [6.25, -56.25])
    np.testing.assert_allclose(out["percent_reduction_high"], [40.0, 0.0])


def test_interval_uses_alpha(sim_log):
    r90 = fit_episode_models(sim_log, CONTROL, family="poisson", alpha=0.10).rate_ratios
    row = r90.iloc[0]
    half = (row["conf_high"] - row["conf_low"]) / 2
    assert half == pytest.approx(stats.norm.ppf(0.95) * row["std_error"], rel=1e-12)
    assert row["p_value"] == pytest.approx(
        2 * stats.norm.sf(abs(row["estimate"] / row["std_error"])), rel=1e-12)


def test_baseline_rate_covariate(sim_log):
    design, _, _, notes = prepare_episode_data(sim_log, CONTROL)
    base = sim_log[sim_log["week"] <= 0].groupby("patient_id")[["episodes",
                                                                 "exposure_days"]].sum()
    raw = np.log((base["episodes"] + 0.5) / base["exposure_days"])
    first = design.X.loc[sim_log.index[sim_log["patient_id"] == "P001"][1], "log_baseline_rate"]
    assert first == pytest.approx(raw["P001"] - raw.mean())
    assert len(design.y) == int((sim_log["week"] > 0).sum()) and notes == []


def test_no_baseline_rows_means_no_adjustment(sim_log):
    res = fit_episode_models(sim_log[sim_log["week"] > 0], CONTROL, family="poisson")
    assert "log_baseline_rate" not in set(res.coefficients["patient_level"]["term"])
    assert any("no baseline rows" in n for n in res.notes)


# --- failures end "not estimable", never in a traceback -------------------------------------

def two_arms(sim_log):
    return sim_log[sim_log["arm"] != "strength_training"].copy()


def test_no_episode_values(sim_log):
    data = sim_log.assign(episodes=np.nan)
    res = fit_episode_models(data, CONTROL)
    for h in res.health.values():
        assert h.status == "not estimable: no episode counts recorded (column 'episodes' is empty)"
    assert len(res.rate_ratios) == 4 and res.rate_ratios["rate_ratio"].isna().all()
    assert res.rate_ratios["status"].str.startswith("not estimable").all()


def test_arm_with_one_patient(sim_log):
    data = two_arms(sim_log)
    data = data[(data["arm"] == CONTROL) | (data["patient_id"] == "P031")]
    res = fit_episode_models(data, CONTROL, family="poisson")
    assert res.health["population_averaged"].status.startswith(
        "not estimable: arm 'orthotics' has 1 patient")
    assert res.health["patient_level"].status == "estimated"
    assert any("1 patient" in w for w in res.health["patient_level"].warnings)
    row = res.rate_ratios.set_index("estimand").loc["patient_level"]
    assert np.isfinite(row["rate_ratio"])


def test_all_zero_counts_in_an_arm(sim_log):
    data = two_arms(sim_log)
    data.loc[(data["arm"] == "orthotics") & (data["week"] > 0), "episodes"] = 0
    res = fit_episode_models(data, CONTROL)
    for h in res.health.values():
        assert h.status.startswith("not estimable: arm 'orthotics' has no episodes in follow-up")


def test_zero_arm_among_three_leaves_the_others_estimated(sim_log):
    data = sim_log.copy()
    data.loc[(data["arm"] == "orthotics") & (data["week"] > 0), "episodes"] = 0
    rr = fit_episode_models(data, CONTROL).rate_ratios.set_index("arm")
    assert rr.loc["orthotics", "status"].str.startswith("not estimable: arm 'orthotics'").all()
    assert (rr.loc["strength_training", "status"] == "estimated").all()
    assert np.isfinite(rr.loc["strength_training", "rate_ratio"]).all()


def test_missing_control_and_missing_column(sim_log):
    res = fit_episode_models(sim_log[sim_log["arm"] != CONTROL], CONTROL)
    assert res.health["patient_level"].status == (
        "not estimable: control arm 'usual_care' has no patients with follow-up episodes")
    res = fit_episode_models(sim_log.drop(columns="exposure_days"), CONTROL)
    assert res.health["population_averaged"].status == (
        "not estimable: column(s) ['exposure_days'] not in the data")


def test_unusable_rows_are_left_out_and_counted(sim_log):
    data = sim_log.copy()
    data.loc[1, "exposure_days"] = 0
    data.loc[2, "episodes"] = np.nan
    res = fit_episode_models(data, CONTROL, family="poisson")
    assert res.notes[0].startswith("2 visit row(s) left out")
    assert res.parameters["patient_level"]["n_visits"] == int((sim_log["week"] > 0).sum()) - 2


# --- argument errors ------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"family": "gamma"}, "models.episodes.family: 'gamma'"),
    ({"primary": "both"}, "models.episodes.primary: 'both'"),
    ({"alpha": 1.5}, "models.alpha: 1.5"),
    ({"covariates": ["bmi"]}, "models.episodes.covariates: ['bmi']"),
])
def test_bad_arguments_raise_config_error(sim_log, kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fit_episode_models(sim_log, CONTROL, **kwargs)


# --- parameter recovery (known truth) -------------------------------------------------------

def simulate_nb_log(n_patients=300, rate_ratio=0.75, sd_patient=0.5, theta=4.0, seed=20261121):
    """Two arms; a 14-day baseline row and 6 follow-up visits of 10-18 days each."""
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_patients), 7)
    visit = np.tile(np.arange(7), n_patients)
    treated = (pid % 2 == 1)
    exposure = np.where(visit == 0, 14, rng.integers(10, 19, pid.size))
    b = rng.normal(0.0, sd_patient, n_patients)[pid]
    mu = exposure * 0.8 / 7 * np.exp(b) * np.where(treated & (visit > 0), rate_ratio, 1.0)
    episodes = rng.negative_binomial(theta, theta / (theta + mu))
    return pd.DataFrame({"patient_id": pid, "arm": np.where(treated, "orthotics", CONTROL),
                         "week": 2 * visit, "episodes": episodes, "exposure_days": exposure})


def test_recovers_known_rate_ratio_both_estimands():
    # With a log link and a random intercept the patient-level and population-averaged rate
    # ratios are the same number, 0.75, so both intervals must cover it.
    res = fit_episode_models(simulate_nb_log(), CONTROL, family="negative_binomial")
    for _, row in res.rate_ratios.iterrows():
        assert row["rr_conf_low"] < 0.75 < row["rr_conf_high"], row["estimand"]
        assert row["percent_reduction_low"] < 25 < row["percent_reduction_high"]
    # (theta and the patient SD are recovered in tests/models/test_glmm_counts.py: here the baseline
    # rate explains part of the patient effect, so the residual SD is below 0.5 by design)
