"""Plain words for numbers: what a clinic owner reads before any p-value."""

from __future__ import annotations

import math


def pretty_arm(arm: str) -> str:
    return str(arm).replace("_", " ")


def certainty(low: float, high: float, null: float = 0.0) -> str:
    """Whether an interval rules out no effect, in words."""
    if any(map(lambda v: v is None or (isinstance(v, float) and math.isnan(v)), (low, high))):
        return "could not be estimated"
    if low > null or high < null:
        return "the data rule out no difference"
    return "the data cannot rule out no difference"


def difference_sentence(arm: str, control: str, estimate: float, low: float, high: float,
                        unit: str, week: float, lower_is_better: bool = True,
                        when: str | None = None, points: str = "points") -> str:
    """E.g. 'At week 12, pain with orthotics was 0.4 points lower than with usual care (…).'

    ``unit`` is the outcome's word, ``when`` the time in the report's unit (default
    ``week <week>``), ``points`` the outcome's unit (:mod:`analysis.report.outcome_words`)."""
    if estimate is None or (isinstance(estimate, float) and math.isnan(estimate)):
        return f"{pretty_arm(arm).capitalize()} vs {pretty_arm(control)}: withheld or not estimable."
    direction = "lower" if estimate < 0 else "higher"
    better = (estimate < 0) == lower_is_better
    when = when or f"week {week:g}"
    return (f"At {when}, {unit} with {pretty_arm(arm)} was {abs(estimate):.1f} {points} {direction} "
            f"than with {pretty_arm(control)} ({'better' if better else 'worse'}; 95% interval "
            f"{low:+.1f} to {high:+.1f}; {certainty(low, high)}).")


def percent_sentence(arm: str, control: str, pct: float, low: float, high: float, what: str) -> str:
    """E.g. 'Deep tissue massage: 26% fewer episodes than usual care (95% interval 10% to 39%).'"""
    if pct is None or (isinstance(pct, float) and math.isnan(pct)):
        return f"{pretty_arm(arm).capitalize()} vs {pretty_arm(control)}: withheld or not estimable."
    word = "fewer" if pct >= 0 else "more"
    return (f"{pretty_arm(arm).capitalize()}: {abs(pct):.0f}% {word} {what} than {pretty_arm(control)} "
            f"(95% interval {low:.0f}% to {high:.0f}% fewer; {certainty(low, high)}).")
