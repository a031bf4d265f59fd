r"""Estimated marginal means and contrasts (emmeans-style) for a fitted linear mixed model.

Methods
-------
**Reference grid** (Lenth's emmeans defaults). Every variable of the fixed-effects formula is
either a *factor* (a non-numeric or boolean column, or a column patsy treats as categorical, e.g.
inside ``C()``) or a *covariate* (numeric). The grid crosses all levels of every factor seen in
the fitted rows; covariates sit at their mean over the fitted rows (the mean of the variable,
so ``log(x)`` is evaluated at ``log(mean(x))``, as emmeans does); the time variable and any
variable named in ``at`` take the requested values.

**Marginal mean** of arm :math:`a` at week :math:`w`: :math:`\bar x_{a,w}^\top\hat\beta`, where
:math:`\bar x_{a,w}` is the equally weighted average of the design rows of the grid with
arm = a and time = w (other factors averaged with equal weights, not by their frequencies).

**Contrasts** are differences of such rows: arm minus control at each week,
:math:`(\bar x_{a,w} - \bar x_{c,w})^\top\hat\beta`; the *slope* of arm :math:`a` is
:math:`(\bar x_{a,1} - \bar x_{a,0})^\top\hat\beta`, the change per unit of time (exact when time
enters the model linearly, as in the default models; with a non-linear time term it is the change
from time 0 to 1); the slope difference is arm minus control.

Each is one linear combination :math:`L\hat\beta` with SE :math:`\sqrt{L\hat V L^\top}`,
Satterthwaite df (:meth:`analysis.models.lmm.LmmFit.contrast`), t-based p (H0: 0) and 1 - alpha interval —
emmeans with ``lmer.df = "satterthwaite"``. No multiplicity adjustment.

**Term names**: mean ``"orthotics, week 4"``; contrast ``"orthotics - usual_care, week 4"``;
slope ``"week slope: orthotics"``; slope difference ``"week slope: orthotics - usual_care"``.
:func:`arm_tables` also returns a ``grid`` table mapping each term to its kind, arm and week.

Reference: Lenth RV (2023) emmeans: Estimated Marginal Means, R package 1.8.4; Searle SR, Speed FM,
Milliken GA (1980) Population marginal means in the linear model. Am Stat 34:216-221.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from analysis.models.formulas import check_formula
from analysis.models.lmm import TIDY_COLUMNS, LmmFit, empty_tidy


def grid_variables(fit: LmmFit) -> tuple[dict, dict]:
    """Factor levels and covariate means of the fixed-effects formula's variables (fitted rows)."""
    design = fit.design
    data = design.data
    categorical: set[str] = set()
    numeric: set[str] = set()
    for factor, info in design.design_info.factor_infos.items():
        used = check_formula(factor.code, data.columns)
        (categorical if info.type == "categorical" else numeric).update(used)
    factors, means = {}, {}
    for var in sorted(categorical | numeric):
        col = data[var]
        if var in categorical or not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            factors[var] = sorted(col.unique().tolist(), key=lambda v: (str(type(v)), v))
        else:
            means[var] = float(col.mean())
    return factors, means


def reference_row(fit: LmmFit, at: dict) -> np.ndarray:
    """The equally weighted average design row of the reference grid with ``at`` held fixed.

    The row has every column of the formula, aliased (dropped) ones included; pass linear
    functions of such rows to :func:`estimate`.
    """
    return reference_rows(fit, [at])[0]


def reference_rows(fit: LmmFit, ats: list[dict], variables: tuple | None = None) -> list[np.ndarray]:
    """:func:`reference_row` for each of ``ats``, from one design build of all their grids.

    Each grid's design rows are the same numbers as built alone (a design row depends on its own
    grid point only), averaged in the same order.
    """
    if not ats:
        return []
    factors, means = variables or grid_variables(fit)
    columns: dict[str, list] = {}
    sizes = []
    for at in ats:  # the grids one after another, as columns of plain lists (one DataFrame)
        free = {k: v for k, v in factors.items() if k not in at}
        combos = list(itertools.product(*free.values())) or [()]
        fixed = {**means, **at}
        for j, var in enumerate(free):
            columns.setdefault(var, []).extend(c[j] for c in combos)
        for var, value in fixed.items():
            columns.setdefault(var, []).extend([value] * len(combos))
        sizes.append(len(combos))
    if all(len(v) == sum(sizes) for v in columns.values()):
        grid = pd.DataFrame(columns)
    else:  # the points name different variables: one frame each, the gaps NaN
        grid = pd.concat([_grid(factors, means, at) for at in ats], ignore_index=True)
    for var in factors:
        # keep the fitted column's dtype so patsy sees the same kind of values
        grid[var] = grid[var].astype(fit.design.data[var].dtype)
    X = fit.design.rows(grid, full=True)
    bounds = np.cumsum([0] + sizes)
    return [X[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)]


def _grid(factors, means, at) -> pd.DataFrame:
    free = {k: v for k, v in factors.items() if k not in at}
    grid = pd.DataFrame(list(itertools.product(*free.values())) or [()], columns=list(free))
    for var, value in {**means, **at}.items():
        grid[var] = [value] * len(grid)
    return grid


def linear_function(fit: LmmFit, plus: list[dict], minus: list[dict] = ()) -> np.ndarray:
    """Sum of reference rows at ``plus`` minus those at ``minus``."""
    rows = reference_rows(fit, list(plus) + list(minus))
    L = sum(rows[: len(plus)])
    for row in rows[len(plus):]:
        L = L - row
    return L


def arm_tables(fit: LmmFit, arm: str, control: str, time: str, weeks, alpha: float | None = None,
               at: dict | None = None) -> dict[str, pd.DataFrame]:
    """Marginal means by arm and week, contrasts vs control, slopes and slope differences.

    All of them are linear functions of one set of reference rows, built in one pass
    (:func:`reference_rows`).

    Parameters
    ----------
    fit : LmmFit
    arm : str
        Arm column (a factor of the model).
    control : str
        Comparator level.
    time : str
        Time column.
    weeks : sequence of float
        Weeks for the means and contrasts.
    alpha : float, optional
        Defaults to ``fit.alpha``.
    at : dict, optional
        Extra variables held fixed (e.g. ``{"overpronated": True}``).

    Returns
    -------
    dict
        ``means``, ``contrasts``, ``slopes``, ``slope_differences`` (tidy tables) and ``grid``
        (term, kind, arm, week). Empty tables when the fit is not estimable.
    """
    keys = ["means", "contrasts", "slopes", "slope_differences"]
    if not fit.estimated or fit.design is None:
        return {**{k: empty_tidy() for k in keys},
                "grid": pd.DataFrame(columns=["term", "kind", "arm", "week"])}
    at = dict(at or {})
    variables = grid_variables(fit)
    factors = variables[0]
    levels = [lv for lv in factors.get(arm, []) if lv != control]
    has_control = control in factors.get(arm, [])
    arms = ([control] if has_control else []) + levels
    points = [(lv, float(w)) for lv in arms for w in list(weeks) + [0.0, 1.0]]
    points = list(dict.fromkeys(points))
    rows = dict(zip(points, reference_rows(fit, [{**at, arm: lv, time: w} for lv, w in points],
                                           variables)))

    def slope(lv):  # as linear_function: (0 + row at 1) - row at 0
        return sum([rows[(lv, 1.0)]]) - rows[(lv, 0.0)]

    tables = {k: [] for k in keys}
    grid = []

    def add(kind, key, term, L, lv, week):
        tables[key].append((term, L))
        grid.append({"term": term, "kind": kind, "arm": lv, "week": week})

    for lv in arms:
        for w in weeks:
            add("mean", "means", f"{lv}, {time} {w:g}", rows[(lv, float(w))], lv, float(w))
    for lv in arms:
        add("slope", "slopes", f"{time} slope: {lv}", slope(lv), lv, np.nan)
    if has_control:
        for lv in levels:
            for w in weeks:
                L = sum([rows[(lv, float(w))]]) - rows[(control, float(w))]
                add("difference", "contrasts", f"{lv} - {control}, {time} {w:g}", L, lv, float(w))
        for lv in levels:
            add("slope difference", "slope_differences", f"{time} slope: {lv} - {control}",
                slope(lv) - slope(control), lv, np.nan)
    out = {k: (estimate_table(fit, [L for _, L in v], [t for t, _ in v], alpha) if v else empty_tidy())
           for k, v in tables.items()}
    out["grid"] = pd.DataFrame(grid, columns=["term", "kind", "arm", "week"])
    return out


def estimate_table(fit: LmmFit, Ls_full, terms, alpha: float | None = None) -> pd.DataFrame:
    """:func:`estimate` of each full-length linear function in one table (the same numbers)."""
    design = fit.design
    usable = fit.estimated and design is not None
    Ls = [np.asarray(L, float)[design.keep_columns] if usable and design.estimable(L) else None
          for L in Ls_full]
    return fit.contrast_table(Ls, list(terms), alpha)


def estimate(fit: LmmFit, L_full, term: str, alpha: float | None = None) -> pd.DataFrame:
    """One tidy row for a full-length linear function; all NaN when it is not estimable
    (it involves a column dropped as aliased, e.g. an arm without overpronated patients)."""
    return pd.DataFrame([estimate_row(fit, L_full, term, alpha)], columns=TIDY_COLUMNS)


def estimate_row(fit: LmmFit, L_full, term: str, alpha: float | None = None) -> dict:
    """:func:`estimate` as a dict (tables of many rows are built once from these)."""
    design = fit.design
    if not fit.estimated or design is None or not design.estimable(L_full):
        return {**{c: np.nan for c in TIDY_COLUMNS}, "term": term}
    return fit.contrast_row(np.asarray(L_full, float)[design.keep_columns], term, alpha)
