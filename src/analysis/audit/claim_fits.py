"""The models a claims file needs, fitted on the rows a claim reads (used by
:func:`analysis.audit.claims.fit_claim_models`)."""

from __future__ import annotations

import pandas as pd


def episode_rows(d: pd.DataFrame, window: tuple[float, float] | None) -> pd.DataFrame:
    """Baseline rows and the follow-up rows whose nominal week lies in (start, end]."""
    if window is None:
        return d
    from analysis.endpoints.timegrid import nominal

    t = nominal(d["week"])
    return d[(d["week"] <= 0) | ((t > window[0]) & (t <= window[1]))]


def fit_outcome(model: str, d: pd.DataFrame, control: str, m, week, design: str = "observational"):
    """Fit one outcome's model for the claims (``week``: the responders' week or the episodes
    window); imported lazily so a claims file loads without the model stack."""
    if model == "episodes":
        from analysis.endpoints.episodes import fit_episode_models
        return fit_episode_models(episode_rows(d, week), control, family=m.episodes.family,
                                  primary=m.episodes.primary, covariates=m.episodes.covariates,
                                  alpha=m.alpha)
    if model == "pain":
        from analysis.endpoints.pain import fit_pain_model
        return fit_pain_model(d, m.pain, control, alpha=m.alpha, design=design)
    if model == "moderator":
        from analysis.endpoints.moderator import fit_moderator_model
        return fit_moderator_model(d, m.pain, control, threshold=m.moderator.overpronated_above,
                                   alpha=m.alpha)
    if model == "strength":
        from analysis.endpoints.strength import fit_strength_model
        from analysis.endpoints.timegrid import report_weeks

        # the arguments notebook 05 fits with (report/sections/strength.py), so that a saved
        # fit and a refit are the same model
        weeks = report_weeks(m.pain.weeks, d, "strength") or [0.0]
        return fit_strength_model(d, m.strength, control, alpha=m.alpha, horizon=max(weeks),
                                  random=m.pain.random, clinic_level=m.pain.clinic_level,
                                  weeks=tuple(weeks), engine=m.pain.engine,
                                  optimizers=tuple(m.pain.optimizers))
    from analysis.endpoints.responders import responder_analysis
    r = m.responders
    return responder_analysis(d, control, week=week, min_points=r.min_points,
                              min_percent=r.min_percent, window=r.window, alpha=m.alpha)
