"""A claim on its own terms: its time frame, the arms' observed follow-up, the episodes window.

Issue 13: no estimate or claim beyond the observed follow-up of the arms compared; a claim's
``week``/``window`` defines its estimand for every outcome (episodes over that window).
"""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.audit.claims import fit_claim_models, load_claims, parse_claims
from analysis.audit.verdicts import NOT_TESTABLE, audit_claims
from analysis.config import parse_config
from analysis.endpoints.timegrid import follow_up_end, nominal, observed_times
from analysis.studies.simulate import simulate_log
from tests.audit.test_estimands import visits

ROOT = Path(__file__).resolve().parents[2]
CLINIC_PAGES = ROOT / "config" / "claims" / "clinic_pages.yaml"


def cfg():
    return parse_config({"name": "t", "data": "unused.csv"})


@pytest.fixture(scope="module")
def six_week_log():
    log, _ = simulate_log(n_patients=360, n_clinics=6, seed=7, weeks=6)
    return visits(log)


def test_grid_and_follow_up_come_from_the_log(six_week_log):
    times = observed_times(six_week_log, "pain_score", min_patients=11)
    assert times == [0.0, 1.0, 2.0, 3.0, 4.0, 6.0]  # weekly to 4, then fortnightly to 6
    ends = follow_up_end(six_week_log, "pain_score", min_patients=11)
    assert set(ends.values()) == {6.0}
    # the k-th longest-followed patient sets the end: with k above an arm's size it is unknown
    assert all(math.isnan(v) for v in follow_up_end(six_week_log, "pain_score",
                                                   min_patients=1000).values())


def test_week_12_claims_on_a_six_week_log_are_not_testable(six_week_log):
    claims = load_claims(CLINIC_PAGES)
    audit = audit_claims(claims, fit_claim_models(six_week_log, claims, cfg()), cfg())
    by_id = audit.set_index("id")
    # (few overpronated orthotics patients: that claim is withheld by the disclosure threshold)
    assert by_id.loc["orthotics-overpronated-pain", "verdict"] == NOT_TESTABLE
    for cid in ("dtm-strength", "foot-massage-pain", "taping-pain"):
        assert by_id.loc[cid, "verdict"] == NOT_TESTABLE, cid
        # strength is measured every second visit, so its follow-up ends at week 4
        assert re.search(r"only to week [46] ", by_id.loc[cid, "reason"]), by_id.loc[cid, "reason"]
        assert "at week 12" in by_id.loc[cid, "reason"]  # the reason names the claim's week
    # the episodes claim names no week: it is graded over the follow-up the log has
    assert by_id.loc["dtm-episodes", "verdict"] != NOT_TESTABLE
    assert "weeks 0–6" in by_id.loc["dtm-episodes", "estimand"]
    graded = audit[audit["verdict"] != NOT_TESTABLE]
    assert not graded["plain"].str.contains("week 12").any()
    assert not graded["estimand"].str.contains("12").any()


def _episode_claim(**kw):
    base = {"id": "e", "text": "fewer episodes", "source": "a page", "outcome": "episodes",
            "intervention": "deep_tissue_massage", "comparator": "usual_care",
            "measure": "percent_reduction", "value": 50}
    return {**base, **kw}


def test_episodes_claim_reads_its_own_window():
    log, _ = simulate_log(n_patients=300, n_clinics=4, seed=11)
    d = visits(log)
    # after week 4 deep-tissue massage patients have a quarter of their episodes: the rate
    # ratio over weeks 0-4 is the simulated 0.75, over weeks 0-12 it is far lower
    late = (d["arm"].astype(str) == "deep_tissue_massage") & (nominal(d["week"]) > 4)
    d.loc[late, "episodes"] = np.floor(d.loc[late, "episodes"] / 4)
    claims = parse_claims({"claims": [_episode_claim(id="w4", week=4),
                                      _episode_claim(id="w12", week=12),
                                      _episode_claim(id="late", week=None, window=[4, 12])]})
    bundle = fit_claim_models(d, claims, cfg())
    audit = audit_claims(claims, bundle, cfg()).set_index("id")
    w4, w12, late_ = (audit.loc[i] for i in ("w4", "w12", "late"))
    assert "weeks 0–4" in w4["estimand"] and "weeks 0–12" in w12["estimand"]
    assert "weeks 4–12" in late_["estimand"]
    # estimates in percent fewer episodes: the late window shows the big reduction
    assert w4["estimate"] < 40 < w12["estimate"] < late_["estimate"]
    # week 12 is all follow-up: it reuses the whole-follow-up fit (no window in its key)
    assert ("episodes", None, None) in bundle.results
    assert ("episodes", None, (0.0, 4.0)) in bundle.results


def test_estimand_text_names_the_model_fitted_and_a_forced_gee_fallback(monkeypatch):
    from analysis.models.lmm import StatsmodelsEngine

    log, _ = simulate_log(n_patients=120, n_clinics=3, seed=5)
    d = visits(log)
    claims = parse_claims({"claims": [{
        "id": "p", "text": "taping eases pain", "source": "a page", "outcome": "pain",
        "intervention": "patella_taping", "comparator": "usual_care", "measure": "direction",
        "direction": "decrease", "week": 12}]})
    run_cfg = parse_config({"name": "t", "data": "unused.csv", "disclosure_threshold": 5,
                            "models": {"pain": {"engine": "statsmodels", "random": "intercept"}}})
    normal = audit_claims(claims, fit_claim_models(d, claims, run_cfg), run_cfg).iloc[0]
    assert "linear mixed model pain_score ~ week * arm, random (1 | patient_id), REML" \
        in normal["estimand"]
    assert "engine statsmodels" in normal["estimand"] and "GEE" not in normal["estimand"]

    def never_converges(self, design, dev, optimizers, health):
        health.optimizers_tried.extend(optimizers)
        return None

    monkeypatch.setattr(StatsmodelsEngine, "fit", never_converges)
    forced = audit_claims(claims, fit_claim_models(d, claims, run_cfg), run_cfg).iloc[0]
    assert "GEE fallback pain_score ~ week * arm" in forced["estimand"]
    assert "after the mixed model failed" in forced["estimand"]
    assert "Satterthwaite" not in forced["estimand"]


def test_an_arm_below_the_threshold_does_not_empty_the_grid():
    # docs/wording.md, "Times": an arm with fewer than k patients in all is withheld everywhere,
    # so it is left out of the rule instead of leaving the other arms with no report time.
    from analysis.endpoints.timegrid import observed_times

    rows = [{"patient_id": f"a{i}", "arm": "a", "week": w, "y": 1.0} for i in range(12) for w in (0, 4)]
    rows += [{"patient_id": f"b{i}", "arm": "b", "week": w, "y": 1.0} for i in range(12) for w in (0, 4, 8)]
    rows += [{"patient_id": "c0", "arm": "c", "week": 0, "y": 1.0}]
    data = pd.DataFrame(rows)
    assert observed_times(data, "y", min_patients=11) == [0.0, 4.0]
    assert observed_times(data[data["arm"] != "c"], "y", min_patients=11) == [0.0, 4.0]
    assert observed_times(data, "y", min_patients=13) == []
