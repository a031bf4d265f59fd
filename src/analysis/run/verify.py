"""``outcomes verify DIR``: prove a run folder's numbers come from its recorded inputs and config.

Steps: (1) every recorded input (log, config, claims) must still hash to the SHA-256 in
``manifest.json``; (2) every output the manifest lists (each HTML view, table, figure, notebook,
``results.json``) must still hash to its recorded SHA-256, and the folder may hold no file the
manifest does not list: each file that differs, is missing or was added is named; (3) when inputs
and outputs are all unchanged, the suite is rerun from the config recorded in the manifest into a
temporary folder and (4) the new ``results.json`` is compared with the recorded one, value by value.
A folder that already fails (1) or (2) is not rerun: a rerun could not make it pass. Exit code 0
when everything matches; 1 otherwise, listing what differs.

Paths in the manifest are relative to the run folder (absolute paths of older manifests are read
as they are), so a run folder copied together with its inputs verifies on another machine.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from analysis.errors import OutcomesError
from analysis.run.manifest import UNHASHED, sha256_of


@dataclass
class VerifyReport:
    input_problems: list[str] = field(default_factory=list)
    output_problems: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    rerun_status: str | None = None

    @property
    def ok(self) -> bool:
        # rerun_status is None only when no rerun was asked for (``--no-rerun``) or the hashes failed.
        return (not self.input_problems and not self.output_problems and not self.differences
                and self.rerun_status in (None, "succeeded"))

    def text(self) -> str:
        lines = [f"input changed: {p}" for p in self.input_problems]
        lines += [f"output {p}" for p in self.output_problems]
        if self.rerun_status and self.rerun_status != "succeeded":
            lines.append(f"rerun {self.rerun_status}")
        lines += [f"differs: {d}" for d in self.differences[:50]]
        if len(self.differences) > 50:
            lines.append(f"... and {len(self.differences) - 50} more differences")
        if not lines and self.rerun_status is None:
            return "verified: inputs and every output unchanged (not rerun)"
        return "\n".join(lines) if lines else ("verified: inputs and every output unchanged, "
                                               "rerun results.json identical")


def flatten(value, prefix: str = "") -> dict[str, object]:
    """``{"a": [{"b": 1}]}`` → ``{"a[0].b": 1}``: one entry per leaf value."""
    if isinstance(value, dict):
        out = {}
        for key in sorted(value):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out if value else {prefix: []}
    return {prefix: value}


def diff_results(old: dict, new: dict) -> list[str]:
    a, b = flatten(old), flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            diffs.append(f"{key}: {a[key]!r} -> (missing)")
        elif key not in a:
            diffs.append(f"{key}: (missing) -> {b[key]!r}")
        elif a[key] != b[key]:
            diffs.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return diffs


def _recorded_path(text: str, run_dir: Path) -> Path:
    path = Path(text)
    return path if path.is_absolute() else (run_dir / path).resolve()


def check_outputs(run_dir: Path, recorded: dict[str, str]) -> list[str]:
    """One line per output file that differs from, is missing from or was added to the manifest."""
    problems = []
    for rel in sorted(recorded):
        path = run_dir / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.append(f"{rel}: outside the run folder (the manifest was edited)")
        elif path.is_symlink() or not path.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_of(path) != recorded[rel]:
            problems.append(f"{rel}: changed (sha256 {recorded[rel][:12]}… recorded, "
                            f"{sha256_of(path)[:12]}… now)")
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if (path.is_file() or path.is_symlink()) and rel not in recorded and rel not in UNHASHED:
            problems.append(f"{rel}: not in the manifest (added after the run)")
    return problems


def verify_run(run_dir: str | Path, rerun: bool = True) -> VerifyReport:
    """Check a run folder against its manifest; see the module docstring."""
    from analysis.run.runner import run_suite

    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.exists():
        raise OutcomesError(f"{run_dir}: no manifest.json — not a completed run folder")
    manifest = json.loads(manifest_path.read_text())
    report = VerifyReport()
    for item in manifest["inputs"]:
        path = _recorded_path(item["path"], run_dir)
        if not path.is_file():
            report.input_problems.append(f"{item['role']} {item['path']}: missing")
        elif sha256_of(path) != item["sha256"]:
            report.input_problems.append(
                f"{item['role']} {item['path']}: sha256 {item['sha256'][:12]}… recorded, {sha256_of(path)[:12]}… now")
    report.output_problems = check_outputs(run_dir, manifest.get("outputs", {}))
    if not rerun or report.input_problems or report.output_problems:
        # Changed inputs or outputs already fail verification; a rerun would prove nothing more.
        return report
    recorded = run_dir / "results.json"
    if not recorded.exists():
        raise OutcomesError(f"{run_dir}: no results.json (the run's status is {manifest['status']!r})")
    with tempfile.TemporaryDirectory(prefix="outcomes-verify-") as tmp:
        config_path = Path(tmp) / "config.yaml"
        config = dict(manifest["config"])
        for key in ("data", "claims"):
            if config.get(key) is not None:
                config[key] = str(_recorded_path(config[key], run_dir))
        config_path.write_text(yaml.safe_dump(config, sort_keys=True))
        outcome = run_suite(config_path, out=Path(tmp) / "run", progress=False)
        report.rerun_status = outcome.status
        new_path = Path(tmp) / "run" / "results.json"
        if new_path.exists():
            report.differences = diff_results(json.loads(recorded.read_text()),
                                              json.loads(new_path.read_text()))
        else:
            report.differences = [f"rerun wrote no results.json ({outcome.error})"]
    return report
