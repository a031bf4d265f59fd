"""Words for an outcome, its time axis and the study design, read from the run config's
``outcomes:`` metadata (:func:`analysis.config.outcome_meta`), ``time_unit`` / ``report_unit``
and ``design:``. Rules (docs/wording.md, "Outcome, time and design words"):

- the outcome's **word** in a sentence is its label, lower-cased when it is an ordinary word
  ("Pain" -> "pain", "Throat pain" -> "throat pain") and kept when it is an abbreviation or a
  name ("FEV1", "TWSTRS total": a label whose second character is not a lower-case letter);
- its **axis** label is the word with the range ("pain (0–10)") or, without a range, the unit
  ("FEV1 (L)");
- its **points** are the unit ("points" for a score, "L" for FEV1);
- a **time** is said in the report unit ("week 12", "month 3", "hour 4"): the validated table's
  weeks are converted back with the factors of :mod:`analysis.config.mapping`;
- the **design** sentence follows ``design:``.
"""

from __future__ import annotations

from analysis.config import UNIT_WORD, WEEKS_PER_UNIT, from_weeks, outcome_meta, outcome_word

OBSERVATIONAL = ("These are observational clinic records: patients were not randomised unless the "
                 "clinic says so, so differences between treatments may partly reflect who chose them.")
RANDOMISED = ("This is a randomised comparison (design: randomised in the run config): patients were "
              "allocated to treatments at random, so differences between arms estimate the effect of "
              "the treatment allocated, within the uncertainty shown.")


def words(cfg, column: str = "pain_score") -> dict:
    """``word``, ``Word`` (sentence start), ``axis``, ``points``, ``lower_is_better`` of a column."""
    meta = outcome_meta(cfg, column)
    word = outcome_word(meta.label)
    if meta.range is not None:
        axis = f"{word} ({meta.range.min:g}–{meta.range.max:g})"
    else:
        axis = f"{word} ({meta.unit})" if meta.unit else word
    return {"word": word, "Word": word[:1].upper() + word[1:], "axis": axis,
            "points": meta.unit or "points", "lower_is_better": meta.better != "higher",
            "better": meta.better, "mcid": meta.mcid}


def outcome_column(cfg, outcome: str) -> str | None:
    """The column a claim's or a page's outcome (``pain``, ``episodes``, ``strength``) is
    measured in: ``models.pain.outcome`` for pain; None for responders (no column of its own)."""
    return {"pain": cfg.models.pain.outcome, "episodes": "episodes", "strength": "strength"}.get(outcome)


def relabelled(cfg, outcome: str):
    """The metadata (:func:`analysis.config.outcome_meta`) of an outcome whose label the run
    config changes from the built-in one; None while it keeps the built-in label (docs/wording.md,
    "Outcome pages": the built-in words then stay) and for responders."""
    from analysis.config import DEFAULT_OUTCOMES

    column = outcome_column(cfg, outcome)
    if column is None:
        return None
    meta = outcome_meta(cfg, column)
    return None if meta.label == DEFAULT_OUTCOMES.get(column, {}).get("label") else meta


def claim_noun(cfg, outcome: str) -> str | None:
    """The noun a claim's sentence names its outcome by (``pain``, ``episodes``, ``strength``,
    ``responders``): None, i.e. the built-in word of ``audit.verdicts.CLAIM_WORDS``, while the
    outcome keeps its built-in label; else the word of the label the run config gives it
    ("seizures", "FEV1"). Responders are always "responders"."""
    meta = relabelled(cfg, outcome)
    return None if meta is None else outcome_word(meta.label)


def report_unit(cfg) -> str:
    return cfg.report_unit or cfg.time_unit


def time_phrase(cfg, week: float) -> str:
    """A time of the validated table (in weeks) in the report unit: "week 12", "month 3"."""
    unit = report_unit(cfg)
    return f"{UNIT_WORD[unit]} {from_weeks(float(week), unit):g}"


def design_sentence(cfg) -> str:
    return RANDOMISED if cfg.design == "randomised" else OBSERVATIONAL


def time_axis(cfg, table):
    """``(table, x, xlabel)`` for a figure over time: weeks as they are, another report unit as
    a column ``time`` in that unit ("months since first visit")."""
    unit = report_unit(cfg)
    if unit == "weeks":
        return table, "week", "weeks since first visit"
    return table.assign(time=table["week"].map(lambda w: from_weeks(float(w), unit))), "time", \
        f"{unit} since first visit"


def bin_width(cfg) -> float:
    """One report unit in weeks: the width of a trajectory bin."""
    return WEEKS_PER_UNIT[report_unit(cfg)]


def responder_thresholds(cfg, column: str = "pain_score") -> tuple[float, float]:
    """``(min_points, min_percent)`` of the responder rule: the outcome's ``outcomes: mcid`` when
    the run config gives one (a missing part switches that criterion off: inf), else
    ``models.responders.min_points`` / ``min_percent`` (defaults 2 points, 30 %)."""
    own = cfg.outcomes.get(column) or cfg.outcomes.get(cfg.columns.get(column, column))
    if own is not None and own.mcid is not None:
        inf = float("inf")
        return (own.mcid.points if own.mcid.points is not None else inf,
                own.mcid.percent if own.mcid.percent is not None else inf)
    r = cfg.models.responders
    return r.min_points, r.min_percent
