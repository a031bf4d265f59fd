"""manifest.json: proof of which data, code and settings produced a run's numbers.

Holds the run id, status, UTC start and end, input SHA-256 and row counts, the validated config,
package versions, git commit and dirty flag, seed, captured warnings, the SHA-256 of every output
file, and what disclosure control suppressed. Timestamps live here and only here, so that
results.json stays byte-identical between runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from analysis.config import RunConfig
from analysis.report.context import project_root

MANIFEST_VERSION = "1.0"
PACKAGES = ["clinic-outcomes", "numpy", "pandas", "scipy", "statsmodels", "patsy", "gpboost", "pandera",
            "pydantic", "pyarrow", "matplotlib", "seaborn", "papermill", "nbconvert", "jupytext",
            "ipykernel"]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def git_state(root: Path | None = None) -> dict:
    """The project's git commit and whether the work tree differs from it (None outside git)."""
    root = root or project_root(Path(__file__).parent)

    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


#: Files of a run folder that no output hash covers: the manifest itself and the folder marker.
UNHASHED = ("manifest.json", ".outcomes-run.json")


def output_hashes(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file the run wrote (every view, table, figure, notebook), by relative path."""
    return {
        p.relative_to(run_dir).as_posix(): sha256_of(p)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.relative_to(run_dir).as_posix() not in UNHASHED
    }


def relative_to_run(path: str | Path, target: Path) -> str:
    """``path`` relative to the run folder, so that a manifest carries to another machine."""
    return Path(os.path.relpath(Path(path).resolve(), target.resolve())).as_posix()


def disclosure_suppressions(run_dir: Path) -> list[dict]:
    entries = []
    for path in sorted((run_dir / "logs").glob("disclosure-*.json")):
        log = json.loads(path.read_text())
        section = path.stem.removeprefix("disclosure-")
        entries += [{"section": section, **entry} for entry in log["suppressed"]]
    return entries


def build_manifest(*, run_dir: Path, target: Path | None = None, cfg: RunConfig, config_path: Path, validated, status: str,
                   error: str | None, started: str, finished: str, warnings: list[str],
                   notebooks: list[str], seconds: float) -> dict:
    """Assemble the manifest document (see docs/results-schema.md, section manifest).

    ``run_dir`` is where the files are now (the staging folder), ``target`` where the run folder
    will be; every input path is written relative to ``target``.
    """
    target = target or run_dir
    inputs = [{
        "role": "log", "path": relative_to_run(validated.path, target), "sha256": validated.sha256,
        "rows_read": int(validated.n_rows_read), "rows_used": int(validated.n_rows),
        "patients": int(validated.n_patients),
    }, {"role": "config", "path": relative_to_run(config_path, target),
                  "sha256": sha256_of(config_path)}]
    if cfg.claims is not None and Path(cfg.claims).exists():
        inputs.append({"role": "claims", "path": relative_to_run(cfg.claims, target),
                       "sha256": sha256_of(Path(cfg.claims))})
    config = cfg.model_dump(mode="json")
    config["data"] = relative_to_run(cfg.data, target)
    if cfg.claims is not None:
        config["claims"] = relative_to_run(cfg.claims, target)
    return {
        "manifest_version": MANIFEST_VERSION,
        "run_id": f"{cfg.name}-{started.replace(':', '').replace('-', '')}",
        "status": status,
        "error": error,
        "started_utc": started,
        "finished_utc": finished,
        "seconds": round(seconds, 1),
        "inputs": inputs,
        "config": config,
        "seed": cfg.seed,
        "packages": package_versions(),
        "git": git_state(),
        "notebooks": notebooks,
        "warnings": warnings,
        "disclosure": {"threshold": cfg.disclosure_threshold,
                       "suppressed": disclosure_suppressions(run_dir)},
        "private_files": sorted(str(p.relative_to(run_dir)) for p in (run_dir / "private").rglob("*")
                                if p.is_file()),
        "outputs": output_hashes(run_dir),
    }
