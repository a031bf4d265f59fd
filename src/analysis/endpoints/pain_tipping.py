"""Delta-adjusted tipping-point analysis of the pain MMRM (``models.pain.sensitivity.delta``).

Methods
-------
1. ``imputations`` completed data sets under MAR from the fitted MMRM
   (:func:`analysis.models.mmrm_impute.impute`: ``beta`` and ``theta`` drawn from their
   asymptotic normal distributions, then each patient's missing visits from the conditional
   multivariate normal given the observed ones). One seeded set of imputations serves every delta.
2. For each delta, every imputed value of a patient in an *active* (non-control) arm at a visit
   *after the patient's last observed visit* (after dropout) is shifted by delta in the direction
   unfavourable to the active arm: ``+delta`` when lower scores are better (pain) or the direction
   is unknown, ``-delta`` when higher is better. Intermittent missed visits keep their MAR
   imputation (rbmi's convention); control patients are imputed under MAR.
3. Each completed data set is analysed by ANCOVA at the primary visit (the last scheduled visit):
   ``y ~ arm + covariates`` by least squares, the arm's coefficient and its variance, complete-data
   df ``n - p``.
4. Rubin's rules with Barnard-Rubin df (:func:`analysis.models.mmrm_impute.rubin`).

The patients in the MMRM (at least one observed visit) are the ones imputed; covariates are taken
per patient (their first recorded value). At delta = 0 the pooled difference estimates the MMRM's
difference at the primary visit under MAR.

References: Carpenter, Roger & Kenward (2013), J Biopharm Stat 23, 1352-1371; Cro et al. (2020),
Stat Med 39, 2815-2842 (delta-adjusted sensitivity analysis); rbmi (R package).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.models.mmrm_design import build_design
from analysis.models.mmrm_impute import design_rows, impute, rubin

TIDY = ["delta", "arm", "control", "week", "estimate", "std_error", "df", "statistic", "p_value",
        "conf_low", "conf_high", "fraction_missing_information", "n_imputations",
        "n_patients_shifted"]


def _wide(result):
    """Outcomes ``(n, m)``, per-patient covariate frame, and the fitted model's visit order."""
    fit, frame = result.fit, result.frame
    group, visit = "patient_id", "visit"
    arm_col = next(v for v in fit.design.levels if v != visit)
    subjects = sorted(set(fit.data[group].astype(str)))
    obs = fit.data.assign(**{group: fit.data[group].astype(str)})
    y = (obs.pivot_table(index=group, columns=visit, values=result.outcome, aggfunc="first")
         .reindex(index=subjects, columns=fit.visits).to_numpy(float))
    covs = [v for v in list(fit.design.levels) + list(fit.design.means) if v not in (visit,)]
    per = (frame.assign(**{group: frame[group].astype(str)}).sort_values([group, "week"])
           .groupby(group)[covs].first().reindex(subjects))
    return y, per, arm_col


def tipping_point(result, deltas, n_imputations: int = 50, seed=0, alpha: float = 0.05,
                  better: str | None = "lower") -> pd.DataFrame:
    """The pooled arm - control difference at the primary visit for each delta and active arm.

    Parameters
    ----------
    result : PainMmrmResult
        An estimated pain MMRM (:func:`analysis.endpoints.pain_mmrm.fit_pain_mmrm`).
    deltas : sequence of float
    n_imputations : int
    seed : int
        The run's seed (imputations are reproducible).
    alpha : float
    better : {"lower", "higher", None}
        Which direction is better for the outcome; sets the sign of the shift.

    Returns
    -------
    DataFrame
        Columns ``TIDY``.
    """
    fit = result.fit
    y, per, arm_col = _wide(result)
    n, m = y.shape
    grid = per.loc[per.index.repeat(m)].reset_index(drop=True)
    grid["visit"] = np.tile(fit.visits, n)
    X = design_rows(fit.design, grid).reshape(n, m, -1)
    completed = impute(fit, y, X, n_imputations, seed=[int(seed), 16])
    observed = ~np.isnan(y)
    last = np.array([np.flatnonzero(r).max() if r.any() else -1 for r in observed])
    after = np.arange(m)[None, :] > last[:, None]
    arms = per[arm_col].astype(str).to_numpy()
    control = fit.design.reference[arm_col]
    sign = -1.0 if better == "higher" else 1.0
    covs = [v for v in per.columns if v != arm_col]
    ancova = build_design(per, " + ".join([arm_col] + covs), {arm_col: control},
                          class_vars=(arm_col,))
    Z = ancova.X
    week = float(result.differences["week"].max())
    rows = []
    for delta in deltas:
        for arm in [a for a in fit.design.levels[arm_col] if a != control]:
            shift = after & (arms == arm)[:, None]
            est, var = [], []
            for j in range(n_imputations):
                yy = completed[j][:, -1] + sign * float(delta) * shift[:, -1]
                coef, v, dfc = _ols(Z, yy)
                k = ancova.columns.index(f"{arm_col}[{arm}]")
                est.append(coef[k])
                var.append(v[k, k])
            pooled = rubin(est, var, dfc, alpha)
            rows.append({"delta": float(delta), "arm": arm, "control": control, "week": week,
                         **{k: pooled[k] for k in ("estimate", "std_error", "df", "statistic",
                                                   "p_value", "conf_low", "conf_high")},
                         "fraction_missing_information": pooled["lambda"],
                         "n_imputations": n_imputations,
                         "n_patients_shifted": int(shift[:, -1].sum())})
    return pd.DataFrame(rows, columns=TIDY)


def _ols(Z, y):
    """Least squares: coefficients, their covariance, residual df."""
    coef, *_ = np.linalg.lstsq(Z, y, rcond=None)
    resid = y - Z @ coef
    dfc = len(y) - np.linalg.matrix_rank(Z)
    s2 = float(resid @ resid) / dfc
    return coef, s2 * np.linalg.inv(Z.T @ Z), float(dfc)
