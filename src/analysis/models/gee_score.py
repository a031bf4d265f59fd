r"""Per-patient estimating-equation pieces of the exchangeable count GEE, vectorised over patients.

Methods
-------
The GEE of :mod:`analysis.models.gee_counts` (log link, variance :math:`v(\mu) = \mu` or
:math:`\mu + \alpha\mu^2`, exchangeable working correlation :math:`\rho`) solves
:math:`\sum_i U_i(\beta) = 0` with :math:`U_i = D_i^\top V_i^{-1}(y_i - \mu_i)`,
:math:`D_i = \operatorname{diag}(\mu_i) X_i`, :math:`V_i = A_i^{1/2} R_i A_i^{1/2}`. With
:math:`g_{ij} = \mu_{ij}/\sqrt{v(\mu_{ij})}`, Pearson residuals :math:`e_{ij}` and the closed-form
inverse :math:`R_i^{-1} = c_1 (I - c_{2i} 1 1^\top)`, :math:`c_1 = 1/(1-\rho)`,
:math:`c_{2i} = \rho / (1 + (n_i - 1)\rho)` (statsmodels' ``Exchangeable.covariance_matrix_solve``),
each patient's pieces are

.. math:: U_i = c_1\Big[\sum_j g_{ij} e_{ij} x_{ij} - c_{2i}\, s_i \sum_j e_{ij}\Big],\qquad
          H_i = c_1\Big[\sum_j g_{ij}^2 x_{ij} x_{ij}^\top - c_{2i}\, s_i s_i^\top\Big],\qquad
          s_i = \sum_j g_{ij} x_{ij}.

The functions here return them without the factor :math:`c_1` (it cancels from the Fisher step
:math:`H^{-1}U` and from the sandwich; the fit multiplies it back where statsmodels reports the
score itself). Every sum over a patient's visits is a product with the sparse patient-by-visit
indicator ``P``, for several coefficient vectors (resamples) at once: no Python loop over
patients. The fit (:func:`analysis.models.gee_counts.fit_count_gee`) uses them with one
coefficient vector, the firmness bootstrap (:mod:`analysis.models.resample_gee`) with many.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def variance(mu, family: str, nb_alpha: float | None):
    """The variance function :math:`v(\\mu)`: Poisson or NB2."""
    return mu if family == "poisson" else mu + nb_alpha * mu ** 2


def patient_indicator(codes, m: int) -> sparse.csr_matrix:
    """Sparse (m, n) matrix with a 1 where visit j belongs to patient i."""
    n = len(codes)
    return sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(m, n))


def exchangeable_c2(sizes, rho: float) -> np.ndarray:
    """:math:`c_{2i} = \\rho / (1 + (n_i - 1)\\rho)` for each patient's number of visits."""
    return rho / (1 + (np.asarray(sizes, float) - 1) * rho)


def patient_scores(beta, y, X, offset, P, c2, family, nb_alpha):
    """Per-patient scores ``U`` and sums ``s`` (both (m, B, p)) and ``g`` (n, B) at ``beta`` (B, p).

    ``U`` and ``s`` are without the factor :math:`c_1` (module docstring).
    """
    mu = np.exp(X @ beta.T + offset[:, None])          # (n, B)
    sd = np.sqrt(variance(mu, family, nb_alpha))
    g = mu / sd
    ge = g * (y[:, None] - mu) / sd
    esum = P @ ((y[:, None] - mu) / sd)                 # (m, B)
    s = np.stack([P @ (g * X[:, [k]]) for k in range(X.shape[1])], axis=2)
    U = np.stack([P @ (ge * X[:, [k]]) for k in range(X.shape[1])], axis=2)
    return U - c2[:, None, None] * s * esum[:, :, None], s, g


def outer_sum(w, a, b):
    """:math:`\\sum_m w_{mb}\\, a_{mb\\cdot} b_{mb\\cdot}^\\top` for every resample b: (B, p, p)."""
    p = a.shape[2]
    out = np.empty((a.shape[1], p, p))
    for j in range(p):
        wa = w * a[:, :, j]
        for k in range(j, p):
            out[:, j, k] = out[:, k, j] = np.einsum("mb,mb->b", wa, b[:, :, k])
    return out


def information(first, s, c2w):
    """:math:`\\sum_i w_i H_i / c_1` from its first term and the sums ``s``.

    Parameters
    ----------
    first : ndarray (B, p, p)
        :math:`\\sum_{ij} w_i g_{ij}^2 x_{ij} x_{ij}^\\top` (how it is best computed depends on B).
    s : ndarray (m, B, p)
    c2w : ndarray (m, B)
        :math:`c_{2i} w_i`.
    """
    return first - outer_sum(c2w, s, s)
