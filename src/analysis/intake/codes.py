"""Text columns as integer codes and distinct values, so that every rule runs once per distinct value.

The fast reader (:mod:`analysis.intake.fast_csv`) hands on raw cells as pandas ``Categorical``
columns, and typed text columns are ``Categorical`` with their categories in sorted order
(:func:`text_categorical`), so that sorting by the codes sorts the texts. The validated table
holds text as str objects (:func:`as_object_text`), one shared object per distinct value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def distinct(text: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Codes and distinct values of a text column (missing read as ""), so that rules run
    once per distinct value rather than once per row.

    The codes keep the column's own integer width (a Categorical's int8/int16/int32 codes are
    handed on as they are, not copied): they are only ever used to index, never written to.
    """
    if isinstance(text.dtype, pd.CategoricalDtype):  # the fast reader's columns: codes as read
        codes = text.cat.codes.to_numpy()
        uniques = pd.Series(text.cat.categories.to_numpy(dtype=object), dtype=object)
        missing = bool((codes < 0).any())
        used = np.bincount(codes[codes >= 0] if missing else codes, minlength=len(uniques)) > 0
        if not used.all():  # rows were taken away: keep only the values some row holds
            remap = (np.cumsum(used) - 1).astype(codes.dtype)
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1) if missing else remap[codes]
            uniques = uniques[used].reset_index(drop=True)
    else:
        codes, uniques = pd.factorize(text)
        uniques = pd.Series(uniques, dtype=object)
        missing = bool((codes < 0).any())
    if missing:
        codes = np.where(codes < 0, len(uniques), codes.astype(np.intp))
        uniques = pd.concat([uniques, pd.Series([""], dtype=object)], ignore_index=True)
    return codes, uniques


def text_categorical(codes: np.ndarray, uniques, index=None) -> pd.Series:
    """A text column as a Categorical: categories the distinct non-empty texts in sorted
    order (so that sorting by it sorts the texts), "" and None missing."""
    values = np.asarray(uniques, dtype=object)
    values = np.where(pd.isna(values), "", values).astype(object)
    if len(values) > 1 and _increasing(values):  # in order already (ids of a sorted log)
        cats, inverse = values, np.arange(len(values))
    else:
        cats, inverse = np.unique(values, return_inverse=True) if len(values) else (values, values)
    empty_first = bool(len(cats)) and cats[0] == ""  # "" sorts first: it is the missing value
    # The codes in the width pandas keeps for this many categories (no second copy).
    width = pd.Categorical.from_codes(np.zeros(0, np.int8),
                                      pd.RangeIndex(len(cats) - empty_first)).codes.dtype
    new = inverse.astype(width)[codes] if len(codes) else np.zeros(0, width)
    if empty_first:
        new -= 1
        cats = cats[1:]
    return pd.Series(pd.Categorical.from_codes(new, pd.Index(cats, dtype=object), validate=False),
                     index=index)


def _increasing(values: np.ndarray) -> bool:
    """Strictly increasing str values: then they are their own sorted distinct values (np.unique
    would sort a million ids again)."""
    try:
        return bool((values[1:] > values[:-1]).all())
    except TypeError:
        return False


def as_text_categorical(text: pd.Series) -> pd.Series:
    """:func:`text_categorical` of any text column (object or Categorical)."""
    codes, uniques = distinct(text)
    return text_categorical(codes, uniques, text.index)


def as_object_text(column: pd.Series) -> pd.Series:
    """A Categorical text column as str objects, missing as None (the validated table's form)."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column
    values = np.append(column.cat.categories.to_numpy(dtype=object), None)
    return pd.Series(values[column.cat.codes.to_numpy()], index=column.index, dtype=object)


def codes_of(column: pd.Series) -> np.ndarray:
    """Integer codes of a column's values (Categorical codes as they are; missing: -1)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64)
    return pd.factorize(column)[0].astype(np.int64)
