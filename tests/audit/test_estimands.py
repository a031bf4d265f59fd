"""analysis.audit.estimands: claims compiled to estimands, read from the models' results.

Three kinds of test, kept apart:
* unit tests of the Estimate arithmetic and the adapters on hand-made result tables;
* a regression test on the bundled example log (data/example/clinic_log.csv): the verdicts it
  gives are pinned, after checking that each interval agrees with the truth it was drawn from
  (data/example/clinic_log.truth.json);
* a calibration check over simulated logs with known truth (fixed seeds): a small version in the
  default run, the full one (200 logs per scenario, docs/claims.md) marked slow.
"""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.audit.claims import ResultsBundle, fit_claim_models, load_claims, parse_claims
from analysis.audit.estimands import (
    estimate_claim,
    estimate_episodes,
    estimate_pain,
    estimate_responders,
    estimate_strength,
)
from analysis.audit.estimate import Estimate, NotTestable
from analysis.audit.verdicts import SUPPORTED, audit_claims
from analysis.config import load_config, parse_config
from analysis.endpoints.responders import responder_analysis
from analysis.intake.arms import assign_arms
from analysis.intake.validate import validate_log
from analysis.studies.simulate import simulate_log
from analysis.studies.truth import Truth

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TRUTH = json.loads((ROOT / "data/example/clinic_log.truth.json").read_text())
CLAIM = {"id": "c", "text": "62% fewer episodes", "source": "a page", "outcome": "episodes",
         "intervention": "deep_tissue_massage", "comparator": "usual_care",
         "measure": "percent_reduction", "value": 62, "week": 12}


def claim(**kw):
    return parse_claims({"claims": [{**CLAIM, **kw}]}).claims[0]


def config(**models):
    return parse_config({"name": "t", "data": "unused.csv", "models": models})


def visits(log: pd.DataFrame) -> pd.DataFrame:
    """A simulated log as the validated table (week from the first visit, visit number, arm)."""
    d = log.copy()
    day = pd.to_datetime(d.pop("visit_date"))
    d["week"] = (day - day.groupby(d["patient_id"]).transform("min")).dt.days / 7.0
    d = d.sort_values(["patient_id", "week"], kind="stable").reset_index(drop=True)
    d["visit"] = d.groupby("patient_id").cumcount() + 1
    d["pain_score"] = d["pain_score"].astype(float)
    return assign_arms(d, "usual_care").data


# --- Estimate arithmetic -------------------------------------------------------------------------

def test_interval_at_another_level_is_wald_on_the_model_scale():
    est = Estimate("rr", "ratio", 0.8, 0.7, 0.9, 0.01, 0.07, 1.0)
    assert est.interval() == (0.7, 0.9)  # the level given is returned as given
    z = stats.norm.ppf(0.995)
    assert est.interval(0.01) == pytest.approx((0.8 * math.exp(-z * 0.07),
                                                0.8 * math.exp(z * 0.07)), rel=1e-12)
    diff = Estimate("d", "difference", -0.5, -0.9, -0.1, 0.02, 0.2, 0.0, df=30.0)
    t = stats.t.ppf(0.975, 30.0)
    assert diff.interval(0.05 + 1e-9) == pytest.approx((-0.5 - t * 0.2, -0.5 + t * 0.2),
                                                       rel=1e-6)


def test_standard_error_from_a_score_interval():
    est = Estimate("p", "proportion_difference", 0.1, 0.0, 0.2, 0.05, float("nan"), 0.0)
    assert est.model_std_error() == pytest.approx(0.1 / stats.norm.ppf(0.975), rel=1e-12)
    with pytest.raises(ValueError):
        Estimate("x", "odds", 1.0, 0.5, 2.0, 0.5, 0.1, 1.0)


# --- adapters on hand-made results -------------------------------------------------------------

def episode_result(primary="patient_level"):
    rows = []
    for estimand, log_rr, se in (("patient_level", math.log(0.8), 0.1),
                                 ("population_averaged", math.log(0.82), 0.11)):
        rows.append({"estimand": estimand, "arm": "deep_tissue_massage", "estimate": log_rr,
                     "std_error": se, "df": np.inf, "p_value": 0.03,
                     "conf_low": log_rr - 1.959964 * se, "conf_high": log_rr + 1.959964 * se})
    health = {e: SimpleNamespace(status="estimated") for e in ("patient_level",
                                                               "population_averaged")}
    return SimpleNamespace(rate_ratios=pd.DataFrame(rows), primary=primary,
                           control="usual_care", health=health, family="negative_binomial")


def test_episodes_adapter_grades_the_configured_estimand():
    est = estimate_episodes(claim(), episode_result(), primary="population_averaged")
    assert est.scale == "ratio" and est.estimate == pytest.approx(0.82)
    assert est.std_error == pytest.approx(0.11)
    assert est.estimand_text == ("rate ratio of episodes, deep-tissue massage vs usual care, "
                                 "follow-up weeks 0–12, population-averaged (negative binomial GEE, "
                                 "exchangeable working correlation, robust SE, adjusted for "
                                 "baseline rate, log(exposure) offset)")
    assert est.secondary.estimate == pytest.approx(0.8)
    assert "patient-level (negative binomial GLMM, random intercept per patient, Laplace ML" \
        in est.secondary.estimand_text


def test_episodes_adapter_refuses_another_comparator():
    with pytest.raises(NotTestable, match="compares each arm with 'usual_care'"):
        estimate_episodes(claim(comparator="foot_massage"), episode_result())


def tidy(term, estimate, se, df=100.0):
    q = stats.t.ppf(0.975, df)
    return {"term": term, "estimate": estimate, "std_error": se, "df": df, "p_value": 0.01,
            "conf_low": estimate - q * se, "conf_high": estimate + q * se}


def strength_result():
    slopes = pd.DataFrame([tidy("week slope: usual_care", 0.004, 0.001),
                           tidy("week slope: deep_tissue_massage", 0.015, 0.001)])
    diffs = pd.DataFrame([tidy("week slope: deep_tissue_massage - usual_care", 0.011, 0.0014)])
    return SimpleNamespace(control="usual_care", log_slopes=slopes, log_slope_differences=diffs)


def test_strength_adapter_scales_the_log_slope_by_the_weeks():
    c = claim(outcome="strength", measure="percent_increase", value=80)
    est = estimate_strength(c, strength_result())
    assert est.scale == "ratio" and est.estimate == pytest.approx(math.exp(12 * 0.011))
    assert est.std_error == pytest.approx(12 * 0.0014) and est.df == 100.0
    assert est.conf_high == pytest.approx(math.exp(12 * (0.011 + stats.t.ppf(0.975, 100)
                                                         * 0.0014)))


def test_before_after_claim_is_graded_on_the_controlled_estimate():
    c = claim(outcome="strength", comparator="baseline", measure="percent_increase", value=80)
    est = estimate_strength(c, strength_result(), control_ok=True)
    assert est.estimate == pytest.approx(math.exp(12 * 0.011))  # vs control
    assert est.pre_post.estimate == pytest.approx(math.exp(12 * 0.015))  # within the arm
    assert est.share_of_change_in_control == pytest.approx(0.004 / 0.015)
    alone = estimate_strength(c, strength_result(), control_ok=False)
    assert alone.estimate == pytest.approx(math.exp(12 * 0.015)) and alone.pre_post is None
    assert "uncontrolled" in alone.notes[-1]


def test_pain_window_claim_is_the_slope_difference_times_its_length():
    grid = pd.DataFrame({"term": ["d12", "sd", "s0", "s1"],
                         "kind": ["difference", "slope difference", "slope", "slope"],
                         "arm": ["foot_massage", "foot_massage", "usual_care", "foot_massage"],
                         "week": [12.0, np.nan, np.nan, np.nan]})
    result = SimpleNamespace(
        control="usual_care", fit=SimpleNamespace(estimated=True), grid=grid,
        contrasts=pd.DataFrame([tidy("d12", -0.5, 0.25)]),
        slope_differences=pd.DataFrame([tidy("sd", -0.03, 0.01)]),
        slopes=pd.DataFrame([tidy("s0", -0.08, 0.01), tidy("s1", -0.11, 0.01)]))
    c = claim(outcome="pain", intervention="foot_massage", measure="direction", value=None)
    at_week = estimate_pain(c, result)
    assert at_week.estimate == -0.5 and "at week 12" in at_week.estimand_text
    window = estimate_pain(claim(outcome="pain", intervention="foot_massage",
                                 measure="mean_difference", value=1, week=None, window=[4, 12]), result)
    assert window.estimate == pytest.approx(-0.03 * 8) and window.std_error == pytest.approx(0.08)
    assert "from week 4 to 12" in window.estimand_text


def bundle(counts: dict, results: dict | None = None) -> ResultsBundle:
    patients = pd.DataFrame({"patient_id": [f"P{i}" for i in range(sum(counts.values()))],
                             "arm": [a for a, n in counts.items() for _ in range(n)]})
    patients["overpronated"] = 0.0
    return ResultsBundle(patients, "usual_care", results or {})


@pytest.mark.parametrize("counts, results, reason", [
    ({"usual_care": 30}, {}, "the log has no patients in arm 'deep_tissue_massage'"),
    ({"usual_care": 30, "deep_tissue_massage": 7}, {},
     "arm 'deep_tissue_massage' has fewer than 11 patients (the disclosure threshold)"),
    ({"usual_care": 30, "deep_tissue_massage": 30}, {}, "no episodes results"),
    ({"usual_care": 30, "deep_tissue_massage": 30},
     {("episodes", None, None): "the episodes model could not be fitted (bad column)"},
     "could not be fitted (bad column)"),
])
def test_not_testable_reasons(counts, results, reason):
    with pytest.raises(NotTestable) as err:
        estimate_claim(claim(), bundle(counts, results), config())
    assert reason in str(err.value)
    assert "7" not in str(err.value)  # a count below the threshold is never shown


def test_few_assessable_responders_are_not_reported():
    log, _ = simulate_log(n_patients=120, n_clinics=3, seed=7,
                          arms=["usual_care", "deep_tissue_massage"])
    result = responder_analysis(visits(log), "usual_care", week=12.0)
    c = claim(outcome="responders", measure="responder_rate", value=20)
    n = result.differences.iloc[0]
    cfg = parse_config({"name": "t", "data": "unused.csv",
                        "disclosure_threshold": int(n["n_assessable_arm"]) + 1})
    b = bundle({"usual_care": 500, "deep_tissue_massage": 500},
               {("responders", None, 12.0): result})
    with pytest.raises(NotTestable, match="fewer than .* patients with the outcome"):
        estimate_claim(c, b, cfg)


def test_subgroup_counts_decide_testability():
    b = bundle({"usual_care": 30, "deep_tissue_massage": 30})
    with pytest.raises(NotTestable, match="no patients in arm 'deep_tissue_massage' among "
                                          "overpronated feet"):
        estimate_claim(claim(subgroup="overpronated"), b, config())


def test_responders_adapter_matches_the_responder_table():
    log, _ = simulate_log(n_patients=120, n_clinics=3, seed=7,
                          arms=["usual_care", "deep_tissue_massage"])
    result = responder_analysis(visits(log), "usual_care", week=12.0)
    c = claim(outcome="responders", measure="responder_rate", value=20)
    est = estimate_responders(c, result)
    row = result.differences.set_index("arm").loc["deep_tissue_massage"]
    assert (est.estimate, est.conf_low, est.conf_high) == (row["estimate"], row["conf_low"],
                                                           row["conf_high"])
    # the Newcombe interval recomputed at the same level is the table's
    assert est.interval_at(0.05) == pytest.approx((row["conf_low"], row["conf_high"]), rel=1e-12)
    lo, hi = est.interval(0.01)
    assert lo < row["conf_low"] and hi > row["conf_high"]


# --- regression: the bundled example ------------------------------------------------------------

@pytest.fixture(scope="module")
def example_fits():
    cfg = load_config(ROOT / "config" / "demo.yaml")
    data = assign_arms(validate_log(cfg).data, cfg.control).data
    claims = load_claims(ROOT / "config" / "claims" / "clinic_pages.yaml")
    return claims, fit_claim_models(data, claims, cfg), cfg


@pytest.fixture(scope="module")
def example_audit(example_fits):
    return audit_claims(*example_fits).set_index("id")


def test_example_graded_on_holm_intervals(example_fits, example_audit):
    claims, bundle, cfg = example_fits
    adjusted = claims.model_copy(update={"multiplicity": claims.multiplicity.model_copy(
        update={"verdicts_on_adjusted": True})})
    holm = audit_claims(adjusted, bundle, cfg).set_index("id")
    rank = example_audit["p_value"].rank(method="first").astype(int)
    assert (1 - holm["confidence"]).to_numpy() == pytest.approx(0.05 / (5 - rank + 1).to_numpy())
    assert (holm["conf_low"] <= example_audit["conf_low"] + 1e-12).all()
    assert (holm["conf_high"] >= example_audit["conf_high"] - 1e-12).all()
    assert (holm["estimate"] == example_audit["estimate"]).all()


def test_example_intervals_agree_with_the_truth(example_audit):
    a, t = example_audit, EXAMPLE_TRUTH
    # strength, controlled: (1 + 0.20) / (1 + 0.05) - 1 = 14.3 % more (truth percent_change_week12)
    s = a.loc["dtm-strength"]
    truth_ratio = 100 * (1.20 / 1.05 - 1)
    # On the seed-rule draw (data/example/README.md) the 95 % interval ends at 14.23 %, just short
    # of the truth's 14.29 %: a miss expected once in 20 intervals, and the seed may not be re-picked
    # to hide it. Checked at 99 % instead (|log-ratio error| <= 2.576 SE), and said here.
    logs = [math.log1p(s[c] / 100) for c in ("estimate", "conf_low", "conf_high")]
    se = (logs[2] - logs[1]) / (2 * stats.norm.ppf(0.975))
    assert abs(math.log1p(truth_ratio / 100) - logs[0]) <= stats.norm.ppf(0.995) * se
    assert not s["conf_low"] <= truth_ratio <= s["conf_high"]  # the documented miss
    assert s["pre_post"]["conf_low"] <= t["strength"]["percent_change_week12"][
        "deep_tissue_massage"] <= s["pre_post"]["conf_high"]
    assert 0 < s["share_of_change_in_control"] < 1
    # pain at week 12 in points less pain: -12 x slope difference (truth derived block)
    slopes = t["derived"]["pain_slope_difference_vs_usual_care"]
    for cid, arm in (("foot-massage-pain", "foot_massage"), ("taping-pain", "patella_taping")):
        assert a.loc[cid, "conf_low"] <= -12 * slopes[arm] <= a.loc[cid, "conf_high"]
    over = t["derived"]["pain_slope_difference_vs_usual_care_by_foot_posture"]["overpronated"]
    o = a.loc["orthotics-overpronated-pain"]
    assert o["conf_low"] <= -12 * over["orthotics"] <= o["conf_high"]
    # episodes: 100 (1 - 0.75) = 25 % fewer in truth (episodes.rate_ratio)
    e = a.loc["dtm-episodes"]
    truth_reduction = 100 * (1 - t["episodes"]["rate_ratio"]["deep_tissue_massage"])
    assert e["conf_low"] <= truth_reduction <= e["conf_high"]
    assert e["secondary"]["conf_low"] <= truth_reduction <= e["secondary"]["conf_high"]


def test_example_verdicts_are_pinned(example_audit):
    a = example_audit
    assert a.loc["dtm-episodes", "verdict"] != SUPPORTED
    assert a.loc["dtm-strength", "verdict"] != SUPPORTED
    # Regression values observed on the example (seed 20261121 by the rule in
    # data/example/README.md, 1,200 patients, data/example/demo_truth.yaml; each interval checked
    # against the truth above). The same verdicts on >= 9 of 10 neighbouring seeds (README table).
    assert a["verdict"].to_dict() == {
        "dtm-episodes": "overstated",
        "dtm-strength": "overstated",
        "foot-massage-pain": "inconclusive",
        "orthotics-overpronated-pain": "supported",
        "taping-pain": "supported",
    }


def test_example_records_say_what_was_estimated(example_audit):
    a = example_audit
    assert a.loc["dtm-episodes", "estimand"] == ("rate ratio of episodes, deep-tissue massage "
                                                 "vs usual care, follow-up weeks 0–12, "
                                                 "patient-level (negative binomial GLMM, random "
                                                 "intercept per patient, Laplace ML, adjusted for "
                                                 "baseline rate, log(exposure) offset)")
    assert "population-averaged (negative binomial GEE" in a.loc["dtm-episodes", "secondary"][
        "estimand"]
    assert "linear mixed model pain_score ~ week * arm * C(overpronated), random (1 + week | "\
        "patient_id)" in a.loc["orthotics-overpronated-pain", "estimand"]
    assert a.loc["dtm-strength", "uncontrolled"] and "vs usual care" in a.loc["dtm-strength",
                                                                              "estimand"]
    assert "before/after" in a.loc["dtm-strength", "pre_post"]["estimand"]
    assert a.loc["orthotics-overpronated-pain", "secondary"]["estimand"].startswith("moderator")
    assert a["p_holm"].ge(a["p_value"]).all()


# --- calibration over simulated logs ----------------------------------------------------------

def supported_share(effects: Truth, n_logs: int, n_patients: int, first_seed: int) -> float:
    """Share of simulated logs in which '62 % fewer episodes' is graded supported."""
    claims = parse_claims({"claims": [CLAIM]})
    cfg = config(episodes={"primary": "population_averaged"})  # the GEE: the faster fit
    hits = 0
    for seed in range(first_seed, first_seed + n_logs):
        log, _ = simulate_log(n_patients=n_patients, n_clinics=4, seed=seed,
                              arms=["usual_care", "deep_tissue_massage"], effects=effects)
        audit = audit_claims(claims, fit_claim_models(visits(log), claims, cfg), cfg)
        hits += audit.iloc[0]["verdict"] == SUPPORTED
    return hits / n_logs


def test_calibration_small():
    assert supported_share(Truth.null(), 8, 300, 5000) <= 0.05
    truth = Truth(episode_rate_ratio={"deep_tissue_massage": 0.38})
    assert supported_share(truth, 8, 300, 6000) >= 0.8


@pytest.mark.slow
def test_calibration_200_logs(request):
    # 200 logs per scenario, 800 patients (about 400 per arm), about 7 minutes; figures in
    # docs/claims.md. Runs only when asked for: pytest -m slow tests/audit/test_estimands.py
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow calibration (200 logs per scenario): run with `pytest -m slow`")
    assert supported_share(Truth.null(), 200, 800, 10_000) <= 0.05
    truth = Truth(episode_rate_ratio={"deep_tissue_massage": 0.38})
    assert supported_share(truth, 200, 800, 20_000) >= 0.8


def test_pain_estimand_names_the_outcome_from_its_metadata():
    # issue 12: the estimand text reads the outcome's label and range, never a fixed "pain (0–10)"
    from analysis.audit.estimands import outcome_in_words
    from analysis.config import outcome_meta

    default = parse_config({"name": "x", "data": "log.csv"})
    assert outcome_in_words(outcome_meta(default, "pain_score")) == "pain (0–10)"
    fev = parse_config({"name": "x", "data": "log.csv", "models": {"pain": {"outcome": "FEV1"}},
                        "outcomes": {"FEV1": {"label": "FEV1", "better": "higher"}}})
    assert outcome_in_words(outcome_meta(fev, "FEV1")) == "FEV1"
    twstrs = parse_config({"name": "x", "data": "log.csv", "outcomes": {
        "pain_score": {"label": "TWSTRS total", "range": {"min": 0, "max": 87}}}})
    assert outcome_in_words(outcome_meta(twstrs, "pain_score")) == "TWSTRS total (0–87)"
    throat = parse_config({"name": "x", "data": "log.csv", "outcomes": {"pain_score": {"label": "Throat pain"}}})
    assert outcome_in_words(outcome_meta(throat, "pain_score")) == "throat pain (0–10)"
