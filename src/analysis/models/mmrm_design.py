"""Fixed-effects design for the MMRM, coded as SAS PROC MIXED's solution with reference levels.

Methods
-------
The mean model is ``E(y_ij) = x_ij' beta``. A model string lists terms as SAS's MODEL statement
or an R formula does: ``"ARMCD*AVISIT + RACE + SEX"`` (``A*B`` = ``A + B + A:B``). An intercept
is always included. Text, boolean and categorical columns are CLASS variables; each is coded by
indicator columns for its non-reference levels, and an interaction of CLASS variables by the
products of those indicators, so that ``beta`` is PROC MIXED's "Solution for Fixed Effects" with
the reference levels' rows dropped (they are 0 in SAS). As in SAS, the default reference level is
the last level in sorted order; ``reference={"ARMCD": "PBO"}`` chooses another (SAS's
``CLASS ARMCD(ref='PBO')``). Numeric variables enter linearly and may interact with CLASS
variables (slopes per level). An interaction needs each of its main effects in the model.

The same row builder evaluates a design row from *weights* over levels instead of indicators, which
is what LS-means need: SAS's equal weights over the levels of a CLASS variable averaged over, or
observed proportions (``OM``).

References: SAS/STAT User's Guide, PROC MIXED, "Parameterization of Mixed Models" and
"LSMEANS statement"; Searle, Speed & Milliken (1980), Population marginal means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from analysis.errors import ConfigError


@dataclass
class Design:
    """A built design: the matrix, its column names and what is needed to evaluate new rows.

    Attributes
    ----------
    X : ndarray (n_rows, p)
    columns : list of str
        ``"(Intercept)"``, ``"ARMCD[TRT]"``, ``"ARMCD[TRT]:AVISIT[VIS2]"``, ``"BASE"``, ...
    terms : list of tuple of str
        The model terms (variable names) in order, intercept excluded.
    levels : dict
        CLASS variable -> its levels (sorted as SAS sorts, reference last is not implied).
    reference : dict
        CLASS variable -> reference level.
    means : dict
        Numeric variable -> mean over the rows used.
    """

    X: np.ndarray
    columns: list
    terms: list
    levels: dict
    reference: dict
    means: dict = field(default_factory=dict)

    def row(self, values: dict) -> np.ndarray:
        """Design row(s) from per-variable values.

        Parameters
        ----------
        values : dict
            For a CLASS variable: a level (str), or weights over its levels (dict level -> weight,
            or an array ``(n, n_levels)`` in ``levels`` order). For a numeric variable: a number or
            an array of length ``n``.

        Returns
        -------
        ndarray (p,) or (n, p)
        """
        return _evaluate(self, values)


def parse_terms(model: str) -> list[tuple[str, ...]]:
    """Split ``"A*B + C + A:C"`` into terms ``[(A,), (B,), (A, B), (C,), (A, C)]`` (order kept)."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError("fixed effects must be a non-empty model string such as 'ARM*VISIT + BASE'")
    rhs = model.split("~", 1)[-1]
    out: list[tuple[str, ...]] = []
    for chunk in rhs.split("+"):
        chunk = chunk.strip()
        if chunk in ("", "1"):
            continue
        if "*" in chunk:
            parts = [p.strip() for p in chunk.split("*")]
            expanded = []
            for size in range(1, len(parts) + 1):
                expanded += list(combinations(parts, size))
        else:
            expanded = [tuple(p.strip() for p in chunk.split(":"))]
        for term in expanded:
            if any(not v for v in term):
                raise ConfigError(f"cannot read the model term {chunk!r} in {model!r}")
            if term not in out:
                out.append(term)
    for term in out:
        for size in range(1, len(term)):
            for sub in combinations(term, size):
                if sub not in out:
                    raise ConfigError(
                        f"the interaction {':'.join(term)} needs its lower-order term "
                        f"{':'.join(sub)} in the model (write {'*'.join(term)})")
    return out


def is_class(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def build_design(data: pd.DataFrame, model: str, reference: dict | None = None,
                 class_vars: tuple = ()) -> Design:
    """Build the SAS-coded design matrix for ``model`` on the rows of ``data``.

    Parameters
    ----------
    data : DataFrame
        The rows to be fitted (missing values already removed).
    model : str
        Model terms, e.g. ``"ARMCD*AVISIT + RACE + SEX"``.
    reference : dict, optional
        CLASS variable -> reference level. Default: the last level in sorted order (SAS).
    class_vars : tuple of str
        Numeric columns to treat as CLASS variables.

    Returns
    -------
    Design
    """
    reference = dict(reference or {})
    terms = parse_terms(model)
    variables = sorted({v for t in terms for v in t}, key=[v for t in terms for v in t].index)
    missing = [v for v in variables if v not in data.columns]
    if missing:
        raise ConfigError(f"model variables not in the data: {', '.join(missing)}")
    levels, means = {}, {}
    for v in variables:
        col = data[v]
        if v in class_vars or is_class(col):
            if isinstance(col.dtype, pd.CategoricalDtype):
                lv = [str(x) for x in col.cat.categories if (col == x).any()]
            else:
                lv = sorted({str(x) for x in col})
            if len(lv) < 2:
                raise ConfigError(f"CLASS variable {v!r} has fewer than 2 levels in the fitted rows")
            ref = str(reference.get(v, lv[-1]))
            if ref not in lv:
                raise ConfigError(f"reference level {ref!r} of {v!r} is not among its levels {lv}")
            levels[v], reference[v] = lv, ref
        else:
            means[v] = float(col.mean())
    design = Design(np.empty((0, 0)), [], terms, levels,
                    {k: reference[k] for k in levels}, means)
    values = {}
    for v in variables:
        if v in levels:
            codes = pd.Categorical(data[v].astype(str), categories=levels[v]).codes
            values[v] = np.eye(len(levels[v]))[codes]
        else:
            values[v] = data[v].to_numpy(float)
    design.columns = _column_names(design)
    design.X = _evaluate(design, values) if terms else np.ones((len(data), 1))
    rank = np.linalg.matrix_rank(design.X)
    if rank < design.X.shape[1]:
        raise ConfigError(
            f"the fixed-effects design is rank-deficient (rank {rank} < {design.X.shape[1]} columns):"
            " some combination of levels has no observed outcome")
    return design


def _non_ref(design: Design, v: str) -> list[str]:
    return [lv for lv in design.levels[v] if lv != design.reference[v]]


def _column_names(design: Design) -> list[str]:
    names = ["(Intercept)"]
    for term in design.terms:
        parts = [[f"{v}[{lv}]" for lv in _non_ref(design, v)] if v in design.levels else [v]
                 for v in term]
        grid = [""]
        for p in parts:
            grid = [f"{g}:{q}" if g else q for g in grid for q in p]
        names += grid
    return names


def _weights(design: Design, v: str, value) -> np.ndarray:
    lv = design.levels[v]
    if isinstance(value, str):
        if value not in lv:
            raise ConfigError(f"{value!r} is not a level of {v!r} ({lv})")
        return np.eye(len(lv))[lv.index(value)]
    if isinstance(value, dict):
        return np.array([float(value.get(x, 0.0)) for x in lv])
    return np.asarray(value, float)


def _evaluate(design: Design, values: dict) -> np.ndarray:
    cols = {}
    n = None
    for v in {v for t in design.terms for v in t}:
        if v not in values:
            raise ConfigError(f"a value for {v!r} is needed to evaluate the design")
        if v in design.levels:
            w = _weights(design, v, values[v])
            keep = [design.levels[v].index(lv) for lv in _non_ref(design, v)]
            cols[v] = w[..., keep]
        else:
            cols[v] = np.asarray(values[v], float)[..., None]
        if cols[v].ndim == 2:
            n = cols[v].shape[0]
    blocks = [np.ones((n, 1)) if n is not None else np.ones(1)]
    for term in design.terms:
        block = None
        for v in term:
            c = cols[v]
            if n is not None and c.ndim == 1:
                c = np.broadcast_to(c, (n, c.shape[-1]))
            block = c if block is None else (block[..., :, None] * c[..., None, :]).reshape(
                *block.shape[:-1], -1)
        blocks.append(block)
    return np.concatenate(blocks, axis=-1)
