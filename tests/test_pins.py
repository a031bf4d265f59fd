"""Pins live in pyproject.toml; environment.yml must list the same packages at the same versions."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # the bench extra holds make bench's PyPI-only peers (not on conda-forge, never imported by
    # the suite): pinned in pyproject, installed by `make bench` with pip, absent from environment.yml
    specs = project["dependencies"] + [d for name, deps in project["optional-dependencies"].items()
                                       if name != "bench" for d in deps]
    pins = {}
    for spec in specs:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9.]*)", spec)
        assert match, f"pyproject dependency {spec!r} is not pinned as name==version"
        pins[match[1].lower()] = match[2]
    return pins


def _environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            continue
        name, _, version = dep.partition("=")
        if name in ("python", "pip"):
            continue
        pins[name.lower()] = version
    return pins


def test_bench_extra_is_pinned():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["bench"]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*", spec) for spec in extra)


def test_environment_matches_pyproject():
    assert _environment_pins() == _pyproject_pins()


def test_environment_ends_with_editable_install():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["dependencies"][-1] == {"pip": ["-e ."]}
