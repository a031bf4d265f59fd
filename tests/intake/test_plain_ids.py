"""The identifier guard's screen for plain ids (``anonymity.PLAIN_ID``): no rule flags such a value,
and the guard finds the same with and without the screen (the patterns on every value are the
oracle)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.intake import anonymity as an

NEAR = ["P0000001", "0012345", "1234567", "SW1", "AB1234567", "P1984030", "abc1", "Z9999999",
        "P19840302", "JD19840302", "9434765919", "P00000001", "SW1A1AA", "AB12CD", "P-0000001",
        "P 0000001", "ABCD123", "jane@x.org", "Jane Doe", "12 High Street", "+4420794609"]


def _plain(rng, n: int) -> list[str]:
    letters = np.array(list("ABCDJPSWXZabcjpxz"))
    return ["".join(rng.choice(letters, rng.integers(0, 4))) + "".join(rng.choice(
        list("0123456789"), rng.integers(1, 8))) for _ in range(n)]


def test_near_misses_are_screened_as_they_should_be():
    plain = pd.Series(NEAR, dtype=object).str.fullmatch(an.PLAIN_ID).to_numpy()
    assert [v for v, p in zip(NEAR, plain) if p] == ["P0000001", "0012345", "1234567", "SW1",
                                                    "AB1234567", "P1984030", "abc1", "Z9999999"]


@pytest.mark.parametrize("role", ["patient_id", None, "age_band", "clinic_id"])
def test_no_rule_flags_a_plain_id(role):
    values = pd.Series(_plain(np.random.default_rng(3), 20_000) + NEAR[:8],
                       dtype=object).drop_duplicates().reset_index(drop=True)
    assert values.str.fullmatch(an.PLAIN_ID).all()
    counts = np.ones(len(values), dtype=np.int64)
    nonempty = np.ones(len(values), dtype=bool)
    assert an._content_kinds(values) == []  # every pattern run on every value
    assert an._row_pattern_kinds("patient_id" if role else "code", role, values, nonempty,
                                 counts) == []


def _columns(seed: int) -> dict[str, tuple[list[str], str | None]]:
    rng = np.random.default_rng(seed)
    ids = _plain(rng, 15_000)
    mixed = list(rng.choice(ids, 15_000))
    at = rng.choice(15_000, 40, replace=False)
    dated, emails, names, nhs = list(mixed), list(mixed), list(mixed), list(mixed)
    for i, j in enumerate(at):
        dated[j] = f"JD1984{1 + i % 12:02d}{1 + i % 28:02d}"
        emails[j] = f"p{i}@example.org"
        nhs[j] = "943 476 5919"
    for j in rng.choice(15_000, 9_000, replace=False):
        names[j] = f"Anne Smith{'abcdefgh'[j % 8]}"
    return {"patient_id": (ids, "patient_id"), "dated_id": (dated, "patient_id"),
            "contact": (emails, None), "name_col": (names, None), "nhs": (nhs, None),
            "note": (mixed[:14_000] + ["North wing annex", "east annex here", "west side door",
                                        "lower ground floor", "upper lobby area"] * 200, None)}


@pytest.mark.parametrize("seed", [0, 1])
def test_the_guard_finds_the_same_with_and_without_the_screen(monkeypatch, seed):
    cols = _columns(seed)
    n = max(len(v) for v, _ in cols.values())
    cells = pd.DataFrame({k: pd.Series(v + [""] * (n - len(v)), dtype=object)
                          for k, (v, _) in cols.items()})
    lines = np.arange(2, n + 2)
    roles = {k: r for k, (_, r) in cols.items()}
    monkeypatch.setattr(an, "PLAIN_SCREEN_FROM", 0)
    screened = an.find_identifiers(cells, lines, roles)
    monkeypatch.setattr(an, "PLAIN_SCREEN_FROM", 10**9)
    every = an.find_identifiers(cells, lines, roles)
    assert screened == every
    assert {f["column"] for f in every} >= {"dated_id", "contact", "name_col", "nhs"}
