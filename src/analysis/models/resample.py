r"""Patient-level resampling of a fitted linear mixed model, vectorised, variance parameters fixed.

Methods
-------
For a fit with relative covariance factor :math:`\Lambda` (lme4's :math:`\theta`) and residual
variance :math:`\sigma^2`, patient :math:`i` contributes :math:`A_i = X_i^\top V_i^{-1} X_i` and
:math:`b_i = X_i^\top V_i^{-1} y_i` with :math:`V_i = I + Z_i\Lambda\Lambda^\top Z_i^\top`;
by Woodbury, with :math:`M_i = I_q + \Lambda^\top Z_i^\top Z_i \Lambda`,

.. math:: A_i = X_i^\top X_i - X_i^\top Z_i\Lambda M_i^{-1}\Lambda^\top Z_i^\top X_i, \qquad
          b_i = X_i^\top y_i - X_i^\top Z_i\Lambda M_i^{-1}\Lambda^\top Z_i^\top y_i .

A resample with patient multiplicities :math:`w_i` (a patient drawn twice counts twice) has
the generalised-least-squares estimate :math:`\hat\beta^* = (\sum_i w_i A_i)^{-1}\sum_i w_i b_i`
and model-based covariance :math:`\sigma^2(\sum_i w_i A_i)^{-1}`: the exact GLS refit at the
full-data variance parameters (a "fixed-variance" bootstrap; the variance parameters are not
re-estimated in each resample, which keeps :math:`B = 200` resamples to matrix products, and the
intervals of a resample use normal quantiles). With all :math:`w_i = 1` it returns the fit's own
:math:`\hat\beta` (the GLS identity of a mixed model), which the tests check. A clinic level
(patients nested in clinics, one clinic intercept) is handled per clinic by Woodbury
(:func:`resampled_betas`); GEE fallbacks are refused.

Reference: Davison AC, Hinkley DV (1997) *Bootstrap Methods and their Application*, ch. 3.8
(resampling clusters); Bates D et al. (2015) lme4, J Stat Softw 67(1), eq. (12)-(17).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from analysis.errors import OutcomesError


class NotResamplable(OutcomesError):
    """The fit cannot be resampled this way (a GEE fallback, not estimable)."""


def _lambda(theta: np.ndarray, q: int) -> np.ndarray:
    tril = np.tril_indices(q)
    order = np.lexsort((tril[0], tril[1]))  # lme4 orders theta column by column
    lam = np.zeros((q, q))
    lam[tril[0][order], tril[1][order]] = np.asarray(theta, float)[: len(order)]
    return lam


def _patient_grams(fit) -> np.ndarray:
    """Per-patient :math:`C_i^\top V_i^{-1} C_i` with :math:`C = [X, 1, y]`: (m, p+2, p+2)."""
    design = getattr(fit, "design", None)
    if not fit.estimated or design is None or fit.theta is None:
        raise NotResamplable("its model is not estimable")
    if str(fit.health.engine).endswith("GEE"):
        raise NotResamplable("its model fell back to GEE, which the patient bootstrap does not "
                             "refit (no mixed-model covariance)")
    X, Z, y = (np.asarray(a, float) for a in (design.X, design.Z, design.y))
    C = np.column_stack([X, np.ones(len(y)), y])
    patient = np.asarray(design.patient)
    m, q = int(patient.max()) + 1, Z.shape[1]
    lam = _lambda(fit.theta, q)

    def per_patient(a, b):
        out = np.zeros((m, a.shape[1], b.shape[1]))
        np.add.at(out, patient, a[:, :, None] * b[:, None, :])
        return out

    cc, cz, zz = per_patient(C, C), per_patient(C, Z), per_patient(Z, Z)
    M = np.eye(q) + np.einsum("ji,mjk,kl->mil", lam, zz, lam)
    czl = cz @ lam                                   # (m, p+2, q)
    return cc - czl @ np.linalg.inv(M) @ np.transpose(czl, (0, 2, 1))


def patient_blocks(fit) -> tuple[np.ndarray, np.ndarray]:
    """Per-patient GLS pieces ``A`` (m, p, p) and ``b`` (m, p) of an LMM fit (see Methods)."""
    G = _patient_grams(fit)
    p = G.shape[1] - 2
    return G[:, :p, :p], G[:, :p, p + 1]


def resampled_betas(fit, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""GLS estimates and covariances for each row of patient multiplicities ``weights`` (B, m).

    With a clinic level, each clinic's rows (its patients with their multiplicities) share the
    clinic intercept: by Woodbury, with :math:`a_i = X_i^\top V_i^{-1} 1`,
    :math:`s_i = 1^\top V_i^{-1} 1`, :math:`r_i = 1^\top V_i^{-1} y_i` and the clinic's
    relative variance :math:`\lambda_c^2` (the last :math:`\theta`), clinic :math:`k` subtracts
    :math:`f_k (\sum w_i a_i)(\sum w_i a_i)^\top` from :math:`\sum w_i A_i` and
    :math:`f_k (\sum w_i r_i)(\sum w_i a_i)` from :math:`\sum w_i b_i`, with
    :math:`f_k = \lambda_c^2 / (1 + \lambda_c^2 \sum w_i s_i)` (sums over the clinic's
    patients): the exact GLS refit of the resample at the full fit's variance parameters.

    Returns
    -------
    betas : ndarray (B, p)
    vcovs : ndarray (B, p, p)
        :math:`\sigma^2 (X^\top V^{-1} X)^{-1}` of each resample.
    """
    G = _patient_grams(fit)
    p = G.shape[1] - 2
    W = np.asarray(weights, float)
    if W.ndim != 2 or W.shape[1] != G.shape[0]:
        raise ValueError(f"weights must be (B, {G.shape[0]}), got {W.shape}")
    AW = np.einsum("bm,mpq->bpq", W, G[:, :p, :p])
    bW = W @ G[:, :p, p + 1]
    if fit.design.clinic is not None:
        clinic = np.asarray(fit.design.clinic_of_patient)
        lam2 = float(fit.theta[-1]) ** 2
        for k in np.unique(clinic):
            Wk, Gk = W[:, clinic == k], G[clinic == k]
            a, s, r = Wk @ Gk[:, :p, p], Wk @ Gk[:, p, p], Wk @ Gk[:, p, p + 1]
            f = lam2 / (1 + lam2 * s)
            AW -= f[:, None, None] * a[:, :, None] * a[:, None, :]
            bW -= (f * r)[:, None] * a
    inv = np.linalg.inv(AW)
    betas = np.einsum("bpq,bq->bp", inv, bW)
    return betas, (fit.sigma ** 2) * inv


def patient_ids(fit) -> list:
    """The patient id of each column of the weights :func:`resampled_betas` takes (a
    clinic-level design labels its groups (clinic, patient))."""
    return [lab[-1] if isinstance(lab, tuple) else lab for lab in fit.design.patient_labels]


def weights_of(weights, patient_ids, wanted) -> np.ndarray:
    """The columns of ``weights`` (B, n; one per patient of ``patient_ids``) for the patients
    ``wanted``, in that order: the resample multiplicities a fit's own patients take."""
    position = {p: j for j, p in enumerate(patient_ids)}
    return np.asarray(weights, float)[:, [position[p] for p in wanted]]


def resampled_fit(fit, beta: np.ndarray, vcov: np.ndarray):
    """A copy of ``fit`` with fixed effects ``beta`` and covariance ``vcov`` (normal intervals)."""
    fe = fit.fixed_effects.copy()
    fe["estimate"] = beta
    fe["std_error"] = np.sqrt(np.clip(np.diag(vcov), 0, None))
    vc = fit.vcov_beta.copy()
    vc.loc[:, :] = vcov
    return replace(fit, fixed_effects=fe, vcov_beta=vc, satterthwaite=None)


def cluster_weights(patients, strata, n_resamples: int, seed: int) -> np.ndarray:
    """Multiplicities of ``patients`` in ``n_resamples`` draws of patients within ``strata``.

    Each resample draws, within every stratum (clinic), as many patients as it has, with
    replacement (``numpy.random.default_rng(seed)``). Returns an (n_resamples, n_patients) array.
    """
    patients, strata = np.asarray(patients), np.asarray(strata)
    rng = np.random.default_rng(seed)
    W = np.zeros((n_resamples, len(patients)))
    for s in sorted(set(strata.tolist()), key=str):
        idx = np.flatnonzero(strata == s)
        draws = rng.integers(0, len(idx), size=(n_resamples, len(idx)))
        for r in range(n_resamples):
            np.add.at(W[r], idx[draws[r]], 1.0)
    return W
