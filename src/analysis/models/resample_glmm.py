r"""Patient-level resampling of a count GLMM (Laplace ML), one Newton step, variance fixed.

Methods
-------
At fixed :math:`(\sigma, \theta)` the Laplace log-likelihood of :mod:`analysis.models.glmm_counts`
is a sum of patient terms, :math:`\ell(\beta) = \sum_i \ell_i(\beta)` (each patient's mode
:math:`\hat u_i` depends on its own visits only). A resample with patient multiplicities
:math:`w_i` has :math:`\ell^*(\beta) = \sum_i w_i \ell_i(\beta)`; one Newton step from the
full-data maximum :math:`\hat\beta`,

.. math:: \beta^* = \hat\beta + \Big(-\sum_i w_i \nabla^2_{\beta\beta}\ell_i\Big)^{-1}
          \sum_i w_i \nabla_\beta \ell_i ,

evaluated at :math:`(\hat\beta, \hat\sigma, \hat\theta)`, is the one-step bootstrap estimate of
Moulton & Zeger (1991) for a likelihood fit, the variance parameters held at the full-data values
(as :mod:`analysis.models.resample` does for linear mixed models). Its model-based covariance is
the fit's own rule on the resample: the fixed-effect block of
:math:`(-\sum_i w_i \nabla^2 \ell_i)^{-1}` over all free parameters
:math:`(\beta, \log\sigma, \log\theta)` at the same point. The patient terms' gradients are
exact (:meth:`_Laplace.patient_gradients`) and their Hessians central differences of them (the
fit's step, ``rel_step = 1e-5``), computed once: every resample is then a weighted sum and one
small solve, all resamples at once. With all :math:`w_i = 1` the step is zero to the fit's
gradient tolerance and the covariance is the fit's, which the tests check.

References: Moulton LH, Zeger SL (1991) Bootstrapping generalized linear models. Comput Stat Data
Anal 11:53-63; Field CA, Welsh AH (2007) Bootstrapping clustered data. J R Stat Soc B 69:369-390.
"""

from __future__ import annotations

import numpy as np

from analysis.models.glmm_counts import _Laplace, _standardise


def patient_terms(y, X, offset, groups, fit, rel_step: float = 1e-5):
    """Per-patient gradients (m, P) and Hessians (m, P, P) of the Laplace log-likelihood at the
    fit, on the fit's internal (centred and scaled) parametrisation, and its map ``M``
    (beta = M gamma) and the free-parameter mask.

    Parameters
    ----------
    y, X, offset, groups : array_like
        The data :func:`analysis.models.glmm_counts.fit_count_glmm` was given.
    fit : CountGlmmFit
    """
    y, X, offset = (np.asarray(a, float) for a in (y, X, offset))
    group = np.unique(np.asarray(groups), return_inverse=True)[1].astype(np.intp).ravel()
    M = _standardise(X)
    model = _Laplace(y, X @ M, offset, group, int(group.max()) + 1, fit.family)
    nb = fit.family == "negative_binomial"
    par = np.concatenate([np.linalg.solve(M, fit.coef), [np.log(fit.sigma)]]
                         + ([[np.log(fit.theta)]] if nb else []))
    free = np.array([True] * len(fit.coef) + ["sigma" not in fit.boundary]
                    + (["theta" not in fit.boundary] if nb else []))
    model.modes(*model.unpack(par))  # warm start at the estimate
    grads = model.patient_gradients(par)
    hess = np.empty(grads.shape + (len(par),))
    for k in range(len(par)):
        h = rel_step * max(1.0, abs(par[k]))
        up, dn = par.copy(), par.copy()
        up[k] += h
        dn[k] -= h
        hess[:, :, k] = (model.patient_gradients(up) - model.patient_gradients(dn)) / (2 * h)
    hess = (hess + np.transpose(hess, (0, 2, 1))) / 2
    return grads, hess, M, free


def resampled_glmm(y, X, offset, groups, fit, weights) -> tuple[np.ndarray, np.ndarray]:
    """One-step GLMM estimates and model covariances for each row of patient multiplicities.

    Parameters
    ----------
    y, X, offset, groups : array_like
        The data of the fit.
    fit : CountGlmmFit
    weights : array_like (B, m)
        Multiplicity of each patient, patients in the order of ``numpy.unique(groups)``.

    Returns
    -------
    betas : ndarray (B, p)
    vcovs : ndarray (B, p, p)
        On the caller's covariate scale (as ``fit.coef`` and ``fit.cov``); NaN where a
        resample's information is not positive definite.
    """
    grads, hess, M, free = patient_terms(y, X, offset, groups, fit)
    W = np.atleast_2d(np.asarray(weights, float))
    if W.shape[1] != grads.shape[0]:
        raise ValueError(f"weights must be (B, {grads.shape[0]}), got {W.shape}")
    p = len(fit.coef)
    g = W @ grads[:, free]                                        # (B, F)
    info = -np.einsum("bm,mpq->bpq", W, hess[:, free][:, :, free], optimize=True)
    betas = np.full((W.shape[0], p), np.nan)
    vcovs = np.full((W.shape[0], p, p), np.nan)
    gamma0 = np.linalg.solve(M, fit.coef)
    for b in range(W.shape[0]):
        try:
            np.linalg.cholesky(info[b])
        except np.linalg.LinAlgError:
            continue
        inv = np.linalg.inv(info[b])
        # beta step with (sigma, theta) held: the beta block of the information alone
        step = np.linalg.solve(info[b][:p, :p], g[b, :p])
        betas[b] = M @ (gamma0 + step)
        vcovs[b] = M @ inv[:p, :p] @ M.T
    return betas, vcovs
