"""Model faults through the whole runner: the run completes and says, in words, what it could
not estimate.

Each scenario is a small simulated log (analysis.studies.simulate) bent into a shape the models cannot
fully handle: no between-patient variance, collinear covariates, one clinic with a clinic level,
an arm of one patient, an arm without pain scores, one visit per patient, strength in huge
units, no control arm, an arm without episodes, two patients per arm, no foot posture column,
no episode columns, an arm in which nobody responds. Every run must end ``succeeded``; every
model's status in results.json is ``estimated``, ``not estimable: <reason>`` or ``not analysed:
<reason>``; and every status other than ``estimated`` is in the summary's "not analysed" list
and on index.html.

Three scenarios go through all nine notebooks; the others run notebook 01 (validation), the
notebooks of the models concerned and 09 (summary), to keep this file near four minutes on the
shared 2-core machine (about 15 s per short run, 45-60 s per full one).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from markupsafe import escape

from analysis.run.runner import notebook_sources, run_suite
from analysis.studies.simulate import simulate_log
from analysis.studies.truth import Truth

NOTEBOOKS = {p.stem[:2]: p for p in notebook_sources()}
ALL = sorted(NOTEBOOKS)
OK_PREFIXES = ("not estimable: ", "not analysed: ")


def _arm_of(log: pd.DataFrame) -> pd.Series:
    """Each patient's arm as the suite assigns it: the intervention given at most visits."""
    return log.groupby("patient_id")["intervention"].agg(lambda s: s.value_counts().index[0])


def _keep_patients(log, ids) -> pd.DataFrame:
    return log[log["patient_id"].isin(set(ids))].reset_index(drop=True)


def base(n=60, clinics=3, seed=7, **truth) -> pd.DataFrame:
    # No switching: each patient's arm is then simply the intervention on every visit. Usual
    # care improves a little faster than by default so that every arm of these small logs has
    # responders (an arm with none is its own scenario).
    effects = Truth(switch_fraction=0.0, pain_slope_per_week={"usual_care": -0.15}, **truth)
    log, _ = simulate_log(n, clinics, seed=seed, effects=effects)
    return log


def no_responders():
    log = base()
    usual = log["intervention"] == "usual_care"
    first = log.groupby("patient_id")["pain_score"].transform("first")
    log.loc[usual, "pain_score"] = first[usual]  # pain never changes: nobody responds
    return log


def zero_patient_variance():
    return base(pain_sd_patient_intercept=0.0, pain_sd_patient_slope=0.0, pain_sd_clinic=0.0,
                pain_sd_residual=0.5)


def one_patient_arm():
    log = base()
    arm = _arm_of(log)
    others = arm[arm == "orthotics"].index[1:]
    return log[~log["patient_id"].isin(others)].reset_index(drop=True)


def arm_without_pain():
    log = base()
    log["pain_score"] = log["pain_score"].astype("Float64")
    log.loc[log["intervention"] == "foot_massage", "pain_score"] = pd.NA
    return log


def single_visit():
    log = base()
    return log.groupby("patient_id", sort=False).head(1).reset_index(drop=True)


def huge_strength():
    log = base()
    log["strength"] = log["strength"] * 1e9  # newtons written as nanonewtons
    return log


def no_control():
    log = base()
    return log[log["intervention"] != "usual_care"].reset_index(drop=True)


def arm_without_episodes():
    log = base()
    log.loc[log["intervention"] == "deep_tissue_massage", "episodes"] = 0
    return log


def two_per_arm():
    log = base()
    arm = _arm_of(log)
    ids = arm.groupby(arm).head(2).index
    return _keep_patients(log, ids)


def no_fpi():
    return base().drop(columns=["foot_posture_index"])


def no_episodes():
    return base().drop(columns=["episodes", "exposure_days"])


def one_clinic():
    return base(clinics=1)


# name, log, config models (and other keys), notebooks, {results key: expected status start}
SCENARIOS = [
    ("zero_patient_variance", zero_patient_variance, {}, ["01", "03", "09"],
     {"pain": ("estimated", "not estimable: ")}),
    ("collinear_covariates", base,
     {"models": {"pain": {"covariates": ["foot_posture_index", "I(2 * foot_posture_index)"]}}},
     ["01", "03", "09"], {"pain": ("estimated",)}),
    ("one_clinic_with_clinic_level", one_clinic, {"models": {"pain": {"clinic_level": True}}},
     ["01", "03", "07", "09"], {"pain": ("estimated", "not estimable: "),
                                "benchmarking": ("not possible: the log has one clinic",)}),
    ("one_patient_arm", one_patient_arm, {}, ALL, {"pain": ("estimated",)}),
    ("arm_without_pain", arm_without_pain, {}, ["01", "03", "06", "09"],
     {"pain": ("estimated",), "moderator": ("estimated", "not estimable: ")}),
    # One visit each: every week term is aliased and dropped (as lme4 does), so the pain model
    # is "estimated" with a rank-deficiency warning and no contrast after week 0.
    ("single_visit_per_patient", single_visit, {}, ALL,
     {"pain": ("estimated", "not estimable: "),
      "episodes.patient_level": ("not estimable: no follow-up rows",),
      "strength": ("estimated", "not estimable: ", "not analysed: ")}),
    ("strength_in_huge_units", huge_strength, {}, ["01", "05", "09"], {"strength": ("estimated",)}),
    ("no_control_arm", no_control, {}, ALL,
     {"pain": ("not estimable: control arm 'usual_care'",),
      "strength": ("not estimable: control arm 'usual_care'",)}),
    ("arm_without_episodes", arm_without_episodes, {}, ["01", "04", "09"],
     {"episodes.patient_level": ("estimated",),
      "episode_arm:deep_tissue_massage": ("not estimable: arm 'deep_tissue_massage' has no "
                                          "episodes",)}),
    # 10 patients: below the default threshold a log is refused outright (test_corpus.py); with
    # the threshold of 5 used here it runs and every arm of 2 is withheld.
    ("two_patients_per_arm", two_per_arm, {}, ["01", "03", "04", "09"], {}),
    ("no_foot_posture_column", no_fpi, {}, ["01", "06", "09"],
     {"moderator": ("not analysed: the log has no foot posture index",)}),
    ("no_episode_columns", no_episodes, {}, ["01", "04", "09"],
     {"episodes": ("not analysed: the log has no episode counts",)}),
    pytest.param("arm_without_responders", no_responders, {}, ["01", "06", "09"], {}),
]


def statuses(results: dict) -> dict[str, str]:
    """Every status the run recorded: models (episodes by estimand) and benchmarking."""
    found = {}
    for name, section in results.get("models", {}).items():
        status = section.get("status")
        if name == "responders" and status is None and "proportions" in section:
            status = "estimated"  # responders_report.py writes no status when it succeeds
        if isinstance(status, dict):
            found.update({f"{name}.{k}": v for k, v in status.items()})
        else:
            found[name] = status
    if "benchmarking" in results:
        found["benchmarking"] = results["benchmarking"].get("status")
    return found


@pytest.mark.parametrize("name, make_log, extra, notebooks, expected", SCENARIOS,
                         ids=[s.values[0] if hasattr(s, "values") else s[0] for s in SCENARIOS])
def test_model_fault_is_survived_and_reported(tmp_path, name, make_log, extra, notebooks,
                                              expected):
    make_log().to_csv(tmp_path / "log.csv", index=False)
    config = tmp_path / "run.yaml"
    # A threshold of 5: these logs are small (60 patients, about 12 an arm) and the faults are in
    # the models; with the default 11 few follow-up times have enough patients in every arm, and
    # the sections say "not analysed" before any model meets its fault (disclosure itself is
    # tested in test_leaks.py, test_small_network.py and the corpus).
    config.write_text(yaml.safe_dump({"name": name, "data": "log.csv", "disclosure_threshold": 5,
                                      **extra}))
    run_dir = tmp_path / "run"
    outcome = run_suite(config, out=run_dir, progress=False,
                        notebooks=[NOTEBOOKS[k] for k in notebooks])
    assert outcome.status == "succeeded", outcome.error
    results = json.loads((run_dir / "results.json").read_text())
    found = statuses(results)
    assert found, "no model ran"
    for key, status in found.items():
        if key == "benchmarking":
            assert status == "estimated" or status.startswith("not possible: "), status
            continue
        assert status == "estimated" or (status.startswith(OK_PREFIXES)
                                         and len(status) > 16), f"{key}: {status!r}"
    episode_rows = results.get("models", {}).get("episodes", {}).get("rate_ratios", [])
    for key, allowed in expected.items():
        if key.startswith("episode_arm:"):  # each row (both estimands) of one arm
            rows = [r for r in episode_rows if r["arm"] == key.split(":")[1]]
            assert len(rows) == 2 and all(r["status"].startswith(allowed) for r in rows), rows
        else:
            assert found.get(key, "").startswith(allowed), f"{key}: {found.get(key)!r}"

    # In words: each model not estimated is in the summary and on the dashboard.
    summary = results["summary"]["not_analysed"]
    print(json.dumps({"scenario": name, "statuses": found, "not_analysed": summary}))
    page = (run_dir / "index.html").read_text(encoding="utf-8")
    for name_, section in results.get("models", {}).items():
        status = section.get("status")
        items = ([f"{k}: {v}" for k, v in status.items() if v != "estimated"]
                 if isinstance(status, dict) else
                 [status] if status not in (None, "estimated") else [])
        for item in items:
            line = next((s for s in summary if s.startswith(f"{name_}: ") and item in s), None)
            assert line is not None, f"{name_}: {item!r} missing from {summary}"
            assert str(escape(line)) in page  # as the dashboard's template escapes it

    # Arms the episode fit had to leave out say why, row by row.
    for row in episode_rows:
        assert row["status"] == "estimated" or row["status"].startswith("not estimable: ")
        if row["status"] == "estimated" and not row.get("suppressed"):
            assert np.isfinite(row["rate_ratio"])

