"""Writes episodes_sim.csv: a small simulated episodes log, the input of r_counts_reference.R.

Run once with ``python tests/reference/make_episodes_sim.py tests/reference``; the CSV is
committed, so tests need neither this script nor R. Model (NB2, log link, exposure offset):
log mu = log(0.8 / 7) + log(exposure_days) + b_i + log RR_arm * [week > 0]
         + 0.01 * (age - 50) + 0.1 * [sex == "M"],   b_i ~ N(0, 0.5^2),   theta = 4,
RR = 0.75 (orthotics), 0.9 (strength_training), 1 (usual_care, the control).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

RATE_RATIO = {"usual_care": 1.0, "orthotics": 0.75, "strength_training": 0.9}


def make(seed: int = 20260101, per_arm: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    pid = 0
    for arm, rr in RATE_RATIO.items():
        for _ in range(per_arm):
            pid += 1
            b = rng.normal(0.0, 0.5)
            age = int(rng.integers(25, 75))
            sex = "M" if rng.random() < 0.45 else "F"
            n_follow = int(rng.integers(3, 7))
            for visit in range(n_follow + 1):
                week = 2 * visit
                exposure = 14 if visit == 0 else int(rng.integers(10, 19))
                eta = (np.log(0.8 / 7) + np.log(exposure) + b + 0.01 * (age - 50)
                       + 0.1 * (sex == "M") + (np.log(rr) if week > 0 else 0.0))
                mu = np.exp(eta)
                y = rng.negative_binomial(4.0, 4.0 / (4.0 + mu))
                rows.append((f"P{pid:03d}", arm, week, int(y), exposure, age, sex))
    return pd.DataFrame(rows, columns=["patient_id", "arm", "week", "episodes",
                                       "exposure_days", "age", "sex"])


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    make().to_csv(out / "episodes_sim.csv", index=False)
