"""Config sections about the data: how to read the file and what its columns and values mean.

The contract columns a ``columns:`` mapping may target, the default interventions, ``read:`` and the
scale ranges (``scales:``).
"""

from __future__ import annotations

import codecs

from pydantic import Field, field_validator, model_validator

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
    "exposure_days", "strength", "foot_posture_index", "age_band", "sex", "arm", "visit",
]

#: Contract columns a ``constants:`` entry may fill (every row gets the same value).
CONSTANT_COLUMNS = ("exposure_days", "clinic_id", "intervention", "arm", "time")


class ReadOptions(_Section):
    """How to read the file. ``None`` means sniff (delimiter) or UTF-8 with or without BOM."""

    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | int | None = None
    missing: list[str] = Field(default_factory=list, max_length=50,
                               description="cell texts meaning 'missing' (e.g. NA, ., -99); "
                                           "default none: only an empty cell is missing")

    @field_validator("missing", mode="before")
    @classmethod
    def _tokens(cls, value):
        if not isinstance(value, list):
            return value
        value = [str(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else t
                 for t in value]
        for token in value:
            if isinstance(token, str) and not token.strip():
                raise ValueError("an empty token is already missing; list only texts such as NA")
        return [t.strip() if isinstance(t, str) else t for t in value]

    @field_validator("encoding")
    @classmethod
    def _text_encoding(cls, value: str | None) -> str | None:
        """An encoding Python's codec registry knows and marks as a text encoding (not rot13, zlib)."""
        if value is None:
            return value
        try:
            info = codecs.lookup(value)
        except (LookupError, TypeError, ValueError):
            raise ValueError(f"unknown encoding {value!r}; use e.g. utf-8, latin-1, cp1252, utf-16") from None
        if not getattr(info, "_is_text_encoding", True):
            raise ValueError(f"{value!r} is not a text encoding; use e.g. utf-8, latin-1, cp1252, utf-16")
        return value


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
