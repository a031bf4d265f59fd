"""What an ``outcomes`` process does once at its start, before it imports papermill.

papermill imports nbformat, which imports jsonschema, whose format checkers import
``rfc3987_syntax`` when it is installed (jupyterlab's jupyter-events asks for
``jsonschema[format-nongpl]``). ``rfc3987_syntax`` compiles its lark Earley grammars for IRIs at
import: 1.6-2.4 s of CPU on this project's 2-core machine, before the runner can start its kernels,
in every ``outcomes run``. Nothing the runner does uses those checkers: nbformat's notebook schemas
have no ``format`` keyword, and nbformat validates with fastjsonschema (or jsonschema) without a
``FormatChecker``.

:func:`skip_iri_grammar` imports jsonschema and nbformat while ``import rfc3987_syntax`` fails,
then lets that module be imported again. What it changes, in that process only: jsonschema's
``FormatChecker`` has no ``"iri"`` and no ``"iri-reference"`` check (a schema with those formats
is not checked for them, as when ``rfc3987_syntax`` is not installed). Every other check, and
nbformat's validation of each notebook the run writes, is as before.

It is called by the command line (``outcomes run``, ``outcomes demo``, ``outcomes verify``) and by
the benchmark's whole-suite worker (so the bench times what ``outcomes run`` does), never when the
library is imported: a researcher's own process that imports ``analysis`` (or calls
:func:`analysis.run.runner.run_suite`) keeps jsonschema as it is installed.
"""

from __future__ import annotations

import sys

#: The module whose import compiles the IRI grammars.
IRI_GRAMMAR_MODULE = "rfc3987_syntax"


def skip_iri_grammar() -> bool:
    """Import jsonschema and nbformat without ``rfc3987_syntax`` (see the module docstring).

    Does nothing when ``rfc3987_syntax`` or jsonschema is already imported (the process has the
    checkers it has; nothing is undone).

    Returns
    -------
    bool
        True when jsonschema was imported here without the IRI checks.
    """
    if IRI_GRAMMAR_MODULE in sys.modules or "jsonschema" in sys.modules:
        return False
    sys.modules[IRI_GRAMMAR_MODULE] = None  # `import rfc3987_syntax` now raises ImportError
    try:
        import jsonschema  # noqa: F401 — its format checkers are made now, without the IRI ones
        import nbformat  # noqa: F401 — what papermill imports jsonschema for
    finally:
        if IRI_GRAMMAR_MODULE in sys.modules and sys.modules[IRI_GRAMMAR_MODULE] is None:
            del sys.modules[IRI_GRAMMAR_MODULE]
    return True
