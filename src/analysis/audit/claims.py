"""Claims files: published treatment claims, in their own words, in a form the audit can test.

A claims file (YAML, read with ``yaml.safe_load``) holds the claims of one source and how to
handle multiplicity across them (docs/claims.md documents every key)::

    multiplicity: {method: holm, verdicts_on_adjusted: false}
    claims:
      - id: dtm-episodes
        text: "participants exhibited 62% fewer knee pain episodes"
        source: "clinic web page (knee pain and feet), as quoted in the project brief"
        outcome: episodes            # pain | episodes | strength | responders
        intervention: deep_tissue_massage
        comparator: usual_care       # an arm label, or `baseline` for a before/after claim
        measure: percent_reduction   # percent_reduction | percent_increase | mean_difference
                                     # | responder_rate | direction
        value: 62                    # the claimed number (62 for 62 %); none for `direction`
        week: 12                     # or window: [0, 12] (also spelled weeks: [0, 12])

Unknown keys are refused by name, with the file. The multiplicity settings live here, not in the
run config, because the family of claims over which error rates are controlled is this file.
Which count estimand is primary (patient-level or population-averaged) is a property of the
analysis, so it comes from the run config (``models.episodes.primary``), not from a claim.

:func:`fit_claim_models` fits what a claims file needs and collects it in a
:class:`ResultsBundle`: the whole-population models (or ones already fitted, passed in), the
same models on the patients of a claim's subgroup, the responder analysis at a claim's week and,
for a pain claim about a subgroup, the moderator model (pain ~ week * arm * overpronated).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.config import _format_errors, load_yaml
from analysis.errors import ConfigError, InputError, OutcomesError

Outcome = Literal["pain", "episodes", "strength", "responders"]
Measure = Literal["percent_reduction", "percent_increase", "mean_difference", "responder_rate",
                  "direction"]
Direction = Literal["decrease", "increase"]

#: The comparator label that makes a claim a before/after (uncontrolled) claim.
BASELINE = "baseline"

#: Measures each outcome can be tested on (see docs/claims.md for the estimand of each).
MEASURES_BY_OUTCOME: dict[str, tuple[str, ...]] = {
    "episodes": ("percent_reduction", "percent_increase", "direction"),
    "pain": ("mean_difference", "direction"),
    "strength": ("percent_increase", "percent_reduction", "direction"),
    "responders": ("responder_rate", "direction"),
}

#: Outcomes a before/after claim (comparator `baseline`) can be tested on.
BASELINE_OUTCOMES = ("strength", "pain")

#: The direction a measure implies.
IMPLIED_DIRECTION = {"percent_reduction": "decrease", "percent_increase": "increase"}

#: The direction that means "better" for each outcome, used when a claim gives none.
BENEFIT_DIRECTION = {"pain": "decrease", "episodes": "decrease", "strength": "increase",
                     "responders": "increase"}

#: Subgroups a claim may name (foot posture index cut at models.moderator.overpronated_above).
SUBGROUPS = ("overpronated", "not_overpronated")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Multiplicity(_Strict):
    """Multiplicity control across the claims of one file.

    ``method: holm`` adjusts the claims' p-values (Holm 1979). With ``verdicts_on_adjusted:
    true`` verdicts are graded on Holm step-down intervals instead of the plain (1 - alpha) ones.
    ``none`` reports unadjusted p-values only.
    """

    method: Literal["holm", "none"] = "holm"
    verdicts_on_adjusted: bool = False

    @model_validator(mode="after")
    def _adjusted_needs_method(self):
        if self.verdicts_on_adjusted and self.method == "none":
            raise ValueError("verdicts_on_adjusted: true needs method: holm")
        return self


class Claim(_Strict):
    """One published claim and the comparison it implies."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    text: str = Field(min_length=1, description="the words as published")
    source: str = Field(min_length=1, description="URL or citation")
    outcome: Outcome
    intervention: str = Field(min_length=1)
    comparator: str = Field(min_length=1, description="an arm label, or `baseline`")
    measure: Measure
    value: float | None = Field(None, description="claimed size, positive (62 for 62 %)")
    direction: Direction | None = None
    week: float | None = Field(None, gt=0)
    window: tuple[float, float] | None = Field(
        None, validation_alias=AliasChoices("window", "weeks"),
        description="[from, to] in weeks; `weeks:` is the same key")
    subgroup: Literal["overpronated", "not_overpronated"] | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _consistent(self):
        allowed = MEASURES_BY_OUTCOME[self.outcome]
        if self.measure not in allowed:
            raise ValueError(f"measure {self.measure!r} cannot be tested on outcome "
                             f"{self.outcome!r}; use one of {list(allowed)}")
        if self.measure == "direction" and self.value is not None:
            raise ValueError("a `direction` claim has no value; remove `value` or choose a "
                             "measure such as percent_reduction")
        if self.measure != "direction" and self.value is None:
            raise ValueError(f"measure {self.measure!r} needs the claimed `value`")
        if self.value is not None and not self.value > 0:
            raise ValueError(f"value {self.value:g}: give the claimed size as a positive number "
                             "and its sign with `direction`")
        if self.measure == "percent_reduction" and self.value is not None and self.value >= 100:
            raise ValueError(f"value {self.value:g}: a percent reduction must be below 100")
        implied = IMPLIED_DIRECTION.get(self.measure)
        if implied and self.direction not in (None, implied):
            raise ValueError(f"direction {self.direction!r} contradicts measure {self.measure!r}")
        if self.week is not None and self.window is not None:
            raise ValueError("give either `week` or `window`, not both")
        if self.window is not None and not 0 <= self.window[0] < self.window[1]:
            raise ValueError(f"window {list(self.window)} must be [start, end] with "
                             "0 <= start < end")
        if self.comparator == BASELINE and self.outcome not in BASELINE_OUTCOMES:
            raise ValueError(f"comparator `baseline` (a before/after claim) is supported for "
                             f"{list(BASELINE_OUTCOMES)}, not {self.outcome!r}")
        if self.comparator == self.intervention:
            raise ValueError("intervention and comparator are the same arm")
        return self

    @property
    def claimed_direction(self) -> str:
        """``decrease`` or ``increase``: given, implied by the measure, or the outcome's benefit."""
        implied = IMPLIED_DIRECTION.get(self.measure)
        return self.direction or implied or BENEFIT_DIRECTION[self.outcome]

    @property
    def uncontrolled(self) -> bool:
        """True for a before/after claim (comparator ``baseline``)."""
        return self.comparator == BASELINE

    @property
    def weeks(self) -> tuple[float, float]:
        """The claim's time frame as (start, end) in weeks: ``window``, else (0, ``week``).

        A claim that names no time is resolved by :meth:`ResultsBundle.frame` to the end of the
        observed follow-up of the arms it compares; before that, its end is NaN.
        """
        if self.window is not None:
            return (float(self.window[0]), float(self.window[1]))
        return (0.0, float(self.week) if self.week is not None else float("nan"))

    @property
    def arms_compared(self) -> list[str]:
        """The arms whose follow-up the claim needs (the comparator unless ``baseline``)."""
        return [self.intervention] + ([] if self.uncontrolled else [self.comparator])


class Firmness(_Strict):
    """How firm each verdict is (docs/claims.md, "Firmness"): ``resamples`` patient-level
    bootstrap resamples within clinic, seeded by the run config's ``seed``; 0 turns the bootstrap
    off (the alternative analyses are always graded)."""

    resamples: int = Field(200, ge=0, le=10000)


class ClaimsFile(_Strict):
    """A claims file: the claims, the multiplicity setting and the firmness check."""

    claims: list[Claim] = Field(min_length=1)
    multiplicity: Multiplicity = Field(default_factory=Multiplicity)
    firmness: Firmness = Field(default_factory=Firmness)

    @model_validator(mode="after")
    def _unique_ids(self):
        ids = [c.id for c in self.claims]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"claim ids must be unique; repeated: {dup}")
        return self


def parse_claims(raw: object, source: str = "claims") -> ClaimsFile:
    """Validate a mapping (already loaded from YAML) into a :class:`ClaimsFile`.

    Parameters
    ----------
    raw : object
        The loaded YAML.
    source : str
        The file name, used in every message.

    Returns
    -------
    ClaimsFile

    Raises
    ------
    ConfigError
        Not a mapping, an unknown or missing key (named, with the claim's index and id), or an
        inconsistent claim.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a claims file must be a YAML mapping with a `claims:` list")
    try:
        return ClaimsFile.model_validate(raw)
    except ValidationError as exc:
        message = _format_errors(exc, source)
        raise ConfigError(_name_claims(message, raw)) from None


def _name_claims(message: str, raw: dict) -> str:
    # "claims.2.valu" is hard to find in a long file; name the claim's id beside its index.
    claims = raw.get("claims") if isinstance(raw.get("claims"), list) else []
    ids = {str(i): c["id"] for i, c in enumerate(claims) if isinstance(c, dict) and "id" in c}

    def add_id(match: re.Match) -> str:
        index = match.group(1)
        return match.group(0) + (f" (id {ids[index]!r})" if index in ids else "")

    return "\n".join(re.sub(r"claims\.(\d+)(?:\.[\w.]+)?'?", add_id, line, count=1)
                     for line in message.splitlines())


def load_claims(path: str | Path) -> ClaimsFile:
    """Read and validate a claims file (safe YAML; unknown keys refused by name and file).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ClaimsFile
    """
    path = Path(path)
    return parse_claims(load_yaml(path), source=str(path))


@dataclass
class ResultsBundle:
    """The fitted results an audit reads.

    Attributes
    ----------
    patients : DataFrame
        One row per patient: ``patient_id, arm, overpronated`` (1.0, 0.0, or NaN when the foot
        posture index is missing).
    control : str
        The run's control arm.
    results : dict
        :func:`result_key` -> result object (``EpisodeResult``, ``PainResult``,
        ``ModeratorResult``, ``StrengthResult``, ``ResponderResult``) or, when it could not be
        fitted, the reason as a string.
    """

    patients: pd.DataFrame
    control: str
    results: dict = field(default_factory=dict)
    #: (outcome, subgroup) -> arm -> end of its observed follow-up (analysis.endpoints.timegrid)
    follow_up: dict = field(default_factory=dict)
    #: the latest nominal follow-up time of the whole log (episodes: "all follow-up")
    last_time: float = float("nan")

    def frame(self, claim: Claim) -> tuple[float, float, str | None]:
        """The claim's (start, end) and, when it cannot be tested there, the reason.

        A claim without ``week`` or ``window`` ends where the observed follow-up of the arms it
        compares ends (the earliest of them); a claim beyond it is not testable.
        """
        from analysis.endpoints.timegrid import beyond_follow_up

        start, end = claim.weeks
        if (claim.outcome, claim.subgroup) not in self.follow_up:
            return start, end, None  # a hand-made bundle: no follow-up known, nothing checked
        ends = self.follow_up[(claim.outcome, claim.subgroup)]
        arms = claim.arms_compared
        if claim.uncontrolled and claim.intervention != self.control and self.control in ends:
            arms = arms + [self.control]
        if not math.isfinite(end):
            known = [ends[a] for a in arms if math.isfinite(ends.get(a, math.nan))]
            end = min(known) if known else math.nan
        if not math.isfinite(end) or not end > start:
            return start, end, beyond_follow_up(math.inf, arms, ends) or (
                f"the log has no follow-up after week {start:g} in the arms compared")
        return start, end, beyond_follow_up(end, arms, ends)

    def resolved(self, claim: Claim) -> Claim:
        """The claim with its end made explicit (``week``) when it named none."""
        if claim.week is not None or claim.window is not None:
            return claim
        return claim.model_copy(update={"week": self.frame(claim)[1]})

    def key(self, claim: Claim) -> tuple:
        """:func:`result_key` of the claim on its resolved time frame."""
        return result_key(self.resolved(claim), self.last_time)

    def arm_counts(self, subgroup: str | None = None) -> dict[str, int]:
        """Patients per arm, within ``subgroup`` when given."""
        p = self.patients
        if subgroup is not None:
            p = p[p["overpronated"] == float(subgroup == "overpronated")]
        return {str(k): int(v) for k, v in p.groupby(p["arm"].astype(str)).size().items()}


def result_key(claim: Claim, last_time: float = float("inf")) -> tuple:
    """Which result a claim reads: (model, subgroup, when).

    ``when`` is the responders' week; for episodes the claim's (start, end) window, or None when
    it spans all follow-up (start 0, end at or after ``last_time``); None otherwise. A pain claim
    about a subgroup reads the moderator model (all patients, arm x foot posture); other subgroup
    claims read their outcome's model fitted to the subgroup's patients.
    """
    if claim.outcome == "pain" and claim.subgroup is not None:
        return ("moderator", None, None)
    start, end = claim.weeks
    when = None
    if claim.outcome == "responders":
        when = end
    elif claim.outcome == "episodes" and (start > 0 or end < last_time):
        when = (start, end)
    return (claim.outcome, claim.subgroup, when)


def follow_up_column(claim: Claim, models_cfg) -> str:
    """The column whose recorded values say how long an arm was followed for this claim."""
    return {"episodes": "episodes", "strength": "strength"}.get(claim.outcome,
                                                                 models_cfg.pain.outcome)


def patient_table(data: pd.DataFrame, overpronated_above: float = 5.0) -> pd.DataFrame:
    """One row per patient: ``patient_id, arm, overpronated`` from a visit table with ``arm``."""
    first = data.groupby("patient_id", sort=True, observed=True).first()
    fpi = pd.to_numeric(first.get("foot_posture_index", pd.Series(float("nan"), first.index)),
                        errors="coerce")
    out = pd.DataFrame({"patient_id": first.index, "arm": first["arm"].astype(str).to_numpy(),
                        "overpronated": (fpi > overpronated_above).astype(float)
                        .where(fpi.notna()).to_numpy()})
    if "clinic_id" in first:  # the stratum of a patient-level bootstrap (audit.firmness)
        out["clinic_id"] = first["clinic_id"].astype(str).to_numpy()
    return out


def fit_claim_models(data: pd.DataFrame, claims: ClaimsFile, cfg, fitted: dict | None = None
                     ) -> ResultsBundle:
    """Fit every model the claims need (reusing ``fitted`` ones) into a :class:`ResultsBundle`.

    Parameters
    ----------
    data : DataFrame
        The validated visit table with the per-patient ``arm`` (:func:`analysis.intake.arms.assign_arms`).
    claims : ClaimsFile
    cfg : RunConfig
        Control arm, model options, alpha.
    fitted : dict, optional
        Whole-population results already fitted by the run, by name: ``episodes``, ``pain``,
        ``strength``, ``moderator``, ``responders`` (used when its week is the claim's).

    Returns
    -------
    ResultsBundle

    Raises
    ------
    InputError
        The table has no ``patient_id`` or ``arm`` column.
    """
    missing = [c for c in ("patient_id", "arm") if c not in data.columns]
    if missing:
        raise InputError(f"fit_claim_models: the visit table lacks {missing} (call "
                         "analysis.intake.arms.assign_arms first)")
    from analysis.audit.claim_fits import fit_outcome
    from analysis.endpoints.timegrid import follow_up_end, nominal

    m, control = cfg.models, cfg.control
    threshold = m.moderator.overpronated_above
    bundle = ResultsBundle(patient_table(data, threshold), control)
    follow = data["week"][data["week"] > 0] if "week" in data else pd.Series(dtype=float)
    bundle.last_time = float(nominal(follow).max()) if len(follow) else math.nan
    for name, result in (fitted or {}).items():
        week = result.definition["week"] if name == "responders" else None
        bundle.results[(name, None, week)] = result
    for claim in claims.claims:
        d = _subgroup_rows(data, bundle, claim.subgroup)
        where = (claim.outcome, claim.subgroup)
        if where not in bundle.follow_up:
            bundle.follow_up[where] = follow_up_end(d, follow_up_column(claim, m),
                                                    min_patients=cfg.disclosure_threshold)
        if bundle.frame(claim)[2] is not None:
            continue  # beyond the observed follow-up: nothing to fit
        key = bundle.key(claim)
        if key in bundle.results:
            continue
        model, subgroup, when = key
        if model == "moderator":
            d = data
        try:
            bundle.results[key] = fit_outcome(model, d, control, m, when, cfg.design)
        except OutcomesError as exc:
            bundle.results[key] = f"the {model} model could not be fitted ({exc})"
    return bundle


def _subgroup_rows(data: pd.DataFrame, bundle: ResultsBundle, subgroup: str | None):
    if subgroup is None:
        return data
    ids = bundle.patients.loc[bundle.patients["overpronated"]
                              == float(subgroup == "overpronated"), "patient_id"]
    return data[data["patient_id"].isin(set(ids))]
