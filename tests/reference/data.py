"""Loaders for the public data sets and R numbers in tests/reference (one place for every test).

Each data set is copied here with its source (tests/reference/README.md); the R numbers beside
them were computed by the R scripts of this folder, so CI needs no R and never reads ../shared.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

REF = Path(__file__).resolve().parent
#: the epil model's terms, in R's order (MASS::epil; y ~ trt + lbase + lage + V4)
EPIL_TERMS = ["(Intercept)", "trtprogabide", "lbase", "lage", "V4"]


@lru_cache(maxsize=None)
def r_numbers(name: str) -> dict:
    """``tests/reference/<name>.json``: R numbers written by ``<name>.R``."""
    return json.loads((REF / f"{name}.json").read_text())


def epil_design():
    """(y, X, offset, subject) of ``y ~ trt + lbase + lage + V4`` on MASS::epil, by subject and period."""
    ep = pd.read_csv(REF / "epil.csv").sort_values(["subject", "period"])
    X = np.column_stack([np.ones(len(ep)), (ep["trt"] == "progabide").astype(float),
                         ep["lbase"], ep["lage"], ep["V4"]])
    return ep["y"].to_numpy(float), X, np.zeros(len(ep)), ep["subject"].to_numpy()


def sleepstudy_arrays(q: int):
    """(y, X, Z, subject codes) of lme4's sleepstudy: ``Reaction ~ Days + (Days | Subject)``
    (``q = 2``) or ``+ (1 | Subject)`` (``q = 1``)."""
    ss = pd.read_csv(REF / "sleepstudy.csv")
    X = np.column_stack([np.ones(len(ss)), ss["Days"].to_numpy(float)])
    codes = pd.factorize(ss["Subject"], sort=True)[0]
    return ss["Reaction"].to_numpy(float), X, X[:, :q].copy(), codes
