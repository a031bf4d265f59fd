r"""Clinic benchmarking: shrunken clinic effects from the pain model, and a funnel plot.

Methods
-------
**Clinic effects.** The pain model of :mod:`analysis.endpoints.pain` with a clinic level, REML (lme4's
``lmer``; :mod:`analysis.models.lmm`): for patient :math:`i` of clinic :math:`k` at week :math:`t_{ij}`

.. math:: y_{ij} = x_{ij}^\top\beta + c_k + z_{ij}^\top b_i + \varepsilon_{ij},\quad
          c_k \sim N(0, \sigma_c^2),\ b_i \sim N(0, \Sigma_b),\ \varepsilon_{ij} \sim N(0, \sigma^2)

with the fixed part ``pain ~ week * arm`` plus, by default (``benchmarking.adjust_for_baseline``),
the patient's baseline pain (first score, at week <= 1; that visit then leaves the response). So
:math:`c_k` is clinic :math:`k`'s shift in follow-up pain against a patient of the same arm and
baseline pain at the same week elsewhere in the network (negative = less pain = better).

Reported per clinic: the conditional mode :math:`\hat c_k` (lme4's ``ranef``), which shrinks the
clinic's raw mean residual towards 0 the more, the fewer patients it has, and its prediction-error
SD. In lme4's spherical form (:math:`b = \Lambda_\theta u`, :math:`U = Z\Lambda_\theta`) Henderson's
mixed-model equations have the matrix :math:`C = \begin{pmatrix}X^\top X & X^\top U\\
U^\top X & U^\top U + I\end{pmatrix}`, and

.. math:: \operatorname{Var}(\hat c_k - c_k \mid \hat\theta, \hat\sigma)
          = \hat\sigma^2\lambda_c^2\,[C^{-1}]_{kk}

(Henderson 1975) — it **includes the uncertainty in** :math:`\hat\beta` but treats
:math:`\theta, \sigma` as known. The interval is :math:`\hat c_k \pm z_{1-\alpha/2}\,\mathrm{SE}`
(z-based, ``df = inf``). lme4's ``condVar`` (``cond_sd_beta_fixed``) holds :math:`\beta` fixed:
:math:`\hat\sigma^2\lambda_c^2\,[(U^\top U + I)^{-1}]_{kk}`; it is reported too and is smaller.
Patients are eliminated block by block (a Schur complement), so no matrix grows with the number of
patients beyond per-patient :math:`q\times q` blocks.

**Funnel plot** (Spiegelhalter 2005). Each patient with a baseline score (first score, week <= 1)
and a follow-up score at ``min_follow_up_week`` <= week <= ``week`` (default 4 and the last of
``models.pain.weeks``) has a change :math:`d_i` = last such score - baseline. Indirect
standardisation for case mix: :math:`E_i` is the fitted value of the network-wide least-squares
regression ``change ~ arm [+ baseline]``, :math:`\hat\sigma` its residual SD (RSS / (N - p)). A
unit's (clinic's) adjusted change is

.. math:: y_k = \theta_0 + \frac{1}{n_k}\sum_{i\in k}(d_i - E_i),\qquad
          \theta_0 = \bar d,\quad s_k = \hat\sigma/\sqrt{n_k},\quad z_k = (y_k - \theta_0)/s_k,

plotted against :math:`n_k`. Control limits at :math:`p` = 95 % and 99.8 % (two-sided,
:math:`z_p` = 1.96 and 3.09): :math:`\theta_0 \pm z_p s` with ``overdispersion="none"``;
:math:`\theta_0 \pm z_p\sqrt{\hat\phi}\,s` with ``"multiplicative"``, where
:math:`\hat\phi = \frac1I\sum_k z_{k,W}^2` over Winsorised z-scores (``winsorize`` = 10 % at each
end, quantiles as R's type 7) and :math:`\hat\phi < 1` is taken as 1; and
:math:`\theta_0 \pm z_p\sqrt{s^2 + \hat\tau^2}` with ``"additive"`` (random effects), where
:math:`\hat\tau^2 = \max\{0, (I\hat\phi - (I-1)) / (\sum w_k - \sum w_k^2/\sum w_k)\}`,
:math:`w_k = 1/s_k^2` (DerSimonian-Laird). :math:`I\hat\phi` is also reported against
:math:`\chi^2_{I-1}` as a test of overdispersion.

References: Spiegelhalter DJ (2005) Funnel plots for comparing institutional performance. Stat Med
24:1185-1202. Henderson CR (1975) Best linear unbiased estimation and prediction under a selection
model. Biometrics 31:423-447. Bates D et al. (2015) J Stat Softw 67(1). Tested against R (lme4
``ranef(condVar = TRUE)``, hand-coded Spiegelhalter formulas): tests/reference/r_benchmarking.R.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse
import scipy.stats

from analysis.config import PainModelOptions
from analysis.endpoints.pain import BASELINE_MAX_WEEK, fit_pain_model
from analysis.models.health import FitHealth
from analysis.models.lmm import TIDY_COLUMNS, LmmFit, tidy_row

#: Two-sided control-limit levels of the funnel plot and their normal quantiles.
LEVELS = {"95": 0.95, "99.8": 0.998}
Z = {name: float(scipy.stats.norm.ppf(1 - (1 - p) / 2)) for name, p in LEVELS.items()}
OVERDISPERSION = ("none", "multiplicative", "additive")


# -- clinic effects ------------------------------------------------------------------------------

def lower_triangle(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a q x q lower triangle in lme4's (column-major) order of theta."""
    rows, cols = np.tril_indices(q)
    order = np.lexsort((rows, cols))
    return rows[order], cols[order]


def clinic_effects(fit: LmmFit, alpha: float = 0.05) -> pd.DataFrame:
    """Conditional modes of the clinic intercepts with their prediction-error SDs.

    Parameters
    ----------
    fit : LmmFit
        A REML/ML fit with a clinic level (``fit_lmm(..., clinic=...)``), not a GEE fallback.
    alpha : float
        1 - confidence level of the intervals.

    Returns
    -------
    DataFrame
        Tidy columns (``term`` = clinic id, z-based, ``df`` inf) plus ``clinic``,
        ``cond_sd_beta_fixed`` (lme4's condVar) and ``raw_mean_residual`` (the clinic's mean of
        :math:`y - X\\hat\\beta`, before shrinkage).

    Raises
    ------
    ValueError
        The fit has no clinic level.
    """
    d = fit.design
    if d is None or d.clinic is None or fit.theta is None:
        raise ValueError("the fit has no clinic level")
    theta, sigma = np.asarray(fit.theta, float), float(fit.sigma)
    lam_c = float(theta[-1])
    y, X, Z = np.asarray(d.y, float), np.asarray(d.X, float), np.asarray(d.Z, float)
    n, p = X.shape
    k, m, q = len(d.clinic_labels), len(d.patient_labels), Z.shape[1]
    L = np.zeros((q, q))
    L[lower_triangle(q)] = theta[:-1]                              # lme4's column-major Lambda
    P = Z @ L                                                      # patient part of U = Z Lambda
    clinic_obs = d.clinic_of_patient[d.patient]
    member = scipy.sparse.csr_matrix((np.ones(n), (d.patient, np.arange(n))), shape=(m, n))
    PtP = (member @ (P[:, :, None] * P[:, None, :]).reshape(n, q * q)).reshape(m, q, q)
    PtX = (member @ (P[:, :, None] * X[:, None, :]).reshape(n, q * p)).reshape(m, q, p)
    Pty = member @ (P * y[:, None])
    Psum = member @ P          # P'1 of each patient: its (only) clinic column of P'U_clinic, / lam_c
    A = PtP + np.eye(q)
    AinvPtX = np.linalg.solve(A, PtX)
    AinvPty = np.linalg.solve(A, Pty[..., None])[..., 0]
    AinvPsum = np.linalg.solve(A, Psum[..., None])[..., 0]
    # Schur complement of the per-patient blocks in Henderson's equations, with W = [U_clinic, X]:
    # what is left is the (clinic, beta) system, k + p unknowns. A patient's rows of U_clinic are
    # lam_c in its clinic's column and 0 elsewhere, so its clinic blocks are sums by clinic, and
    # the clinic x clinic block is diagonal.
    of_clinic = scipy.sparse.csr_matrix((np.ones(m), (d.clinic_of_patient, np.arange(m))), shape=(k, m))
    n_c = np.bincount(clinic_obs, minlength=k).astype(float)
    S = np.empty((k + p, k + p))
    S[:k, :k] = np.diag(lam_c ** 2 * (n_c - of_clinic @ np.einsum("mq,mq->m", Psum, AinvPsum)) + 1.0)
    clinic_member = scipy.sparse.csr_matrix((np.ones(n), (clinic_obs, np.arange(n))), shape=(k, n))
    S[:k, k:] = lam_c * (clinic_member @ X - of_clinic @ np.einsum("mq,mqa->ma", Psum, AinvPtX))
    S[k:, :k] = S[:k, k:].T
    S[k:, k:] = X.T @ X - np.einsum("mqa,mqb->ab", PtX, AinvPtX)
    rhs = np.r_[lam_c * (np.bincount(clinic_obs, weights=y, minlength=k)
                         - of_clinic @ np.einsum("mq,mq->m", Psum, AinvPty)),
                X.T @ y - np.einsum("mqa,mq->a", PtX, AinvPty)]
    solution = np.linalg.solve(S, rhs)
    modes = lam_c * solution[:k]
    pev = sigma ** 2 * lam_c ** 2 * np.diag(np.linalg.inv(S))[:k]
    fixed = sigma ** 2 * lam_c ** 2 * np.diag(np.linalg.inv(S[:k, :k]))
    resid = y - X @ fit.beta
    raw = np.bincount(clinic_obs, weights=resid, minlength=k) / np.bincount(clinic_obs, minlength=k)
    rows = []
    for j, clinic in enumerate(d.clinic_labels):
        row = tidy_row(str(clinic), float(modes[j]), float(np.sqrt(max(pev[j], 0.0))), np.inf, alpha)
        row.update(clinic=str(clinic), cond_sd_beta_fixed=float(np.sqrt(max(fixed[j], 0.0))),
                   raw_mean_residual=float(raw[j]))
        rows.append(row)
    return pd.DataFrame(rows, columns=TIDY_COLUMNS + ["clinic", "cond_sd_beta_fixed", "raw_mean_residual"])


@dataclass
class ClinicEffectsResult:
    """The benchmarking model and its clinic effects (``table`` empty with ``reason`` when none)."""

    formula: str
    health: FitHealth
    table: pd.DataFrame
    clinic_sd: float = float("nan")
    sigma: float = float("nan")
    reason: str | None = None
    n_patients: dict = field(default_factory=dict)


def benchmarking_options(options: PainModelOptions, adjust_for_baseline: bool = True) -> PainModelOptions:
    """The pain model's options with a clinic level and, optionally, baseline pain as covariate."""
    covariates = list(options.covariates)
    baseline = f"baseline_{options.outcome}"
    if adjust_for_baseline and options.formula is None and baseline not in covariates \
            and "baseline_pain" not in covariates:
        covariates.append(baseline)
    return PainModelOptions(**{**options.model_dump(), "clinic_level": True, "covariates": covariates,
                                "analysis": "trend"})


def fit_clinic_effects(visits: pd.DataFrame, options: PainModelOptions, control: str = "usual_care",
                       alpha: float = 0.05, adjust_for_baseline: bool = True,
                       clinic: str = "clinic_id") -> ClinicEffectsResult:
    """Fit the benchmarking model (:func:`benchmarking_options`) and return its clinic effects.

    Parameters
    ----------
    visits : DataFrame
        One row per visit with ``patient_id``, ``clinic_id``, ``week``, ``arm`` and the outcome.
    options : PainModelOptions
        The run's pain model options (``models.pain``).
    control : str
        Comparator arm.
    alpha : float
        1 - confidence level.
    adjust_for_baseline : bool
        Add the baseline outcome as a covariate (ignored when ``options.formula`` is set).
    clinic : str
        Clinic column.

    Returns
    -------
    ClinicEffectsResult
        ``reason`` says why there are no clinic effects (not estimable, clinic level dropped,
        GEE fallback).
    """
    opts = benchmarking_options(options, adjust_for_baseline)
    result = fit_pain_model(visits, opts, control=control, alpha=alpha, clinic=clinic)
    fit = result.fit
    empty = pd.DataFrame(columns=TIDY_COLUMNS + ["clinic", "cond_sd_beta_fixed", "raw_mean_residual"])
    if not result.health.estimated or fit is None:
        return ClinicEffectsResult(result.formula, result.health, empty,
                                   reason=result.health.status.removeprefix("not estimable: "))
    if fit.design is None or fit.design.clinic is None or fit.theta is None:
        steps = "; ".join(result.health.fallback_steps) or "no clinic level in the fitted model"
        return ClinicEffectsResult(result.formula, result.health, empty,
                                   reason=f"the model could not keep a clinic level ({steps})")
    table = clinic_effects(fit, alpha)
    # the clinic may be a Categorical (fit_pain_model codes text ids once); the design keeps only
    # used categories, so the observed ones are all of them
    counts = fit.design.data.groupby(clinic, observed=True)["patient_id"].nunique()
    vc = fit.variance_components
    clinic_sd = float(vc.loc[vc["group"] == clinic, "estimate"].iloc[0])
    return ClinicEffectsResult(result.formula, result.health, table, clinic_sd=clinic_sd,
                               sigma=float(fit.sigma),
                               n_patients={str(c): int(v) for c, v in counts.items()})


# -- funnel plot ---------------------------------------------------------------------------------

def patient_changes(visits: pd.DataFrame, outcome: str = "pain_score", week: float = 12.0,
                    min_follow_up_week: float = 4.0, clinic: str = "clinic_id") -> pd.DataFrame:
    """Each patient's change from baseline to the last score in the follow-up window.

    Baseline is the patient's first recorded score when it is at week <= 1; the follow-up score is
    the last recorded one with ``min_follow_up_week <= week <= week``. Patients without both are
    left out.

    Returns
    -------
    DataFrame
        ``patient_id, clinic, arm, baseline, follow_up_week, last, change`` (``clinic`` holds
        the clinic id).
    """
    recorded = visits.dropna(subset=[outcome]).sort_values(["patient_id", "week"], kind="stable")
    first = recorded.drop_duplicates("patient_id")
    first = first[first["week"] <= BASELINE_MAX_WEEK]
    window = recorded[(recorded["week"] >= min_follow_up_week) & (recorded["week"] <= week)]
    last = window.drop_duplicates("patient_id", keep="last")
    out = first[["patient_id", clinic, "arm", outcome]].rename(columns={clinic: "clinic", outcome: "baseline"})
    out = out.merge(last[["patient_id", "week", outcome]].rename(
        columns={"week": "follow_up_week", outcome: "last"}), on="patient_id", how="inner")
    out["clinic"] = out["clinic"].astype(str)
    out["arm"] = out["arm"].astype(str)
    out["baseline"] = out["baseline"].astype(float)
    out["last"] = out["last"].astype(float)
    out["change"] = out["last"] - out["baseline"]
    return out.reset_index(drop=True)


def control_limits(target: float, sigma: float, n, level: str, phi: float = 1.0,
                   tau2: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Funnel control limits :math:`\\theta_0 \\pm z_p\\sqrt{\\phi\\sigma^2/n + \\tau^2}` at ``n``.

    ``phi = 1, tau2 = 0``: no overdispersion; ``phi`` (>= 1) multiplicative; ``tau2`` additive.
    ``level`` is ``"95"`` or ``"99.8"``.
    """
    n = np.asarray(n, float)
    half = Z[level] * np.sqrt(phi * sigma ** 2 / n + tau2)
    return target - half, target + half


def overdispersion(z: np.ndarray, s: np.ndarray, winsorize: float = 0.1) -> dict:
    """Spiegelhalter's (2005) :math:`\\hat\\phi` from Winsorised z-scores, DerSimonian-Laird
    :math:`\\hat\\tau^2`, and the test of :math:`I\\hat\\phi` against :math:`\\chi^2_{I-1}`."""
    z, s = np.asarray(z, float), np.asarray(s, float)
    units = len(z)
    low, high = np.quantile(z, [winsorize, 1 - winsorize])  # numpy "linear" = R's type 7
    zw = np.clip(z, low, high)
    phi = float(np.mean(zw ** 2))
    w = 1 / s ** 2
    denominator = w.sum() - (w ** 2).sum() / w.sum()
    tau2 = max(0.0, (units * phi - (units - 1)) / denominator) if denominator > 0 else 0.0
    chisq = units * phi
    return {"phi": phi, "tau2": float(tau2), "chisq": chisq, "df": units - 1,
            "p_value": float(scipy.stats.chi2.sf(chisq, units - 1)) if units > 1 else float("nan"),
            "units": units, "winsorize": winsorize}


@dataclass
class FunnelResult:
    """Per-unit funnel quantities and the network target, spread and overdispersion."""

    units: pd.DataFrame
    target: float
    sigma: float
    method: str
    phi_used: float
    tau2_used: float
    dispersion: dict
    n_patients: int
    case_mix: str
    reason: str | None = None

    def limits(self, n, level: str) -> tuple[np.ndarray, np.ndarray]:
        """Control limits of this funnel (with its overdispersion) at ``n`` patients."""
        return control_limits(self.target, self.sigma, n, level, self.phi_used, self.tau2_used)


def funnel(changes: pd.DataFrame, unit: str = "unit", adjust_for_baseline: bool = True,
           method: str = "additive", winsorize: float = 0.1) -> FunnelResult:
    """Indirectly standardised change per unit with Spiegelhalter's control limits.

    Parameters
    ----------
    changes : DataFrame
        One row per patient: ``arm``, ``baseline``, ``change`` and the ``unit`` column (e.g. a
        clinic label, or one label for pooled small clinics); rows with a missing unit are left
        out before anything is estimated.
    unit : str
        The unit column.
    adjust_for_baseline : bool
        Case mix ``change ~ arm + baseline`` (else ``change ~ arm``).
    method : {"none", "multiplicative", "additive"}
        Overdispersion.
    winsorize : float
        Share of z-scores Winsorised at each end for :math:`\\hat\\phi`.

    Returns
    -------
    FunnelResult
        ``units`` has ``unit, n_patients, adjusted_change, std_error, z`` and, for the chosen
        method, ``lower_99.8, lower_95, upper_95, upper_99.8`` and ``flag``. ``reason`` is set (and
        ``units`` empty) when fewer than two units or too few patients remain.
    """
    if method not in OVERDISPERSION:
        raise ValueError(f"overdispersion {method!r}: choose from {OVERDISPERSION}")
    data = changes.dropna(subset=[unit, "change", "arm"] + (["baseline"] if adjust_for_baseline else []))
    case_mix = "change ~ arm + baseline" if adjust_for_baseline else "change ~ arm"
    arms = sorted(data["arm"].unique())
    X = np.column_stack([np.ones(len(data))] + [(data["arm"] == a).to_numpy(float) for a in arms[1:]]
                        + ([data["baseline"].to_numpy(float)] if adjust_for_baseline else []))
    y = data["change"].to_numpy(float)
    rank = np.linalg.matrix_rank(X) if len(data) else 0
    n_units = data[unit].nunique()
    empty = FunnelResult(pd.DataFrame(), np.nan, np.nan, method, 1.0, 0.0, {}, len(data), case_mix)
    if n_units < 2:
        empty.reason = "fewer than two clinics (or groups of clinics) can be shown"
        return empty
    if len(data) - rank < 2:
        empty.reason = "too few patients with a baseline and a follow-up score"
        return empty
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    sigma = float(np.sqrt(resid @ resid / (len(y) - rank)))
    target = float(y.mean())
    grouped = pd.DataFrame({"unit": data[unit].to_numpy(), "resid": resid}).groupby("unit", sort=True)
    units = grouped["resid"].agg(n_patients="size", mean_resid="mean").reset_index()
    units["adjusted_change"] = target + units.pop("mean_resid")
    units["std_error"] = sigma / np.sqrt(units["n_patients"].to_numpy(float))
    units["z"] = (units["adjusted_change"] - target) / units["std_error"]
    dispersion = overdispersion(units["z"].to_numpy(), units["std_error"].to_numpy(), winsorize)
    phi_used = max(dispersion["phi"], 1.0) if method == "multiplicative" else 1.0
    tau2_used = dispersion["tau2"] if method == "additive" else 0.0
    result = FunnelResult(units.rename(columns={"unit": unit}), target, sigma, method, phi_used,
                          tau2_used, dispersion, len(data), case_mix)
    n = units["n_patients"].to_numpy(float)
    for level in ("99.8", "95"):
        low, high = result.limits(n, level)
        result.units[f"lower_{level}"], result.units[f"upper_{level}"] = low, high
    result.units = result.units[[unit, "n_patients", "adjusted_change", "std_error", "z", "lower_99.8",
                                 "lower_95", "upper_95", "upper_99.8"]]
    result.units["flag"] = [funnel_flag(r) for r in result.units.to_dict("records")]
    return result


def funnel_flag(row: dict) -> str:
    """Where a unit lies against its limits, e.g. ``"below 99.8% limit"`` (below = more pain relief)."""
    y = row["adjusted_change"]
    if y < row["lower_99.8"]:
        return "below 99.8% limit"
    if y < row["lower_95"]:
        return "below 95% limit"
    if y > row["upper_99.8"]:
        return "above 99.8% limit"
    if y > row["upper_95"]:
        return "above 95% limit"
    return "within limits"


# -- who is shown, and under which name ----------------------------------------------------------

def letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA, ... (spreadsheet column names)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def clinic_letters(n_patients: dict[str, int], threshold: int, exclude: str | None = None,
                   salt: str = "") -> dict[str, str]:
    """Letters for the clinics that may be shown on their own, in an order that hides their ids.

    Clinics with at least ``threshold`` patients, other than ``exclude`` (the highlighted one),
    get A, B, C, ... from the largest to the smallest; ties are broken by a SHA-256 of
    ``salt:id`` rather than by the id itself, so ids that sort alike get no alike letters.
    """
    shown = [c for c, n in n_patients.items() if n >= threshold and c != exclude]
    order = sorted(shown, key=lambda c: (-n_patients[c], hashlib.sha256(f"{salt}:{c}".encode()).hexdigest()))
    return {c: letter(i) for i, c in enumerate(order)}
