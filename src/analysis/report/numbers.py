"""Numbers people read without a statistician: every formatter of a number for a reader.

The rules, each tested row by row (docs/wording.md, tests/report/test_numbers.py):

* points with one decimal, percentages whole (one decimal below 10 % when it is not whole:
  "+5.5 %"), never "-0.0" or "-0";
* a change states its direction once, in words: "6 % more episodes (from 28 % more to 12 %
  fewer)", "0.7 points less pain (0.2 to 1.3)"; a difference that rounds to zero is "about the
  same";
* a size is set against what patients notice (the outcome's MCID, ``outcomes:`` metadata):
  "— less than the 2 points patients notice";
* "clearly better" (and "clearly worse") only for an interval that excludes no effect **and** a
  size at or above the MCID (:func:`size_words`).

Numbers stay machine-readable in tables and results.json; these functions only say them.
"""

from __future__ import annotations

import math

#: Words of :func:`size_words`, one per row of the rules table in docs/wording.md.
CLEARLY_BETTER = "clearly better"
BETTER_SMALL = "better, by less than patients notice"
BETTER = "better"
NO_CLEAR = "no clear difference"
WORSE_SMALL = "worse, by less than patients notice"
WORSE = "worse"
CLEARLY_WORSE = "clearly worse"


def missing(value) -> bool:
    """None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def points(value: float) -> str:
    """One decimal, sign dropped (direction is said in words), never "-0.0": ``0.7``."""
    text = f"{abs(float(value)):.1f}"
    return text


def whole(value: float) -> str:
    """A percentage's number: whole, one decimal below 10 when not whole; no sign: ``5.5``, ``28``."""
    v = abs(float(value))
    if v < 9.95 and round(v, 1) != round(v):
        return f"{v:.1f}"
    return f"{v:.0f}"


def signed_percent(value: float) -> str:
    """A change in percent with its sign: ``+20 %``, ``-3 %``, ``0 %`` (never ``-0 %``)."""
    text = whole(value)
    if float(text) == 0:
        return "0 %"
    return f"{'+' if value > 0 else '-'}{text} %"


def number(value: float, kind: str) -> str:
    """``points`` (one decimal), ``percent`` or ``pp`` (percentage points; :func:`whole`), no sign."""
    return points(value) if kind == "points" else whole(value)


def _zero(value: float, kind: str) -> bool:
    return float(number(value, kind)) == 0


def _unit(kind: str, unit: str) -> str:
    return {"percent": " %", "pp": " percentage points"}.get(kind, f" {unit}")


def amount(value: float, kind: str, unit: str = "points") -> str:
    """A size with its unit, no sign: ``2.0 points``, ``62 %``, ``10 percentage points``."""
    return f"{number(value, kind)}{_unit(kind, unit)}"


def _end_unit(kind: str) -> str:
    # interval ends repeat the unit of a percentage, not of points ("from 28 % more", "0.2 to 1.3")
    return {"percent": " %", "pp": " percentage points"}.get(kind, "")


def change_phrase(value: float, low: float, high: float, noun: str, up: str, down: str,
                  kind: str = "points", unit: str = "points") -> str:
    """A change and its interval, direction said once per end.

    Parameters
    ----------
    value, low, high : float
        The change (positive = ``up``) and its interval, in ``kind`` units (points, or percent
        change: 100 (ratio - 1)).
    noun : str
        What changes (``pain``, ``episodes``).
    up, down : str
        Words for a positive and a negative change (``more``/``less``, ``more``/``fewer``).
    kind : {"points", "percent"}
    unit : str
        The unit of points (``points``, ``N``).

    Returns
    -------
    str
        ``0.7 points less pain (0.2 to 1.3)``; ``6 % more episodes (from 28 % more to 12 %
        fewer)``; ``about the same pain (from 0.5 more to 0.5 less)``.
    """
    if missing(value):
        return f"{noun}: not estimable"
    u = _unit(kind, unit)

    def word(v):
        return up if v > 0 else down

    lo, hi = sorted((float(low), float(high)))
    if _zero(value, kind):
        head = f"about the same {noun}"
    else:
        head = f"{number(value, kind)}{u} {word(value)} {noun}"
    if missing(low) or missing(high):
        return head
    zero_lo, zero_hi = _zero(lo, kind), _zero(hi, kind)
    if zero_lo and zero_hi:
        return f"{head} (no difference either way)"
    if (lo > 0 or zero_lo) and hi > 0 or (hi < 0 or zero_hi) and lo < 0:
        # both ends on one side: say the side once, nearer end first
        near, far = sorted((lo, hi), key=abs)
        side = word(far)
        first = "no difference" if _zero(near, kind) else number(near, kind)
        if _zero(value, kind) or side != word(value):
            return f"{head} (from {first} to {number(far, kind)}{u} {side})"
        return f"{head} ({first} to {number(far, kind)}{_end_unit(kind)})"
    # the interval straddles no effect: the end on the estimate's side first
    ends = (hi, lo) if value >= 0 else (lo, hi)
    said = ["no difference" if _zero(e, kind) else f"{number(e, kind)}{_end_unit(kind)} {word(e)}"
            for e in ends]
    return f"{head} (from {said[0]} to {said[1]})"


def mcid_phrase(size: float, mcid: float | None, unit: str = "points") -> str:
    """Where a size stands against the MCID: ``— less than the 2 points patients notice``.

    Empty when no MCID is set. ``size`` is the absolute estimate in the MCID's unit.
    """
    if mcid is None or missing(size):
        return ""
    m = f"{mcid:g} {unit}"
    if round(abs(size), 1) >= mcid:
        return f" — at least the {m} patients notice"
    return f" — less than the {m} patients notice"


def size_words(estimate: float, low: float, high: float, better: str, mcid: float | None,
               null: float = 0.0) -> str:
    """The verdict words of a comparison (docs/wording.md, table "Size words").

    Parameters
    ----------
    estimate, low, high : float
        Difference (arm - comparator) and its interval, in the MCID's unit (or a log ratio with
        ``mcid`` None).
    better : {"lower", "higher"}
        Which direction is better for the outcome.
    mcid : float or None
        The smallest difference patients notice; None: no MCID is set for the outcome.
    null : float
        No effect.

    Returns
    -------
    str
        One of :data:`CLEARLY_BETTER`, :data:`BETTER_SMALL`, :data:`BETTER`, :data:`NO_CLEAR`,
        :data:`WORSE`, :data:`WORSE_SMALL`, :data:`CLEARLY_WORSE`.
    """
    if any(missing(v) for v in (estimate, low, high)):
        return NO_CLEAR
    sign = -1 if better == "lower" else 1
    g_low, g_high = sorted((sign * (low - null), sign * (high - null)))
    g_est = sign * (estimate - null)
    if g_low <= 0 <= g_high:
        return NO_CLEAR
    big = None if mcid is None else round(abs(g_est), 1) >= mcid
    if g_low > 0:
        return BETTER if big is None else (CLEARLY_BETTER if big else BETTER_SMALL)
    return WORSE if big is None else (CLEARLY_WORSE if big else WORSE_SMALL)


def versus(arm_change: float, control_change: float, control: str) -> str:
    """Two changes side by side: ``+20 % vs +5.5 % with usual care``."""
    return f"{signed_percent(arm_change)} vs {signed_percent(control_change)} with {control}"


def count_of(n, noun: str) -> str:
    """A count of things with its noun, thousands separated, singular for one:
    ``count_of(1200, "patient")`` -> ``1,200 patients``; ``count_of(1, "clinic")`` -> ``1 clinic``.
    A withheld or missing count says so instead of printing "None"."""
    if missing(n) or isinstance(n, str):
        return f"a withheld number of {noun}s"
    n = int(n)
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
