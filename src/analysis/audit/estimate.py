"""A claim's estimate: one number on its model's scale, its interval and test, and how it reads.

The :class:`Estimate` record every estimand adapter of :mod:`analysis.audit.estimands` returns,
:class:`NotTestable` (the reason a claim cannot be tested, for a reader), and the helpers that read
an estimate from a tidy model row (a Wald interval, as the model gave it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from analysis.audit.claims import Claim

SCALES = ("ratio", "difference", "proportion_difference")
NULL_VALUE = {"ratio": 1.0, "difference": 0.0, "proportion_difference": 0.0}

#: Arm labels as a reader says them (others: underscores become spaces).
ARM_WORDS = {"deep_tissue_massage": "deep-tissue massage"}


class NotTestable(Exception):
    """The claim cannot be tested on these data; the message is the reason, for a reader."""


def arm_words(arm: str) -> str:
    """An arm label in words, e.g. ``deep_tissue_massage`` -> ``deep-tissue massage``."""
    return ARM_WORDS.get(arm, str(arm).replace("_", " "))


@dataclass(frozen=True)
class Estimate:
    """One estimate of a claim's estimand, on the model's natural scale.

    Attributes
    ----------
    estimand_text : str
        The estimand in words (what is compared, where, over which weeks, which estimand).
    scale : {"ratio", "difference", "proportion_difference"}
        ``estimate`` and the interval are a ratio (arm / comparator), a difference (arm -
        comparator, outcome units) or a difference of proportions (0-1).
    estimate, conf_low, conf_high : float
        Point estimate and (1 - ``alpha``) interval.
    p_value : float
        Two-sided, against ``null_value``.
    std_error : float
        On the log scale for a ratio; NaN when the interval is not estimate +/- q x SE (then
        ``interval_at`` recomputes it at another level).
    null_value : float
        1 for a ratio, 0 otherwise.
    n_per_arm : dict of str to int
        Patients behind the estimate in each arm compared.
    secondary : Estimate or None
        The other estimand (counts: the other of patient-level / population-averaged; pain in a
        subgroup: the moderator interaction).
    notes : tuple of str
    df : float
        Degrees of freedom of the interval (inf: normal).
    alpha : float
        1 - level of the interval given.
    pre_post : Estimate or None
        For a before/after claim graded on the controlled estimate: the within-arm change.
    share_of_change_in_control : float or None
        For a before/after claim: control arm's change / the arm's change (model scale).
    interval_at : callable or None
        ``alpha -> (low, high)`` for intervals that are not Wald (e.g. Newcombe).
    analysis : str
        The model the estimate rests on, generated from the fit (:mod:`analysis.audit.model_text`).
    """

    estimand_text: str
    scale: str
    estimate: float
    conf_low: float
    conf_high: float
    p_value: float
    std_error: float
    null_value: float
    n_per_arm: dict = field(default_factory=dict)
    secondary: "Estimate | None" = None
    notes: tuple = ()
    df: float = math.inf
    alpha: float = 0.05
    pre_post: "Estimate | None" = None
    share_of_change_in_control: float | None = None
    interval_at: Callable[[float], tuple[float, float]] | None = field(default=None, repr=False)
    analysis: str = ""

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale {self.scale!r} is not one of {SCALES}")

    def on_model_scale(self, value: float) -> float:
        """``value`` on the additive scale of the model (log for a ratio)."""
        return math.log(value) if self.scale == "ratio" else float(value)

    def interval(self, alpha: float | None = None) -> tuple[float, float]:
        """The (1 - alpha) interval on the natural scale (given one, or recomputed)."""
        if alpha is None or math.isclose(alpha, self.alpha, rel_tol=1e-12):
            return self.conf_low, self.conf_high
        if self.interval_at is not None:
            return self.interval_at(alpha)
        if not math.isfinite(self.std_error):
            return math.nan, math.nan
        dist = stats.norm if not math.isfinite(self.df) else stats.t(self.df)
        half = float(dist.ppf(1 - alpha / 2)) * self.std_error
        centre = self.on_model_scale(self.estimate)
        low, high = centre - half, centre + half
        return (math.exp(low), math.exp(high)) if self.scale == "ratio" else (low, high)

    def model_std_error(self) -> float:
        """SE on the model scale; from the interval's width when no SE is given (Newcombe)."""
        if math.isfinite(self.std_error):
            return float(self.std_error)
        low, high = (self.on_model_scale(v) for v in (self.conf_low, self.conf_high))
        return (high - low) / (2 * float(stats.norm.ppf(1 - self.alpha / 2)))


def _row(table: pd.DataFrame, **where) -> pd.Series | None:
    hit = table
    for col, value in where.items():
        if col not in hit.columns:
            return None
        col_values = hit[col]
        hit = hit[np.isclose(col_values.astype(float), value) if isinstance(value, float)
                  else col_values.astype(str) == str(value)]
    return None if hit.empty else hit.iloc[0]


def _wald(text, scale, row, n_per_arm, alpha, ratio_from_log=False, notes=()) -> Estimate:
    """An Estimate from a tidy row (``estimate`` on the model scale when ``ratio_from_log``)."""
    est, low, high = (float(row[c]) for c in ("estimate", "conf_low", "conf_high"))
    if ratio_from_log:
        est, low, high = math.exp(est), math.exp(low), math.exp(high)
    if not all(map(math.isfinite, (est, low, high))):
        raise NotTestable("the model could not estimate it (not estimable)")
    return Estimate(estimand_text=text, scale=scale, estimate=est, conf_low=low, conf_high=high,
                    p_value=float(row["p_value"]), std_error=float(row["std_error"]),
                    null_value=NULL_VALUE[scale], n_per_arm=dict(n_per_arm), notes=tuple(notes),
                    df=float(row.get("df", math.inf)), alpha=alpha)


def _where(claim: Claim) -> str:
    return f", {claim.subgroup.replace('_', '-')} feet" if claim.subgroup else ""
