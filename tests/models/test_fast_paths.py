"""The fast paths of the model call held to the slow paths they replaced, number for number:
vectorised tidy tables (tidy_frame) vs one tidy_row at a time, contrast tables vs contrast_row,
reference-grid rows filled directly vs patsy's build_design_matrices, the Gram-matrix rank
shortcut vs the pivoted QR, and the (clinic, patient) codes vs factorising a MultiIndex."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import patsy
import pytest

from analysis.models.formulas import _estimable_columns, build_mixed_design, well_conditioned
from analysis.models.lmm import TIDY_COLUMNS, fit_lmm
from analysis.models.marginal import arm_tables, estimate_row, reference_rows
from analysis.models.tidy import tidy_frame, tidy_row

REF = Path(__file__).resolve().parents[1] / "reference"
FORMULA = "pain_score ~ week * C(arm, Treatment(reference='usual_care')) + foot_posture_index + sex"


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(REF / "r_clinic_lmm.csv").dropna()


@pytest.fixture(scope="module")
def fit(data):
    return fit_lmm(data, FORMULA, "patient_id", "slope", time="week")


def test_tidy_frame_equals_tidy_row_bit_for_bit():
    rng = np.random.default_rng(7)
    n = 400
    est = rng.normal(size=n) * 10 ** rng.uniform(-6, 3, n)
    se = np.abs(rng.normal(size=n)) * 10 ** rng.uniform(-4, 2, n)
    df = np.where(rng.uniform(size=n) < 0.2, np.inf, 10 ** rng.uniform(0, 6, n))
    se[:5] = 0.0
    slow = pd.DataFrame([tidy_row(f"t{i}", est[i], se[i], df[i], 0.1) for i in range(n)], columns=TIDY_COLUMNS)
    fast = tidy_frame([f"t{i}" for i in range(n)], est, se, df, 0.1)
    assert list(fast.columns) == TIDY_COLUMNS and (fast.dtypes == slow.dtypes).all()
    for c in TIDY_COLUMNS[1:]:
        assert np.array_equal(fast[c].to_numpy(float), slow[c].to_numpy(float), equal_nan=True), c
    assert slow["p_value"].notna().sum() > n / 2  # the comparison covers real p values


def test_arm_tables_equal_one_estimate_row_at_a_time(fit):
    tabs = arm_tables(fit, "arm", "usual_care", "week", [0, 4, 12])
    arms = ["usual_care", "foot_massage", "orthotics", "strength_training"]
    assert len(tabs["means"]) == 12 and len(tabs["contrasts"]) == 9
    pts = [(a, float(w)) for a in arms for w in (0, 4, 12, 1)]
    refs = dict(zip(pts, reference_rows(fit, [{"arm": a, "week": w} for a, w in pts])))
    for a in arms:
        for w in (0, 4, 12):
            slow = estimate_row(fit, refs[(a, float(w))], f"{a}, week {w:g}")
            fast = tabs["means"].set_index("term").loc[f"{a}, week {w:g}"]
            for c in TIDY_COLUMNS[1:]:
                assert fast[c] == slow[c] or (np.isnan(fast[c]) and np.isnan(slow[c])), (a, w, c)
    for a in arms[1:]:
        L = (refs[(a, 4.0)] - refs[("usual_care", 4.0)])
        slow = estimate_row(fit, L, "x")
        fast = tabs["contrasts"].set_index("term").loc[f"{a} - usual_care, week 4"]
        assert all(fast[c] == slow[c] for c in TIDY_COLUMNS[1:])


def test_direct_grid_rows_equal_patsy_rows(fit):
    design = fit.design
    assert design.direct
    grid = pd.DataFrame({"arm": ["usual_care", "orthotics", "foot_massage"] * 2,
                         "week": [0.0, 4.0, 12.5] * 2, "foot_posture_index": 1.25,
                         "sex": ["F"] * 3 + ["M"] * 3, "pain_score": 0.0})
    grid["arm"] = grid["arm"].astype(design.data["arm"].dtype)
    fast = design.rows(grid, full=True)
    slow = np.asarray(patsy.build_design_matrices([design.design_info], grid, NA_action="raise")[0])
    assert fast.shape == slow.shape and np.array_equal(fast, slow)
    with pytest.raises(patsy.PatsyError):
        design.rows(grid.assign(arm=["nonsense"] * 6))


@pytest.mark.parametrize("case", ["full", "duplicate", "zero", "nearly", "combination"])
def test_gram_shortcut_keeps_the_columns_the_qr_keeps(case):
    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(500), rng.normal(size=(500, 4)), rng.integers(0, 2, 500)])
    if case == "duplicate":
        X[:, 3] = X[:, 1]
    elif case == "zero":
        X[:, 2] = 0.0
    elif case == "nearly":
        X[:, 3] = X[:, 1] + 1e-9 * rng.normal(size=500)
    elif case == "combination":
        X[:, 4] = X[:, 1] - 2 * X[:, 2]
    ok = well_conditioned(X)
    assert ok == (case == "full")
    assert np.array_equal(_estimable_columns(X, ok), _estimable_columns(X))


def test_clinic_codes_equal_a_factorised_multiindex(data):
    d = data.sample(frac=1.0, random_state=1)
    design = build_mixed_design(d, FORMULA, "patient_id", "slope", clinic="clinic_id")
    pairs = pd.MultiIndex.from_arrays([design.data["clinic_id"].to_numpy(), design.data["patient_id"].to_numpy()])
    codes, uniq = pd.factorize(pairs, sort=True)
    clin_codes, clin_labels = pd.factorize(uniq.get_level_values(0), sort=True)
    assert np.array_equal(design.patient, codes)
    assert design.patient_labels == list(uniq)
    assert np.array_equal(design.clinic_of_patient, clin_codes)
    assert design.clinic_labels == list(clin_labels)


@pytest.mark.parametrize("chunk", [7, 1 << 15])
def test_direct_design_in_blocks_of_rows_equals_patsy(data, chunk, monkeypatch):
    from analysis.models import design_direct

    monkeypatch.setattr(design_direct, "CHUNK", chunk)
    d = data.assign(flag=data["week"] > 4)
    formula = "pain_score ~ week * C(arm, Treatment(reference='usual_care')) + sex:week + flag"
    y1, X1, _ = design_direct.fixed_design(formula, d, direct=True)
    y2, X2, _ = design_direct.fixed_design(formula, d, direct=False)
    assert len(d) > 3 * 7 and np.array_equal(y1, y2) and np.array_equal(X1, X2)


@pytest.mark.parametrize("clinic", [None, "clinic_id"])
def test_reused_full_evaluation_gives_the_same_estimates_and_df(data, clinic):
    from analysis.models.pls_deviance import PlsDeviance
    from analysis.models.satterthwaite_gradient import GradientSatterthwaite

    fit = fit_lmm(data, FORMULA, "patient_id", "slope", time="week", clinic=clinic)
    d, theta = fit.design, fit.theta

    def fresh():
        return PlsDeviance(d.y, d.X, d.Z, d.patient, d.clinic_of_patient)

    warm = fresh()
    warm.deviance(theta)                      # as the engine ends: the criterion at the optimum,
    warm.gradient(theta)                      # and its last full evaluation there
    before = warm.evaluations
    est_reused = warm.estimates(theta)
    satt_reused = GradientSatterthwaite(warm, theta, est_reused["sigma"])
    reused = warm.evaluations - before
    cold = fresh()
    est = cold.estimates(theta)
    cold.gradient(theta * 1.01)               # another point last: nothing to reuse
    satt = GradientSatterthwaite(cold, theta, est["sigma"])
    assert reused == 0                        # the analytic Hessian needs no evaluation of its own
    for k in ("beta", "vcov", "fitted", "patient_effects"):
        assert np.array_equal(est_reused[k], est[k]), k
    assert np.array_equal(satt_reused.hessian, satt.hessian) and np.array_equal(satt_reused.jac, satt.jac)


@pytest.mark.parametrize("block", [5, 64, 1 << 16])
def test_patient_sums_in_blocks_equal_one_reduceat(block, monkeypatch):
    from analysis.models import pls_deviance

    monkeypatch.setattr(pls_deviance, "SUM_BLOCK", block)
    rng = np.random.default_rng(11)
    sizes = rng.integers(1, 30, 300)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    n = int(sizes.sum())
    Z = np.column_stack([np.ones(n), rng.uniform(0, 12, n)])
    W = rng.normal(size=(n, 6)) * 10 ** rng.uniform(-3, 3, (n, 6))
    slow = np.stack([np.add.reduceat(Z[:, [a]] * W, starts, axis=0).T for a in range(2)])
    fast = pls_deviance._patient_sums([np.ascontiguousarray(Z[:, a]) for a in range(2)], W, starts)
    assert np.array_equal(fast, slow)


def test_cached_design_info_equals_a_fresh_one(data, monkeypatch):
    """A direct-class formula on Categorical columns reuses the DesignInfo of the same formula and
    levels: the same columns, names and matrix as patsy builds; other levels get their own."""
    from analysis.models import design_direct

    monkeypatch.setattr(design_direct, "_SKELETONS", {})
    formula = "pain_score ~ week * C(arm, Treatment(reference='usual_care')) + sex"
    d = data.assign(arm=pd.Categorical(data["arm"]), sex=pd.Categorical(data["sex"]))
    y1, X1, info1 = design_direct.fixed_design(formula, d)
    assert len(design_direct._SKELETONS) == 1
    half = d.iloc[::2]
    y2, X2, info2 = design_direct.fixed_design(formula, half)
    assert info2 is info1 and len(design_direct._SKELETONS) == 1    # reused
    y3, X3, info3 = design_direct.fixed_design(formula, half, direct=False)
    assert info2.column_names == info3.column_names
    assert np.array_equal(y2, y3) and np.array_equal(X2, X3)
    three = d[d["arm"] != "orthotics"].assign(arm=lambda f: f["arm"].cat.remove_unused_categories())
    _, X4, info4 = design_direct.fixed_design(formula, three)
    assert info4 is not info1 and len(design_direct._SKELETONS) == 2  # other levels, other key
    assert np.array_equal(X4, design_direct.fixed_design(formula, three, direct=False)[1])
    text = data.assign(sex=data["sex"].astype(str))
    design_direct.fixed_design(formula, text)
    assert len(design_direct._SKELETONS) == 2                       # text levels: never cached


def test_t_distribution_shortcuts_equal_scipy_stats():
    """tidy_frame's t_sf / t_ppf (scipy.special, as scipy.stats.t calls it) against scipy.stats.t,
    bit for bit, with invalid df (0, negative, NaN) giving NaN as scipy.stats does."""
    import scipy.stats

    from analysis.models.tidy import t_ppf, t_sf

    rng = np.random.default_rng(11)
    nu = np.r_[10 ** rng.uniform(-2, 8, 2000), 0.0, -1.0, np.nan, 1e300, 0.5]
    x = np.r_[np.abs(rng.normal(size=2000)) * 10 ** rng.uniform(-3, 2, 2000), 1, 1, 1, 2, 3]
    np.testing.assert_array_equal(t_sf(x, nu), scipy.stats.t.sf(x, nu))
    for q in (0.5, 0.95, 0.975, 0.995):
        np.testing.assert_array_equal(t_ppf(q, nu), scipy.stats.t.ppf(q, nu))


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("case", ["all used", "unused level", "missing"])
def test_categorical_codes_equal_sorted_factorize(case, ordered):
    """build_mixed_design takes a Categorical's own codes as pd.factorize(sort=True) would give."""
    from analysis.models.formulas import _all_categories_used, _sorted_codes

    rng = np.random.default_rng(5)
    cats = ["d", "b", "c", "a", "e"]
    values = rng.choice(cats[:4] if case == "unused level" else cats, 300).astype(object)
    if case == "missing":
        values[::7] = None
    col = pd.Series(pd.Categorical(values, categories=cats, ordered=ordered))
    codes, uniques = _sorted_codes(col)
    want_codes, want_uniques = pd.factorize(col, sort=True)
    np.testing.assert_array_equal(codes, want_codes)
    assert codes.dtype == want_codes.dtype
    assert list(uniques) == list(want_uniques)
    assert _all_categories_used(col) == (case != "unused level")
