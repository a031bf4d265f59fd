"""Config sections about the data: how to read the file and what its columns and values mean.

The contract columns a ``columns:`` mapping may target, the default interventions, ``read:`` and the
scale ranges (``scales:``).
"""

from __future__ import annotations

from pydantic import model_validator

from analysis.config.sections import _Section

DEFAULT_INTERVENTIONS = [
    "foot_massage",
    "deep_tissue_massage",
    "orthotics",
    "strength_training",
    "patella_taping",
    "gait_retraining",
    "usual_care",
]

#: Contract column names a ``columns:`` mapping may target.
CONTRACT_COLUMNS = [
    "patient_id", "clinic_id", "visit_date", "time", "intervention", "pain_score", "episodes",
    "exposure_days", "strength", "foot_posture_index", "age_band", "sex", "arm",
]


class ReadOptions(_Section):
    """How to read the file. ``None`` means sniff (delimiter) or UTF-8 with or without BOM."""

    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | int | None = None


class ScaleRange(_Section):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self):
        if not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


def _default_scales() -> dict[str, ScaleRange]:
    return {"pain_score": ScaleRange(min=0, max=10), "foot_posture_index": ScaleRange(min=-12, max=12)}
