"""Wide files read as long rows, at read time, keeping each cell's file line and file column.

A wide export has one row per patient and one column per time point (``pain_30min, pain_4h``;
``FEV1_VIS1 … FEV1_VIS4``). ``reshape:`` (config/mapping.py) names the families of such columns;
:func:`reshape_wide` turns the :class:`~analysis.intake.ingest.RawLog` into one row per patient and
time point, before anything is checked, so that validation sees an ordinary long log.

- Each long row keeps the file line of its wide row; every column that is not a value column is
  carried to each long row unchanged (so the identifier guard still sees every column, and
  ``columns:`` can map the id columns as usual).
- The time point goes into contract column ``time`` (a pattern's ``(?P<time>...)`` group, its
  label read as a number or looked up in ``times:``) or ``visit`` (``(?P<visit>...)``, mapped to
  a time by ``visits:``); the values go into contract column ``into``.
- :class:`Origin` records, for the ``into`` and time columns, which file column each long row's
  cell came from, so that a failure is reported at the file's own line *and* column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis.config import ReshapeOptions
from analysis.errors import ConfigError
from analysis.intake.ingest import RawLog


@dataclass(frozen=True)
class Origin:
    """File column of each long row's cell, for the columns reshaping made (label -> array)."""

    columns: dict[str, np.ndarray]

    def file_column(self, label: str, pos: np.ndarray) -> np.ndarray | None:
        found = self.columns.get(label)
        return None if found is None else found[pos]

    def subset(self, mask: np.ndarray) -> "Origin":
        return Origin({k: v[mask] for k, v in self.columns.items()})


def _family_key(spec: ReshapeOptions, i: int) -> str:
    if spec.patterns:
        return f"reshape.patterns[{i}]"
    return "reshape.value_columns" if spec.value_columns is not None else "reshape.pattern"


def _matches(spec: ReshapeOptions, labels: list[str]):
    """Per family: its kind (time / visit), into, and {label of the time point: file column}."""
    out, taken = [], {}
    for i, family in enumerate(spec.families()):
        key = _family_key(spec, i)
        compiled = re.compile(family.pattern)
        kind = "time" if "time" in compiled.groupindex else "visit"
        found: dict[str, str] = {}
        for column in labels:
            m = compiled.fullmatch(column)
            if m is None:
                continue
            if column in taken:
                raise ConfigError(f"{key}: column {column!r} is also matched by {taken[column]}")
            point = m.group(kind)
            if point in found:
                raise ConfigError(f"{key}: columns {found[point]!r} and {column!r} give the same "
                                  f"{kind} {point!r}")
            found[point] = column
            taken[column] = key
        if not found:
            shown = ", ".join(map(repr, labels[:30])) + (" ..." if len(labels) > 30 else "")
            raise ConfigError(f"{key}: {family.pattern!r} matches no column of the file "
                              f"(its columns: {shown})")
        out.append((key, kind, family, found))
    kinds = {kind for _, kind, _, _ in out}
    if len(kinds) > 1:
        raise ConfigError("reshape: every pattern must use the same group, (?P<time>...) or "
                          "(?P<visit>...)")
    intos = [family.into for _, _, family, _ in out]
    if len(set(intos)) != len(intos):
        raise ConfigError(f"reshape: two families go into the same column ({intos})")
    return out, kinds.pop()


def _time_of(key: str, family, point: str) -> float:
    if family.times is not None:
        if point not in family.times:
            raise ConfigError(f"{key}.times: no entry for {point!r}; give it a time")
        return float(family.times[point])
    try:
        return float(point)
    except ValueError:
        raise ConfigError(f"{key}: the time {point!r} is not a number; give `times: "
                          f"{{{point}: <number>}}`") from None


def reshape_wide(raw: RawLog, spec: ReshapeOptions) -> tuple[RawLog, Origin]:
    """Turn a wide log into long rows (one per wide row and time point, in time order).

    Returns
    -------
    RawLog
        Columns: every non-value column of the file, then ``time`` or ``visit``, then each
        family's ``into``. ``lines`` and ``n_fields`` repeat those of the wide row.
    Origin
        The file column each ``into`` / time cell came from.

    Raises
    ------
    ConfigError
        An id column the file lacks, a pattern matching no column, a time label without a time,
        or an output column the file already has; each naming its key.
    """
    labels = list(raw.labels)
    missing = [c for c in spec.id_columns if c not in labels]
    if missing:
        raise ConfigError(f"reshape.id_columns: {missing} not among the file's columns")
    families, kind = _matches(spec, labels)
    value_columns = {c for _, _, _, found in families for c in found.values()}
    clash = [c for c in spec.id_columns if c in value_columns]
    if clash:
        raise ConfigError(f"reshape.id_columns: {clash} are also value columns of a pattern")
    carried = [c for c in labels if c not in value_columns]
    made = [kind] + [family.into for _, _, family, _ in families]
    clash = [c for c in made if c in carried]
    if clash:
        raise ConfigError(f"reshape: the file already has column(s) {clash}, which reshaping "
                          "would make; drop or rename them (drop:)")
    # Time points in order: by time (time group) or by first appearance in the header (visits).
    points: dict[str, float] = {}
    for key, _, family, found in families:
        for point in found:
            t = _time_of(key, family, point) if kind == "time" else len(points)
            points.setdefault(point, t)
    order = sorted(points, key=lambda p: points[p]) if kind == "time" else list(points)
    n, k = len(raw.cells), len(order)
    wide_pos = np.repeat(np.arange(n), k)
    cells = {c: raw.cells[c].to_numpy(dtype=object)[wide_pos] for c in carried}
    point_text = [_plain(points[p]) if kind == "time" else p for p in order]
    cells[kind] = np.tile(np.array(point_text, dtype=object), n)
    origin = {}
    first_column = {p: next(f[p] for _, _, _, f in families if p in f) for p in order}
    origin[kind] = np.tile(np.array([first_column[p] for p in order], dtype=object), n)
    for _, _, family, found in families:
        block = np.empty((n, k), dtype=object)
        where = np.empty(k, dtype=object)
        for j, p in enumerate(order):
            if p in found:
                block[:, j] = raw.cells[found[p]].to_numpy(dtype=object)
                where[j] = found[p]
            else:
                block[:, j] = ""
                where[j] = first_column[p]
        cells[family.into] = block.reshape(-1)
        origin[family.into] = np.tile(where, n)
    frame = pd.DataFrame(cells, columns=carried + made)
    width = len(carried) + len(made)
    # A short or long wide row stays "bad" (its fault is already reported once, at its line).
    n_fields = np.where(raw.bad_rows, -1, width)
    long = replace(raw, header=carried + made, labels=carried + made, cells=frame,
                   lines=np.repeat(raw.lines, k), n_fields=np.repeat(n_fields, k))
    return long, Origin(origin)


def _plain(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))
