"""What a patient's baseline is (``baseline:`` in the run config, docs/data-contract.md section 7).

- ``first_visit`` (default): each patient's first visit, whatever its time (week 0 for dated
  visits, month 1 or hour 0.5 for a trial's schedule);
- ``{visit: LABEL}``: the visit with that ``visits:`` label;
- ``{column: NAME}``: a baseline column of the file (a ``number`` covariate, e.g. ``FEV1_BL``).

The baseline table, change scores and responders read it through these functions.
"""

from __future__ import annotations

import pandas as pd

from analysis.config import BaselineOptions


def baseline_rows(visits: pd.DataFrame, spec: BaselineOptions | None = None) -> pd.DataFrame:
    """One row per patient: the visit that describes them at baseline.

    ``first_visit`` and ``column``: the patient's first visit (their characteristics; with a
    baseline column its value is read from that row); ``visit``: the visit with that label
    (patients without it are left out).
    """
    spec = spec or BaselineOptions()
    ordered = visits.sort_values(["patient_id", "week"], kind="stable")
    if spec.kind == "visit":
        ordered = ordered[ordered["visit"].astype(str) == spec.visit]
    return ordered.drop_duplicates("patient_id")


def baseline_scores(visits: pd.DataFrame, outcome: str,
                    spec: BaselineOptions | None = None) -> pd.Series | None:
    """Baseline score per patient (index ``patient_id``), or None for ``first_visit`` (whose rule
    each analysis applies itself: the score at the patient's first visit time)."""
    spec = spec or BaselineOptions()
    if spec.kind == "first_visit":
        return None
    rows = baseline_rows(visits, spec)
    source = spec.column if spec.kind == "column" else outcome
    return rows.set_index("patient_id")[source].astype(float)
