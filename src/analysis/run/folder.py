"""Safe run folders: a run writes only inside its own folder and never deletes what it did not write.

Rules, in the order :func:`check_target` applies them (each refusal is exit code 2, naming the path):

1. ``--out`` may not be a symbolic link, a file, or a folder that is or contains the log, the
   config, the claims file or the project root;
2. an existing, non-empty ``--out`` is replaced only when the suite made it: it carries the marker
   file :data:`MARKER` listing every file the run wrote (or, for folders made before the marker
   existed, a ``manifest.json`` whose ``outputs`` list every file present, or nothing but
   ``validation_report.csv``), and it holds nothing else — no other file, no symbolic link;
3. a run writes into a fresh staging folder beside the target (``.<name>.partial-*``, created by
   ``mkdtemp``, so no link can be in it) and :func:`commit` moves it into place with ``rename``:
   the old folder (checked again) is renamed aside, the new one renamed in, the old one removed;
   an interrupted run removes its staging folder and leaves the old run folder untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from analysis.errors import OutcomesError

#: Marker file a run folder carries: the suite's name and every file the run wrote.
MARKER = ".outcomes-run.json"
_LEGACY_ONLY = {"validation_report.csv"}


def _absolute(path: Path) -> Path:
    """Absolute path with the parent's links resolved but not the last component's."""
    path = Path(os.path.abspath(path))
    return path.parent.resolve() / path.name


def _files_in(folder: Path) -> tuple[list[str], list[str]]:
    """Relative paths of the regular files and of the symbolic links (or special files) in a folder."""
    files, others = [], []
    for current, dirs, names in os.walk(folder, followlinks=False):
        here = Path(current)
        for name in dirs:
            if (here / name).is_symlink():
                others.append(str((here / name).relative_to(folder)))
        for name in names:
            item = here / name
            rel = str(item.relative_to(folder))
            (files if item.is_file() and not item.is_symlink() else others).append(rel)
    return sorted(files), sorted(others)


def _made_by_suite(folder: Path) -> set[str] | None:
    """The files the suite recorded for ``folder``, or None if no record says the suite made it."""
    marker = folder / MARKER
    if marker.is_file() and not marker.is_symlink():
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
            return set(record["files"]) | {MARKER}
        except (ValueError, KeyError, TypeError, OSError):
            return None
    manifest = folder / "manifest.json"
    if manifest.is_file() and not manifest.is_symlink():
        try:
            return set(json.loads(manifest.read_text(encoding="utf-8"))["outputs"]) | {"manifest.json"}
        except (ValueError, KeyError, TypeError, OSError):
            return None
    return set(_LEGACY_ONLY)


def check_target(target: Path, protected: dict[str, Path]) -> Path:
    """Refuse a run folder the run may not replace; return it as an absolute path.

    Parameters
    ----------
    target : Path
        The ``--out`` folder.
    protected : dict
        What may never be inside it: ``{"the log": path, "the config": path, ...}``.

    Raises
    ------
    OutcomesError
        Naming the target and the file that makes it unsafe.
    """
    target = _absolute(target)
    if target.is_symlink():
        raise OutcomesError(f"--out {target}: is a symbolic link; give the run folder itself")
    if target.exists() and not target.is_dir():
        raise OutcomesError(f"--out {target}: is a file, not a folder; choose another --out")
    for what, path in protected.items():
        if path is None:
            continue
        inside = Path(os.path.abspath(path)).resolve()
        if inside == target.resolve() or target.resolve() in inside.parents:
            raise OutcomesError(f"--out {target}: contains {what} ({inside}); a run folder replaces "
                                "everything in it, so choose a new folder such as reports/<name>")
    if target.is_dir():
        files, others = _files_in(target)
        if others:
            raise OutcomesError(f"--out {target}: holds {others[0]!r}, a link or special file the "
                                "suite did not write; choose another --out")
        ours = _made_by_suite(target)
        foreign = [f for f in files if ours is None or f not in ours]
        if foreign:
            raise OutcomesError(f"--out {target}: holds {foreign[0]!r}, which no run of the suite "
                                f"wrote ({len(foreign)} such file(s)); it is not replaced. Choose "
                                "another --out or move the files away")
    return target


def new_staging(target: Path) -> Path:
    """A fresh, empty folder beside ``target`` for the run to write into."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))


def write_marker(staging: Path) -> None:
    """Record every file the run wrote (the marker lists itself too)."""
    files, _ = _files_in(staging)
    record = {"suite": "clinic-outcomes", "files": sorted(set(files) | {MARKER})}
    (staging / MARKER).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def commit(staging: Path, target: Path, protected: dict[str, Path]) -> None:
    """Move the staging folder into place; the old run folder is checked again, then removed."""
    write_marker(staging)
    old = None
    if target.exists() or target.is_symlink():
        check_target(target, protected)
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, old / "run")
    os.rename(staging, target)
    if old is not None:
        shutil.rmtree(old)


def discard(staging: Path) -> None:
    """Remove an unfinished staging folder (it holds only what this run wrote)."""
    shutil.rmtree(staging, ignore_errors=True)
