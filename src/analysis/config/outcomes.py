"""What each outcome is: ``outcomes:`` metadata (label, unit, range, direction, MCID, kind) and ``design:``.

Every sentence, axis, responder rule and verdict direction reads an outcome's metadata through
:func:`outcome_meta`, never from fixed text. Defaults reproduce the suite's clinic outcomes: pain on
the 0–10 numeric rating scale, lower is better, a minimal clinically important difference (MCID) of
2 points or 30 % (Dworkin et al. 2008, IMMPACT; Farrar et al. 2001); strength in newtons, higher is
better; knee-pain episodes, a count, fewer is better.

YAML::

    outcomes:
      FEV1: {label: FEV1, unit: L, better: higher, mcid: 0.1, kind: continuous}
      pain_score: {label: Throat pain, mcid: {points: 1.5, percent: 30}}
    design: randomised
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from analysis.config.data import ScaleRange
from analysis.config.sections import _Section


class Mcid(_Section):
    """The smallest change patients notice: in the scale's unit (``points``), as a percentage of
    the baseline value (``percent``), or both (a change counts when it reaches either)."""

    points: float | None = Field(None, gt=0)
    percent: float | None = Field(None, gt=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _number_is_points(cls, value):
        return {"points": value} if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _something(self):
        if self.points is None and self.percent is None:
            raise ValueError("give points, percent or both")
        return self


class OutcomeMeta(_Section):
    """One outcome column's meaning; unset fields fall back to the defaults of its column."""

    label: str | None = Field(None, min_length=1, max_length=80)
    unit: str | None = Field(None, max_length=40)
    range: ScaleRange | None = None
    better: Literal["lower", "higher"] | None = None
    mcid: Mcid | None = None
    kind: Literal["continuous", "ordinal", "count"] | None = None


#: Defaults per contract column (``range`` of pain comes from ``scales:`` when not given here).
DEFAULT_OUTCOMES: dict[str, dict] = {
    "pain_score": {"label": "Pain", "unit": "points", "better": "lower", "kind": "ordinal",
                   "mcid": {"points": 2.0, "percent": 30.0}},
    "strength": {"label": "Strength", "unit": "N", "better": "higher", "kind": "continuous"},
    "episodes": {"label": "Knee-pain episodes", "unit": "episodes", "better": "lower", "kind": "count"},
    "foot_posture_index": {"label": "Foot Posture Index", "unit": "points", "kind": "ordinal"},
}

Design = Literal["randomised", "observational"]


def outcome_word(label: str) -> str:
    """An outcome's label as a word inside a sentence: lower-cased when it is an ordinary word
    ("Pain" -> "pain", "Throat pain" -> "throat pain"), kept when it is an abbreviation or a name
    ("FEV1", "TWSTRS total", "X-ray score": a label whose second character is not a lower-case
    letter). The one rule for reports (docs/wording.md) and estimand texts."""
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        return label[0].lower() + label[1:]
    return label


def outcome_meta(cfg, column: str) -> OutcomeMeta:
    """The full metadata of ``column`` under run config ``cfg``: its ``outcomes:`` entry over the
    column's defaults, ``range`` from ``scales:`` when not given, strength's unit from
    ``models.strength.unit``; an entry keyed by the file column that ``columns:`` maps onto
    ``column`` counts as ``column``'s. A column with no entry and no defaults gets its own name as label,
    continuous, direction unknown (``better`` None)."""
    merged: dict = {"label": column, "kind": "continuous"} | DEFAULT_OUTCOMES.get(column, {})
    if column == "strength":
        merged["unit"] = cfg.models.strength.unit
    if column in cfg.scales:
        merged["range"] = cfg.scales[column]
    own = cfg.outcomes.get(column)
    if own is None and column in cfg.columns:
        own = cfg.outcomes.get(cfg.columns[column])  # keyed by the file's own column name
    if own is not None:
        merged |= own.model_dump(exclude_none=True)
    return OutcomeMeta.model_validate(merged)
