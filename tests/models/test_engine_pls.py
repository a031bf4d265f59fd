"""analysis.models.engine_pls: the pls engine against lme4 / lmerTest, and against the statsmodels path.

R numbers: tests/reference/r_reference.json (tests/reference/r_reference.R; lme4 1.1-31, lmerTest
3.1-3, lme4's default optimiser), tests/reference/r_clinic_lmm.json (bobyqa, maxfun 1e5) and
``LME4_TIGHT`` below: the same sleepstudy models refitted by lme4 with
``lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))`` (the R script is in
docs/engine.md, "Reference numbers"). lme4's default optimiser stops ~1e-5 short of the optimum
in theta, so r_reference.json's SEs and variance components of the slope models can be matched
only to ~2e-5; the tightly converged ones are matched to 1e-6.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.errors import ConfigError
from analysis.models.engine_pls import PlsEngine, minimise
from analysis.models.formulas import build_mixed_design
from analysis.models.lmm import StatsmodelsEngine, fit_lmm
from analysis.models.pls_deviance import PlsDeviance, pls_class_problem
from analysis.models.satterthwaite import ProfiledDeviance, gradient
from analysis.studies import bench
from analysis.studies.bench import model_table
from analysis.studies.simulate import simulate_log

REF = Path(__file__).resolve().parents[1] / "reference"
R = json.loads((REF / "r_reference.json").read_text())
RC = json.loads((REF / "r_clinic_lmm.json").read_text())
PAIN = "pain_score ~ week * C(arm, Treatment(reference='usual_care'))"

# lme4 1.1-31 + lmerTest 3.1-3 on R 4.2.2, bobyqa rhoend = 1e-12 (docs/engine.md, "Reference numbers"):
# summary(m)$coefficients[, 1:3] and as.data.frame(VarCorr(m))$sdcor
LME4_TIGHT = {
    "slope_reml": {  # lmer(Reaction ~ Days + (Days | Subject), ss, REML = TRUE, control = ctl)
        "fixef": {"(Intercept)": (251.405104848486, 6.82455577627583, 17.0000051947099),
                  "Days": (10.467285959596, 1.54578893242985, 16.9999990263063)},
        "sdcor": {"Subject:(Intercept):NA": 24.7404476166998, "Subject:Days:NA": 5.92213325957914,
                  "Subject:(Intercept):Days": 0.0655513428534642, "Residual:NA:NA": 25.5918158926241},
        "ranef": {308: (2.25856550059349, 9.19897190422548),  # head(ranef(m)$Subject, 3)
                  309: (-40.39857692492454, -8.61970318296016),
                  310: (-38.96024580074044, -5.44887991716209)},
    },
    "clinic_reml": {  # lmer(pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id))
        "ranef_clinic": {"C1": 0.241052430350726, "C2": 1.07428937164289, "C3": -0.632240475764609,
                         "C4": -0.270980088982538, "C5": -0.730328113072227, "C6": 0.31820687582292},
        "ranef_patient": {("C1", "P021"): (0.0703220003747964, 0.0528774295214392),
                          ("C1", "P024"): (1.4637058116087243, 0.0341153865610876)},
    },
    "slope_ml": {  # lmer(Reaction ~ Days + (Days | Subject), ss, REML = FALSE, control = ctl)
        "fixef": {"(Intercept)": (251.405104848484, 6.63227642115722, 18.0000033727406),
                  "Days": (10.4672859595955, 1.50223679257189, 17.9999993920731)},
        "sdcor": {"Subject:(Intercept):NA": 23.7805649857756, "Subject:Days:NA": 5.71683457988983,
                  "Subject:(Intercept):Days": 0.0813199745870965, "Residual:NA:NA": 25.5918158320228},
    },
}


@pytest.fixture(scope="module")
def sleep():
    return pd.read_csv(REF / "sleepstudy.csv")


@pytest.fixture(scope="module")
def clinic_data():
    return pd.read_csv(REF / "r_clinic_lmm.csv")


def _sdcor(fit) -> dict:
    vc = fit.variance_components
    return dict(zip(vc["group"] + ":" + vc["term1"].fillna("NA") + ":" + vc["term2"].fillna("NA"),
                    vc["estimate"]))


def _check_sdcor(fit, ref: dict, rel: float):
    got = _sdcor(fit)
    for key, value in ref.items():
        if key.count("NA") == 0:  # a correlation: bounded, compared on its own scale
            assert got[key] == pytest.approx(value, abs=rel), key
        else:
            assert got[key] == pytest.approx(value, rel=rel), key


# -- the criterion: same numbers as the reference implementation, exact gradient -----------------
@pytest.mark.parametrize("random", ["intercept", "slope"])
@pytest.mark.parametrize("clinic", [None, "clinic_id"])
@pytest.mark.parametrize("reml", [True, False])
def test_criterion_equals_profiled_deviance(clinic_data, random, clinic, reml):
    d = clinic_data.sample(frac=1.0, random_state=1)  # rows not sorted by patient
    des = build_mixed_design(d, PAIN, "patient_id", random, "week", clinic)
    ref = ProfiledDeviance(des.y, des.X, des.Z, des.patient, des.clinic_of_patient, reml=reml)
    pls = PlsDeviance(des.y, des.X, des.Z, des.patient, des.clinic_of_patient, reml=reml)
    theta = np.abs(np.random.default_rng(7).normal(0.5, 0.3, ref.n_theta))
    assert pls.deviance(theta) == pytest.approx(ref.deviance(theta), rel=1e-12)
    vp = np.append(theta, 0.8)
    assert pls.deviance_vp(vp) == pytest.approx(ref.deviance_vp(vp), rel=1e-12)
    assert np.allclose(pls.covbeta(vp), ref.covbeta(vp), rtol=1e-10, atol=0)
    a, b = ref.estimates(theta), pls.estimates(theta)
    for key in a:
        assert np.allclose(b[key], a[key], rtol=1e-9, atol=1e-10), key
    # the analytic gradient against Richardson-extrapolated central differences
    assert np.allclose(pls.gradient(theta), gradient(pls.deviance, theta), rtol=1e-6, atol=1e-6)


# -- sleepstudy: lme4 / lmerTest ---------------------------------------------------------------
def test_sleepstudy_slope_reml_equals_lme4(sleep):
    # R: lmer(Reaction ~ Days + (Days | Subject), ss, REML = TRUE)
    f = fit_lmm(sleep, "Reaction ~ Days", "Subject", "slope", time="Days")
    assert f.health.engine == "pls" and f.health.converged and f.health.gradient_norm < 1e-6
    # r_reference.json: sleepstudy_slope_reml.REMLcrit (lme4 REMLcrit(m1))
    assert f.reml_criterion == pytest.approx(1743.62827196, rel=1e-9)
    assert f.reml_criterion == pytest.approx(R["sleepstudy_slope_reml"]["REMLcrit"], rel=1e-9)
    fe = f.fixed_effects.set_index("term")
    for term, (est, se, df) in LME4_TIGHT["slope_reml"]["fixef"].items():  # LME4_TIGHT (lmerTest)
        assert fe.loc[term, "estimate"] == pytest.approx(est, rel=1e-6)
        assert fe.loc[term, "std_error"] == pytest.approx(se, rel=1e-6)
        assert fe.loc[term, "df"] == pytest.approx(df, rel=1e-6)
    _check_sdcor(f, LME4_TIGHT["slope_reml"]["sdcor"], 1e-6)  # LME4_TIGHT (VarCorr sdcor)
    ref = R["sleepstudy_slope_reml"]
    for term, r in ref["fixef_satterthwaite"].items():  # sleepstudy_slope_reml.fixef_satterthwaite
        assert fe.loc[term, "estimate"] == pytest.approx(r["Estimate"], rel=1e-9)
        assert fe.loc[term, "std_error"] == pytest.approx(r["Std. Error"], rel=2e-5)
    _check_sdcor(f, ref["sdcor"], 2e-5)  # r_reference.json: sleepstudy_slope_reml.sdcor


def test_conditional_modes_equal_lme4(sleep, clinic_data):
    f = fit_lmm(sleep, "Reaction ~ Days", "Subject", "slope", time="Days")
    re = f.random_effects.set_index("level")
    for subject, b in LME4_TIGHT["slope_reml"]["ranef"].items():  # LME4_TIGHT: ranef(m)$Subject
        assert re.loc[subject, ["(Intercept)", "Days"]].to_numpy(float) == pytest.approx(b, rel=1e-6)
    g = fit_lmm(clinic_data, PAIN, "patient_id", "slope", clinic="clinic_id")
    re = g.random_effects
    clinics = re[re.group == "clinic_id"].set_index("level")["(Intercept)"]
    for clinic, c in LME4_TIGHT["clinic_reml"]["ranef_clinic"].items():  # ranef(m2)$clinic_id
        # the clinic SD is the flattest direction of the criterion: matched to ~2e-6 (see sdcor)
        assert clinics[clinic] == pytest.approx(c, rel=1e-5)
    patients = re[re.group == "clinic_id:patient_id"].set_index("level")
    # LME4_TIGHT: ranef(m2)$`clinic_id:patient_id`
    for key, b in LME4_TIGHT["clinic_reml"]["ranef_patient"].items():
        got = patients.loc[[key], ["(Intercept)", "week"]].to_numpy(float).ravel()
        assert got == pytest.approx(b, rel=1e-5)


def test_sleepstudy_intercept_reml_equals_lme4(sleep):
    # R: lmer(Reaction ~ Days + (1 | Subject), ss, REML = TRUE); default control converges here
    ref = R["sleepstudy_intercept_reml"]
    f = fit_lmm(sleep, "Reaction ~ Days", "Subject", "intercept", time="Days")
    assert f.health.engine == "pls"
    assert f.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-9)  # sleepstudy_intercept_reml.REMLcrit
    fe = f.fixed_effects.set_index("term")
    for term, r in ref["fixef_satterthwaite"].items():  # sleepstudy_intercept_reml.fixef_satterthwaite
        assert fe.loc[term, "estimate"] == pytest.approx(r["Estimate"], rel=1e-6)
        assert fe.loc[term, "std_error"] == pytest.approx(r["Std. Error"], rel=1e-6)
        assert fe.loc[term, "df"] == pytest.approx(r["df"], rel=1e-6)
    _check_sdcor(f, ref["sdcor"], 1e-6)  # sleepstudy_intercept_reml.sdcor


def test_sleepstudy_ml_equals_lme4(sleep):
    # R: lmer(Reaction ~ Days + (Days | Subject), ss, REML = FALSE)
    ref = R["sleepstudy_slope_ml"]
    f = fit_lmm(sleep, "Reaction ~ Days", "Subject", "slope", time="Days", reml=False)
    assert f.health.engine == "pls"
    assert f.loglik == pytest.approx(ref["logLik"], rel=1e-9)  # sleepstudy_slope_ml.logLik
    assert f.aic == pytest.approx(ref["AIC"], rel=1e-9)  # sleepstudy_slope_ml.AIC
    assert f.bic == pytest.approx(ref["BIC"], rel=1e-9)  # sleepstudy_slope_ml.BIC
    assert f.beta == pytest.approx([ref["fixef"]["(Intercept)"], ref["fixef"]["Days"]], rel=1e-9)  # .fixef
    fe = f.fixed_effects.set_index("term")
    for term, (est, se, df) in LME4_TIGHT["slope_ml"]["fixef"].items():  # LME4_TIGHT (lmerTest)
        assert fe.loc[term, "std_error"] == pytest.approx(se, rel=1e-6)
        assert fe.loc[term, "df"] == pytest.approx(df, rel=1e-6)
    _check_sdcor(f, LME4_TIGHT["slope_ml"]["sdcor"], 1e-6)  # LME4_TIGHT (VarCorr sdcor)
    _check_sdcor(f, ref["sdcor"], 5e-5)  # r_reference.json: sleepstudy_slope_ml.sdcor (default control)


def test_clinic_nested_model_equals_lme4(clinic_data):
    # R: lmer(pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id)), bobyqa
    ref = RC["clinic_slope_reml"]
    f = fit_lmm(clinic_data, PAIN, "patient_id", "slope", clinic="clinic_id")
    assert f.health.engine == "pls" and f.health.fixed_effects_agreement < 1e-8
    # r_clinic_lmm.json: clinic_slope_reml.REMLcrit; ours is never above lme4's
    assert f.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-9)
    assert f.reml_criterion <= ref["REMLcrit"] + 1e-9
    fe = f.fixed_effects.set_index("term")
    for r_name, r in ref["fixef_satterthwaite"].items():  # clinic_slope_reml.fixef_satterthwaite (lmerTest)
        term = r_name.replace("arm", "arm[", 1) + "]" if "arm" in r_name else r_name
        assert fe.loc[term, "estimate"] == pytest.approx(r["Estimate"], rel=1e-5)
        assert fe.loc[term, "std_error"] == pytest.approx(r["Std. Error"], rel=1e-5)
        assert fe.loc[term, "df"] == pytest.approx(r["df"], rel=2e-5)
    _check_sdcor(f, ref["sdcor"], 1e-5)  # clinic_slope_reml.sdcor


# -- the statsmodels path on simulated clinic logs ----------------------------------------------
@pytest.fixture(scope="module")
def sim300():
    log, _ = simulate_log(300, 6, seed=11, arms=["orthotics", "foot_massage", "patella_taping"])
    return model_table(log)


@pytest.mark.parametrize("clinic", [None, "clinic_id"])
def test_pls_equals_statsmodels_path(sim300, clinic):
    a = fit_lmm(sim300, PAIN, "patient_id", "slope", clinic=clinic, engine="pls")
    b = fit_lmm(sim300, PAIN, "patient_id", "slope", clinic=clinic, engine="statsmodels")
    assert a.health.engine == "pls" and b.health.engine == "statsmodels"
    # with clinics this log's clinic SD is estimated as 0: the boundary is compared too
    assert a.health.singular == b.health.singular == (clinic is not None)
    assert a.reml_criterion <= b.reml_criterion + 1e-8 * abs(b.reml_criterion)
    cols = ["estimate", "std_error", "df"]
    assert np.allclose(a.fixed_effects[cols], b.fixed_effects[cols], rtol=1e-5, atol=1e-8)
    assert np.allclose(a.variance_components["estimate"], b.variance_components["estimate"], rtol=1e-5)
    ra, rb = a.random_effects.select_dtypes("number"), b.random_effects.select_dtypes("number")
    assert np.allclose(ra, rb, rtol=1e-4, atol=1e-6, equal_nan=True)


# -- engine selection, optimiser, fallback -----------------------------------------------------
def test_auto_uses_pls_in_class_and_statsmodels_outside(sleep):
    f = fit_lmm(sleep, "Reaction ~ Days", "Subject", "slope", time="Days")
    assert f.health.engine == "pls" and "evaluations" in f.health.optimizer_used
    quad = "~ Days + I(Days ** 2)"  # three random effects per patient: outside the class
    des = build_mixed_design(sleep, "Reaction ~ Days", "Subject", quad, "Days")
    assert "3 random effects" in pls_class_problem(des)
    g = fit_lmm(sleep, "Reaction ~ Days", "Subject", quad, time="Days", fallback=False)
    assert g.health.engine == "statsmodels"
    assert any("outside the pls engine's class" in w for w in g.health.warnings)
    with pytest.raises(ConfigError, match="pls"):
        fit_lmm(sleep, "Reaction ~ Days", "Subject", quad, time="Days", engine="pls")


def test_saddle_on_the_boundary_is_left(sleep):
    # the deviance is even in theta_22: from theta_22 = 0 its gradient is exactly 0 there
    des = build_mixed_design(sleep, "Reaction ~ Days", "Subject", "slope", "Days")
    dev = PlsDeviance(des.y, des.X, des.Z, des.patient)
    assert dev.gradient(np.array([1.0, 0.0, 0.0]))[2] == 0.0
    theta, info = minimise(dev, [1.0, 0.0, 0.0])
    assert theta[2] > 0.2
    assert info["deviance"] == pytest.approx(1743.62827196, rel=1e-9)  # sleepstudy_slope_reml.REMLcrit


def test_auto_retries_with_statsmodels_when_pls_fails(monkeypatch, sleep):
    monkeypatch.setattr(PlsEngine, "fit", lambda self, design, dev, optimizers, health: None)
    f = fit_lmm(sleep, "Reaction ~ Days", "Subject", "slope", time="Days")
    assert f.health.engine == "statsmodels" and f.health.fallback_steps == []
    assert any("pls engine did not converge" in w for w in f.health.warnings)
    # r_reference.json: sleepstudy_slope_reml.REMLcrit (lme4)
    assert f.reml_criterion == pytest.approx(1743.62827196, rel=1e-9)


def test_fallback_chain_under_auto(monkeypatch):
    calls = []

    def never_converges(self, design, dev, optimizers, health):
        calls.append((self.name, design.random, design.clinic))
        return None

    monkeypatch.setattr(PlsEngine, "fit", never_converges)
    monkeypatch.setattr(StatsmodelsEngine, "fit", never_converges)
    d = pd.read_csv(REF / "r_clinic_lmm.csv")
    f = fit_lmm(d, PAIN, "patient_id", "slope", clinic="clinic_id")
    assert calls == [("pls", "slope", "clinic_id"), ("statsmodels", "slope", "clinic_id"),
                     ("pls", "intercept", "clinic_id"), ("statsmodels", "intercept", "clinic_id"),
                     ("pls", "intercept", None), ("statsmodels", "intercept", None)]
    assert f.health.engine == "statsmodels-GEE" and f.health.status == "estimated"
    assert any("pls engine did not converge" in w for w in f.health.warnings)


# -- the benchmark script ------------------------------------------------------------------------
def test_bench_worker_and_comparison_with_lme4_names():
    res = bench._fit_worker({"kind": "fit", "engine": "pls", "n": 60, "clinic": True, "repeats": 1})
    assert res["status"] == "estimated" and len(res["seconds"]) == 1 and res["peak_mb"] > 0
    # lme4's names for the same numbers ("week:armorthotics"), then one SE 1e-3 too large
    lme4 = {"fixef": {t.replace("[", "").replace("]", ""): v for t, v in res["fixef"].items()},
            "se": {t.replace("[", "").replace("]", ""): v for t, v in res["se"].items()},
            "sdcor": dict(res["sdcor"])}
    assert bench.max_rel_diff(res, lme4) == 0.0
    lme4["se"]["week:armorthotics"] *= 1.001
    assert bench.max_rel_diff(res, lme4) == pytest.approx(1e-3 / 1.001, rel=1e-9)
    row = bench._row("slope+clinic", 60, "pls", res["seconds"], base=2 * res["seconds"][0])
    assert row["ratio_to_lme4"] == pytest.approx(0.5)
    assert "| slope+clinic | 60 |" in bench.format_table([row])


@pytest.mark.slow
def test_bench_command_writes_rows(tmp_path):
    assert bench.main(["--out", str(tmp_path), "--sizes", "60", "--repeats", "2", "--no-r",
                       "--validate-patients", "300", "--suite-patients", "--batch-runs", "0",
                       "--mmrm-nlme", "none", "--large-sizes", "90"]) == 0
    rows = json.loads((tmp_path / "bench.json").read_text())
    large = [r for r in rows if r["n_patients"] == 90]  # the large size: pls and mixedlm-rs only
    assert sorted((r["engine"], r["call"] or "", r["model"]) for r in large) == [
        ("mixedlm-rs", "", "slope"), ("pls", "bare", "slope"), ("pls", "suite", "slope")]
    assert all(r["runs"] == 2 for r in large if r["engine"] == "pls")
    fits = [r for r in rows if r["model"] in ("slope", "slope+clinic")]
    assert {(r["engine"], r["call"]) for r in fits} >= {("pls", "bare"), ("pls", "suite")}
    for r in rows:
        assert {"engine", "call", "threads", "model", "n_patients", "seconds_median", "ratio_to_lme4",
                "ratio_to_mixedlm_rs", "reml_minus_best", "peak_rss_mb"} <= set(r)
        assert r["ratio_to_lme4"] is None  # no R
    for r in fits:
        if r["seconds_median"] is not None:  # every engine that ran reached the same optimum
            assert r["runs"] == 2 and r["reml_minus_best"] < 1e-4
    assert [r["model"] for r in rows if r["engine"] == "suite"] == ["validate"]
    validate = next(r for r in rows if r["model"] == "validate")
    assert validate["n_patients"] == 300 and validate["n_rows"] > 300 and validate["peak_rss_mb"] > 0
    assert "arms" in validate["note"]  # validation and arm assignment, both timed
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- bench-table:start -->\nold\n<!-- bench-table:end -->\nb\n")
    assert bench.main(["--out", str(tmp_path), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and "| slope | 60 | pls (bare) | default |" in text and text.endswith("b\n")

def test_bench_workers_run_as_outcomes_does_without_numpys_huge_page_advice(monkeypatch):
    from analysis.studies import bench_peers

    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    env = bench_peers._env("1")
    assert env["NUMPY_MADVISE_HUGEPAGE"] == "0" and env["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in bench_peers._env("default")
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")  # the user's choice is kept
    assert bench_peers._env("default")["NUMPY_MADVISE_HUGEPAGE"] == "1"


def test_bench_peak_memory_is_the_workers_own_not_its_parents_at_the_fork():
    import subprocess
    import sys

    import numpy as np

    held = np.ones(2**25)  # 256 MB resident in this process, the parent
    code = "from analysis.studies.bench_peers import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout)
    assert held.sum() > 0 and child < 200  # ru_maxrss said >= 256 MB here
