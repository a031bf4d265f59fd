"""Notebooks are thin: markdown, imports, one typed parameters cell, calls into `analysis`."""

import ast
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.py"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_def_or_class(path: Path):
    tree = ast.parse(path.read_text())
    defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                        ast.Lambda))]
    assert not defs, f"{path.name} defines {[getattr(d, 'name', 'lambda') for d in defs]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_typed_parameters_cell(path: Path):
    cells = re.split(r"^# %%", path.read_text(), flags=re.M)
    params = [c for c in cells if 'tags=["parameters"]' in c.splitlines()[0]]
    assert len(params) == 1, f"{path.name}: expected exactly one parameters cell"
    body = [ln for ln in params[0].splitlines()[1:] if ln.strip()]
    assert body, "parameters cell is empty"
    for line in body:
        assert re.fullmatch(r"[a-z_][a-z0-9_]*: (str|int|float|bool) = .+  # .+", line), \
            f"{path.name}: parameter line not in typed one-line form: {line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_imports_only_from_analysis(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] == "analysis", f"{path.name} imports {node.module}"
        elif isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] == "analysis" for a in node.names)
