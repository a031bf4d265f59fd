"""analysis.report.numbers: the rules tables of docs/wording.md, checked row by row.

The expected words are read from the doc itself, so the documented rule and the code cannot
drift apart; the parsing below does not reuse the module's logic (it only reads numbers).
"""

import re
from pathlib import Path

import pytest

from analysis.report import numbers

DOC = (Path(__file__).resolve().parents[2] / "docs" / "wording.md").read_text()


def _table(heading: str) -> list[list[str]]:
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[1:]]  # skip the header


SIZE_ROWS = _table("Size words")
NUMBER_ROWS = _table("Numbers")


def test_the_tables_are_there():
    assert len(SIZE_ROWS) >= 10 and len(NUMBER_ROWS) >= 10


@pytest.mark.parametrize("row", SIZE_ROWS, ids=[" ".join(r[:5]) for r in SIZE_ROWS])
def test_size_words_row(row):
    estimate, low, high, better, mcid, words = row
    got = numbers.size_words(float(estimate), float(low), float(high), better,
                             None if mcid == "-" else float(mcid))
    assert got == words


def _said(value: str) -> str:
    kind, rest = value.split(" ", 1)
    nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", rest)]
    if kind in ("change", "percent"):
        noun = rest.rsplit(", ", 1)[1]
        down = "less" if noun == "pain" else "fewer"
        return numbers.change_phrase(nums[0], nums[1], nums[2], noun, "more", down,
                                     kind="points" if kind == "change" else "percent")
    if kind == "points":
        return numbers.points(nums[0])
    if kind == "versus":
        return numbers.versus(nums[0], nums[1], "usual care")
    if kind == "signed":
        return numbers.signed_percent(nums[0])
    if kind == "mcid":
        return numbers.mcid_phrase(nums[0], nums[1]).strip()
    raise AssertionError(f"unknown row kind {kind!r}")


@pytest.mark.parametrize("row", NUMBER_ROWS, ids=[r[0] for r in NUMBER_ROWS])
def test_number_row(row):
    _, value, said = row
    assert _said(value) == said


@pytest.mark.parametrize("value", [-0.0, -0.004, -0.049, 0.04])
def test_never_minus_zero(value):
    assert not numbers.points(value).startswith("-")
    assert numbers.signed_percent(value / 100) == "0 %"
    assert "-" not in numbers.change_phrase(value, value - 0.01, value + 0.01, "pain", "more",
                                            "less")


def test_missing_values_say_so():
    assert numbers.change_phrase(float("nan"), 0, 1, "pain", "more", "less") == \
        "pain: not estimable"
    assert numbers.size_words(float("nan"), 0, 1, "lower", 2) == numbers.NO_CLEAR
    assert numbers.mcid_phrase(1.0, None) == ""
