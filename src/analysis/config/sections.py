"""The building blocks of every config section: a frozen pydantic model that refuses unknown keys
and non-finite numbers (``.nan``, ``.inf``), the bounded number types the sections share, and the
columns that identify patients (never an outcome or a model term)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: Latest week a config may name (ten years of follow-up).
MAX_WEEK = 520.0
#: A week since the first visit: finite, from 0 to :data:`MAX_WEEK`.
Week = Annotated[float, Field(ge=0, le=MAX_WEEK)]
#: Columns that identify a patient or the clinic they attend.
IDENTIFYING_COLUMNS = ("patient_id", "clinic_id")


def refuse_identifying(value: str, what: str) -> str:
    """Raise if ``value`` names a column that identifies patients."""
    if value in IDENTIFYING_COLUMNS:
        raise ValueError(f"{value} identifies patients or their clinic; it cannot be {what}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
