"""``outcomes verify DIR``: prove a run folder's numbers come from its recorded inputs and config.

Steps: (1) every recorded input (log, config, claims) must still hash to the SHA-256 in
``manifest.json``; (2) when they do, the suite is rerun from the config recorded in the manifest into a
temporary folder; (3) the new ``results.json`` is compared with the recorded one, value by value. Exit code 0
when the inputs are unchanged and the results identical; 1 otherwise, listing what differs.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from analysis.errors import OutcomesError
from analysis.run.manifest import sha256_of


@dataclass
class VerifyReport:
    input_problems: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    rerun_status: str | None = None

    @property
    def ok(self) -> bool:
        return not self.input_problems and not self.differences and self.rerun_status == "succeeded"

    def text(self) -> str:
        lines = [f"input changed: {p}" for p in self.input_problems]
        if self.rerun_status and self.rerun_status != "succeeded":
            lines.append(f"rerun {self.rerun_status}")
        lines += [f"differs: {d}" for d in self.differences[:50]]
        if len(self.differences) > 50:
            lines.append(f"... and {len(self.differences) - 50} more differences")
        return "\n".join(lines) if lines else "verified: inputs unchanged, results.json identical"


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
        path = Path(item["path"])
        if not path.exists():
            report.input_problems.append(f"{item['role']} {path}: missing")
        elif sha256_of(path) != item["sha256"]:
            report.input_problems.append(
                f"{item['role']} {path}: sha256 {item['sha256'][:12]}… recorded, {sha256_of(path)[:12]}… now")
    if not rerun or report.input_problems:
        # Changed inputs already fail verification; a rerun on other data would prove nothing.
        return report
    recorded = run_dir / "results.json"
    if not recorded.exists():
        raise OutcomesError(f"{run_dir}: no results.json (the run's status is {manifest['status']!r})")
    with tempfile.TemporaryDirectory(prefix="outcomes-verify-") as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(yaml.safe_dump(manifest["config"], sort_keys=True))
        outcome = run_suite(config_path, out=Path(tmp) / "run", progress=False)
        report.rerun_status = outcome.status
        new_path = Path(tmp) / "run" / "results.json"
        if new_path.exists():
            report.differences = diff_results(json.loads(recorded.read_text()),
                                              json.loads(new_path.read_text()))
        else:
            report.differences = [f"rerun wrote no results.json ({outcome.error})"]
    return report
