"""analysis.models.formulas: the formula safety check, readable term names, the mixed-model design."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.errors import ConfigError
from analysis.models.formulas import DesignProblem, build_mixed_design, check_formula, readable_term

COLUMNS = ["pain_score", "week", "arm", "strength", "foot_posture_index", "sex", "patient_id"]


@pytest.mark.parametrize("formula, used", [
    ("pain_score ~ week * C(arm, Treatment(reference='usual_care'))", {"pain_score", "week", "arm"}),
    ('pain_score ~ week * C(arm, Treatment(reference="usual care"))', {"pain_score", "week", "arm"}),
    ("log(strength) ~ week + I(week ** 2) + center(foot_posture_index)", {"strength", "week", "foot_posture_index"}),
    ("pain_score ~ (week + arm) ** 2 - 1 + sqrt(foot_posture_index) / sex", None),
    ("~ week", {"week"}),
    ("pain_score ~ standardize(week) + C(sex, Treatment) + exp(0.5 * week)", None),
])
def test_allowed_formulas_pass_and_report_columns(formula, used):
    got = check_formula(formula, COLUMNS)
    if used is not None:
        assert got == used


@pytest.mark.parametrize("formula, token", [
    ("pain_score ~ __import__('os').system('echo hi')", "__import__"),
    ("pain_score ~ week + np.log(strength)", "np"),
    ("pain_score ~ week.real", "."),
    ("pain_score ~ eval('1')", "eval"),
    ("pain_score ~ week + 'usual_care'", "'usual_care'"),
    ("pain_score ~ C(arm, Treatment(reference=f'{__import__(\"os\")}'))", "f'{__import__(\"os\")}'"),
    ("pain_score ~ C(arm, Treatment('usual_care'))", "'usual_care'"),
    ("pain_score ~ week + unknown_column", "unknown_column"),
    ("pain_score ~ week(1)", "week"),
    ("pain_score ~ week; import os", ";"),
    ("pain_score ~ week[0]", "["),
    ("pain_score ~ lambda: 1", "lambda"),
    ("pain_score ~ C(arm, levels=['a'])", "levels"),
    ("pain_score ~ week # comment", "# comment"),
])
def test_unsafe_formulas_are_refused_naming_the_token(formula, token):
    with pytest.raises(ConfigError) as exc:
        check_formula(formula, COLUMNS)
    assert repr(token) in str(exc.value)


def test_unbalanced_and_empty_formulas_are_config_errors():
    for bad in ["pain_score ~ (week", "pain_score ~ week)", "", "   "]:
        with pytest.raises(ConfigError):
            check_formula(bad, COLUMNS)


@pytest.mark.parametrize("raw, readable", [
    ("Intercept", "(Intercept)"),
    ("C(arm, Treatment(reference='usual_care'))[T.orthotics]", "arm[orthotics]"),
    ("week:C(arm, Treatment(reference='usual_care'))[T.deep_tissue_massage]", "week:arm[deep_tissue_massage]"),
    ("C(overpronated)[T.1]", "overpronated[1]"),
    ("sex[T.M]", "sex[M]"),
    ("foot_posture_index", "foot_posture_index"),
])
def test_readable_term_names(raw, readable):
    assert readable_term(raw) == readable


def _frame():
    rng = np.random.default_rng(3)
    n = 30
    df = pd.DataFrame({"patient_id": np.repeat(np.arange(10), 3), "week": np.tile([0.0, 4.0, 8.0], 10),
                       "arm": np.repeat(["a", "b"], 15), "pain_score": rng.normal(5, 1, n),
                       "foot_posture_index": rng.normal(3, 2, n)})
    return df


def test_design_drops_aliased_columns_as_lme4_and_keeps_complete_rows():
    df = _frame()
    df["fpi_twice"] = 2 * df["foot_posture_index"]
    df.loc[0, "pain_score"] = np.nan
    d = build_mixed_design(df, "pain_score ~ week + foot_posture_index + fpi_twice", "patient_id")
    assert d.dropped == ["fpi_twice"]
    assert d.X.shape == (29, 3) and d.x_names == ["(Intercept)", "week", "foot_posture_index"]
    assert any("rank deficient" in n for n in d.notes) and any("1 of 30 rows" in n for n in d.notes)
    # a linear function touching the aliased column is not estimable; one that avoids it is
    assert not d.estimable(np.array([0, 0, 0, 1.0]))
    assert d.estimable(np.array([1.0, 4, 0, 0]))


def test_design_problems_are_reported_not_raised_as_tracebacks():
    df = _frame()
    with pytest.raises(DesignProblem, match="no rows"):
        build_mixed_design(df.assign(pain_score=np.nan), "pain_score ~ week", "patient_id")
    with pytest.raises(DesignProblem, match="at least 2"):
        build_mixed_design(df[df.patient_id == 0], "pain_score ~ week", "patient_id")
    with pytest.raises(ConfigError, match="not in the data"):
        build_mixed_design(df, "pain_score ~ week", "clinic_id")


@pytest.mark.parametrize("formula", [
    "pain_score ~ week * C(arm, Treatment(reference='usual_care'))",
    "pain_score ~ week * C(arm, Treatment(reference='usual_care')) + foot_posture_index + sex",
    'pain_score ~ week * C(arm, Treatment(reference="orthotics")) + week:sex',
    "pain_score ~ C(arm) + week + flag",
    "pain_score ~ C(week) + arm",
])
@pytest.mark.parametrize("categorical", [False, True])
def test_direct_design_equals_patsy_design(formula, categorical):
    from analysis.models.formulas import fixed_design

    d = pd.read_csv(Path(__file__).resolve().parents[1] / "reference" / "r_clinic_lmm.csv").dropna()
    d["flag"] = d["week"] > 4
    if categorical:
        d["arm"] = pd.Categorical(d["arm"])
    y1, X1, info1 = fixed_design(formula, d, direct=True)
    y2, X2, info2 = fixed_design(formula, d, direct=False)
    assert info1.column_names == info2.column_names
    assert np.array_equal(y1, y2) and np.array_equal(X1, X2)  # the same numbers, bit for bit


@pytest.mark.parametrize("formula", ["pain_score ~ log(week + 1) * arm", "pain_score ~ center(week) + arm",
                                     "log(week + 1) ~ arm"])
def test_formulas_outside_the_direct_class_go_to_patsy(formula):
    from analysis.models.formulas import fixed_design

    d = pd.read_csv(Path(__file__).resolve().parents[1] / "reference" / "r_clinic_lmm.csv").dropna()
    with pytest.raises(ValueError, match="outside the directly built class"):
        fixed_design(formula, d, direct=True)
    _, X, _ = fixed_design(formula, d)
    assert X.shape[0] == len(d) and np.isfinite(X).all()


def test_a_pickled_design_rebuilds_its_design_info():
    import pickle

    d = pd.read_csv(Path(__file__).resolve().parents[1] / "reference" / "r_clinic_lmm.csv")
    design = build_mixed_design(d, "pain_score ~ week * C(arm, Treatment(reference='usual_care'))",
                                "patient_id", "slope")
    back = pickle.loads(pickle.dumps(design))
    grid = pd.DataFrame({"week": [0.0, 4.0], "arm": ["orthotics", "usual_care"]})
    assert back.design_info.column_names == design.design_info.column_names
    assert np.array_equal(back.rows(grid), design.rows(grid)) and np.array_equal(back.X, design.X)
