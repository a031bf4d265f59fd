"""The simulator's truth: the parameters of its data-generating model and the truth JSON.

:class:`Truth` holds every parameter of the model described in :mod:`analysis.studies.simulate`
(per-arm pain slopes, episode rate ratios, strength changes, variance components);
:func:`truth_dict` writes them, with the contrasts they imply, beside each simulated log.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from analysis.config import DEFAULT_INTERVENTIONS
from analysis.errors import ConfigError

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
        "generator": "analysis.studies.simulate.simulate_log",
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


def _schedule_days(weeks: float) -> np.ndarray:
    limit = math.floor(7 * weeks + 1e-9)
    days = [7 * w for w in range(WEEKLY_UNTIL_WEEK + 1)]
    days += list(range(days[-1] + 7 * LATER_EVERY_WEEKS, limit + 1, 7 * LATER_EVERY_WEEKS))
    return np.array([d for d in days if d <= limit], dtype=np.int64)


def truth_from_file(path) -> Truth:
    """A :class:`Truth` from a YAML mapping of the fields to change (e.g. data/example/demo_truth.yaml).

    Raises
    ------
    ConfigError
        Not a mapping, an unknown field (named, with the file), or a bad value.
    """
    from analysis.config import load_yaml

    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a truth file must be a YAML mapping of Truth fields")
    known = {f.name for f in dataclasses.fields(Truth)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown Truth field(s) {unknown}; known: {sorted(known)}")
    return Truth(**raw)
