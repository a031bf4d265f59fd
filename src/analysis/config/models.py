"""Config sections about the analyses: ``models:`` (pain, episodes, strength, responders,
moderator) and ``benchmarking:``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from analysis.config.sections import MAX_WEEK, Week, _Section, refuse_identifying


def _no_identifying_covariates(value: list[str]) -> list[str]:
    for item in value:
        refuse_identifying(item.strip(), "a covariate")
    return value


class MmrmSensitivity(_Section):
    """Delta-adjusted tipping-point analysis of an MMRM (``models.pain.sensitivity``)."""

    delta: list[float] = Field(default_factory=list, description="shifts (outcome units) added to "
                               "imputed values of the active arms after dropout; [] = not run")
    imputations: int = Field(50, ge=2, le=1000, description="multiple imputations per delta")


class PainModelOptions(_Section):
    """Pain model: a linear trend (LMM, REML) or an MMRM (visit as a factor, arm x visit).

    ``analysis`` unset means ``trend``, except ``mmrm`` when ``design: randomised`` and the log has
    scheduled visits (:func:`analysis.endpoints.pain_mmrm.resolve_analysis`).
    """

    analysis: Literal["trend", "mmrm"] | None = None
    covariance: Literal["us", "toep", "toeph", "ar1", "ar1h", "cs", "csh", "ad", "adh"] = "us"
    df: Literal["kenward-roger", "satterthwaite", "residual", "between-within"] = "kenward-roger"
    vcov: Literal["model", "empirical", "cr2"] = "model"
    method: Literal["reml", "ml"] = "reml"
    sensitivity: MmrmSensitivity = Field(default_factory=MmrmSensitivity)

    outcome: str = "pain_score"
    formula: str | None = Field(None, description="fixed-effects formula; default outcome ~ week * arm")
    covariates: list[str] = Field(default_factory=list, description="added to the default formula")
    random: Literal["intercept", "slope"] = "slope"
    clinic_level: bool = False
    weeks: list[Week] | None = Field(None, max_length=100, description="report times; default the log's own "
                                     "schedule (analysis.endpoints.timegrid)")
    engine: Literal["auto", "pls", "statsmodels"] = "auto"
    optimizers: list[str] = Field(default_factory=lambda: ["lbfgs", "bfgs", "powell", "nm"])

    @field_validator("outcome")
    @classmethod
    def _outcome(cls, value: str) -> str:
        return refuse_identifying(value, "an outcome")

    _covariates = field_validator("covariates")(_no_identifying_covariates)

    @model_validator(mode="after")
    def _mmrm_options(self):
        if self.analysis == "mmrm" and self.formula is not None:
            raise ValueError("formula is the trend model's; analysis: mmrm builds arm x visit + "
                             "covariates (set covariates, or analysis: trend)")
        if self.df == "kenward-roger" and self.method != "reml":
            raise ValueError("df: kenward-roger needs method: reml (as in SAS and R's mmrm); "
                             "use df: satterthwaite with method: ml")
        if self.df in ("kenward-roger", "satterthwaite") and self.vcov != "model":
            raise ValueError(f"df: {self.df} is for vcov: model; with vcov: {self.vcov} use "
                             "df: residual or between-within")
        return self


class EpisodesModelOptions(_Section):
    """Count models for knee-pain episodes with a log(exposure_days) offset."""

    family: Literal["negative_binomial", "poisson"] = "negative_binomial"
    primary: Literal["patient_level", "population_averaged"] = "patient_level"
    covariates: list[str] = Field(default_factory=list)

    _covariates = field_validator("covariates")(_no_identifying_covariates)


class StrengthModelOptions(_Section):
    covariates: list[str] = Field(default_factory=list)
    unit: str = "N"

    _covariates = field_validator("covariates")(_no_identifying_covariates)


class ResponderOptions(_Section):
    week: Week | None = Field(None, description="default the last report time")
    min_points: float = Field(2.0, gt=0)
    min_percent: float = Field(30.0, gt=0, le=100)
    window: float = Field(2.0, ge=0, le=MAX_WEEK, description="weeks either side of `week` a follow-up may fall")


class ModeratorOptions(_Section):
    overpronated_above: float = Field(5.0, ge=-12, le=12, description="Foot Posture Index cut-off")


class ModelsConfig(_Section):
    arm_column: str | None = Field(None, description="contract column holding each patient's arm")
    dose_response: bool = False
    alpha: float = Field(0.05, gt=1e-6, lt=0.5, description="two-sided level; 95% intervals at 0.05")
    pain: PainModelOptions = Field(default_factory=PainModelOptions)
    episodes: EpisodesModelOptions = Field(default_factory=EpisodesModelOptions)
    strength: StrengthModelOptions = Field(default_factory=StrengthModelOptions)
    responders: ResponderOptions = Field(default_factory=ResponderOptions)
    moderator: ModeratorOptions = Field(default_factory=ModeratorOptions)


class BenchmarkingOptions(_Section):
    """Clinic benchmarking (notebook 07; docs/benchmarking.md)."""

    clinic_id: str = Field("", max_length=200,
                           description="the clinic to highlight as 'your clinic'; '' = none (network view)")
    week: float | None = Field(None, gt=0, le=MAX_WEEK, description="last week of the funnel's pain change; "
                                                       "default the last report time")
    min_follow_up_week: float = Field(4.0, ge=0, le=MAX_WEEK, description="earliest week a follow-up score may be from")
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
