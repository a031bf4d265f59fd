"""The identifier patterns through RE2 (ASCII values) give what Python's ``re`` gives.

:mod:`analysis.intake.textmatch` runs the guard's patterns through pyarrow's RE2 on ASCII values
and through Python's ``re`` on the rest; each pattern of :mod:`analysis.intake.anonymity` is run
both ways here on generated texts made of the characters the patterns care about (digits,
letters, the separators, every kind of ASCII whitespace Python knows) and on hand-picked ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.intake import anonymity as an
from analysis.intake.textmatch import PYTHON_WHITESPACE, Texts, re2_pattern, strip

PATTERNS = ["_EMAIL", "_EMAIL_SPELLED", "_NHS", "_SSN", "_ZIP4", "_PHONE", "_POSTCODE_FULL",
            "_POSTCODE_IN_TEXT", "_STREET", "_FULL_DATE", "_INITIALS_DATE", "_PERSON"]
EXTRA = [r"[A-Za-z0-9._/-]{6,40}", r"[^\W\d_]{2,}", r"[^\W\d_]", r"\d"]
HAND = ["jane@example.org", "jane (at) example dot org", "jane[at]example[dot]org", "943 476 5919",
        "943-476-5919", "123-45-6789", "12345-6789", "+44 20 7946 0958", "020 7946 0958",
        "(212) 555-0100", "SW1A 1AA", "sw1a1aa", "lives at SW1A 1AA now", "12 High Street",
        "3 Long Rd.", "1984-03-02", "02/03/1984", "JD-1984-03-02", "JD19840302", "Jane Doe",
        "Doe, Jane", "van der Berg", "Anne-Marie O'Neil", "P0000001", "C17", "usual_care",
        "North wing annex", "", " ", "\x0b12 High Street\x1c", "1984-03-02\n", "a\tb c",
        "Jürgen Weiß", "Straße 5", "x\xa0y", "０１２３", "٣ Main Street"]


def _generated(n: int = 4000, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = list("0123456789" "0123456789" "abcxyzATSLMN" "@.-/_()+,' ") + [
        "\t", "\x0b", "\x1c", "\n", " at ", " dot ", "Street", "Rd", "19", "20", "03"]
    return ["".join(rng.choice(alphabet, size=rng.integers(0, 14))) for _ in range(n)]


@pytest.fixture(scope="module")
def texts():
    values = pd.Series(_generated() + HAND, dtype=object).drop_duplicates().reset_index(drop=True)
    assert (~values.map(str.isascii)).sum() >= 5  # both engines are exercised
    return values, Texts(values)


@pytest.mark.parametrize("name", PATTERNS + EXTRA)
def test_every_pattern_agrees_with_python_re(texts, name):
    values, prepared = texts
    pattern = getattr(an, name) if name.startswith("_") else name
    np.testing.assert_array_equal(prepared.contains(pattern),
                                  values.str.contains(pattern, regex=True).to_numpy(bool))
    np.testing.assert_array_equal(prepared.fullmatch(pattern),
                                  values.str.fullmatch(pattern).to_numpy(bool))
    np.testing.assert_array_equal(prepared.count(pattern), values.str.count(pattern).to_numpy())


def test_the_generated_texts_hit_the_patterns(texts):
    _, prepared = texts
    hits = {name: int(prepared.contains(getattr(an, name)).sum()) for name in PATTERNS}
    assert all(n > 0 for n in hits.values()), hits


def test_translation_spells_out_python_whitespace_and_letters():
    assert re2_pattern(r"(?i)a\sb", full=True) == r"(?i)^(?:a[\t\n\x0b\x0c\r \x1c-\x1f]b)$"
    assert re2_pattern(r"[^\W\d_]{2,}") == "[A-Za-z]{2,}"
    with pytest.raises(ValueError, match="character class"):
        re2_pattern(r"[\s,]")


def test_strip_is_python_strip_also_for_unicode_spaces():
    values = pd.Series([f"{c}a b{c}" for c in PYTHON_WHITESPACE] + ["x", " y ", "\u200bz"] * 400,
                       dtype=object)
    assert strip(values).tolist() == values.str.strip().tolist()
    assert PYTHON_WHITESPACE == "".join(c for c in map(chr, range(0x110000)) if c.isspace())
