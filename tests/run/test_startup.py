"""analysis.run.startup: the `outcomes` process imports jsonschema without compiling the IRI
grammars of rfc3987_syntax, and still validates the notebooks it writes; a process that imported
rfc3987_syntax first, or the library imported on its own, keeps jsonschema as it is."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.run import cli, startup

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("rfc3987_syntax") is None,
                                reason="rfc3987_syntax is not installed: nothing to skip")


def _in_fresh_python(code: str) -> dict:
    """Run ``code`` in a new interpreter (this one has imported jsonschema already); it prints
    one JSON line as its last."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


STATE = '''
import json, os, sys, jsonschema, nbformat
checks = sorted(jsonschema.FormatChecker().checkers)
good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
bad.cells[0]["cell_type"] = "no such type"
refused = {}
for validator in ("fastjsonschema", "jsonschema"):  # nbformat reads its choice at every call
    os.environ["NBFORMAT_VALIDATOR"] = validator
    nbformat.validate(good)
    try:
        nbformat.validate(bad)
        refused[validator] = False
    except nbformat.ValidationError:
        refused[validator] = True
print(json.dumps({"skipped": skipped, "grammar_imported": "rfc3987_syntax" in sys.modules,
                  "iri": "iri" in checks, "iri-reference": "iri-reference" in checks,
                  "uri": "uri" in checks, "refused": refused,
                  "left_blocked": "rfc3987_syntax" in sys.modules and sys.modules["rfc3987_syntax"] is None}))
'''


def test_the_outcomes_process_skips_the_iri_grammars_and_still_validates_notebooks():
    found = _in_fresh_python("from analysis.run.startup import skip_iri_grammar\n"
                             "skipped = skip_iri_grammar()\n" + STATE)
    assert found["skipped"] is True
    assert found["grammar_imported"] is False
    assert found["iri"] is False and found["iri-reference"] is False  # what it changes, documented
    assert found["uri"] is True  # and nothing else
    assert found["refused"] == {"fastjsonschema": True, "jsonschema": True}
    assert found["left_blocked"] is False  # rfc3987_syntax may be imported later if wanted


def test_a_process_that_imported_the_grammar_first_is_left_alone():
    found = _in_fresh_python("import rfc3987_syntax\nfrom analysis.run.startup import skip_iri_grammar\n"
                             "skipped = skip_iri_grammar()\n" + STATE)
    assert found["skipped"] is False
    assert found["grammar_imported"] is True and found["iri"] is True


def test_importing_the_library_and_its_runner_changes_nothing():
    found = _in_fresh_python("import analysis, analysis.run.runner, analysis.run.cli\nskipped = None\n"
                             + STATE)
    assert found["grammar_imported"] is True and found["iri"] is True


def test_outcomes_run_and_verify_skip_the_grammars_before_the_suite_runs(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(startup, "skip_iri_grammar", lambda: calls.append("skip"))

    class Outcome:
        status, exit_code, error, run_dir = "succeeded", 0, None, tmp_path

    def run_suite(*args, **kwargs):
        calls.append("run")
        return Outcome()

    monkeypatch.setattr("analysis.run.runner.run_suite", run_suite)
    assert cli.main(["run", "--config", "config/demo.yaml", "--quiet"]) == 0
    assert calls == ["skip", "run"]

    class Report:
        ok = True

        def text(self):
            return ""

    calls.clear()
    monkeypatch.setattr("analysis.run.verify.verify_run",
                        lambda *a, **k: calls.append("verify") or Report())
    assert cli.main(["verify", str(tmp_path)]) == 0
    assert calls == ["skip", "verify"]


def test_a_run_after_the_skip_imports_no_grammar_and_writes_valid_notebooks(tmp_path):
    found = _in_fresh_python(f'''
import json, sys
from pathlib import Path
from analysis.run.startup import skip_iri_grammar
skip_iri_grammar()
import nbformat
from analysis.run.runner import notebook_sources, run_suite
sources = [s for s in notebook_sources() if s.name.startswith(("01", "09"))]
outcome = run_suite("config/demo.yaml", out="{tmp_path / 'run'}", progress=False, notebooks=sources, workers=1)
written = sorted(Path("{tmp_path / 'run'}", "notebooks").glob("*.ipynb"))
for path in written:
    nbformat.validate(nbformat.read(path, as_version=4))
print(json.dumps({{"status": outcome.status, "grammar_imported": "rfc3987_syntax" in sys.modules,
                  "notebooks": [p.stem for p in written]}}))
''')
    assert found == {"status": "succeeded", "grammar_imported": False,
                     "notebooks": ["01_validate", "09_summary"]}
