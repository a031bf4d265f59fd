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

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.config import DEFAULT_INTERVENTIONS
from analysis.errors import ConfigError
from analysis.studies.truth import (
    AGE_BANDS,
    COLUMNS,
    CONTROL,
    DEFAULT_ARMS,
    ENROLMENT_FIRST,
    ENROLMENT_LAST,
    JITTER_DAYS,
    SEXES,
    Truth,
    _schedule_days,
    truth_dict,
)


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


def write_simulation(out: Path, n_patients: int = 360, n_clinics: int = 6, seed: int = 1,
                     weeks: float = 12.0, arms: list[str] | None = None,
                     effects: Truth | None = None, truth_file: str | None = None
                     ) -> tuple[Path, Path]:
    """Write a simulated log (CSV) and its truth (``<stem>.truth.json``) beside it.

    Same arguments give the same bytes: fixed float format, ``\\n`` line endings, UTF-8, sorted
    JSON keys. Arguments as in :func:`simulate_log`; ``out`` is the log's path; ``truth_file``
    (the ``--truth`` file ``effects`` came from) is recorded in the truth's ``command``.

    Returns
    -------
    (log_path, truth_path) : tuple of Path
    """
    log, truth = simulate_log(n_patients, n_clinics, seed, weeks, arms=arms, effects=effects)
    if truth_file:
        truth["command"] += f" --truth {truth_file}"
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
