"""Config sections that map a real export onto the long data contract: ``reshape:`` (wide files),
``time_unit:`` / ``report_unit:``, ``visits:`` (labelled visits), ``constants:``, ``covariates:``,
``baseline:`` and ``patient_key:`` (docs/data-contract.md, "Mapping an export").

Time is converted to weeks inside the validated table (column ``week``) with the factors of
:data:`WEEKS_PER_UNIT` (a month is 30.4375 days, a year 365.25 days: the mean Gregorian month and
year); the report converts back and speaks in ``report_unit`` (default: the log's own unit).

YAML::

    reshape:
      id_columns: [USUBJID, ARMCD]
      patterns:
        - {pattern: "FEV1_(?P<visit>VIS[0-9])", into: pain_score}
    visits: {VIS1: 1, VIS2: 2, VIS3: 3, VIS4: 4}
    time_unit: months
    constants: {exposure_days: 14}
    covariates: {FEV1_BL: number, RACE: category}
    baseline: {column: FEV1_BL}
    patient_key: [clinic_id, patient_id]
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from analysis.config.sections import _Section

TimeUnit = Literal["minutes", "hours", "days", "weeks", "months", "years"]

#: Weeks in one unit of each ``time_unit`` (month = 30.4375 days, year = 365.25 days).
WEEKS_PER_UNIT: dict[str, float] = {
    "minutes": 1.0 / (7 * 24 * 60), "hours": 1.0 / (7 * 24), "days": 1.0 / 7, "weeks": 1.0,
    "months": 30.4375 / 7, "years": 365.25 / 7,
}

#: The singular word a report uses for one unit ("at month 6").
UNIT_WORD = {"minutes": "minute", "hours": "hour", "days": "day", "weeks": "week",
             "months": "month", "years": "year"}


def to_weeks(value: float, unit: str) -> float:
    """A time in ``unit`` as weeks (``week`` of the validated table)."""
    return value if unit == "weeks" else value * WEEKS_PER_UNIT[unit]


def from_weeks(week: float, unit: str) -> float:
    """A ``week`` value of the validated table in ``unit`` (inverse of :func:`to_weeks`)."""
    return week if unit == "weeks" else week / WEEKS_PER_UNIT[unit]


def _check_pattern(value: str) -> str:
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from None
    if len(set(compiled.groupindex) & {"time", "visit"}) != 1:
        raise ValueError(f"{value!r} needs exactly one named group, (?P<time>...) or "
                         "(?P<visit>...)")
    return value


class ReshapePattern(_Section):
    """One family of wide columns: a regex with a named group ``time`` or ``visit``."""

    pattern: str = Field(min_length=1, max_length=500)
    into: str = Field(min_length=1)
    times: dict[str, float] | None = Field(
        None, description="time of each matched label; default: the label read as a number")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _check_pattern(value)


class ReshapeOptions(_Section):
    """A wide file (one row per patient, one column per time point) read as long rows.

    Give ``id_columns`` (kept on every long row) and either ``value_columns`` with ``into``
    (file column -> time, all becoming contract column ``into``), or ``pattern`` (+ ``times``)
    with ``into``, or a list ``patterns`` (several outcomes at once)."""

    id_columns: list[str] = Field(min_length=1)
    into: str | None = None
    value_columns: dict[str, float] | None = None
    pattern: str | None = None
    times: dict[str, float] | None = None
    patterns: list[ReshapePattern] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_way(self):
        ways = [self.value_columns is not None, self.pattern is not None, bool(self.patterns)]
        if sum(ways) != 1:
            raise ValueError("give exactly one of value_columns, pattern or patterns")
        if (self.value_columns is not None or self.pattern is not None) and not self.into:
            raise ValueError("`into:` (the contract column the values become) is required "
                             "with value_columns or pattern")
        if self.patterns and self.into is not None:
            raise ValueError("with `patterns:` give `into:` inside each pattern")
        if self.pattern is not None:
            _check_pattern(self.pattern)
        if self.value_columns is not None and not self.value_columns:
            raise ValueError("value_columns is empty")
        return self

    def families(self) -> list[ReshapePattern]:
        """Every family as a pattern (``value_columns`` become exact-match patterns)."""
        if self.patterns:
            return list(self.patterns)
        if self.pattern is not None:
            return [ReshapePattern(pattern=self.pattern, into=self.into, times=self.times)]
        alternatives = "|".join(re.escape(c) for c in self.value_columns)
        times = {c: float(t) for c, t in self.value_columns.items()}
        return [ReshapePattern(pattern=f"(?P<time>{alternatives})", into=self.into, times=times)]


class BaselineOptions(_Section):
    """What a patient's baseline is: ``first_visit`` (default), a visit label, or a file column."""

    visit: str | None = None
    column: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _word(cls, value):
        if value == "first_visit" or value is None:
            return {}
        if isinstance(value, str):
            raise ValueError(f"{value!r}: use first_visit, {{visit: LABEL}} or {{column: NAME}}")
        return value

    @model_validator(mode="after")
    def _not_both(self):
        if self.visit is not None and self.column is not None:
            raise ValueError("give visit or column, not both")
        return self

    @property
    def kind(self) -> str:
        return "column" if self.column else "visit" if self.visit else "first_visit"


CovariateType = Literal["number", "category"]
PatientKey = Literal["patient_id", "clinic_id"]
