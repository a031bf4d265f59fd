r"""The pain MMRM's LS-mean difference in patient-level resamples, for the firmness check.

Methods
-------
At the fit's residual covariance :math:`\Sigma` over the visits (held fixed), patient :math:`i`
with observed visits :math:`v_i` contributes :math:`A_i = X_i^\top \Sigma_{v_i}^{-1} X_i` and
:math:`b_i = X_i^\top \Sigma_{v_i}^{-1} y_i`. A resample with patient multiplicities
:math:`w_i` has the GLS estimate :math:`\beta^* = (\sum w_i A_i)^{-1} \sum w_i b_i` (with all
:math:`w_i = 1` the fit's own :math:`\hat\beta`), and the claim's estimand, the LS-mean difference
arm - control at the visit, is :math:`l^\top\beta^*` with the full fit's :math:`l`
(:func:`analysis.models.mmrm_lsmeans.lsmean_rows`, equal weights; numeric covariates at their
full-data means). Its SE is the resample's model-based
:math:`\sqrt{l^\top (\sum w_i A_i)^{-1} l}`; the Kenward-Roger adjustment of the SE is not
recomputed per resample (the interval uses the full fit's df), so resampled intervals are a
little narrower than the graded one.

Reference: Davison AC, Hinkley DV (1997) *Bootstrap Methods and their Application*, ch. 3.8.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.endpoints.pain_mmrm import VISIT, visit_label
from analysis.models.mmrm_lsmeans import lsmean_rows
from analysis.models.resample import weights_of


def resampled_mmrm_differences(result, arm: str, week: float, weights, patient_ids,
                               arm_col: str = "arm", group: str = "patient_id"
                               ) -> tuple[np.ndarray, np.ndarray]:
    """LS-mean difference ``arm`` - control at ``week`` and its model SE in each resample.

    Parameters
    ----------
    result : PainMmrmResult
    arm : str
    week : float
        A scheduled visit of the fit.
    weights : array_like (B, n)
        Multiplicity of each patient of ``patient_ids``.
    patient_ids : array_like (n,)

    Returns
    -------
    estimate, std_error : ndarray (B,)
    """
    fit = result.fit
    frame = fit.data
    visit = pd.Categorical(frame[VISIT].astype(str), categories=fit.visits).codes
    y = frame[result.outcome].to_numpy(float)
    X = np.asarray(fit.X, float)
    sigma = np.asarray(fit.sigma, float)
    ids = frame[group].to_numpy()
    order = pd.unique(ids)
    p = X.shape[1]
    A = np.empty((len(order), p, p))
    b = np.empty((len(order), p))
    rows_of = pd.Series(np.arange(len(ids))).groupby(ids, sort=False).indices
    for k, pid in enumerate(order):
        rows = rows_of[pid]
        S_inv = np.linalg.inv(sigma[np.ix_(visit[rows], visit[rows])])
        A[k] = X[rows].T @ S_inv @ X[rows]
        b[k] = X[rows].T @ S_inv @ y[rows]
    W = weights_of(weights, patient_ids, order)
    inv = np.linalg.inv(np.einsum("bm,mpq->bpq", W, A))
    betas = np.einsum("bpq,bq->bp", inv, W @ b)
    grid, rows = lsmean_rows(fit, (VISIT, arm_col))
    at = grid[VISIT] == visit_label(week)
    lv = rows[(at & (grid[arm_col] == arm)).to_numpy()][0]
    lc = rows[(at & (grid[arm_col] == result.control)).to_numpy()][0]
    ell = lv - lc
    return betas @ ell, np.sqrt(np.einsum("p,bpq,q->b", ell, inv, ell))
