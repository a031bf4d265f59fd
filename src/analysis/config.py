"""Run configuration: one pydantic model per YAML section, unknown keys refused by name.

A run config says where the log is, how its columns and labels map onto the data contract
(docs/data-contract.md), which arm is the comparator, and the model options. Relative paths
(``data``, ``claims``) are resolved against the folder of the config file, so a config and the
log it names can be moved together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analysis.errors import ConfigError

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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class PainModelOptions(_Section):
    """Linear mixed model for pain (and any continuous outcome), REML."""

    outcome: str = "pain_score"
    formula: str | None = Field(None, description="fixed-effects formula; default outcome ~ week * arm")
    covariates: list[str] = Field(default_factory=list, description="added to the default formula")
    random: Literal["intercept", "slope"] = "slope"
    clinic_level: bool = False
    weeks: list[float] = Field(default_factory=lambda: [0.0, 4.0, 8.0, 12.0])
    engine: Literal["auto", "pls", "statsmodels"] = "auto"
    optimizers: list[str] = Field(default_factory=lambda: ["lbfgs", "bfgs", "powell", "nm"])


class EpisodesModelOptions(_Section):
    """Count models for knee-pain episodes with a log(exposure_days) offset."""

    family: Literal["negative_binomial", "poisson"] = "negative_binomial"
    primary: Literal["patient_level", "population_averaged"] = "patient_level"
    covariates: list[str] = Field(default_factory=list)


class StrengthModelOptions(_Section):
    covariates: list[str] = Field(default_factory=list)
    unit: str = "N"


class ResponderOptions(_Section):
    week: float = 12.0
    min_points: float = Field(2.0, gt=0)
    min_percent: float = Field(30.0, gt=0, le=100)
    window: float = Field(2.0, ge=0, description="weeks either side of `week` a follow-up may fall")


class ModeratorOptions(_Section):
    overpronated_above: float = 5.0


class ModelsConfig(_Section):
    arm_column: str | None = Field(None, description="contract column holding each patient's arm")
    dose_response: bool = False
    alpha: float = Field(0.05, gt=0, lt=1)
    pain: PainModelOptions = Field(default_factory=PainModelOptions)
    episodes: EpisodesModelOptions = Field(default_factory=EpisodesModelOptions)
    strength: StrengthModelOptions = Field(default_factory=StrengthModelOptions)
    responders: ResponderOptions = Field(default_factory=ResponderOptions)
    moderator: ModeratorOptions = Field(default_factory=ModeratorOptions)


class BenchmarkingOptions(_Section):
    """Clinic benchmarking (notebook 07; docs/benchmarking.md)."""

    clinic_id: str = Field("", max_length=200,
                           description="the clinic to highlight as 'your clinic'; '' = none (network view)")
    week: float | None = Field(None, gt=0, description="last week of the funnel's pain change; "
                                                       "default the last of models.pain.weeks")
    min_follow_up_week: float = Field(4.0, ge=0, description="earliest week a follow-up score may be from")
    adjust_for_baseline: bool = Field(True, description="adjust for baseline pain as well as for arm")
    overdispersion: Literal["none", "multiplicative", "additive"] = Field(
        "additive", description="funnel limits: none, multiplicative phi or additive tau^2 (Spiegelhalter 2005)")
    winsorize: float = Field(0.1, ge=0, lt=0.5, description="share of z-scores winsorised at each end "
                                                             "before estimating phi / tau^2")

    @model_validator(mode="after")
    def _window(self):
        if self.week is not None and self.min_follow_up_week > self.week:
            raise ValueError(f"min_follow_up_week ({self.min_follow_up_week}) is after week ({self.week})")
        return self


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


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key {where!r}")
        elif err["type"] == "missing":
            lines.append(f"{source}: missing required key {where!r}")
        else:
            lines.append(f"{source}: {where}: {err['msg']}")
    return "\n".join(lines)


def parse_config(raw: dict, source: str = "config", base: Path | None = None) -> RunConfig:
    """Validate a mapping (already loaded from YAML) into a :class:`RunConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a run config must be a YAML mapping of keys to values")
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    return cfg.with_base(base) if base is not None else cfg


def load_yaml(path: str | Path) -> object:
    """Load YAML safely (no Python object tags), naming the file and position on error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config file; relative paths resolve against its folder."""
    path = Path(path)
    return parse_config(load_yaml(path), source=str(path), base=path.parent)
