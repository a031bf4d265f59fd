"""Machine-readable results: deterministic JSON from tidy tables (docs/results-schema.md).

Numbers are rounded to 10 significant digits before they are written, so that results.json is byte
for byte the same for the same data and config (the last bits of an optimiser's answer are noise,
not information). NaN and infinities become ``null`` / the strings "inf" and "-inf".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA_VERSION = "1.0"
SIGNIFICANT_DIGITS = 10


def _clean(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, pd.DataFrame):
        return [_clean(r) for r in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return _clean(value.to_dict())
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    if pd.isna(value):
        return None
    return str(value)


def to_jsonable(value):
    """Convert tables, arrays and numpy scalars into plain JSON values, deterministically."""
    return _clean(value)


def dumps(value) -> str:
    """Deterministic JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(to_jsonable(value), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_json(path: Path, value) -> Path:
    """Write ``value`` as deterministic JSON, atomically (temp file then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps(value), encoding="utf-8")
    tmp.replace(path)
    return path


def merge_fragments(fragment_dir: Path) -> dict:
    """Merge the per-notebook fragments ``results/<section>.json`` into one results document.

    A fragment named ``models.pain.json`` lands at ``results["models"]["pain"]``.
    """
    merged: dict = {"schema_version": SCHEMA_VERSION}
    for path in sorted(fragment_dir.glob("*.json")):
        keys = path.stem.split(".")
        node = merged
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = json.loads(path.read_text(encoding="utf-8"))
    return merged
