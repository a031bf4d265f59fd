"""Reading a run config: YAML safely loaded, validated, errors named by key, paths resolved."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from analysis.config.run import RunConfig
from analysis.errors import ConfigError


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key {where!r}")
        elif err["type"] == "missing":
            lines.append(f"{source}: missing required key {where!r}")
        else:
            lines.append(f"{source}: {where}: {err['msg']}")
    return "\n".join(lines)


def parse_config(raw: dict, source: str = "config", base: Path | None = None) -> RunConfig:
    """Validate a mapping (already loaded from YAML) into a :class:`RunConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a run config must be a YAML mapping of keys to values")
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    return cfg.with_base(base) if base is not None else cfg


def load_yaml(path: str | Path) -> object:
    """Load YAML safely (no Python object tags), naming the file and position on error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config file; relative paths resolve against its folder."""
    path = Path(path)
    return parse_config(load_yaml(path), source=str(path), base=path.parent)
