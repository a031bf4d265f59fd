"""analysis.models.health: fit-health records and the fallback chain; data problems never raise.

Each scenario must end ``estimated`` or ``not estimable: <reason>`` with a sensible reason.
"""

import numpy as np
import pandas as pd

from analysis.config import PainModelOptions
from analysis.endpoints.pain import fit_pain_model
from analysis.models.health import FitHealth, simpler_structures
from analysis.models.lmm import StatsmodelsEngine, fit_lmm

ARMS = ["usual_care", "orthotics", "foot_massage", "deep_tissue_massage"]


def small_log(n_patients=40, seed=3, sd_patient=1.0, sd_slope=0.05, n_clinics=4):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        w = np.array([0.0, 2, 4, 6, 8, 12])
        y = (6 + rng.normal(0, sd_patient) + (-0.1 - 0.03 * (i % 4) + rng.normal(0, sd_slope)) * w
             + rng.normal(0, 1, len(w)))
        rows.append(pd.DataFrame({"patient_id": f"P{i:02d}", "clinic_id": f"C{i % n_clinics}", "week": w,
                                  "arm": ARMS[i % 4], "pain_score": y, "foot_posture_index": rng.normal(4, 3),
                                  "strength": np.exp(np.log(900) + rng.normal(0, 0.2) + 0.01 * w
                                                    + rng.normal(0, 0.05, len(w)))}))
    return pd.concat(rows, ignore_index=True)


def _ok(res):
    assert res.health.status == "estimated", res.health.status
    assert res.health.converged


def test_arm_with_one_patient():
    d = small_log()
    keep = d.arm.ne("foot_massage") | d.patient_id.eq("P02")
    res = fit_pain_model(d[keep], control="usual_care")
    _ok(res)
    assert "week slope: foot_massage - usual_care" in set(res.slope_differences["term"])


def test_arm_whose_scores_are_all_missing():
    d = small_log()
    d.loc[d.arm.eq("orthotics"), "pain_score"] = np.nan
    res = fit_pain_model(d, control="usual_care")
    _ok(res)
    assert any("'orthotics' has no recorded pain_score" in w for w in res.health.warnings)
    assert not res.marginal_means["term"].str.startswith("orthotics").any()


def test_control_arm_all_missing_is_not_estimable():
    d = small_log()
    d.loc[d.arm.eq("usual_care"), "pain_score"] = np.nan
    res = fit_pain_model(d, control="usual_care")
    assert res.health.status == "not estimable: control arm 'usual_care' has no recorded pain_score"
    assert res.fixed_effects.empty and res.marginal_means.empty


def test_collinear_covariates():
    d = small_log().assign(fpi_copy=lambda x: 2 * x.foot_posture_index + 1)
    res = fit_pain_model(d, PainModelOptions(covariates=["foot_posture_index", "fpi_copy"]), "usual_care")
    _ok(res)
    assert "fpi_copy" not in set(res.fixed_effects["term"])
    assert any("rank deficient" in w for w in res.health.warnings)


def test_zero_patient_variance_is_a_singular_fit():
    d = small_log(sd_patient=0.0, sd_slope=0.0)
    res = fit_pain_model(d, PainModelOptions(random="intercept"), "usual_care")
    _ok(res)
    assert res.health.singular
    assert any("singular" in w for w in res.health.warnings)
    assert np.isfinite(res.slope_differences["df"]).all()


def test_single_clinic_with_clinic_level_drops_it():
    d = small_log(n_clinics=1)
    res = fit_pain_model(d, PainModelOptions(clinic_level=True), "usual_care")
    _ok(res)
    assert res.health.fallback_steps == ["clinic level dropped: only 1 clinic with data"]
    assert res.health.random_structure == "(1 + week | patient_id)"


def test_patient_with_a_single_visit():
    d = small_log()
    d = d[~(d.patient_id.eq("P05") & d.week.gt(0))]
    res = fit_pain_model(d, control="usual_care")
    _ok(res)
    assert res.n_patients == 40


def test_huge_scale_difference_strength_in_newtons_vs_week():
    res = fit_pain_model(small_log(), PainModelOptions(outcome="strength"), "usual_care")
    _ok(res)
    assert res.health.gradient_norm < 1e-3
    assert res.marginal_means["estimate"].between(500, 2000).all()


def test_one_patient_overall_is_not_estimable():
    d = small_log()
    res = fit_pain_model(d[d.patient_id.eq("P00")], control="usual_care")
    assert res.health.status.startswith("not estimable: only 1 patient_id")


def test_missing_column_is_not_estimable():
    res = fit_pain_model(small_log().drop(columns="week"), control="usual_care")
    assert res.health.status == "not estimable: column(s) ['week'] not in the data"


def test_fallback_chain_simplifies_then_uses_gee(monkeypatch):
    calls = []

    def never_converges(self, design, dev, optimizers, health):
        calls.append(design.random)
        health.optimizers_tried.extend(optimizers)
        return None

    monkeypatch.setattr(StatsmodelsEngine, "fit", never_converges)
    d = small_log()
    f = fit_lmm(d, "pain_score ~ week * C(arm, Treatment(reference='usual_care'))", "patient_id",
                "slope", clinic="clinic_id", engine="statsmodels")
    assert calls == ["slope", "intercept", "intercept"]
    assert f.health.fallback_steps == ["random structure simplified: 'slope' -> 'intercept'",
                                       "clinic level dropped", "GEE (gaussian, exchangeable, robust SE)"]
    assert f.health.engine == "statsmodels-GEE" and f.health.status == "estimated"
    assert np.isinf(f.fixed_effects["df"]).all() and f.fixed_effects["std_error"].gt(0).all()
    assert np.isinf(f.contrast(np.eye(len(f.fixed_effects))[1])["df"].item())
    # GEE coefficients agree with OLS on the same design within sampling noise of the working correlation
    ols = np.linalg.lstsq(f.design.X, f.design.y, rcond=None)[0]
    assert np.allclose(f.beta, ols, atol=0.5)
    # without fallback: not estimable, and the tried optimizers are kept
    g = fit_lmm(d, "pain_score ~ week", "patient_id", "slope", fallback=False, engine="statsmodels")
    assert g.health.status == "not estimable: no optimizer converged"
    assert g.health.optimizers_tried == ["lbfgs", "bfgs", "powell", "nm"]


def test_health_record_serialises():
    h = FitHealth(engine="statsmodels", status="estimated")
    out = h.to_dict()
    assert out["gradient_norm"] is None and out["status"] == "estimated" and out["warnings"] == []
    assert list(simpler_structures("slope", "clinic_id", 3))[1][2] == "random structure simplified: 'slope' -> 'intercept'"
