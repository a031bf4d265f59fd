r"""Fixed-effect design matrices built directly for the suite's formula class (patsy for the rest).

Methods
-------
A formula is in the *direct class* when its outcome is a numeric column and every factor of its
right-hand side is a bare column or ``C(column[, Treatment(reference=...)])`` — the suite's
default formulas (nothing stateful such as ``center``, no functions of columns). For these
patsy builds the ``DesignInfo`` (term order, contrasts, column names) on a few rows that hold
every level of every categorical column, and the matrix is filled from integer codes as
patsy's ``_build_subterm`` fills it: each column starts at 1 and is multiplied by each factor's
value (a contrast-matrix entry picked by the level's code, or the numeric column) in the
subterm's factor order, the left-most factor's column iterating fastest (as R). The same
products in the same order give the same numbers, bit for bit
(``tests/models/test_formulas.py``), without patsy's per-row checks of every value, which cost
30 times the fit itself on 150,000 rows. :func:`direct_rows` fills rows for new data (a
reference grid) from the same ``DesignInfo``. Any other formula goes to patsy whole.

Reference: Smith NJ et al., patsy 1.0 (``patsy/build.py``: ``_build_subterm``).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import patsy
import patsy.builtins

#: The namespace patsy evaluates checked formulas in.
FORMULA_FUNCTIONS = {"C": patsy.builtins.C, "Treatment": patsy.builtins.Treatment,
                     "I": patsy.builtins.I, "center": patsy.builtins.center,
                     "standardize": patsy.builtins.standardize,
                     "log": np.log, "exp": np.exp, "sqrt": np.sqrt}

#: Rows filled at a time (a block of X's columns stays in cache).
CHUNK = 1 << 14

_DIRECT_C = re.compile(r"C\((\w+)(?:, Treatment(?:\(reference=(?:'[^'\\]*'|\"[^\"\\]*\"|[\d.]+)\))?)?\)")


def fixed_design(fixed: str, df: pd.DataFrame, direct: bool | None = None):
    """Outcome, fixed-effect matrix and patsy DesignInfo of a checked formula on complete rows.

    ``direct`` forces one way (None: direct when the formula is in the class; True raises
    ValueError for a formula outside it).
    """
    return fixed_design_plan(fixed, df, direct)[:3]


def fixed_design_plan(fixed: str, df: pd.DataFrame, direct: bool | None = None):
    """:func:`fixed_design` and whether the matrix was built directly (a fourth element)."""
    env = patsy.EvalEnvironment([FORMULA_FUNCTIONS])
    plan = _direct_plan(fixed, df) if direct is not False else None
    if plan is None:
        if direct:
            raise ValueError(f"formula {fixed!r} is outside the directly built class")
        yv, Xm = patsy.dmatrices(fixed, df, eval_env=env, NA_action="raise")
        return np.asarray(yv, dtype=float).ravel(), np.asarray(Xm, dtype=float), Xm.design_info, False
    outcome, categorical = plan
    key = _skeleton_key(fixed, df, categorical)
    info = _SKELETONS.get(key) if key is not None else None
    if info is None:
        keep = pd.Index([])
        for col in categorical:  # first row of each level
            codes = pd.Series(_codes(df[col]))
            keep = keep.union(df.index[codes.drop_duplicates().index.to_numpy()])
        _, skeleton = patsy.dmatrices(fixed, df.loc[keep] if len(keep) else df.iloc[:1], eval_env=env,
                                      NA_action="raise")
        info = skeleton.design_info
        if key is not None:
            if len(_SKELETONS) >= 64:
                _SKELETONS.clear()
            _SKELETONS[key] = info
    return df[outcome].to_numpy(float), direct_rows(info, df), info, True


#: DesignInfos of direct-class formulas whose categorical columns are all pandas Categoricals.
_SKELETONS: dict = {}


def _skeleton_key(fixed: str, df: pd.DataFrame, categorical) -> tuple | None:
    """What a direct-class DesignInfo depends on when every categorical column is a pandas
    Categorical: the formula, which columns are categorical and their levels (patsy takes a
    Categorical's levels from its categories, whatever rows hold them; numeric columns are one
    numeric column each, whatever their dtype). None when a categorical column is of another
    type (its levels would have to be found in the rows)."""
    levels = []
    for col in categorical:
        dtype = df[col].dtype
        if not isinstance(dtype, pd.CategoricalDtype):
            return None
        levels.append((col, bool(dtype.ordered), tuple(dtype.categories), str(dtype.categories.dtype)))
    return fixed, tuple(levels)


def _codes(col: pd.Series) -> np.ndarray:
    """Integer codes of a column's values (a Categorical's own, without re-hashing its values)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy()
    return pd.Categorical(col).codes


def direct_rows(info, df: pd.DataFrame) -> np.ndarray:
    """The design matrix of ``info`` (a direct-class DesignInfo) for the rows of ``df``.

    Raises
    ------
    patsy.PatsyError
        A categorical value outside the design's levels, or a missing value.
    """
    values = {}
    for factor, finfo in info.factor_infos.items():
        col = _direct_column(factor.code)
        if finfo.type == "categorical":
            series = df[col]
            cats = list(finfo.categories)
            if isinstance(series.dtype, pd.CategoricalDtype) and list(series.cat.categories) == cats:
                codes = series.cat.codes.to_numpy()
            else:
                codes = pd.Categorical(series, categories=cats).codes
            if (codes < 0).any():
                raise patsy.PatsyError(f"{col}: a level outside the design's levels (or missing)")
            values[factor] = codes.astype(np.intp)  # once: np.take would convert each block
        else:
            v = df[col].to_numpy(float)
            if np.isnan(v).any():
                raise patsy.PatsyError(f"{col}: missing values")
            values[factor] = v
    # each column: the factors' values to multiply, in patsy's order (a contrast column picked by
    # the codes, or the numeric column)
    plan = []
    for subterms in info.term_codings.values():
        for sub in subterms:
            widths = [sub.contrast_matrices[f].matrix.shape[1] if f in sub.contrast_matrices
                      else info.factor_infos[f].num_columns for f in sub.factors]
            # patsy's column order (as R): the left-most factor's column iterates fastest
            for rev in itertools.product(*[range(w) for w in reversed(widths)]):
                plan.append([(np.ascontiguousarray(sub.contrast_matrices[f].matrix[:, j]), values[f])
                             if info.factor_infos[f].type == "categorical" else (None, values[f])
                             for f, j in zip(sub.factors, rev[::-1])])
    n = len(df)
    X = np.empty((n, len(plan)))
    # a block's columns are filled contiguously, then written to X's rows in one transposing copy
    # (column by column into X's rows wrote every cache line of the block once per column)
    block, picked = np.empty((len(plan), min(n, CHUNK))), np.empty(min(n, CHUNK))
    for lo in range(0, n, CHUNK):  # in blocks of rows that stay in cache
        hi = min(lo + CHUNK, n)
        pick = picked[: hi - lo]
        for i, factors in enumerate(plan):
            col = block[i, : hi - lo]
            # 1.0 times the first factor is that factor exactly: it is written, not multiplied
            for j, (contrast, v) in enumerate(factors):
                if j == 0:
                    if contrast is None:
                        col[:] = v[lo:hi]
                    else:
                        np.take(contrast, v[lo:hi], out=col)
                elif contrast is None:
                    col *= v[lo:hi]
                else:
                    col *= np.take(contrast, v[lo:hi], out=pick)
            if not factors:
                col[:] = 1.0
        X[lo:hi] = block[:, : hi - lo].T
    return X


def _direct_column(code: str) -> str:
    m = _DIRECT_C.fullmatch(code)
    return m.group(1) if m else code


def _direct_plan(fixed: str, df: pd.DataFrame):
    """(outcome, categorical columns) when the formula is in the directly built class, else None."""
    desc = patsy.ModelDesc.from_formula(fixed)
    if len(desc.lhs_termlist) != 1 or len(desc.lhs_termlist[0].factors) != 1:
        return None
    outcome = desc.lhs_termlist[0].factors[0].code
    if not (outcome.isidentifier() and outcome in df and _is_number(df[outcome])):
        return None
    categorical = set()
    for term in desc.rhs_termlist:
        for factor in term.factors:
            code = factor.code
            if _DIRECT_C.fullmatch(code):
                categorical.add(_direct_column(code))
            elif not code.isidentifier() or code not in df:
                return None
            elif not _is_number(df[code]):
                categorical.add(code)
    if any(c not in df for c in categorical):
        return None
    return outcome, sorted(categorical)


def rhs_in_direct_class(fixed: str) -> bool:
    """Whether every right-hand factor is a bare name or ``C(name[, Treatment(...)])`` (so rows
    for new data can be filled by :func:`direct_rows` once the DesignInfo exists)."""
    desc = patsy.ModelDesc.from_formula(fixed)
    return all(_DIRECT_C.fullmatch(f.code) or f.code.isidentifier()
               for term in desc.rhs_termlist for f in term.factors)


def _is_number(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
