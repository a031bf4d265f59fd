r"""Synthetic clinic logs drawn from a known data-generating model, and the truth they came from.

The log follows the data contract (one row per visit); the truth (a JSON file beside it) records
every parameter, so a model fitted to the log can be checked against the numbers it should find.
The truth holds parameters only, never per-patient rows.

Methods
-------
Patient :math:`i` (arm :math:`a_i`, drawn with equal probability; clinic :math:`k_i`), visit
:math:`j = 0, 1, \dots` on day :math:`d_{ij}` (:math:`d_{i0} = 0`), :math:`t_{ij} = d_{ij}/7` weeks.
Nominal visits: weekly to week 4, then fortnightly up to ``weeks``; days jittered by
:math:`\pm 2` (baseline not jittered). Every effect follows the assigned arm (intention to treat);
the few "switched" visits change only the recorded ``intervention``.

Pain (NPRS, latent scale)::

    y*_ij = b0 + c_k + u0_i + (beta_a + delta_a * 1[FPI_i > 5] + u1_i) * t_ij + e_ij
    c_k ~ N(0, 0.3^2);  (u0_i, u1_i) ~ N(0, [[1.2^2, r*1.2*0.05], [r*1.2*0.05, 0.05^2]]), r = -0.2
    e_ij ~ N(0, 1);  b0 = 6 in every arm;  delta_orthotics = -0.10, delta = 0 otherwise
    recorded y_ij = min(10, max(0, round(y*_ij)));  missing completely at random w.p. 0.05, j >= 1

Foot posture: ``FPI_i = clip(round(N(3.5, 3^2)), -12, 12)``, once per patient.

Episodes (negative binomial NB2, log link, exposure offset)::

    Y_ij ~ NB2(mu_ij, theta = 4),  Var(Y_ij) = mu_ij + mu_ij^2 / theta
    log mu_ij = log(E_ij / 7) + log(lambda0) + w_i + 1[j >= 1] * log(RR_a)
    w_i ~ N(-s^2/2, s^2), s = 0.5;  lambda0 = 0.8 per week;  E_ij = d_ij - d_i,j-1, E_i0 = 14

Because E[exp(w_i)] = 1, ``lambda0`` is the population rate and, with a log link, ``RR_a`` is
both the patient-level (conditional) and the population-averaged (marginal) rate ratio.

Strength (knee extensors, newtons; measured at visit 0 and every second visit after it, each
scheduled measurement missed w.p. 0.1)::

    log S_ij = log(250) + v_i + c'_k + g_a * t_ij + e_ij,  g_a = log(1 + p_a) / 12
    v_i ~ N(0, 0.25^2), c'_k ~ N(0, 0.05^2), e_ij ~ N(0, 0.08^2)

Dropout, missing at random (depends on observed data only): a fraction 0.03 is lost after the
baseline visit; after each later visit j the patient leaves w.p.
``logistic(-3.2 + 0.25 * (ytilde_ij - 5))``, ytilde the most recent *observed* pain score.

Per-arm defaults (beta_a, RR_a, 100 p_a) are in :class:`Truth`. Nothing here is estimated (so
no REML/ML or df); models are checked against this truth in parameter-recovery tests.
References: Farrar et al. (2001) Pain 94:149-158 (NPRS); Hilbe (2011) *Negative Binomial
Regression*, 2nd ed. (NB2); Little & Rubin (2019) *Statistical Analysis with Missing Data*, 3rd
ed. (MCAR/MAR).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import DEFAULT_INTERVENTIONS
from .errors import ConfigError

SCHEMA_VERSION = 1
COLUMNS = [
    "patient_id", "clinic_id", "visit_date", "intervention", "pain_score", "episodes",
    "exposure_days", "strength", "foot_posture_index", "age_band", "sex",
]
CONTROL = "usual_care"
DEFAULT_ARMS = ["usual_care", "deep_tissue_massage", "foot_massage", "orthotics", "patella_taping"]
ENROLMENT_FIRST, ENROLMENT_LAST = "2025-01-06", "2025-12-31"
WEEKLY_UNTIL_WEEK, LATER_EVERY_WEEKS, JITTER_DAYS = 4, 2, 2
AGE_BANDS = {"18-34": 0.25, "35-54": 0.40, "55-74": 0.30, "75+": 0.05}
SEXES = {"F": 0.6, "M": 0.4}
DERIVED_WEEKS = (0, 4, 8, 12)

# Per-arm defaults: (pain slope per week, episode rate ratio vs usual care, strength % change at
# week 12). Deep-tissue massage: 25 % fewer episodes and +20 % strength -- honest and modest, not
# the "62 % fewer" and "over 80 %" of the clinic pages.
_ARM_DEFAULTS = {
    "usual_care": (-0.08, 1.00, 5.0),
    "deep_tissue_massage": (-0.12, 0.75, 20.0),
    "foot_massage": (-0.09, 0.95, 5.0),
    "orthotics": (-0.08, 0.90, 6.0),
    "patella_taping": (-0.11, 0.85, 6.0),
    "strength_training": (-0.15, 0.80, 35.0),
    "gait_retraining": (-0.10, 0.90, 8.0),
}
_PAIN_SLOPE, _RATE_RATIO, _STRENGTH_CHANGE = (
    {arm: values[i] for arm, values in _ARM_DEFAULTS.items()} for i in range(3))
_OVERPRONATION_EXTRA = {a: (-0.10 if a == "orthotics" else 0.0) for a in DEFAULT_INTERVENTIONS}


def _per_arm(default: dict[str, float]):
    return field(default_factory=lambda: dict(default))


@dataclass(frozen=True)
class Truth:
    """Parameters of the data-generating model; symbols as in the module docstring.

    Per-arm mappings given partially are completed from the defaults, so
    ``Truth(episode_rate_ratio={"deep_tissue_massage": 0.38})`` changes one arm only; treat them
    as read-only. Each field's meaning is the comment beside it; a bad value raises ConfigError.
    """

    # Pain (latent NPRS).
    pain_baseline_mean: float = 6.0  # b0, mean at week 0, the same in every arm
    pain_slope_per_week: dict = _per_arm(_PAIN_SLOPE)  # beta_a, change per week by arm
    pain_overpronation_extra_slope: dict = _per_arm(_OVERPRONATION_EXTRA)  # delta_a if FPI > 5
    overpronated_above: float = 5.0  # FPI threshold of the moderator (+6 and up is pronated)
    pain_sd_clinic: float = 0.3  # SD of the clinic intercept c_k
    pain_sd_patient_intercept: float = 1.2  # SD of u0_i
    pain_sd_patient_slope: float = 0.05  # SD of u1_i, per week
    pain_corr_intercept_slope: float = -0.2  # correlation of u0_i and u1_i
    pain_sd_residual: float = 1.0  # SD of e_ij
    pain_missing_probability: float = 0.05  # post-baseline score missing completely at random
    fpi_mean: float = 3.5  # Foot Posture Index ~ clip(round(N(fpi_mean, fpi_sd^2)), -12, 12)
    fpi_sd: float = 3.0
    # Episodes (NB2).
    episodes_rate_per_week: float = 0.8  # lambda0, population-averaged rate in usual care
    episode_rate_ratio: dict = _per_arm(_RATE_RATIO)  # RR_a vs usual care, after baseline
    episodes_sd_patient: float = 0.5  # s, SD of w_i on the log rate (mean -s^2/2)
    episodes_nb_size: float = 4.0  # theta; smaller means more over-dispersion
    baseline_exposure_days: int = 14  # the baseline row covers the two weeks before the visit
    # Strength (log scale).
    strength_baseline_newtons: float = 250.0  # median knee-extensor strength at baseline, S0
    strength_percent_change_week12: dict = _per_arm(_STRENGTH_CHANGE)  # 100 p_a by arm
    strength_sd_patient: float = 0.25  # SD of v_i
    strength_sd_clinic: float = 0.05  # SD of c'_k
    strength_sd_residual: float = 0.08  # SD of e_ij
    strength_missing_probability: float = 0.1  # a scheduled (every 2nd visit) reading missed
    # Dropout, switching, clinics.
    dropout_intercept: float = -3.2  # logistic(intercept + slope * (observed pain - centre))
    dropout_pain_slope: float = 0.25
    dropout_pain_centre: float = 5.0
    lost_after_baseline: float = 0.03  # chance of the baseline visit only
    switch_fraction: float = 0.08  # chance a patient (with >= 3 visits) switches on 1-2 visits
    clinic_dirichlet_alpha: float = 2.0  # clinic shares: floor min(5 %, 1/(2K)) + Dirichlet

    def __post_init__(self):
        defaults = {"pain_slope_per_week": _PAIN_SLOPE, "episode_rate_ratio": _RATE_RATIO,
                    "strength_percent_change_week12": _STRENGTH_CHANGE,
                    "pain_overpronation_extra_slope": _OVERPRONATION_EXTRA}
        for name, default in defaults.items():
            given = dict(getattr(self, name))
            unknown = sorted(set(given) - set(DEFAULT_INTERVENTIONS))
            if unknown:
                raise ConfigError(f"Truth.{name}: unknown intervention(s) {unknown}")
            object.__setattr__(self, name, {**default, **{a: float(v) for a, v in given.items()}})
        checks = [
            (min(self.episode_rate_ratio.values()) > 0, "episode_rate_ratio must be > 0"),
            (min(self.strength_percent_change_week12.values()) > -100,
             "strength_percent_change_week12 must be > -100"),
            (abs(self.pain_corr_intercept_slope) <= 1, "pain_corr_intercept_slope outside -1..1"),
        ]
        checks += [(getattr(self, name) > 0, f"{name} must be > 0") for name in (
            "episodes_nb_size", "baseline_exposure_days", "clinic_dirichlet_alpha")]
        checks += [(getattr(self, f.name) >= 0, f"{f.name} must be >= 0")
                   for f in dataclasses.fields(self) if "_sd_" in f.name]
        checks += [(0 <= getattr(self, name) <= 1, f"{name} must be a probability")
                   for name in ("pain_missing_probability", "strength_missing_probability",
                                "lost_after_baseline", "switch_fraction")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"Truth: {message}")

    @classmethod
    def null(cls, **overrides) -> "Truth":
        """Every arm equal to usual care (same pain slope, rate ratio 1, same strength change,
        no moderation); ``overrides`` are applied on top (per-arm mappings merged)."""
        same = {name: {a: value for a in DEFAULT_INTERVENTIONS} for name, value in (
            ("pain_slope_per_week", _PAIN_SLOPE[CONTROL]), ("episode_rate_ratio", 1.0),
            ("strength_percent_change_week12", _STRENGTH_CHANGE[CONTROL]),
            ("pain_overpronation_extra_slope", 0.0))}
        for name, value in overrides.items():
            same[name] = {**same[name], **value} if name in same else value
        return cls(**same)

    def share_overpronated(self) -> float:
        """P(FPI > threshold) for round(N(fpi_mean, fpi_sd^2)), the moderator's expected share."""
        cut = math.floor(self.overpronated_above) + 0.5  # round(x) > 5 <=> x >= 5.5
        if self.fpi_sd == 0:
            return float(round(self.fpi_mean) > self.overpronated_above)
        return 0.5 * math.erfc((cut - self.fpi_mean) / (self.fpi_sd * math.sqrt(2)))


#: The brief's name for the override argument's type; the same class.
Effects = Truth


def _check_args(n_patients, n_clinics, seed, weeks, arms, effects) -> list[str]:
    def whole(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not whole(n_patients) or n_patients < 1:
        raise ConfigError(f"simulate: --patients must be a positive integer, got {n_patients!r}")
    if not whole(n_clinics) or not 1 <= n_clinics <= n_patients:
        raise ConfigError(f"simulate: --clinics must be in 1..--patients, got {n_clinics!r}")
    if not whole(seed) or seed < 0:
        raise ConfigError(f"simulate: --seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(weeks, (int, float)) and math.isfinite(weeks) and 0 < weeks <= 520):
        raise ConfigError(f"simulate: --weeks must be in (0, 520], got {weeks!r}")
    if effects is not None and not isinstance(effects, Truth):
        raise ConfigError(f"simulate: effects must be a Truth, got {type(effects).__name__}")
    arms = list(DEFAULT_ARMS if arms is None else arms)
    unknown = [a for a in arms if a not in DEFAULT_INTERVENTIONS]
    if unknown or len(set(arms)) != len(arms):
        raise ConfigError(f"simulate: arms must be distinct contract interventions "
                          f"{DEFAULT_INTERVENTIONS}; got {arms}")
    if CONTROL not in arms:
        arms.insert(0, CONTROL)  # the comparator is always simulated
    return arms


def _schedule_days(weeks: float) -> np.ndarray:
    limit = math.floor(7 * weeks + 1e-9)
    days = [7 * w for w in range(WEEKLY_UNTIL_WEEK + 1)]
    days += list(range(days[-1] + 7 * LATER_EVERY_WEEKS, limit + 1, 7 * LATER_EVERY_WEEKS))
    return np.array([d for d in days if d <= limit], dtype=np.int64)


def _clinic_of_patients(rng, n, k, alpha) -> np.ndarray:
    floor = min(0.05, 0.5 / k)
    shares = floor + (1 - k * floor) * rng.dirichlet(np.full(k, alpha))
    extra = (n - k) * shares  # one patient each first, then the rest by largest remainder
    counts = np.floor(extra).astype(np.int64)
    counts[np.argsort(-(extra - counts), kind="stable")[: (n - k) - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(k), counts + 1))


def simulate_log(n_patients: int = 360, n_clinics: int = 6, seed: int = 1, weeks: float = 12.0,
                 arms: list[str] | None = None, effects: Truth | None = None
                 ) -> tuple[pd.DataFrame, dict]:
    """Draw a synthetic clinic log and return it with the truth it was drawn from.

    Parameters
    ----------
    n_patients, n_clinics : int
        Patients, spread unevenly over clinics (every clinic >= min(5 %, 1/(2K)) of patients).
    seed : int
        Seed of ``numpy.random.default_rng``; the same arguments give the same log.
    weeks : float
        Follow-up: weekly visits to week 4, then fortnightly up to this week.
    arms : list of str, optional
        Contract interventions to randomise to (default: usual care, deep-tissue massage, foot
        massage, orthotics, patella taping); usual care is always added.
    effects : Truth, optional
        The model's parameters (default ``Truth()``); e.g. ``Truth.null()`` for no arm effects.

    Returns
    -------
    log : pandas.DataFrame
        One row per visit, columns :data:`COLUMNS`; ``pain_score`` is nullable ``Int64``,
        ``strength`` is float (NaN when not measured), ``visit_date`` an ISO string.
    truth : dict
        Every parameter, as written to the truth JSON (see :func:`truth_dict`).
    """
    arms = _check_args(n_patients, n_clinics, seed, weeks, arms, effects)
    p = Truth() if effects is None else effects
    rng = np.random.default_rng(seed)
    n, a = int(n_patients), len(arms)
    nominal = _schedule_days(weeks)
    s = len(nominal)
    slot = np.arange(s)

    # The order of the draws below is part of the output: change it and every log changes.
    clinic = _clinic_of_patients(rng, n, int(n_clinics), p.clinic_dirichlet_alpha)
    c_pain = rng.normal(0.0, p.pain_sd_clinic, n_clinics)[clinic]
    c_strength = rng.normal(0.0, p.strength_sd_clinic, n_clinics)[clinic]
    arm = rng.integers(0, a, n)
    age = rng.choice(len(AGE_BANDS), n, p=list(AGE_BANDS.values()))
    sex = rng.choice(len(SEXES), n, p=list(SEXES.values()))
    fpi = np.clip(np.rint(rng.normal(p.fpi_mean, p.fpi_sd, n)), -12, 12).astype(np.int64)
    span = (np.datetime64(ENROLMENT_LAST) - np.datetime64(ENROLMENT_FIRST)).astype(int)
    enrol = np.datetime64(ENROLMENT_FIRST) + rng.integers(0, span + 1, n)
    jitter = rng.integers(-JITTER_DAYS, JITTER_DAYS + 1, (n, s))
    jitter[:, 0] = 0
    # Only the last nominal visit can pass the limit; clipping keeps the days increasing.
    day = np.minimum(nominal + jitter, nominal[-1])
    week = day / 7.0

    def by_arm(mapping):
        return np.array([mapping[x] for x in arms])[arm]

    # Pain: (u0, u1) from two independent normals via the Cholesky factor of their covariance.
    rho = p.pain_corr_intercept_slope
    z = rng.standard_normal((n, 2))
    u0 = p.pain_sd_patient_intercept * z[:, 0]
    u1 = p.pain_sd_patient_slope * (rho * z[:, 0] + math.sqrt(1 - rho**2) * z[:, 1])
    slope = (by_arm(p.pain_slope_per_week) + u1
             + by_arm(p.pain_overpronation_extra_slope) * (fpi > p.overpronated_above))
    latent = (p.pain_baseline_mean + c_pain + u0)[:, None] + slope[:, None] * week
    latent += rng.normal(0.0, p.pain_sd_residual, (n, s))
    pain = np.clip(np.rint(latent), 0, 10)
    missing = (rng.random((n, s)) < p.pain_missing_probability) & (slot > 0)
    pain[missing] = np.nan

    # Dropout on the most recent observed pain (baseline pain is never missing): MAR.
    last_seen = np.maximum.accumulate(np.where(missing, 0, slot), axis=1)
    observed = np.take_along_axis(pain, last_seen, axis=1)
    hazard = 1 / (1 + np.exp(-(p.dropout_intercept
                               + p.dropout_pain_slope * (observed - p.dropout_pain_centre))))
    leaves = (rng.random((n, s)) < hazard) & (slot > 0)
    leaves[:, -1] = True
    leaves[:, 0] = rng.random(n) < p.lost_after_baseline
    n_visits = np.argmax(leaves, axis=1) + 1

    # Episodes: NB2 as a gamma-Poisson mixture via numpy's negative_binomial(size, prob).
    w = rng.normal(-p.episodes_sd_patient**2 / 2, p.episodes_sd_patient, n)
    exposure = np.diff(day, axis=1, prepend=day[:, :1] - p.baseline_exposure_days)
    rr = np.where(slot > 0, by_arm(p.episode_rate_ratio)[:, None], 1.0)
    mu = exposure / 7 * p.episodes_rate_per_week * np.exp(w)[:, None] * rr
    theta = p.episodes_nb_size
    episodes = rng.negative_binomial(theta, theta / (theta + mu))

    # Strength, on the log scale.
    g = np.log1p(by_arm(p.strength_percent_change_week12) / 100) / 12
    v = rng.normal(0.0, p.strength_sd_patient, n)
    log_s = (math.log(p.strength_baseline_newtons) + v + c_strength)[:, None] + g[:, None] * week
    log_s += rng.normal(0.0, p.strength_sd_residual, (n, s))
    missed = (rng.random((n, s)) < p.strength_missing_probability) & (slot > 0)
    measured = (slot % 2 == 0) & ~missed
    strength = np.where(measured, np.round(np.exp(log_s), 1), np.nan)

    # Switches: 1-2 later visits get another arm's intervention; the arm stays the majority.
    given = np.repeat(arm[:, None], s, axis=1)
    picked, length = rng.random(n) < p.switch_fraction, rng.integers(1, 3, n)
    start_u, other_u = rng.random(n), rng.random(n)
    if a > 1:
        length = np.minimum(length, (n_visits - 1) // 2) * picked
        start = 1 + np.floor(start_u * (n_visits - length)).astype(np.int64)
        other = (arm + 1 + np.floor(other_u * (a - 1)).astype(np.int64)) % a
        switched = (slot >= start[:, None]) & (slot < (start + length)[:, None])
        given = np.where(switched, other[:, None], given)

    keep = slot < n_visits[:, None]
    row = np.repeat(np.arange(n), n_visits)
    # Object arrays: indexing them is cheap and pandas takes them without conversion.
    ids = np.array([f"P{i:0{max(4, len(str(n)))}d}" for i in range(1, n + 1)], dtype=object)
    width = max(2, len(str(n_clinics)))
    clinic_ids = np.array([f"C{k:0{width}d}" for k in range(1, n_clinics + 1)], dtype=object)
    log = pd.DataFrame({
        "patient_id": ids[row],
        "clinic_id": clinic_ids[clinic][row],
        "visit_date": np.datetime_as_string((enrol[:, None] + day)[keep], unit="D").astype(object),
        "intervention": np.array(arms, dtype=object)[given[keep]],
        "pain_score": pd.arrays.IntegerArray(np.nan_to_num(pain[keep]).astype(np.int64),
                                             np.isnan(pain[keep])),
        "episodes": episodes[keep].astype(np.int64),
        "exposure_days": exposure[keep].astype(np.int64),
        "strength": strength[keep],
        "foot_posture_index": fpi[row],
        "age_band": np.array(list(AGE_BANDS), dtype=object)[age[row]],
        "sex": np.array(list(SEXES), dtype=object)[sex[row]],
    }, columns=COLUMNS)
    return log, truth_dict(p, seed=seed, n_patients=n, n_clinics=int(n_clinics), weeks=weeks,
                           arms=arms)


def _r(x: float) -> float:
    # Rounded so the JSON does not depend on the last bit of a platform's libm.
    return round(float(x), 10)


def truth_dict(p: Truth, *, seed: int, n_patients: int, n_clinics: int, weeks: float,
               arms: list[str]) -> dict:
    """The truth JSON's content: every parameter of ``p`` for ``arms``, plus derived contrasts.

    Parameters
    ----------
    p : Truth
        The parameters.
    seed, n_patients, n_clinics, weeks, arms
        The simulation's arguments, recorded as given.

    Returns
    -------
    dict
        Nested by outcome (``pain``, ``episodes``, ``strength``, ...) with per-arm mappings, and
        a ``derived`` block: pain slope differences vs usual care and mean latent pain by week.
    """
    share = p.share_overpronated()

    def per(mapping):
        return {x: _r(mapping[x]) for x in arms}

    def vs_control(slopes):
        return {x: _r(slopes[x] - slopes[CONTROL]) for x in arms}

    beta, delta = p.pain_slope_per_week, p.pain_overpronation_extra_slope
    slope_pop = {x: beta[x] + share * delta[x] for x in arms}
    by_posture = {"not_overpronated": vs_control(beta),
                  "overpronated": vs_control({x: beta[x] + delta[x] for x in arms})}
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": "analysis.simulate.simulate_log",
        "command": f"outcomes simulate --patients {n_patients} --clinics {n_clinics} "
                   f"--weeks {weeks:g} --seed {seed}",
        "seed": seed, "n_patients": n_patients, "n_clinics": n_clinics, "weeks": float(weeks),
        "arms": list(arms), "control": CONTROL,
        "allocation": "each patient's arm drawn with equal probability; effects follow the arm "
                      "(intention to treat), switched visits change only the recorded intervention",
        "clinics": {"min_share": _r(min(0.05, 0.5 / n_clinics)),
                    "dirichlet_alpha": p.clinic_dirichlet_alpha},
        "visits": {"enrolment_first": ENROLMENT_FIRST, "enrolment_last": ENROLMENT_LAST,
                   "nominal_days": _schedule_days(weeks).tolist(), "jitter_days": JITTER_DAYS,
                   "weekly_until_week": WEEKLY_UNTIL_WEEK, "then_every_weeks": LATER_EVERY_WEEKS},
        "pain": {
            "scale": "NPRS 0-10; latent y* rounded to integers and clipped to 0..10",
            "baseline_mean": p.pain_baseline_mean,
            "slope_per_week": per(beta),
            "moderation": {"variable": "foot_posture_index",
                           "overpronated_above": p.overpronated_above,
                           "extra_slope_per_week": per(delta)},
            "sd_clinic": p.pain_sd_clinic, "sd_patient_intercept": p.pain_sd_patient_intercept,
            "sd_patient_slope": p.pain_sd_patient_slope,
            "corr_intercept_slope": p.pain_corr_intercept_slope, "sd_residual": p.pain_sd_residual,
        },
        "foot_posture_index": {"mean": p.fpi_mean, "sd": p.fpi_sd, "min": -12, "max": 12,
                               "share_overpronated": _r(share)},
        "episodes": {
            "family": "negative binomial NB2, log link, offset log(exposure_days)",
            "nb_size_theta": p.episodes_nb_size,
            "rate_per_week_population": p.episodes_rate_per_week,
            "rate_per_week_median_patient": _r(p.episodes_rate_per_week
                                               * math.exp(-p.episodes_sd_patient**2 / 2)),
            "sd_patient_log_rate": p.episodes_sd_patient,
            "mean_patient_log_rate": _r(-p.episodes_sd_patient**2 / 2),
            "rate_ratio": per(p.episode_rate_ratio),
            "percent_reduction": {x: _r(100 * (1 - p.episode_rate_ratio[x])) for x in arms},
            "rate_ratio_applies": "post-baseline visits only (the baseline row's 14 days precede "
                                  "treatment)",
            "rate_ratio_scale": "patient-level and population-averaged rate ratios are equal: with "
                                "a log link the patient effect only shifts the intercept",
            "baseline_exposure_days": p.baseline_exposure_days,
        },
        "strength": {
            "unit": "N", "baseline_median": p.strength_baseline_newtons,
            "percent_change_week12": per(p.strength_percent_change_week12),
            "log_slope_per_week": per({x: math.log1p(v / 100) / 12 for x, v in
                                       p.strength_percent_change_week12.items()}),
            "sd_patient_log": p.strength_sd_patient, "sd_clinic_log": p.strength_sd_clinic,
            "sd_residual_log": p.strength_sd_residual,
            "measured": "baseline and every second visit after it (visit index 2, 4, ...)",
        },
        "dropout": {
            "mechanism": "MAR: logistic in the most recent observed pain, after each "
                         "post-baseline visit",
            "intercept": p.dropout_intercept, "slope_per_pain_point": p.dropout_pain_slope,
            "pain_centre": p.dropout_pain_centre, "lost_after_baseline": p.lost_after_baseline,
        },
        "missing": {"pain_mcar_probability_post_baseline": p.pain_missing_probability,
                    "strength_scheduled_missed_probability": p.strength_missing_probability},
        "switch_fraction": p.switch_fraction,
        "switch": "picked patients with >= 3 visits get another simulated arm's intervention on "
                  "1-2 consecutive later visits (fewer than half their visits)",
        "demographics": {"age_band": AGE_BANDS, "sex": SEXES},
        "derived": {
            "pain_slope_per_week_population": per(slope_pop),
            "pain_slope_difference_vs_usual_care": vs_control(slope_pop),
            "pain_slope_difference_vs_usual_care_by_foot_posture": by_posture,
            "mean_pain_latent": {x: {f"week_{t}": _r(p.pain_baseline_mean + slope_pop[x] * t)
                                     for t in DERIVED_WEEKS} for x in arms},
            "note": "latent scale, averaged over patients and foot posture; recorded scores are "
                    "rounded and clipped, so their means differ slightly",
        },
    }


def write_simulation(out: Path, n_patients: int = 360, n_clinics: int = 6, seed: int = 1,
                     weeks: float = 12.0, arms: list[str] | None = None,
                     effects: Truth | None = None) -> tuple[Path, Path]:
    """Write a simulated log (CSV) and its truth (``<stem>.truth.json``) beside it.

    Same arguments give the same bytes: fixed float format, ``\\n`` line endings, UTF-8, sorted
    JSON keys. Arguments as in :func:`simulate_log`; ``out`` is the log's path.

    Returns
    -------
    (log_path, truth_path) : tuple of Path
    """
    log, truth = simulate_log(n_patients, n_clinics, seed, weeks, arms=arms, effects=effects)
    out = Path(out)
    truth_path = out.with_name(f"{out.stem if out.suffix == '.csv' else out.name}.truth.json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(log.to_csv(index=False, lineterminator="\n", float_format="%.1f",
                                   na_rep="").encode("utf-8"))
        truth_text = json.dumps(truth, sort_keys=True, indent=2) + "\n"
        truth_path.write_bytes(truth_text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"simulate: cannot write {exc.filename}: {exc.strerror}") from None
    return out, truth_path
