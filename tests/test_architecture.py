"""The package's layering, as data: which stage may import which (docs/architecture.md).

Every module under ``src/analysis`` is parsed (not imported) and each ``import`` /
``from ... import`` of an ``analysis`` module, at any depth (including imports inside functions),
is checked against ``MAY_IMPORT``. Also: no module over 450 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "analysis"

FOUNDATIONS = {"config", "errors", "results"}
# stage -> stages (and foundations) its modules may import; a stage may always import itself.
MAY_IMPORT = {
    "foundation": {"foundation"},
    "intake": {"foundation"},
    "models": {"errors"},
    "endpoints": {"foundation", "intake", "models"},
    "audit": {"foundation", "intake", "models", "endpoints"},
    "report": {"foundation", "intake", "models", "endpoints", "audit"},
    "run": {"foundation", "intake", "models", "endpoints", "audit", "report"},
    "studies": {"foundation", "intake", "models", "endpoints", "audit", "report", "run"},
}
# the single module outside studies that may import studies (``outcomes simulate``)
MAY_IMPORT_STUDIES = {"analysis.run.cli"}
MAX_LINES = 450


def stage_of(module: str) -> str | None:
    """'analysis.models.lmm' -> 'models'; 'analysis.config' -> 'foundation'."""
    parts = module.split(".")
    if parts[0] != "analysis" or len(parts) < 2:
        return None
    if parts[1] in FOUNDATIONS:
        return "foundation"
    if parts[1] in MAY_IMPORT:
        return parts[1]
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every analysis module a file imports, with the line, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from analysis.report import figures` imports analysis.report.figures
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names
                      if (SRC / Path(*f"{target}.{a.name}".split("."))).with_suffix(".py").exists()]
    return [(line, mod) for line, mod in found if mod.split(".")[0] == "analysis"]


def violations(root: Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path)
        stage = stage_of(name)
        if stage is None:
            continue  # analysis/__init__.py
        for line, target in imported_modules(path):
            other = stage_of(target)
            if other is None or other == stage:
                continue
            if other == "studies" and name in MAY_IMPORT_STUDIES:
                continue
            if target in {"analysis.errors"} and "errors" in MAY_IMPORT[stage]:
                continue
            if other not in MAY_IMPORT[stage]:
                out.append(f"{path.relative_to(SRC)}:{line}: {stage} must not import {target}")
    return out


def test_every_module_belongs_to_a_stage():
    loose = [str(p.relative_to(SRC)) for p in PACKAGE.rglob("*.py")
             if stage_of(module_name(p)) is None and p != PACKAGE / "__init__.py"]
    assert loose == []


def test_no_stage_imports_one_it_must_not():
    assert violations() == []


def test_the_rule_catches_a_forbidden_import(tmp_path):
    # a copy of the models package with one upward import added must be caught
    fake = tmp_path / "src" / "analysis" / "models"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("def f():\n    from analysis.endpoints.pain import fit_pain_model\n")
    global SRC
    saved = SRC
    SRC = tmp_path / "src"
    try:
        found = violations(SRC / "analysis")
    finally:
        SRC = saved
    assert found == ["analysis/models/bad.py:2: models must not import analysis.endpoints.pain"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_over_450_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_each_subpackage_says_what_it_owns_and_may_import():
    for stage in MAY_IMPORT:
        if stage == "foundation":
            continue
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text())) or ""
        words = " ".join(doc.lower().split())
        assert "owns" in words and "may import" in words and "must not" in words, stage
