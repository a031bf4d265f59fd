"""LS-means of an MMRM fit by visit and arm, and differences from a control arm at each visit.

Methods
-------
An LS-mean is an estimable function ``l' beta`` with ``l`` the design row at the chosen levels of
the ``specs`` CLASS variables (e.g. visit x arm), averaged over the other CLASS variables and with
numeric covariates at their mean (Searle, Speed & Milliken 1980). ``weights="equal"`` gives every
level of an averaged variable the same weight (SAS ``LSMEANS``' default; emmeans' ``"equal"``);
``weights="proportional"`` averages the design rows of the fitted observations with the ``specs``
variables set to the chosen levels, i.e. observed proportions (SAS ``OM``; emmeans'
``"proportional"`` when the averaged variables enter as main effects). A difference vs control at
a visit is ``(l_arm - l_control)' beta``. Each is tested with the fit's covariance and df method
(Kenward-Roger SE and df, Satterthwaite, ...), see ``analysis.models.mmrm_kr``.

References: SAS/STAT User's Guide, PROC MIXED, "LSMEANS statement" (options OM, PDIFF, SLICE);
Searle, Speed & Milliken (1980), Am Stat 34, 216-221; Lenth, emmeans (R package).
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd

from analysis.errors import ConfigError

WEIGHTS = ("equal", "proportional")


def lsmean_rows(result, specs: tuple, weights: str = "equal", at: dict | None = None):
    """The ``l`` vectors of the LS-means of ``specs``: (grid DataFrame, ndarray (cells, p))."""
    design = result.design
    if design is None:
        raise ConfigError("LS-means need a model string design (not a user-supplied matrix)")
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {WEIGHTS}; got {weights!r}")
    specs = tuple([specs] if isinstance(specs, str) else specs)
    for v in specs:
        if v not in design.levels:
            raise ConfigError(f"LS-means are over CLASS variables in the model; {v!r} is not one")
    at = dict(at or {})
    grid = pd.DataFrame(list(product(*[design.levels[v] for v in specs])), columns=list(specs))
    rows = []
    for cell in grid.itertuples(index=False):
        fixed = dict(zip(specs, cell))
        if weights == "equal":
            values = {}
            for v, lv in design.levels.items():
                values[v] = fixed.get(v, {x: 1.0 / len(lv) for x in lv})
            for v, mean in design.means.items():
                values[v] = at.get(v, mean)
            rows.append(design.row(values))
        else:
            frame = result.data
            values = {}
            for v, lv in design.levels.items():
                if v in fixed:
                    values[v] = np.broadcast_to(np.eye(len(lv))[lv.index(fixed[v])], (len(frame), len(lv)))
                else:
                    codes = pd.Categorical(frame[v].astype(str), categories=lv).codes
                    values[v] = np.eye(len(lv))[codes]
            for v in design.means:
                values[v] = np.full(len(frame), at[v]) if v in at else frame[v].to_numpy(float)
            rows.append(design.row(values).mean(axis=0))
    return grid, np.array(rows)


def lsmeans(result, specs=("visit", "arm"), weights: str = "equal", at: dict | None = None,
            alpha: float | None = None) -> pd.DataFrame:
    """LS-means table: the ``specs`` columns then ``estimate, std_error, df, statistic, p_value,
    conf_low, conf_high``.

    Parameters
    ----------
    result : MMRMResult
    specs : tuple of str
        CLASS variables, e.g. ``("AVISIT", "ARMCD")``.
    weights : {"equal", "proportional"}
    at : dict, optional
        Values for numeric covariates (default: their means).
    alpha : float, optional
        Confidence level is ``1 - alpha`` (default: the fit's).
    """
    grid, L = lsmean_rows(result, specs, weights, at)
    tab = result.contrast(L, alpha=alpha)
    return pd.concat([grid.reset_index(drop=True), tab.drop(columns="term")], axis=1)


def lsmean_diffs(result, arm: str, control: str, by: str | None = None, weights: str = "equal",
                 at: dict | None = None, alpha: float | None = None) -> pd.DataFrame:
    """Differences ``arm - control`` of LS-means at each level of ``by`` (e.g. each visit).

    Returns columns ``by`` (if given), ``arm``, ``control``, then the tidy columns.
    """
    design = result.design
    if design is None or arm not in design.levels:
        raise ConfigError(f"{arm!r} is not a CLASS variable of the model")
    if control not in design.levels[arm]:
        raise ConfigError(f"control level {control!r} is not a level of {arm!r}: {design.levels[arm]}")
    specs = (by, arm) if by else (arm,)
    grid, L = lsmean_rows(result, specs, weights, at)
    out_rows, labels = [], []
    for by_level in (design.levels[by] if by else [None]):
        sel = grid[arm] == control
        if by:
            sel &= grid[by] == by_level
        l_ctrl = L[np.flatnonzero(sel.to_numpy())[0]]
        for level in design.levels[arm]:
            if level == control:
                continue
            pick = grid[arm] == level
            if by:
                pick &= grid[by] == by_level
            out_rows.append(L[np.flatnonzero(pick.to_numpy())[0]] - l_ctrl)
            labels.append(({by: by_level} if by else {}) | {arm: level, "control": control})
    tab = result.contrast(np.array(out_rows), alpha=alpha)
    return pd.concat([pd.DataFrame(labels), tab.drop(columns="term")], axis=1)


def type3_tests(result) -> pd.DataFrame:
    """SAS's "Type 3 Tests of Fixed Effects": ``effect, num_df, den_df, f_value, p_value``.

    A CLASS main effect is tested through the differences of its equal-weight LS-means (which is
    SAS's type 3 hypothesis also when the variable interacts with others); a term contained in no
    higher-order term (e.g. the ``arm:visit`` interaction, a covariate) through its own columns.
    """
    design = result.design
    if design is None:
        raise ConfigError("type 3 tests need a model string design")
    rows = []
    for term in design.terms:
        higher = [t for t in design.terms if len(t) > len(term) and set(term) <= set(t)]
        name = ":".join(term)
        if len(term) == 1 and term[0] in design.levels and higher:
            _, L = lsmean_rows(result, term)
            ref = design.levels[term[0]].index(design.reference[term[0]])
            L = np.delete(L, ref, axis=0) - L[ref]   # SAS: each level minus the reference
        elif not higher:
            prefix = [c for c in design.columns if _column_term(c) == term]
            L = np.eye(len(design.columns))[[design.columns.index(c) for c in prefix]]
        else:
            raise ConfigError(f"no type 3 test for {name}: it is contained in {higher}")
        test = result.f_test(L)
        rows.append({"effect": name} | test)
    return pd.DataFrame(rows)


def _column_term(column: str) -> tuple:
    return tuple(part.split("[", 1)[0] for part in column.split(":"))
