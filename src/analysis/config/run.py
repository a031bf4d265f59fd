"""The whole run config (:class:`RunConfig`): every section, and the checks across sections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from analysis.config.data import (
    CONTRACT_COLUMNS,
    DEFAULT_INTERVENTIONS,
    ReadOptions,
    ScaleRange,
    _default_scales,
)
from analysis.config.models import BenchmarkingOptions, ModelsConfig
from analysis.config.outcomes import Design, OutcomeMeta
from analysis.config.sections import _Section


class RunConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    data: Path
    columns: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, dict[str, str]] = Field(default_factory=dict)
    interventions: list[str] = Field(default_factory=lambda: list(DEFAULT_INTERVENTIONS))
    control: str = "usual_care"
    time_unit: Literal["days", "weeks"] = "weeks"
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

    @field_validator("columns")
    @classmethod
    def _known_targets(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CONTRACT_COLUMNS))
        if unknown:
            raise ValueError(
                f"unknown contract column(s) {unknown}; the contract has {CONTRACT_COLUMNS}"
            )
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
