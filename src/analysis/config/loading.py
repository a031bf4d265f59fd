"""Reading a run config: YAML safely loaded, validated, errors named by key, paths resolved.

YAML is read with bounded work (the same loader reads claims files): only a regular file of at
most :data:`MAX_YAML_BYTES` is read (a FIFO, a device such as ``/dev/zero`` or a folder is refused
by name before it is opened), at most :data:`MAX_ALIASES` aliases (``*name``, which merge keys
``<<: *name`` use too) and at most :data:`MAX_DEPTH` levels of nesting are accepted, so an alias
bomb or a deeply nested document is a message, not exhausted memory or a ``RecursionError``.
"""

from __future__ import annotations

import os
import stat
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


#: Largest config or claims file read, in bytes.
MAX_YAML_BYTES = 1_000_000
#: Aliases (``*name``, also under merge keys) a YAML document may use.
MAX_ALIASES = 50
#: Deepest nesting of mappings and sequences a YAML document may have.
MAX_DEPTH = 20
#: Values a YAML document may hold once every alias is expanded (a config has a few hundred).
MAX_EXPANDED_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts aliases and nesting while composing the document."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Bounded(self.peek_event().start_mark,
                               f"more than {MAX_ALIASES} aliases (an alias or merge-key bomb?)")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Bounded(self.peek_event().start_mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(node, sizes: dict, limit: int) -> int:
    """Nodes in ``node`` with every alias expanded; raises _Bounded past ``limit`` or on a cycle."""
    key = id(node)
    if key in sizes:
        if sizes[key] is None:
            raise _Bounded(node.start_mark, "an alias refers to itself (a recursive document)")
        return sizes[key]
    sizes[key] = None
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, sizes, limit) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, sizes, limit) + _expanded_size(v, sizes, limit)
                     for k, v in node.value)
    if total > limit:
        raise _Bounded(node.start_mark, f"more than {limit:,} values once aliases are expanded "
                                        "(an alias or merge-key bomb?)")
    sizes[key] = total
    return total


class _Bounded(Exception):
    def __init__(self, mark, why):
        super().__init__(why)
        self.mark, self.why = mark, why


def read_regular_file(path: Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is a ConfigError.

    The file is checked with ``stat`` before it is opened, so a FIFO (which would block), a device
    (``/dev/zero`` never ends) or a folder is refused by name; the read stops at ``limit + 1`` bytes.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: is not a regular file (a pipe, device or socket); give a {what}")
    if info.st_size > limit:
        raise ConfigError(f"{path}: {info.st_size:,} bytes; a {what} may have at most {limit:,}")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(data) > limit:
        raise ConfigError(f"{path}: more than {limit:,} bytes; a {what} may have at most {limit:,}")
    return data


def load_yaml(path: str | Path) -> object:
    """Load YAML safely and with bounded work (see the module docstring), naming file and position."""
    path = Path(path)
    data = read_regular_file(path, MAX_YAML_BYTES, "YAML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, MAX_EXPANDED_NODES)
        return loader.construct_document(node)
    except _Bounded as exc:
        where = f" line {exc.mark.line + 1}, column {exc.mark.column + 1}" if exc.mark else ""
        raise ConfigError(f"{path}:{where}: refused YAML ({exc.why})") from None
    except RecursionError:
        raise ConfigError(f"{path}: refused YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    finally:
        loader.dispose()


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config file; relative paths resolve against its folder."""
    path = Path(path)
    return parse_config(load_yaml(path), source=str(path), base=path.parent)
