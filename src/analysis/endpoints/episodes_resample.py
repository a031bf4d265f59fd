"""The episode rate ratio in patient-level resamples, for the firmness check (docs/claims.md).

Each estimand of :func:`analysis.endpoints.episodes.fit_episode_models` is re-estimated on the
design it was fitted to, with the resample's patient multiplicities: the population-averaged GEE
by Fisher scoring at the fit's working correlation and NB2 dispersion
(:mod:`analysis.models.resample_gee`, robust SE of the resample), the patient-level GLMM by one
Newton step at the fit's variance parameters (:mod:`analysis.models.resample_glmm`, model SE of
the resample). A claim with a ``week`` or ``weeks`` window reads a result fitted to that window's
rows, so its resamples are of the windowed estimand.
"""

from __future__ import annotations

import numpy as np

from analysis.models.resample import weights_of
from analysis.models.resample_gee import resampled_gee
from analysis.models.resample_glmm import resampled_glmm


def resampled_log_rate_ratios(result, estimand: str, arm: str, weights, patient_ids,
                              arm_col: str = "arm") -> tuple[np.ndarray, np.ndarray]:
    """Log rate ratio of ``arm`` vs the control and its SE in each resample.

    Parameters
    ----------
    result : EpisodeResult
    estimand : {"patient_level", "population_averaged"}
    arm : str
    weights : array_like (B, n)
        Multiplicity of each patient of ``patient_ids`` in each resample.
    patient_ids : array_like (n,)
        The patients the weights are for (may include patients the fit did not use).

    Returns
    -------
    log_rr, std_error : ndarray (B,)

    Raises
    ------
    KeyError
        The estimand was not estimated, or the arm is not in its design.
    """
    design, fit = result.fits[estimand]
    term = f"{arm_col}[T.{arm}]"
    j = list(design.X.columns).index(term)
    W = weights_of(weights, patient_ids, np.unique(np.asarray(design.groups)))
    args = (design.y, design.X.to_numpy(float), design.offset, design.groups)
    if estimand == "population_averaged":
        betas, vcovs = resampled_gee(*args, fit.coef, fit.working_correlation, fit.family,
                                     fit.nb_alpha, W)
    else:
        betas, vcovs = resampled_glmm(*args, fit, W)
    return betas[:, j], np.sqrt(vcovs[:, j, j])
