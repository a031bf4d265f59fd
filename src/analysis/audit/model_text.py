"""The model an estimate rests on, in words generated from the fit itself (never fixed text).

A claim's estimand text ends with what was actually fitted: the formula (the arm term written
``arm``), the random structure the engine ended with, REML or ML, the df method, the engine, and
the fallback steps when the fit chain (:mod:`analysis.models.health`) had to take any — so a fit
that fell back to GEE says so where the verdict is read.
"""

from __future__ import annotations

import re

_ARM_TERM = re.compile(r"C\((\w+), Treatment\(reference=[^)]*\)\)")


def formula_words(formula: str) -> str:
    """A model formula as a reader sees it: ``C(arm, Treatment(reference='x'))`` -> ``arm``."""
    return _ARM_TERM.sub(r"\1", str(formula or "")).strip()


def lmm_words(formula: str, health, reml: bool = True) -> str:
    """``linear mixed model pain_score ~ week * arm, random (1 + week | patient_id), REML, ...``.

    Parameters
    ----------
    formula : str
        The fixed-effects formula fitted.
    health : FitHealth
        The fit's health record: engine, random structure, fallback steps.
    reml : bool
    """
    if health is None:
        return f"model {formula_words(formula)}".strip()
    engine = health.engine or "unknown engine"
    steps = list(health.fallback_steps)
    if engine.endswith("GEE"):
        text = (f"GEE fallback {formula_words(formula)} ({health.random_structure or 'exchangeable'}"
                ", robust SE, normal intervals)")
        before = [s for s in steps if not s.startswith("GEE")]
        return text + (f" after the mixed model failed ({'; '.join(before)})" if before
                       else " after the mixed model failed")
    text = (f"linear mixed model {formula_words(formula)}, random {health.random_structure}, "
            f"{'REML' if reml else 'ML'}, Satterthwaite df, engine {engine}")
    if steps:
        text += f"; fallback: {'; '.join(steps)}"
    return text


def lmm_result_words(result) -> str:
    """:func:`lmm_words` of a pain, moderator or strength result (its fit's health); for the pain
    MMRM (``models.pain.analysis: mmrm``) the MMRM, its covariance and df method."""
    if getattr(result, "analysis", "trend") == "mmrm":
        steps = list(getattr(result.health, "fallback_steps", []))
        return (f"MMRM {formula_words(result.formula)}, {result.covariance} covariance, "
                f"{result.df_method} df" + (f"; fallback: {'; '.join(steps)}" if steps else ""))
    fit = getattr(result, "fit", None)
    health = getattr(fit, "health", None) or getattr(result, "health", None)
    return lmm_words(getattr(result, "formula", ""), health, getattr(fit, "reml", True))


def count_words(result, estimand: str, covariates=()) -> str:
    """The count model behind one episode estimand: family, engine, random part, covariates."""
    family = (str(getattr(result, "family", "")).replace("_", " ") + " ").lstrip()
    adjusted = ["baseline rate"] + [str(c) for c in covariates]
    if estimand == "patient_level":
        kind = f"{family}GLMM, random intercept per patient, Laplace ML"
    else:
        kind = f"{family}GEE, exchangeable working correlation, robust SE"
    return f"{kind}, adjusted for {', '.join(adjusted)}, log(exposure) offset"
