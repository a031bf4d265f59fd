"""Exceptions the command line turns into clear messages and exit code 2 (never a traceback)."""

from __future__ import annotations


class OutcomesError(Exception):
    """Base class: a problem with the user's input, config or data, not a bug."""

    exit_code = 2


class ConfigError(OutcomesError):
    """The run config (or claims file) is invalid; the message names the key and the file."""


class InputError(OutcomesError):
    """A log cannot be read at all (missing file, undecodable bytes, empty file, ...).

    Parameters
    ----------
    message : str
        What is wrong, in words.
    path : str, optional
        The file.
    line, column : optional
        Where, as a person counts lines in the file (1 = header line).
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 column: str | None = None):
        self.path, self.line, self.column = path, line, column
        where = ", ".join(
            part for part in (
                str(path) if path else None,
                f"line {line}" if line is not None else None,
                f"column {column!r}" if column else None,
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class ValidationFailed(OutcomesError):
    """The log broke the data contract; ``report`` holds every failure (one row each)."""

    def __init__(self, report, path: str | None = None):
        self.report = report
        n = len(report)
        super().__init__(f"{path or 'log'}: {n} validation failure{'s' if n != 1 else ''}")

    def summary(self, limit: int = 50) -> str:
        """One line per failure (line, column, check, message, value), at most ``limit``."""
        out = []
        for row in self.report.head(limit).itertuples(index=False):
            where = f"line {row.line}" + (f", column {row.column!r}" if row.column else "")
            value = f" [value: {row.value!r}]" if row.value != "" else ""
            out.append(f"  {where}: {row.check}: {row.message}{value}")
        if len(self.report) > limit:
            out.append(f"  ... and {len(self.report) - limit} more (see the report file)")
        return "".join(line + "\n" for line in out)


class IdentifierError(OutcomesError):
    """The log carries direct identifiers; ``findings`` lists column, kind and first lines."""

    def __init__(self, findings, path: str | None = None):
        self.findings = findings
        cols = ", ".join(repr(f["column"]) for f in findings)
        super().__init__(
            f"{path or 'log'}: refused, direct identifiers in column(s) {cols}. "
            "Remove them with `drop:` in the run config; values are not shown."
        )

    def summary(self, limit: int = 50) -> str:
        """One line per finding: column, kind, how it was found, first lines; never values."""
        out = []
        for f in self.findings[:limit]:
            lines = ", ".join(map(str, f.get("lines", [])))
            out.append(f"  column {f['column']!r}: {f['kind'].replace('_', ' ')} "
                       f"(found by {f.get('basis', 'content')}; lines {lines})")
        if len(self.findings) > limit:
            out.append(f"  ... and {len(self.findings) - limit} more")
        return "".join(line + "\n" for line in out)
