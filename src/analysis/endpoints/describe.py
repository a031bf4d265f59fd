"""Descriptive tables: CONSORT-style flow, baseline characteristics, pain trajectories, missingness.

Every table carries ``n_patients`` so disclosure control can withhold cells resting on too few
patients. Definitions (docs/methods.md, "Description"):

- enrolled: patients with a baseline visit (``baseline:``; by default each patient's first visit);
- with follow-up: at least one visit after the patient's first;
- completing: a visit at or after ``completion_week`` (default: last planned week − 2);
- trajectories: visits binned to the nearest whole week; mean pain with a t-based 95 % interval
  across the patients seen in that bin (one value per patient and bin: their mean there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.config import BaselineOptions
from analysis.endpoints.baseline import baseline_rows

OUTCOME_COLUMNS = ["pain_score", "episodes", "exposure_days", "strength", "foot_posture_index"]


def flow_by_arm(visits: pd.DataFrame, completion_week: float) -> pd.DataFrame:
    """Patients enrolled, with follow-up and completing, per arm (tidy: arm, stage, n_patients)."""
    per_patient = visits.groupby("patient_id", observed=True).agg(
        arm=("arm", "first"), first_week=("week", "min"), last_week=("week", "max"),
        n_visits=("week", "size"))
    stages = {
        "enrolled": per_patient.index == per_patient.index,
        "with follow-up": per_patient["last_week"] > per_patient["first_week"],
        "completing": per_patient["last_week"] >= completion_week,
    }
    rows = []
    for arm, group in per_patient.groupby("arm", observed=True, sort=False):
        for stage, mask in stages.items():
            rows.append({"arm": str(arm), "stage": stage,
                         "n_patients": int(mask[per_patient["arm"].to_numpy() == arm].sum())})
    return pd.DataFrame(rows, columns=["arm", "stage", "n_patients"])


def baseline_by_arm(visits: pd.DataFrame, overpronated_above: float = 5.0,
                    baseline: BaselineOptions | None = None, outcome_label: str = "pain") -> pd.DataFrame:
    """Baseline characteristics per arm: tidy (arm, characteristic, value, n_patients).

    The baseline visit follows ``baseline`` (:mod:`analysis.endpoints.baseline`; default each
    patient's first visit); with ``baseline: {column: ...}`` the outcome's baseline mean is that
    column's. ``outcome_label`` names the outcome (``outcomes:`` label, lower-cased as a word).
    """
    base = baseline_rows(visits, baseline)
    if baseline is not None and baseline.kind == "column":
        base = base.assign(pain_score=base[baseline.column])
    rows = []
    for arm, group in base.groupby("arm", observed=True, sort=False):
        n = int(group["patient_id"].nunique())
        rows.append({"arm": str(arm), "characteristic": "patients", "value": float(n), "n_patients": n})
        for col, label in [("pain_score", f"{outcome_label}, mean"), ("foot_posture_index", "foot posture index, mean"),
                           ("strength", "strength, median")]:
            if col in group and group[col].notna().any():
                values = group[col].dropna().astype(float)
                value = values.median() if "median" in label else values.mean()
                rows.append({"arm": str(arm), "characteristic": label, "value": float(value),
                             "n_patients": int(len(values))})
        if "foot_posture_index" in group and group["foot_posture_index"].notna().any():
            fpi = group["foot_posture_index"].dropna().astype(float)
            rows.append({"arm": str(arm), "characteristic": "overpronated (FPI > +5), %",
                         "value": float(100 * (fpi > overpronated_above).mean()), "n_patients": int(len(fpi))})
        if "sex" in group and group["sex"].notna().any():
            sex = group["sex"].dropna().astype(str)
            rows.append({"arm": str(arm), "characteristic": "female, %",
                         "value": float(100 * (sex.str.upper().str.startswith("F")).mean()),
                         "n_patients": int(len(sex))})
    return pd.DataFrame(rows, columns=["arm", "characteristic", "value", "n_patients"])


def pain_trajectories(visits: pd.DataFrame, outcome: str = "pain_score", alpha: float = 0.05,
                      per: float = 1.0) -> pd.DataFrame:
    """Mean outcome by arm and time bin, with a t-based interval (tidy).

    Bins are whole weeks by default; ``per`` is the bin width in weeks (one unit of the report's
    time unit, e.g. 30.4375 / 7 for months, 1 / 168 for hours), and ``week`` is then the bin's
    centre in weeks."""
    if per == 1.0:
        data = visits.dropna(subset=[outcome]).assign(week_bin=lambda d: np.round(d["week"]).astype(int))
    else:
        data = visits.dropna(subset=[outcome]).assign(week_bin=lambda d: np.round(d["week"] / per) * per)
    per_patient = data.groupby(["arm", "week_bin", "patient_id"], observed=True)[outcome].mean().reset_index()
    grouped = per_patient.groupby(["arm", "week_bin"], observed=True)[outcome]
    table = grouped.agg(mean="mean", sd="std", n_patients="size").reset_index()
    se = table["sd"] / np.sqrt(table["n_patients"])
    tcrit = stats.t.ppf(1 - alpha / 2, np.maximum(table["n_patients"] - 1, 1))
    table["conf_low"] = table["mean"] - tcrit * se
    table["conf_high"] = table["mean"] + tcrit * se
    table["arm"] = table["arm"].astype(str)
    return table.rename(columns={"week_bin": "week"})[["arm", "week", "mean", "conf_low", "conf_high", "n_patients"]]


def missingness(visits: pd.DataFrame) -> pd.DataFrame:
    """Share of visits with each outcome missing, by arm (columns absent from the log are skipped)."""
    rows = []
    for arm, group in visits.groupby("arm", observed=True, sort=False):
        for col in OUTCOME_COLUMNS:
            if col in group:
                rows.append({"arm": str(arm), "column": col, "visits": int(len(group)),
                             "percent_missing": float(100 * group[col].isna().mean()),
                             "n_patients": int(group["patient_id"].nunique())})
    return pd.DataFrame(rows, columns=["arm", "column", "visits", "percent_missing", "n_patients"])
