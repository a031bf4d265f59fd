"""analysis.audit.firmness and analysis.models.resample: alternatives, bootstrap, the firm rule."""

import math

import numpy as np
import pytest

from analysis.audit.claims import fit_claim_models, parse_claims
from analysis.audit.firmness import (
    _estimates,
    alternatives,
    assess_firmness,
    firmness_words,
)
from analysis.audit.firmness_bootstrap import linear_estimand
from analysis.config import PainModelOptions, parse_config
from analysis.endpoints.pain import fit_pain_model
from analysis.models.resample import (
    cluster_weights,
    patient_blocks,
    resampled_betas,
)
from analysis.studies.simulate import simulate_log
from tests.audit.test_estimands import visits


@pytest.fixture(scope="module")
def log():
    return visits(simulate_log(n_patients=200, n_clinics=4, seed=13)[0])


@pytest.fixture(scope="module")
def pain_fit(log):
    return fit_pain_model(log, PainModelOptions(engine="pls")).fit


def test_unit_weights_give_back_the_mixed_model_estimates(pain_fit):
    # GLS at the fitted variance parameters is the LMM's own beta and model-based covariance
    A, _ = patient_blocks(pain_fit)
    assert A.shape[0] == pain_fit.n_groups["patient_id"]
    betas, vcovs = resampled_betas(pain_fit, np.ones((2, A.shape[0])))
    assert np.allclose(betas[0], pain_fit.beta, atol=1e-9)
    assert np.allclose(vcovs[1], pain_fit.vcov_beta.to_numpy(), atol=1e-12)


def test_bootstrap_spread_matches_the_model_standard_error(pain_fit):
    # a parameter-recovery check of the resampling: patients are independent in this model, so
    # the bootstrap SD of the week slope difference is close to its model-based SE
    n = pain_fit.n_groups["patient_id"]
    W = cluster_weights(np.arange(n), np.zeros(n), 400, seed=3)
    betas, _ = resampled_betas(pain_fit, W)
    j = list(pain_fit.fixed_effects["term"]).index(
        next(t for t in pain_fit.fixed_effects["term"] if t.startswith("week:")))
    ratio = betas[:, j].std() / pain_fit.fixed_effects["std_error"].iloc[j]
    assert 0.8 < ratio < 1.25


def test_cluster_weights_resample_within_each_clinic():
    strata = np.array(["a"] * 5 + ["b"] * 3)
    W = cluster_weights(np.arange(8), strata, 50, seed=1)
    assert (W[:, :5].sum(axis=1) == 5).all() and (W[:, 5:].sum(axis=1) == 3).all()
    assert np.array_equal(W, cluster_weights(np.arange(8), strata, 50, seed=1))  # seeded
    assert not np.array_equal(W, cluster_weights(np.arange(8), strata, 50, seed=2))


def test_clinic_level_fits_are_resampled_exactly(log):
    # with a clinic intercept the resample's GLS is solved clinic by clinic (Woodbury): unit
    # weights give back the fit, and a resample equals dense GLS on its duplicated rows
    from scipy.linalg import block_diag

    from analysis.models.resample import patient_ids

    fit = fit_pain_model(log, PainModelOptions(engine="pls", clinic_level=True)).fit
    m = len(fit.design.patient_labels)
    betas, vcovs = resampled_betas(fit, np.ones((1, m)))
    assert np.allclose(betas[0], fit.beta, atol=1e-8)
    assert np.allclose(vcovs[0], fit.vcov_beta.to_numpy(), rtol=1e-7, atol=1e-12)
    w = cluster_weights(np.arange(m), fit.design.clinic_of_patient, 1, seed=2)[0]
    d = fit.design
    lam = float(fit.theta[-1])
    assert d.Z.shape[1] == 2  # random slope: lme4's theta is (L11, L21, L22), then the clinic's
    L = np.array([[fit.theta[0], 0.0], [fit.theta[1], fit.theta[2]]])
    XtVX, XtVy = 0, 0
    for k in np.unique(d.clinic_of_patient):  # dense V of each clinic, drawn patients repeated
        rows = [np.flatnonzero(d.patient == i) for i in np.flatnonzero(d.clinic_of_patient == k)
                for _ in range(int(w[i]))]
        if not rows:
            continue
        Vp = block_diag(*[np.eye(len(r)) + d.Z[r] @ L @ L.T @ d.Z[r].T for r in rows])
        idx = np.concatenate(rows)
        V = Vp + lam ** 2 * np.ones((len(idx), len(idx)))
        Vinv = np.linalg.inv(V)
        XtVX = XtVX + d.X[idx].T @ Vinv @ d.X[idx]
        XtVy = XtVy + d.X[idx].T @ Vinv @ d.y[idx]
    got, _ = resampled_betas(fit, w[None])
    assert np.allclose(got[0], np.linalg.solve(XtVX, XtVy), atol=1e-9)
    assert len(patient_ids(fit)) == m and not isinstance(patient_ids(fit)[0], tuple)


@pytest.mark.parametrize("verdict, alts, share, words", [
    ("inconclusive", {"random intercept": "inconclusive"}, 0.95, "firm"),
    ("inconclusive", {"random intercept": "inconclusive"}, 0.90, "firm"),
    ("inconclusive", {"random intercept": "supported", "with clinic level": "inconclusive"}, 0.97,
     "depends on the analysis: random intercept gives supported"),
    ("supported", {"random intercept": "supported"}, 0.62,
     "depends on the sample: same verdict in 62 % of resamples"),
    ("overstated", {"population-averaged": "overstated"}, math.nan,
     "firm across the alternative analyses (not resampled)"),
    ("not testable", {}, math.nan, "not graded"),
])
def test_firm_rule(verdict, alts, share, words):
    assert firmness_words(verdict, alts, share) == words


def test_a_claim_not_resampled_says_why():
    assert firmness_words("overstated", {}, math.nan, "the bootstrap is off") == (
        "firm across the alternative analyses (not resampled: the bootstrap is off)")


def test_alternatives_are_the_declared_ones():
    cfg = parse_config({"name": "t", "data": "x.csv",
                        "models": {"pain": {"covariates": ["age"]}}})
    names = [a[0] for a in alternatives(cfg)]
    assert names == ["random intercept", "with clinic level", "without covariates",
                     "population-averaged"]
    assert alternatives(cfg)[0][2].models.pain.random == "intercept"


CLAIMS = {"claims": [
    {"id": "taping", "text": "taping eases pain", "source": "a page", "outcome": "pain",
     "intervention": "patella_taping", "comparator": "usual_care", "measure": "direction",
     "direction": "decrease", "week": 12},
    {"id": "strength", "text": "stronger", "source": "a page", "outcome": "strength",
     "intervention": "deep_tissue_massage", "comparator": "usual_care",
     "measure": "percent_increase", "value": 80, "week": 12},
    {"id": "episodes", "text": "fewer episodes", "source": "a page", "outcome": "episodes",
     "intervention": "deep_tissue_massage", "comparator": "usual_care",
     "measure": "percent_reduction", "value": 62},
    {"id": "episodes-4", "text": "fewer episodes soon", "source": "a page", "outcome": "episodes",
     "intervention": "deep_tissue_massage", "comparator": "usual_care",
     "measure": "percent_reduction", "value": 62, "weeks": [0, 4]},
    {"id": "responders", "text": "more responders", "source": "a page", "outcome": "responders",
     "intervention": "deep_tissue_massage", "comparator": "usual_care",
     "measure": "responder_rate", "value": 10, "week": 12}]}


def test_assess_firmness_on_a_simulated_log(log):
    cfg = parse_config({"name": "t", "data": "x.csv", "disclosure_threshold": 5})
    claims = parse_claims(CLAIMS)
    bundle = fit_claim_models(log, claims, cfg)
    # the linear estimand read from the estimand code reproduces the graded estimate
    est = _estimates(claims, bundle, cfg)
    for i in (0, 1):
        key = bundle.key(claims.claims[i])
        L, base = linear_estimand(claims.claims[i], bundle, cfg, key)
        beta = bundle.results[key].fit.beta
        assert base + L @ beta == pytest.approx(est[i].on_model_scale(est[i].estimate), abs=1e-9)
    rows, info = assess_firmness(log, claims, cfg, bundle, resamples=60, seed=4)
    again, _ = assess_firmness(log, claims, cfg, bundle, resamples=60, seed=4)
    assert [r["share_resamples"] for r in rows] == [r["share_resamples"] for r in again]
    # every claim kind is resampled: LMM, episodes (all follow-up and a window), responders
    assert info["resampled"] == [c.id for c in claims.claims] and not info["skipped"]
    by_id = {r["id"]: r for r in rows}
    assert set(by_id["taping"]["alternatives"]) == {"random intercept", "with clinic level"}
    assert set(by_id["episodes"]["alternatives"]) == {"population-averaged"}
    for r in rows:
        assert 0 <= r["share_resamples"] <= 1
        assert r["firmness"] == firmness_words(r["verdict"], r["alternatives"],
                                               r["share_resamples"])
        assert "not resampled" not in r["firmness"]
    off, _ = assess_firmness(log, claims, cfg, bundle, resamples=0)
    assert all("bootstrap is off" in r["firmness"] for r in off
               if r["firmness"].startswith("firm"))


def test_a_clinic_level_primary_analysis_is_resampled(log):
    cfg = parse_config({"name": "t", "data": "x.csv", "disclosure_threshold": 5,
                        "models": {"pain": {"clinic_level": True}}})
    claims = parse_claims({"claims": CLAIMS["claims"][:1]})
    bundle = fit_claim_models(log, claims, cfg)
    assert bundle.results[bundle.key(claims.claims[0])].fit.design.clinic is not None
    rows, info = assess_firmness(log, claims, cfg, bundle, resamples=30, seed=4)
    assert info["resampled"] == ["taping"] and 0 <= rows[0]["share_resamples"] <= 1


def test_a_claim_on_the_pain_mmrm_is_resampled():
    from pathlib import Path

    import pandas as pd

    from analysis.audit.claims import ResultsBundle
    from analysis.audit.estimands import estimate_claim
    from analysis.audit.firmness import bootstrap_verdicts

    ref = Path(__file__).parents[1] / "reference" / "mmrm" / "fev_data.csv"
    d = pd.read_csv(ref).rename(columns={"USUBJID": "patient_id", "ARMCD": "arm",
                                         "VISITN": "week"})
    result = fit_pain_model(d, PainModelOptions(outcome="FEV1", analysis="mmrm"), control="PBO")
    claims = parse_claims({"claims": [{
        "id": "fev", "text": "FEV1 up", "source": "test", "outcome": "pain",
        "intervention": "TRT", "comparator": "PBO", "measure": "direction",
        "direction": "increase", "week": 4}]})
    patients = d.groupby("patient_id").first().reset_index()[["patient_id", "arm"]]
    bundle = ResultsBundle(patients, "PBO", {("pain", None, None): result})
    cfg = parse_config({"name": "t", "data": "x.csv"}).model_copy(update={"control": "PBO"})
    est = estimate_claim(claims.claims[0], bundle, cfg)
    # the analysis it rests on names the MMRM (this raised before: MMRM health is not FitHealth)
    assert est.analysis == "MMRM arm*visit, us covariance, kenward-roger df"
    shares, info = bootstrap_verdicts(claims, cfg, bundle, [est], resamples=40)
    assert info["resampled"] == ["fev"] and 0 <= shares[0] <= 1
