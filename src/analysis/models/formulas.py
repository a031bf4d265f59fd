"""Model formulas: a safety check before patsy sees them, and the mixed-model design built from them.

patsy evaluates every term of a formula as Python code, so a user formula such as
``pain_score ~ __import__('os').system('...')`` would run. :func:`check_formula` therefore
tokenises the formula with Python's :mod:`tokenize` module first and allows only

* names of columns in ``allowed_columns`` (never called like a function),
* numbers, and the operators ``+ - * / : ** ~ ( ) ,``,
* the functions ``C, log, exp, sqrt, I, Treatment, center, standardize`` (each followed by ``(``),
* the keyword ``reference=`` inside ``Treatment(...)``, followed by a plain quoted string (no
  f-, b- or r-prefix) or a number.

Anything else (attribute access, indexing, dunder names, other calls, strings elsewhere,
comments, ``;``, ``=`` outside ``reference=``) raises :class:`~analysis.errors.ConfigError`
naming the offending token. The functions are given to patsy through an explicit namespace
(:data:`FORMULA_FUNCTIONS`), so ``log`` means ``numpy.log``.

:func:`build_mixed_design` turns a checked fixed-effects formula, a random-effects structure and the
grouping columns into arrays for the mixed-model engines: complete rows only; fixed-effect columns
that are aliased (exact linear dependence, found by pivoted QR as in lme4) are dropped and reported.
Term names are made readable by :func:`readable_term`: ``Intercept`` becomes ``(Intercept)`` (as in
R) and ``C(arm, Treatment(reference='usual_care'))[T.orthotics]`` becomes ``arm[orthotics]``, so
an interaction reads ``week:arm[orthotics]``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import keyword
import re
import tokenize
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy
import scipy.linalg

from analysis.errors import ConfigError
from analysis.models.design_direct import (
    FORMULA_FUNCTIONS,
    direct_rows,
    fixed_design,
    fixed_design_plan,
)

__all__ = ["FORMULA_FUNCTIONS", "MixedDesign", "build_mixed_design", "check_formula", "fixed_design",
           "readable_term"]

ALLOWED_FUNCTIONS = frozenset({"C", "log", "exp", "sqrt", "I", "Treatment", "center", "standardize"})
ALLOWED_OPERATORS = frozenset({"+", "-", "*", "/", ":", "**", "~", "(", ")", ","})
#: Largest exponent ``**`` may raise to: ``(a + b) ** 2`` is an interaction; ``x ** 99999`` a hang.
MAX_POWER = 3
#: Longest formula text accepted (characters).
MAX_FORMULA_CHARS = 1000
_IGNORED = {tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING}

def check_formula(formula: str, allowed_columns, forbidden_columns: dict[str, str] | None = None) -> set[str]:
    """Refuse a formula that holds anything but columns, numbers, formula operators and safe calls.

    Parameters
    ----------
    formula : str
        A patsy formula, with or without a left-hand side (``"y ~ x"`` or ``"~ week"``).
    allowed_columns : iterable of str
        Column names the formula may use.
    forbidden_columns : dict, optional
        Column names the formula may never use, with the reason (e.g. a column that identifies
        patients: a fixed effect per patient would print every id in the coefficient table).

    Returns
    -------
    set of str
        The column names the formula uses.

    Raises
    ------
    ConfigError
        Naming the first offending token and its position.
    """
    if not isinstance(formula, str) or not formula.strip():
        raise ConfigError(f"formula must be a non-empty string, got {formula!r}")
    if len(formula) > MAX_FORMULA_CHARS:
        raise ConfigError(f"formula of {len(formula):,} characters; at most {MAX_FORMULA_CHARS} are read")
    forbidden = dict(forbidden_columns or {})
    allowed = set(allowed_columns) - set(forbidden)
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(formula.strip()).readline)
                  if t.type not in _IGNORED]
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise ConfigError(f"formula {formula!r} cannot be read: {exc}") from None

    def refuse(tok, why):
        raise ConfigError(f"formula {formula!r}: refused token {tok.string!r} at column "
                          f"{tok.start[1] + 1} ({why})")

    used: set[str] = set()
    stack: list[str] = []  # what each open parenthesis belongs to: a function name or ""
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        prev = tokens[i - 1] if i > 0 else None
        opens_call = nxt is not None and nxt.type == tokenize.OP and nxt.string == "("
        if tok.type == tokenize.NAME:
            if tok.string == "reference":
                if not (stack and stack[-1] == "Treatment" and nxt is not None and nxt.string == "="):
                    refuse(tok, "'reference' is allowed only as Treatment(reference=...)")
            elif opens_call:
                if tok.string not in ALLOWED_FUNCTIONS:
                    refuse(tok, f"only the functions {sorted(ALLOWED_FUNCTIONS)} may be called")
            elif tok.string in forbidden:
                refuse(tok, forbidden[tok.string])
            elif tok.string in allowed and not keyword.iskeyword(tok.string):
                used.add(tok.string)
            elif tok.string in ALLOWED_FUNCTIONS and tok.string == "Treatment":
                pass  # C(x, Treatment) without arguments
            else:
                refuse(tok, "not a column of the data" if not tok.string.startswith("__")
                       else "dunder names are never allowed")
        elif tok.type == tokenize.NUMBER:
            if prev is not None and prev.string == "**":
                if not (tok.string.isdigit() and 1 <= int(tok.string) <= MAX_POWER):
                    refuse(tok, f"a power must be a whole number from 1 to {MAX_POWER}")
            elif len(tok.string) > 12:
                refuse(tok, "numbers in a formula have at most 12 characters")
            continue
        elif tok.type == tokenize.STRING:
            if not (prev is not None and prev.string == "=" and stack and stack[-1] == "Treatment"):
                refuse(tok, "a quoted string is allowed only as Treatment(reference='level')")
            if tok.string[0] not in "'\"":
                refuse(tok, "string prefixes (f, b, r, u) are not allowed")
            try:
                if not isinstance(ast.literal_eval(tok.string), str):
                    refuse(tok, "not a plain string")
            except (ValueError, SyntaxError):
                refuse(tok, "not a plain string")
        elif tok.type == tokenize.OP:
            if tok.string == "(":
                stack.append(prev.string if prev is not None and prev.type == tokenize.NAME else "")
            elif tok.string == ")":
                if not stack:
                    refuse(tok, "unbalanced parenthesis")
                stack.pop()
            elif tok.string == "=":
                if not (prev is not None and prev.string == "reference"):
                    refuse(tok, "'=' is allowed only in reference=")
            elif tok.string not in ALLOWED_OPERATORS:
                refuse(tok, "operator not allowed in a formula")
            elif tok.string == "**" and (nxt is None or nxt.type != tokenize.NUMBER):
                refuse(tok, f"a power must be a whole number from 1 to {MAX_POWER}")
        else:
            refuse(tok, "not allowed in a formula")
    if stack:
        raise ConfigError(f"formula {formula!r}: unbalanced parenthesis")
    return used


_TREATMENT = re.compile(r"C\((\w+)(?:\s*,\s*Treatment(?:\([^()]*\))?)?\)\[T\.([^\]]*)\]")
_PLAIN_C = re.compile(r"C\((\w+)\)\[([^\]]*)\]")


def readable_term(name: str) -> str:
    """``C(arm, Treatment(reference='x'))[T.y]`` -> ``arm[y]``; ``Intercept`` -> ``(Intercept)``."""
    if name == "Intercept":
        return "(Intercept)"
    name = _TREATMENT.sub(r"\1[\2]", name)
    name = _PLAIN_C.sub(r"\1[\2]", name)
    return re.sub(r"(\w+)\[T\.([^\]]*)\]", r"\1[\2]", name)


@dataclass
class MixedDesign:
    """Arrays of one mixed model, built from complete rows of the data.

    ``patient`` holds codes 0..m-1 of the innermost groups (clinic:patient when clinics are
    modelled); ``clinic_of_patient`` maps each of them to a clinic code 0..k-1 (or is None).
    """

    y: np.ndarray
    X: np.ndarray
    x_names: list[str]
    Z: np.ndarray
    z_names: list[str]
    patient: np.ndarray
    patient_labels: list
    clinic_of_patient: np.ndarray | None
    clinic_labels: list | None
    design_info: object
    keep_columns: np.ndarray
    data: pd.DataFrame
    group: str
    clinic: str | None
    random: str
    time: str
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    null_space: np.ndarray | None = None
    formula: str | None = None
    direct: bool = False  # X was filled directly (design_direct): so are rows for new data

    def __getstate__(self):
        # patsy cannot pickle a DesignInfo (patsy issue 26): it is rebuilt from the formula
        return {**self.__dict__, "design_info": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.design_info is None and self.formula is not None:
            with np.errstate(all="ignore"):
                _, _, self.design_info, self.direct = fixed_design_plan(self.formula, self.data)

    def rows(self, newdata: pd.DataFrame, full: bool = False) -> np.ndarray:
        """Fixed-effect design rows for new data, e.g. a reference grid.

        ``full=True`` keeps aliased columns (to check estimability with :meth:`estimable`).
        """
        if self.direct:
            X = direct_rows(self.design_info, newdata)
        else:
            X = np.asarray(patsy.build_design_matrices([self.design_info], newdata,
                                                       NA_action="raise")[0])
        return X if full else X[:, self.keep_columns]

    def estimable(self, L_full, tol: float = 1e-6) -> bool:
        """Whether a full-length linear function is estimable (orthogonal to X's null space)."""
        if self.null_space is None or self.null_space.shape[1] == 0:
            return True
        L_full = np.asarray(L_full, float)
        return bool(np.all(np.abs(L_full @ self.null_space) <= tol * max(1.0, np.abs(L_full).max())))


class DesignProblem(Exception):
    """The data cannot support the model; the message is the reason for ``not estimable``."""


def random_design(data: pd.DataFrame, random: str, time: str) -> tuple[np.ndarray, list[str]]:
    """Patient-level random-effects design: ``"intercept"``, ``"slope"`` (on ``time``) or ``"~ ..."``."""
    if random == "intercept":
        return np.ones((len(data), 1)), ["(Intercept)"]
    if random == "slope":
        return np.column_stack([np.ones(len(data)), data[time].to_numpy(float)]), ["(Intercept)", time]
    if isinstance(random, str) and random.strip().startswith("~"):
        check_formula(random, data.columns)
        Z = patsy.dmatrix(random, data, eval_env=patsy.EvalEnvironment([FORMULA_FUNCTIONS]),
                          NA_action="raise")
        return np.asarray(Z, dtype=float), [readable_term(n) for n in Z.design_info.column_names]
    raise ConfigError(f"random must be 'intercept', 'slope' or a formula like '~week', got {random!r}")


def build_mixed_design(data: pd.DataFrame, fixed: str, group: str, random: str = "slope",
                       time: str = "week", clinic: str | None = None) -> MixedDesign:
    """Check the formulas and build the mixed-model arrays from the complete rows of ``data``.

    Raises
    ------
    ConfigError
        A formula is unsafe or names a column the data lacks.
    DesignProblem
        The data cannot support the model (no complete rows, one group, more columns than rows).
    """
    used = check_formula(fixed, data.columns)
    if "~" not in fixed:
        raise ConfigError(f"fixed-effects formula {fixed!r} needs an outcome: 'y ~ terms'")
    needed = set(used) | {group} | ({clinic} if clinic else set())
    if random == "slope":
        needed.add(time)
    elif isinstance(random, str) and random.strip().startswith("~"):
        needed |= check_formula(random, data.columns)
    missing = sorted(c for c in needed if c not in data.columns)
    if missing:
        raise ConfigError(f"model columns {missing} are not in the data")
    cols = sorted(needed)
    complete = np.ones(len(data), dtype=bool)
    for c in cols:  # column by column: no copy of the frame to find its complete rows
        col = data[c]
        if c not in (group, clinic) and pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy()
            if values.dtype.kind != "f":  # ints, bools, nullable types: as float (NA: NaN)
                values = col.to_numpy(float, na_value=np.nan)
            complete &= np.isfinite(values)  # a float column is read where it is, not copied
        else:
            complete &= col.notna().to_numpy()
    # one copy of the model's columns (selecting them copies); shallow: nothing else shares it
    df = (data[cols] if complete.all() else data.loc[complete, cols]).copy(deep=False)
    notes = []
    if (~complete).sum():
        notes.append(f"{int((~complete).sum())} of {len(data)} rows with a missing model value left out")
    if df.empty:
        raise DesignProblem("no rows with complete model values")
    for c in cols:  # unused categories would become all-zero (aliased) columns
        if isinstance(df[c].dtype, pd.CategoricalDtype) and not _all_categories_used(df[c]):
            df[c] = df[c].cat.remove_unused_categories()
    try:
        with np.errstate(all="ignore"):
            y, X, design_info, direct = fixed_design_plan(fixed, df)
    except patsy.PatsyError as exc:
        raise DesignProblem(f"formula {fixed!r} could not be built: {exc.message}") from None
    # one pass over the whole matrix first: the row-wise test (a bool copy of X and a reduction of
    # 8-wide rows, 10 times slower) only when some value is not finite
    # (a sum is finite only if every term is; one that overflows takes the row-wise test too)
    all_finite = bool(np.isfinite(y.sum()) and np.isfinite(X.sum()))
    finite = None if all_finite else np.isfinite(y) & np.isfinite(X).all(axis=1)
    if not all_finite and not finite.all():
        notes.append(f"{int((~finite).sum())} rows left out where the outcome or a term is not "
                     "finite (e.g. log of a value <= 0)")
        df, y, X = df[finite], y[finite], X[finite]
        if df.empty:
            raise DesignProblem("no rows with finite outcome and terms")
    names = [readable_term(n) for n in design_info.column_names]
    keep = _estimable_columns(X, well_conditioned(X, finite=True))
    null_space = _null_space(X) if not keep.all() else None
    dropped = [n for n, k in zip(names, keep) if not k]
    if dropped:
        notes.append(f"fixed-effect model matrix is rank deficient: dropped {dropped} (as lme4 does)")
    X = X[:, keep]
    Z, z_names = random_design(df, random, time)
    if clinic:
        # (clinic, patient) pairs sorted as tuples: sorted codes of each, then of code pairs
        p_codes, p_uniq = _sorted_codes(df[group])
        c_codes, c_uniq = _sorted_codes(df[clinic])
        codes, pair = pd.factorize(c_codes.astype(np.int64) * len(p_uniq) + p_codes, sort=True)
        clinic_of_patient = pair // len(p_uniq)
        uniq = pd.MultiIndex.from_arrays([c_uniq.take(clinic_of_patient), p_uniq.take(pair % len(p_uniq))])
        patient_labels, clinic_labels = uniq.tolist(), c_uniq.tolist()
    else:
        codes, uniq = _sorted_codes(df[group])
        patient_labels, clinic_of_patient, clinic_labels = uniq.tolist(), None, None
    if len(patient_labels) < 2:
        raise DesignProblem(f"only {len(patient_labels)} {group} with complete data; "
                            "a mixed model needs at least 2")
    if len(y) <= X.shape[1]:
        raise DesignProblem(f"{len(y)} complete rows for {X.shape[1]} fixed effects")
    return MixedDesign(y=y, X=X, x_names=[n for n, k in zip(names, keep) if k], Z=Z, z_names=z_names,
                       patient=np.asarray(codes), patient_labels=patient_labels,
                       clinic_of_patient=clinic_of_patient, clinic_labels=clinic_labels,
                       design_info=design_info, keep_columns=keep, data=df, group=group,
                       clinic=clinic, random=random, time=time, dropped=dropped, notes=notes,
                       null_space=null_space, formula=fixed, direct=direct)


def _all_categories_used(col: pd.Series) -> bool:
    """Whether every category of a Categorical column occurs in it (counted on its codes)."""
    codes = col.cat.codes.to_numpy()
    n_cat = len(col.cat.categories)
    if n_cat == 0:
        return True
    codes = codes[codes >= 0] if (codes < 0).any() else codes
    return bool(np.bincount(codes, minlength=n_cat).min() > 0) if codes.size else False


def _sorted_codes(col: pd.Series):
    """``pd.factorize(col, sort=True)``: for a Categorical with every category used and no missing
    value (the design's rows after :func:`_all_categories_used`) its own codes and categories, which
    is what pandas returns for it (a Categorical factorises in category order), without hashing."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        if codes.size and codes.min() >= 0 and _all_categories_used(col):
            return codes.astype(np.intp), col.cat.categories
    return pd.factorize(col, sort=True)


#: Smallest eigenvalue ratio of the scaled Gram matrix at which X is full rank without its QR.
GRAM_RATIO = 1e-6


def well_conditioned(X: np.ndarray, finite: bool = False) -> bool:
    """Whether the pivoted QR of :func:`_estimable_columns` would keep every column, known from the
    p x p Gram matrix of the unit-norm columns: each pivoted |R_ii| lies between the smallest and
    largest singular value, so all pass the 1e-7 test when sqrt(lambda_min / lambda_max) > 1e-3,
    far above the rounding of the Gram matrix (~1e-12 relative). ``finite``: the caller has
    checked that every value is finite."""
    if X.shape[1] == 0 or not (finite or np.isfinite(X).all()):
        return False
    with _one_blas_thread():
        gram = X.T @ X  # its diagonal holds the squared column norms: no n x p temporary
    scale = np.sqrt(np.diag(gram))
    if np.any(scale == 0):
        return False
    w = np.linalg.eigvalsh(gram / np.outer(scale, scale))
    return bool(w[0] > GRAM_RATIO * w[-1])


def _estimable_columns(X: np.ndarray, full_rank: bool = False, tol: float = 1e-7) -> np.ndarray:
    """Columns kept by pivoted QR (lme4's rank check, tolerance 1e-7 relative to the largest |R_ii|);
    all of them when ``full_rank`` (:func:`well_conditioned`) says the QR would keep them all."""
    keep = np.zeros(X.shape[1], dtype=bool)
    if X.shape[1] == 0:
        return keep
    if full_rank:
        return ~keep
    scale = np.sqrt((X ** 2).sum(axis=0))
    scale[scale == 0] = 1.0
    # one BLAS thread: on two busy cores OpenBLAS's threads made this pivoted QR 10 times slower
    with _one_blas_thread():
        _, R, piv = scipy.linalg.qr(X / scale, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    rank = int((d > tol * d[0]).sum()) if d.size and d[0] > 0 else 0
    keep[np.sort(piv[:rank])] = True
    return keep


try:  # a pinned dependency; one controller: threadpool_limits() looks up the libraries per call (4 ms)
    from threadpoolctl import ThreadpoolController
    _BLAS = ThreadpoolController()
except ImportError:  # pragma: no cover
    _BLAS = None


def _one_blas_thread():
    return _BLAS.limit(limits=1, user_api="blas") if _BLAS else contextlib.nullcontext()


def _null_space(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Orthonormal basis of {v: Xv = 0} (columns scaled to unit norm first, then unscaled)."""
    scale = np.sqrt((X ** 2).sum(axis=0))
    scale[scale == 0] = 1.0
    _, d, vt = np.linalg.svd(X / scale, full_matrices=True)
    d = np.concatenate([d, np.zeros(vt.shape[0] - d.size)])
    basis = vt[d <= tol * d.max()].T / scale[:, None]
    return basis / np.linalg.norm(basis, axis=0)
