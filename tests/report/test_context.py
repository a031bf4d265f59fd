"""The run context: deterministic figures, formula-escaped CSVs, relative paths from the project root."""

import hashlib
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from analysis.report.context import escape_formula, project_root, resolve_path, write_csv
from analysis.report.figures import bands_by_arm

ROOT = project_root(Path(__file__).parent)


def _figure_bytes(tmp_path, name):
    table = pd.DataFrame({"arm": ["a", "a", "b", "b"], "week": [0, 4, 0, 4], "mean": [6, 5, 6, 5.5],
                          "conf_low": [5.5, 4.5, 5.5, 5], "conf_high": [6.5, 5.5, 6.5, 6]})
    fig = bands_by_arm(table, "mean", "t", "pain")
    path = tmp_path / f"{name}.svg"
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_figure_same_bytes(tmp_path):
    import analysis.report.context  # noqa: F401 — sets the fixed SVG hash salt

    assert _figure_bytes(tmp_path, "one") == _figure_bytes(tmp_path, "two")


def test_formula_like_cells_are_escaped(tmp_path):
    assert escape_formula("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert escape_formula("@SUM(A1)") == "'@SUM(A1)"
    assert escape_formula("-0.5") == "-0.5"  # a negative number is data
    assert escape_formula("+41 79") == "'+41 79"
    path = write_csv(pd.DataFrame({"clinic": ["=1+1", "C01"], "x": [1.0, 2.0]}), tmp_path / "t.csv")
    assert path.read_text().splitlines()[1].startswith("'=1+1")


def test_relative_paths_resolve_against_the_project_root(tmp_path, monkeypatch):
    root = project_root()
    assert (root / "pyproject.toml").exists()
    monkeypatch.chdir(root / "notebooks")
    assert resolve_path("config/demo.yaml") == root / "config" / "demo.yaml"
    assert resolve_path(tmp_path) == tmp_path


@pytest.mark.parametrize("value, places, shown", [
    (-0.04, 1, "0.0"), (-0.004, 2, "0.00"), (-0.06, 1, "-0.1"), (0.25, 2, "0.25"), (1234.5, 1, "1234.5"),
    (7, 2, "7"), (7.0, 0, "7"), (-0.4, 0, "0"), (float("nan"), 2, "—"), (None, 1, "—"),
    ("withheld", 2, "withheld"), (True, 2, "True"),
])
def test_table_cells_never_show_minus_zero(value, places, shown):
    # docs/wording.md: no "-0.0" anywhere a reader looks, tables included
    from analysis.report.context import display_number

    assert display_number(value, places) == shown


def test_the_visit_table_a_notebook_gets_holds_each_dtype_in_one_block(tmp_path):
    from analysis.report.context import open_run, read_visits

    ctx = open_run(ROOT / "config" / "demo.yaml", tmp_path / "run")
    frame = pd.DataFrame({"patient_id": ["p1", "p1", "p2"], "clinic_id": ["c1", "c1", "c2"],
                          "arm": ["usual_care", "usual_care", "orthotics"], "sex": ["F", "F", "M"],
                          "week": [0.0, 1.0, 0.0], "pain_score": [5.0, 4.0, 6.0]})
    frame.to_parquet(ctx.visits_path, index=False)
    got = ctx.visits()
    dtypes = {str(b.dtype) for b in got._mgr.blocks}  # noqa: SLF001
    assert len(got._mgr.blocks) == len(dtypes) == 3  # object, float64, category  # noqa: SLF001
    expected = read_visits(ctx.visits_path)
    expected["arm"] = pd.Categorical(expected["arm"], categories=list(got["arm"].cat.categories))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_read_visits_is_read_parquet_with_shared_strings(tmp_path):
    from analysis.report.context import read_visits

    frame = pd.DataFrame({"patient_id": ["p1", "p1", "p2", None], "week": [0.0, 1.0, 0.0, 2.0],
                          "visit": pd.Categorical(["V1", "V2", "V1", "V2"], categories=["V1", "V2"],
                                                  ordered=True),
                          "sex": ["F", "F", None, "M"]})
    path = tmp_path / "visits.parquet"
    frame.to_parquet(path, index=False)
    got = read_visits(path)
    pd.testing.assert_frame_equal(got, pd.read_parquet(path), check_exact=True)
    assert got["patient_id"].iloc[0] is got["patient_id"].iloc[1]  # one object per distinct value
    assert got["sex"].iloc[2] is None
