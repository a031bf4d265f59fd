"""Regular-expression tests over many distinct texts: RE2 (pyarrow) on ASCII, Python ``re`` on the rest.

The identifier guard runs about fifteen patterns over every distinct value of every column; a
patient_id column of a million patients has a million distinct values, and Python's ``re`` (one
call per value) spends about a second on each pattern. pyarrow's compute functions run the same
pattern through RE2 in C++ about ten times faster. RE2 and Python differ in what ``\\s``, ``\\w``,
``\\d`` and ``\\b`` mean on non-ASCII text, so only ASCII values go to RE2, with the pattern
translated so that it means on ASCII text exactly what Python's means:

* ``\\s`` becomes ``[\\t\\n\\x0b\\x0c\\r \\x1c-\\x1f]`` (Python's whitespace among ASCII
  characters; RE2's ``\\s`` lacks ``\\x0b`` and ``\\x1c``-``\\x1f``);
* ``[^\\W\\d_]`` (a letter) becomes ``[A-Za-z]``;
* a full match is ``^(?:pattern)$`` (RE2's ``$`` is the end of the text, as ``re.fullmatch``).

``\\d``, ``\\w``, ``\\b``, ``(?i)`` and the character classes agree on ASCII text. Values with any
non-ASCII character go through Python's ``re`` as before. tests/intake/test_textmatch.py checks
every pattern of :mod:`analysis.intake.anonymity` both ways on generated texts.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_ASCII_SPACE = r"[\t\n\x0b\x0c\r \x1c-\x1f]"


def re2_pattern(pattern: str, full: bool = False) -> str:
    """The RE2 pattern that means on ASCII text what ``pattern`` means in Python."""
    flags = ""
    found = re.match(r"\(\?([aiLmsux]+)\)", pattern)
    if found:
        flags, pattern = found.group(0), pattern[found.end():]
    if re.search(r"\[[^\]]*\\s", pattern):
        raise ValueError(f"\\s inside a character class is not translated: {pattern!r}")
    pattern = pattern.replace(r"[^\W\d_]", "[A-Za-z]").replace(r"\s", _ASCII_SPACE)
    return flags + (f"^(?:{pattern})$" if full else pattern)


class Texts:
    """Distinct texts (an object Series of str) prepared for many pattern tests.

    ``skip`` (a boolean mask over the values, optional) names values no test is run on: every
    method gives False or 0 for them. The identifier guard skips values it has shown no rule of
    its own can flag (:data:`analysis.intake.anonymity.PLAIN_ID`), so its answer is unchanged.
    """

    def __init__(self, values: pd.Series, skip: np.ndarray | None = None):
        import pyarrow as pa
        import pyarrow.compute as pc

        self.values = values.reset_index(drop=True)
        self._pc = pc
        arrow = pa.array(self.values.to_numpy(dtype=object), type=pa.string())
        ascii_ = pc.string_is_ascii(arrow).to_numpy(zero_copy_only=False)
        todo = np.ones(len(ascii_), dtype=bool) if skip is None else ~np.asarray(skip, dtype=bool)
        self._fast, self._slow = ascii_ & todo, ~ascii_ & todo
        self._arrow = arrow.filter(pa.array(self._fast)) if not self._fast.all() else arrow
        self._rest = self.values[self._slow]

    def _both(self, fast, slow, dtype) -> np.ndarray:
        out = np.zeros(len(self.values), dtype=dtype)
        if len(self._arrow):
            out[self._fast] = fast(self._arrow).to_numpy(zero_copy_only=False)
        if len(self._rest):
            out[self._slow] = slow(self._rest).to_numpy(dtype=dtype)
        return out

    def contains(self, pattern: str) -> np.ndarray:
        """``values.str.contains(pattern)`` as a boolean array."""
        rx = re2_pattern(pattern)
        return self._both(lambda a: self._pc.match_substring_regex(a, rx),
                          lambda s: s.str.contains(pattern, regex=True), bool)

    def fullmatch(self, pattern: str) -> np.ndarray:
        """``values.str.fullmatch(pattern)`` as a boolean array."""
        rx = re2_pattern(pattern, full=True)
        return self._both(lambda a: self._pc.match_substring_regex(a, rx),
                          lambda s: s.str.fullmatch(pattern), bool)

    def count(self, pattern: str) -> np.ndarray:
        """``values.str.count(pattern)`` (non-overlapping matches) as an integer array."""
        rx = re2_pattern(pattern)
        return self._both(lambda a: self._pc.count_substring_regex(a, rx),
                          lambda s: s.str.count(pattern), np.int64)


#: Every character Python's ``str.strip()`` removes (``str.isspace``), for pyarrow's trim.
PYTHON_WHITESPACE = ("\x09\x0a\x0b\x0c\x0d\x1c\x1d\x1e\x1f\x20\x85\xa0\u1680\u2000\u2001\u2002"
                     "\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def strip(values: pd.Series) -> pd.Series:
    """``values.str.strip()`` of distinct texts (str), computed by pyarrow: only the values that
    have something to strip become new strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(values) < 1000:
        return values.str.strip()
    arrow = pa.array(values.to_numpy(dtype=object), type=pa.string())
    trimmed = pc.utf8_trim(arrow, characters=PYTHON_WHITESPACE)
    changed = pc.not_equal(pc.binary_length(arrow), pc.binary_length(trimmed))
    changed = changed.to_numpy(zero_copy_only=False)
    if not changed.any():
        return values
    out = values.copy()
    out[changed] = trimmed.filter(pa.array(changed)).to_numpy(zero_copy_only=False)
    return out
