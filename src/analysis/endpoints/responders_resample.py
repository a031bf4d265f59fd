"""The responder difference in patient-level resamples, for the firmness check (docs/claims.md).

A resample's responder shares are exact, not approximated: each patient keeps the
classification of :func:`analysis.endpoints.responders.classify_patients` (responder or not,
assessable or not: a patient's own data decide it), so with multiplicities :math:`w_i` an arm has
:math:`x^* = \\sum_i w_i r_i` responders among :math:`n^* = \\sum_i w_i a_i` assessable patients.
The difference :math:`x_1^*/n_1^* - x_0^*/n_0^*` gets the Newcombe hybrid score interval, as the
primary analysis (``statsmodels`` ``confint_proportions_2indep(method="newcomb")``, vectorised
over resamples).
"""

from __future__ import annotations

import numpy as np
from statsmodels.stats.proportion import confint_proportions_2indep

from analysis.models.resample import weights_of


def resampled_differences(result, arm: str, weights, patient_ids, alpha: float = 0.05
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Responder difference ``arm`` - control and its Newcombe interval in each resample.

    Parameters
    ----------
    result : ResponderResult
    arm : str
    weights : array_like (B, n)
        Multiplicity of each patient of ``patient_ids`` in each resample.
    patient_ids : array_like (n,)
    alpha : float

    Returns
    -------
    estimate, conf_low, conf_high : ndarray (B,)
        NaN where an arm has no assessable patient in the resample.
    n_assessable : ndarray (B, 2)
        Assessable patients (with multiplicity) of the arm and the control.
    """
    pts = result.patients
    W = weights_of(weights, patient_ids, pts["patient_id"])
    assessable = pts["assessable"].to_numpy(bool)
    responder = pts["responder"].fillna(False).to_numpy(bool) & assessable
    counts = []
    for a in (arm, result.definition["control"]):
        in_arm = (pts["arm"].astype(str) == str(a)).to_numpy()
        counts += [W @ (responder & in_arm), W @ (assessable & in_arm)]
    x1, n1, x0, n0 = counts
    ok = (n1 > 0) & (n0 > 0)
    est, low, high = (np.full(len(x1), np.nan) for _ in range(3))
    if ok.any():
        est[ok] = x1[ok] / n1[ok] - x0[ok] / n0[ok]
        low[ok], high[ok] = confint_proportions_2indep(x1[ok], n1[ok], x0[ok], n0[ok],
                                                       method="newcomb", compare="diff",
                                                       alpha=alpha)
    return est, low, high, np.column_stack([n1, n0])
