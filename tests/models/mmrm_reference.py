"""Helpers for the MMRM tests: read a SAS listing line by number, compare to its printed digits.

Not a test module. Every number compared comes from tests/reference/mmrm/ (copied from the
openpharma/mmrm repository, see its README); callers cite file and line next to each use.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REF = Path(__file__).resolve().parents[1] / "reference" / "mmrm"


def fev_data() -> pd.DataFrame:
    return pd.read_csv(REF / "fev_data.csv")


def line(listing: str, number: int) -> str:
    """Line ``number`` (1-based, as an editor counts) of a listing in tests/reference/mmrm."""
    return (REF / listing).read_text().split("\n")[number - 1]


def tokens(listing: str, number: int, last: int) -> list[str]:
    """The last ``last`` whitespace-separated fields of that line."""
    return line(listing, number).split()[-last:]


def check(actual: float, printed: str, rel: float = 1e-4, what: str = "", abs_floor: float = 0.0):
    """Assert ``actual`` lies within ``rel`` (relative) of the interval of values that SAS
    would print as ``printed`` (half a unit in its last digit either side).

    ``'<.0001'`` means only ``actual < 1e-4``. ``abs_floor`` widens the tolerance to a stated
    absolute amount where the test explains why.
    """
    printed = printed.strip()
    if printed.startswith("<"):
        assert actual < float(printed[1:]), f"{what}: {actual} should be {printed}"
        return
    x = float(printed)
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    tol = 0.5 * 10.0 ** -decimals * (1 + 1e-9) + max(rel * abs(x), abs_floor)
    assert abs(actual - x) <= tol, f"{what}: {actual!r} vs listing {printed} (tolerance {tol:.3g})"
