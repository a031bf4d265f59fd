"""Safe run folders (analysis.run.folder): a run never deletes or overwrites what it did not write.

Each case runs ``outcomes run`` on a log that fails validation, so the runner goes through its whole
folder logic (staging, marker, commit) in well under a second. The user's files are snapshotted byte
for byte before and compared after.
"""

import json
import os
from pathlib import Path

import pytest

from analysis.run.cli import main
from analysis.run.folder import MARKER
from analysis.run.runner import run_suite

ROOT = Path(__file__).resolve().parents[2]
HEADER = "patient_id,visit_date,intervention,pain_score"


def _inputs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.csv").write_text(f"{HEADER}\nP1,2024-01-01,usual_care,5\nP1,2024-01-08,usual_care,12\n")
    (folder / "notes.txt").write_text("my own notes, not the suite's\n")
    config = folder / "run.yaml"
    config.write_text("name: t\ndata: log.csv\n")
    return config


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def _run(config: Path, out: Path, capsys) -> tuple[int, str]:
    code = main(["run", "--quiet", "--config", str(config), "--out", str(out)])
    return code, capsys.readouterr().err


def test_out_at_the_inputs_folder_is_refused_and_every_user_file_is_byte_identical(tmp_path, capsys):
    config = _inputs(tmp_path / "in")
    before = _snapshot(tmp_path)
    code, err = _run(config, tmp_path / "in", capsys)
    assert code == 2 and "contains the log" in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no staging folder left behind


@pytest.mark.parametrize("where, what", [("parent", "the log"), ("root", "the project root")])
def test_out_above_the_inputs_or_at_the_project_root_is_refused(tmp_path, capsys, where, what):
    config = _inputs(tmp_path / "in")
    out = tmp_path if where == "parent" else ROOT
    before = _snapshot(tmp_path)
    code, err = _run(config, out, capsys)
    assert code == 2 and what in err
    assert _snapshot(tmp_path) == before


def test_config_in_the_out_folder_is_refused(tmp_path, capsys):
    _inputs(tmp_path / "in")
    (tmp_path / "run").mkdir()
    moved = tmp_path / "run" / "run.yaml"
    moved.write_text(f"name: t\ndata: {tmp_path / 'in' / 'log.csv'}\n")
    code, err = _run(moved, tmp_path / "run", capsys)
    assert code == 2 and "contains the config" in err and moved.exists()


def test_folder_with_a_file_the_suite_did_not_write_is_refused_naming_it(tmp_path, capsys):
    config = _inputs(tmp_path / "in")
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.docx").write_bytes(b"precious")
    code, err = _run(config, out, capsys)
    assert code == 2 and "chapter1.docx" in err
    assert (out / "chapter1.docx").read_bytes() == b"precious" and len(list(out.iterdir())) == 1


def test_a_run_folder_is_replaced_only_when_it_holds_nothing_but_its_own_files(tmp_path, capsys):
    config = _inputs(tmp_path / "in")
    out = tmp_path / "run"
    assert _run(config, out, capsys)[0] == 2  # refused run: report + marker
    marker = json.loads((out / MARKER).read_text())
    assert marker["files"] == [MARKER, "validation_report.csv"]
    assert _run(config, out, capsys)[0] == 2  # replaced: ours
    (out / "added.txt").write_text("user's")
    code, err = _run(config, out, capsys)
    assert code == 2 and "added.txt" in err and (out / "added.txt").read_text() == "user's"


def test_a_symlink_inside_an_old_run_folder_is_never_followed(tmp_path, capsys):
    config = _inputs(tmp_path / "in")
    out = tmp_path / "run"
    _run(config, out, capsys)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("outside the run folder")
    (out / "validation_report.csv").unlink()
    os.symlink(outside, out / "validation_report.csv")  # the file the run writes, now a link
    code, err = _run(config, out, capsys)
    assert code == 2 and "link" in err
    assert outside.read_text() == "outside the run folder"
    assert (out / "validation_report.csv").is_symlink()


def test_out_that_is_a_symlink_or_a_file_is_refused(tmp_path, capsys):
    config = _inputs(tmp_path / "in")
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    code, err = _run(config, tmp_path / "link", capsys)
    assert code == 2 and "symbolic link" in err and not list((tmp_path / "real").iterdir())
    (tmp_path / "afile").write_text("x")
    code, err = _run(config, tmp_path / "afile", capsys)
    assert code == 2 and "is a file" in err and (tmp_path / "afile").read_text() == "x"


def test_an_interrupted_run_leaves_the_old_folder_untouched_and_no_staging(tmp_path, capsys, monkeypatch):
    config = _inputs(tmp_path / "in")
    out = tmp_path / "run"
    _run(config, out, capsys)
    before = _snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("analysis.intake.validate.validate_log", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_suite(config, out=out, progress=False)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "run"]
