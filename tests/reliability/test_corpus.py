"""The hostile corpus (generate_hostile.py) and three decompression bombs, each through the CLI.

All corpus cases run in one child process under a 6 GB address-space limit with a 120 s hang
guard per case (generous, for a loaded 2-core machine; the figures in docs/reliability.md are what
the cases take). Each bomb runs in a child of its own, so its peak memory is its own, under a
4 GB limit, and must stay below 1 GB. For every case: exit code, message fragments (file, line,
column or key), no traceback, inputs byte-identical, nothing written outside the ``out`` folder,
no secret in stderr or in any file written.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generate_hostile import cases
from bombs import parquet_bomb, xlsx_bomb

HERE = Path(__file__).parent
CASES = cases()
CHILD_MEMORY_MB, BOMB_MEMORY_MB, HANG_SECONDS = 6000, 4000, 120


def _argv(case, folder: Path) -> list[str]:
    config = str(folder / "in" / "run.yaml")
    out = os.path.abspath(folder / case.out)  # not resolve(): an --out that is a link stays one
    if case.command == "validate":
        return ["validate", "--config", config, "--out", out]
    return ["run", "--quiet", "--config", config, "--out", out]


def _snapshot(folder: Path, skip_out: bool) -> dict:
    found = {}
    for current, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(current) / name
            rel = path.relative_to(folder).as_posix()
            if skip_out and (rel == "out" or rel.startswith("out/")):
                continue
            if path.is_symlink():
                found[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                found[rel] = path.read_bytes()
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = "special"
    return found


def _run_child(specs: list[dict], tmp: Path, memory_mb: int) -> dict:
    (tmp / "cases.json").write_text(json.dumps(specs))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, str(HERE / "corpus_child.py"), str(tmp / "cases.json"),
                    str(tmp / "results.json"), str(memory_mb), str(HANG_SECONDS)],
                   check=True, env=env, timeout=HANG_SECONDS * (len(specs) + 2))
    return {r["name"]: r for r in json.loads((tmp / "results.json").read_text())}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    specs, before = [], {}
    for case in CASES:
        folder = root / case.name
        case.write(folder)
        before[case.name] = (_snapshot(folder, skip_out=False), _snapshot(folder, skip_out=True))
        specs.append({"name": case.name, "argv": _argv(case, folder), "cwd": str(folder)})
    return root, before, _run_child(specs, root, CHILD_MEMORY_MB)


def test_the_corpus_has_at_least_80_cases_in_every_class():
    groups = {c.group for c in CASES}
    assert len(CASES) >= 80 and len({c.name for c in CASES}) == len(CASES)
    assert groups == {"folder", "bounded", "config", "identifier", "disclosure", "loss", "accepted"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case(corpus, case):
    root, before, results = corpus
    folder = root / case.name
    result = results[case.name]
    err = result["stderr"]
    assert result["crash"] is None, result["crash"]
    assert "Traceback" not in err
    assert result["code"] == case.exit_code, err
    said = err + result["stdout"]
    for fragment in case.expect:
        assert fragment in said, f"{fragment!r} not in: {said}"
    whole, outside = before[case.name]
    refused_folder = case.group == "folder" and "line" not in " ".join(case.expect)
    if refused_folder:  # the target is not touched at all, links and user files included
        assert _snapshot(folder, skip_out=False) == whole
    else:
        assert _snapshot(folder, skip_out=True) == outside  # inputs identical, nothing beside out/
    written = [p for p in (folder / "out").rglob("*") if p.is_file()] if (folder / "out").is_dir() else []
    if case.report_checks:
        report = (folder / "out" / "validation_report.csv").read_text()
        assert all(check in report for check in case.report_checks), report
    for secret in case.secrets:
        assert secret not in said
        for path in written:
            assert secret not in path.read_text(errors="ignore"), path


BOMBS = [
    ("parquet_10gb_decoded", lambda p: parquet_bomb(p / "log.parquet"), "when decoded"),
    ("parquet_10m_rows", lambda p: parquet_bomb(p / "log.parquet", rows=10_000_000, width=1000),
     "more than 5,000,000 rows"),
    ("xlsx_10gb_sheet", lambda p: xlsx_bomb(p / "log.xlsx"), "when decompressed"),
]


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bombs")
    results = {}
    for name, build, _ in BOMBS:
        folder = root / name
        folder.mkdir()
        log = build(folder)
        (folder / "run.yaml").write_text(f"name: t\ndata: {log.name}\n")
        spec = {"name": name, "cwd": str(folder),
                "argv": ["validate", "--config", str(folder / "run.yaml"), "--out", str(folder / "out")]}
        results.update(_run_child([spec], folder, BOMB_MEMORY_MB))
    return results


@pytest.mark.parametrize("name, build, message", BOMBS, ids=[b[0] for b in BOMBS])
def test_bomb_is_refused_within_1_gb(bombs, name, build, message):
    result = bombs[name]
    assert result["crash"] is None, result["crash"]
    assert result["code"] == 2 and message in result["stderr"], result["stderr"]
    assert result["max_rss_mb"] < 1024, result
