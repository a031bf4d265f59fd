"""Human labels for what a report shows: treatments, outcomes with units, table headers, pages.

Code names (``deep_tissue_massage``, ``pain_score``, ``conf_low``) never reach an owner's page:
every name passes through one of these functions first. Outcome labels and units come from
:func:`outcome_label`, which reads the run config's outcome metadata (``outcomes:``,
:func:`analysis.config.outcome_meta`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class OutcomeLabel:
    """How a reader names an outcome: ``label`` (a noun), ``unit`` and which direction is better."""

    label: str
    unit: str
    better: str  # "lower" | "higher"

    @property
    def axis(self) -> str:
        """An axis label with its unit, e.g. 'Pain (points, 0–10)'."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


def outcome_label(cfg, name: str) -> OutcomeLabel:
    """The label, unit (with the scale's range) and better direction of outcome ``name``.

    Read from the run config's outcome metadata (``outcomes:`` over the contract's defaults,
    :func:`analysis.config.outcome_meta`), so a clinic's own names reach every page.

    Parameters
    ----------
    cfg : RunConfig
    name : str
        A column of the data contract (``pain_score``, ``episodes``, ``strength``, ...).
    """
    from analysis.config import outcome_meta

    meta = outcome_meta(cfg, name)
    unit = meta.unit or ""
    if meta.range is not None:
        unit = f"{unit}, {meta.range.min:g}–{meta.range.max:g}" if unit else f"{meta.range.min:g}–{meta.range.max:g}"
    return OutcomeLabel(label=meta.label or name.replace("_", " "), unit=unit, better=meta.better or "lower")


def treatment_label(name) -> str:
    """'deep_tissue_massage' -> 'deep tissue massage' (missing stays empty)."""
    if name is None or (isinstance(name, float) and name != name):
        return ""
    return str(name).replace("_", " ")


# Table headers a reader can read. Researchers keep every column (with these headers); owners see
# only tables built for them.
_COLUMNS = {
    "arm": "treatment", "n_patients": "patients", "n_visits": "visits", "n_switchers": "patients who switched",
    "estimate": "estimate", "std_error": "std. error", "statistic": "test statistic", "p_value": "p-value",
    "p_holm": "p-value (Holm)", "conf_low": "95% interval, low", "conf_high": "95% interval, high",
    "rate_ratio": "rate ratio", "rr_conf_low": "rate ratio, low", "rr_conf_high": "rate ratio, high",
    "percent_reduction": "% fewer", "percent_reduction_low": "% fewer, low",
    "percent_reduction_high": "% fewer, high", "mde": "smallest detectable effect",
    "n_needed_per_arm": "patients needed per arm", "lower_95": "95% limit, low", "upper_95": "95% limit, high",
    "lower_99.8": "99.8% limit, low", "upper_99.8": "99.8% limit, high", "percent_missing": "% missing",
    "n_assessable": "assessable", "n_responders": "responders", "df": "df",
}


def column_label(name) -> str:
    """A table header for a column name: a known label, else the name with spaces."""
    text = str(name)
    if text in _COLUMNS:
        return _COLUMNS[text]
    return re.sub(r"^n_", "patients ", text).replace("_", " ")


# Each notebook's page: (short title for the page's <title> and navigation, the owner's question).
_PAGES = {
    "validate": ("Data check", "What came in, and is it fit to analyse?"),
    "describe": ("Patients", "Who was treated, and what happened to them?"),
    "pain": ("Pain", "Did pain ease more with a treatment than without it?"),
    "episodes": ("Knee-pain episodes", "Did patients have fewer knee-pain episodes?"),
    "strength": ("Strength", "Did patients get stronger?"),
    "responders": ("Noticeable relief", "How many patients felt a difference they would notice?"),
    "benchmarking": ("Clinic comparison", "How does each clinic compare with the network?"),
    "claims": ("Claims", "Do the published claims hold up?"),
    "summary": ("Summary", "What do I need to know?"),
}


def outcome_pages(cfg) -> dict[str, tuple[str, str]]:
    """Title and question of each page about one outcome whose label the run config changes.

    Rule (docs/wording.md, "Outcome pages"): a page about an outcome that keeps its built-in label
    keeps the title and question above; a relabelled outcome's page is titled by its label and
    asks, by the outcome's better direction (higher or lower; not set: "change"):

    - the pain page (``models.pain.outcome``): "Did <word> improve more with a treatment than
      without it?";
    - the episodes page: "Did patients have fewer <word>?" (higher is better: "more"; not set:
      "Did the number of <word> change with a treatment?");
    - the strength page: "Did <word> improve with a treatment?".

    Returns the pages that differ from the built-in ones, keyed as ``_PAGES``.
    """
    from analysis.config import outcome_word
    from analysis.report.outcome_words import relabelled

    pages = {}
    for key in ("pain", "episodes", "strength"):
        meta = relabelled(cfg, key)
        if meta is None:
            continue
        word, better = outcome_word(meta.label), meta.better
        verb = "change" if better is None else "improve"
        if key == "pain":
            question = f"Did {word} {verb} more with a treatment than without it?"
        elif key == "episodes":
            question = (f"Did the number of {word} change with a treatment?" if better is None else
                        f"Did patients have {'fewer' if better == 'lower' else 'more'} {word}?")
        else:
            question = f"Did {word} {verb} with a treatment?"
        pages[key] = (meta.label, question)
    return pages


def _page(stem: str, pages: dict | None) -> tuple[str, str] | None:
    key = stem.split("_", 1)[-1]
    return (pages or {}).get(key) or _PAGES.get(key)


def page_title(stem: str, pages: dict | None = None) -> str:
    """'03_pain' -> 'Pain' (an unknown notebook: its name in words); ``pages`` from
    :func:`outcome_pages` renames the outcome pages."""
    found = _page(stem, pages)
    return found[0] if found else stem.split("_", 1)[-1].replace("_", " ").capitalize()


def page_question(stem: str, pages: dict | None = None) -> str:
    """The owner's question a page answers ('' for an unknown notebook)."""
    found = _page(stem, pages)
    return found[1] if found else ""
