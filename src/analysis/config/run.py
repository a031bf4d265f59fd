"""The whole run config (:class:`RunConfig`): every section, and the checks across sections."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from analysis.config.data import (
    CONSTANT_COLUMNS,
    CONTRACT_COLUMNS,
    DEFAULT_INTERVENTIONS,
    ReadOptions,
    ScaleRange,
    _default_scales,
)
from analysis.config.mapping import (
    BaselineOptions,
    CovariateType,
    PatientKey,
    ReshapeOptions,
    TimeUnit,
)
from analysis.config.models import BenchmarkingOptions, ModelsConfig
from analysis.config.outcomes import Design, OutcomeMeta
from analysis.config.sections import _Section, refuse_identifying


class RunConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    label: str | None = Field(None, max_length=80)  # the report's name for readers (default: name)
    data: Path
    columns: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, dict[str, str]] = Field(default_factory=dict)
    interventions: list[str] = Field(default_factory=lambda: list(DEFAULT_INTERVENTIONS))
    control: str = "usual_care"
    time_unit: TimeUnit = "weeks"
    report_unit: TimeUnit | None = Field(None, description="unit the report speaks; default time_unit")
    scales: dict[str, ScaleRange] = Field(default_factory=_default_scales)
    drop: list[str] = Field(default_factory=list)
    disclosure_threshold: int = Field(11, ge=1)
    seed: int = 20261121
    read: ReadOptions = Field(default_factory=ReadOptions)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    benchmarking: BenchmarkingOptions = Field(default_factory=BenchmarkingOptions)
    claims: Path | None = None
    outcomes: dict[str, OutcomeMeta] = Field(default_factory=dict)
    design: Design = "observational"
    reshape: ReshapeOptions | None = None
    visits: dict[str, float] = Field(default_factory=dict)
    constants: dict[str, float | str] = Field(default_factory=dict)
    covariates: dict[str, CovariateType] = Field(default_factory=dict)
    baseline: BaselineOptions = Field(default_factory=BaselineOptions)
    patient_key: list[PatientKey] = Field(default_factory=lambda: ["patient_id"])

    @field_validator("constants")
    @classmethod
    def _constant_targets(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(CONSTANT_COLUMNS))
        if unknown:
            raise ValueError(f"unknown contract column(s) {unknown}; a constant can fill "
                             f"{list(CONSTANT_COLUMNS)}")
        return value

    @field_validator("covariates")
    @classmethod
    def _covariate_names(cls, value: dict) -> dict:
        for name in value:
            if name in CONTRACT_COLUMNS or name in ("week", "visit", "arm"):
                raise ValueError(f"{name!r} is a contract column; map it with `columns:` instead")
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"{name!r} cannot be named in a model formula; rename the file "
                                 "column to letters, digits and underscores")
        return value

    @field_validator("patient_key")
    @classmethod
    def _key(cls, value: list) -> list:
        if value not in (["patient_id"], ["clinic_id", "patient_id"]):
            raise ValueError("use [patient_id] (default) or [clinic_id, patient_id]")
        return value

    @field_validator("columns")
    @classmethod
    def _known_targets(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CONTRACT_COLUMNS))
        if unknown:
            raise ValueError(
                f"unknown contract column(s) {unknown}; the contract has {CONTRACT_COLUMNS}"
            )
        return value

    @field_validator("outcomes")
    @classmethod
    def _outcomes_are_not_identifiers(cls, value: dict) -> dict:
        for column in value:
            refuse_identifying(column, "an outcome")
        return value

    @model_validator(mode="after")
    def _control_is_an_intervention(self):
        if self.control not in self.interventions:
            raise ValueError(f"control {self.control!r} is not one of interventions {self.interventions}")
        return self

    def with_base(self, base: Path) -> "RunConfig":
        """Return a copy whose relative paths are resolved against ``base``."""
        update = {"data": _resolve(self.data, base)}
        if self.claims is not None:
            update["claims"] = _resolve(self.claims, base)
        return self.model_copy(update=update)


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path)
