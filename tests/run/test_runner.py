"""The whole suite through papermill on the example log, and the runner's failure semantics."""

import json
import re
import shutil
from pathlib import Path

import pytest

from analysis.run.cli import main
from analysis.run.runner import notebook_sources, run_suite
from analysis.run.verify import verify_run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "data" / "example" / "clinic_log.csv"


def _config(folder: Path, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE, folder / "log.csv")
    lines = ["name: t", "data: log.csv"] + [f"{k}: {v}" for k, v in extra.items()]
    path = folder / "run.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def demo_outcome(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suite")
    config = _config(folder / "in")
    # Two kernels: 02-07 side by side (test_side_by_side_gives_the_same_run_as_one_kernel).
    outcome = run_suite(config, out=folder / "run", progress=False, workers=2)
    assert outcome.status == "succeeded", outcome.error
    return outcome, config


@pytest.fixture(scope="module")
def demo_run(demo_outcome):
    outcome, config = demo_outcome
    return outcome.run_dir, config


def test_suite_writes_every_output(demo_run):
    run_dir, _ = demo_run
    for name in ("index.html", "results.json", "manifest.json", "tables/arms.csv", "private/visits.parquet"):
        assert (run_dir / name).exists(), name
    for source in notebook_sources():
        assert (run_dir / "notebooks" / f"{source.stem}.ipynb").exists()
        owner = (run_dir / "owner" / f"{source.stem}.html").read_text()
        researcher = (run_dir / "researcher" / f"{source.stem}.html").read_text()
        assert "open_run" in researcher and "open_run" not in owner  # code hidden for owners


def test_manifest_records_provenance(demo_run):
    run_dir, config = demo_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["error"] is None
    log = next(i for i in manifest["inputs"] if i["role"] == "log")
    assert log["rows_read"] == sum(1 for _ in EXAMPLE.open()) - 1
    assert re.fullmatch(r"[0-9a-f]{64}", log["sha256"])
    assert manifest["config"]["disclosure_threshold"] == 11
    assert manifest["packages"]["statsmodels"] and manifest["seed"] == 20261121
    assert "results.json" in manifest["outputs"] and "index.html" in manifest["outputs"]
    assert manifest["started_utc"].endswith("Z") and manifest["finished_utc"] >= manifest["started_utc"]
    assert {"commit", "dirty"} <= set(manifest["git"])
    assert any(e["table"] == "k_anonymity" for e in manifest["disclosure"]["suppressed"])


def test_results_json_has_the_documented_sections(demo_run):
    run_dir, _ = demo_run
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema_version"] == "1.0"
    assert results["data"]["n_patients"] == 1200  # data/example/README.md


def test_verify_passes_then_names_an_altered_input(demo_run, capsys):
    run_dir, config = demo_run
    report = verify_run(run_dir)
    assert report.ok, report.text()  # rerun gave a byte-identical results.json
    log = config.parent / "log.csv"
    original = log.read_bytes()
    try:
        lines = original.split(b"\n")
        lines[1] = lines[1][:-1] + (b"M" if lines[1].endswith(b"F") else b"F")  # one patient's sex
        log.write_bytes(b"\n".join(lines))
        assert main(["verify", str(run_dir)]) == 1
        out = capsys.readouterr().out
        assert "input changed: log" in out and "log.csv" in out
    finally:
        log.write_bytes(original)


def test_verify_names_every_edited_page_on_a_copy_in_another_folder(demo_run, tmp_path, capsys):
    run_dir, config = demo_run
    manifest_text = (run_dir / "manifest.json").read_text()
    assert str(run_dir.parent) not in manifest_text  # paths relative to the run folder
    # A copy of the run and its inputs, elsewhere, as an auditor would receive it.
    copy = tmp_path / "audit"
    shutil.copytree(run_dir.parent / "in", copy / "in")
    shutil.copytree(run_dir, copy / "run", symlinks=True)
    assert main(["verify", "--no-rerun", str(copy / "run")]) == 0, capsys.readouterr().out
    capsys.readouterr()
    page = next(p for p in (copy / "run").rglob("*.html") if p.name != "index.html")
    page.write_text(page.read_text().replace("</body>", "<p>supported</p></body>"))
    table = copy / "run" / "tables" / "arms.csv"
    table.write_text(table.read_text() + "\n")
    (copy / "run" / "owner" / "extra.html").write_text("<p>planted</p>")
    assert main(["verify", str(copy / "run")]) == 1  # no rerun: the folder already fails
    out = capsys.readouterr().out
    rel = page.relative_to(copy / "run").as_posix()
    assert f"output {rel}: changed" in out and "output tables/arms.csv: changed" in out
    assert "output owner/extra.html: not in the manifest" in out
    assert "input changed" not in out and "rerun" not in out


#: Files that carry the clock (execution times, cell ids, object addresses, the run id): every other
#: file of a run is the same byte for byte whatever the kernels did.
TIMED = ("notebooks/", "owner/", "researcher/", "audit.html", "private/fits/")


def test_side_by_side_gives_the_same_run_as_one_kernel(demo_outcome):
    parallel, config = demo_outcome
    # Beside the first run, so that the paths the manifest records relative to the run are equal.
    sequential = run_suite(config, out=parallel.run_dir.parent / "run-one-kernel", progress=False,
                           workers=1)
    assert sequential.status == "succeeded", sequential.error
    # one kernel for the nine notebooks; two when 02-07 run side by side (not nine, not more)
    assert (sequential.kernel_starts, parallel.kernel_starts) == (1, 2)
    a, b = parallel.run_dir, sequential.run_dir
    assert (a / "results.json").read_bytes() == (b / "results.json").read_bytes()
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    clock = {"run_id", "started_utc", "finished_utc", "seconds", "outputs"}
    assert {k: v for k, v in ma.items() if k not in clock} == {k: v for k, v in mb.items() if k not in clock}
    assert ma["notebooks"] == [p.stem for p in notebook_sources()]  # pipeline order
    assert ma["outputs"].keys() == mb["outputs"].keys()
    same = {k: v for k, v in ma["outputs"].items() if not k.startswith(TIMED)}
    assert len(same) > 30 and same == {k: mb["outputs"][k] for k in same}


def test_unknown_config_key_stops_before_any_notebook(tmp_path, capsys):
    config = _config(tmp_path / "in", colums="{}")
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "unknown key 'colums'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_invalid_log_writes_only_the_validation_report(tmp_path):
    config = _config(tmp_path / "in")
    log = tmp_path / "in" / "log.csv"
    log.write_text(log.read_text().replace("orthotics", "reiki", 1))
    outcome = run_suite(config, out=tmp_path / "run", progress=False)
    assert outcome.exit_code == 2
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".outcomes-run.json", "validation_report.csv"]


def test_failing_notebook_marks_the_run_failed(tmp_path):
    config = _config(tmp_path / "in")
    broken = tmp_path / "99_broken.py"
    broken.write_text('# %% tags=["parameters"]\nconfig: str = ""  # c\nrun_dir: str = ""  # r\n'
                      '# %%\nraise RuntimeError("deliberate failure")\n')
    outcome = run_suite(config, out=tmp_path / "run", progress=False,
                        notebooks=[notebook_sources()[0], broken])
    assert outcome.exit_code == 1 and "deliberate failure" in outcome.error
    run_dir = tmp_path / "run"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "deliberate failure" in manifest["error"]
    assert not (run_dir / "results.json").exists()
    assert "This run failed" in (run_dir / "index.html").read_text()
    saved = json.loads((run_dir / "notebooks" / "99_broken.ipynb").read_text())
    assert any(o.get("ename") == "RuntimeError" for c in saved["cells"] for o in c.get("outputs", []))


def test_no_patient_ids_dates_or_small_cells_leave_the_run(demo_run):
    import pandas as pd

    run_dir, _ = demo_run
    log = pd.read_csv(EXAMPLE, dtype=str)
    ids = set(log["patient_id"])
    dates = set(log["visit_date"])
    token = re.compile(r"P\d{4}|\d{4}-\d{2}-\d{2}")
    public = [p for p in run_dir.rglob("*") if p.is_file() and p.parts[len(run_dir.parts)] != "private"
              and p.suffix in {".html", ".svg", ".csv", ".json", ".ipynb"}]
    assert len(public) > 20
    for path in public:
        found = set(token.findall(path.read_text(errors="ignore")))
        assert not (found & ids), f"patient id in {path.relative_to(run_dir)}"
        assert not (found & dates), f"visit date in {path.relative_to(run_dir)}"
    for path in (run_dir / "tables").glob("*.csv"):
        table = pd.read_csv(path)
        if "n_patients" in table:
            counts = pd.to_numeric(table["n_patients"], errors="coerce").dropna()
            assert (counts >= 11).all(), f"cell below the disclosure threshold in {path.name}"


def test_console_shows_a_bar_per_notebook_and_no_kernel_warnings(tmp_path, capfd):
    # capfd, not capsys: the kernel is a child process writing to the runner's stderr (fd 2).
    config = _config(tmp_path / "in")
    outcome = run_suite(config, out=tmp_path / "run", progress=True, notebooks=notebook_sources()[:1])
    assert outcome.status == "succeeded", outcome.error
    err = capfd.readouterr().err
    assert "without encryption" not in err and "KeyboardInterrupt" not in err and "Traceback" not in err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert re.search(r"\[1/1\] 01_validate .* (\d+)/\1 cells  \d\d:\d\d$", last), last


def test_quiet_prints_only_the_result_line(tmp_path, capfd, monkeypatch):
    import analysis.run.runner as runner

    def fake_run(config, out=None, progress=True, notebooks=None, workers=None):
        assert progress is False  # --quiet turns the bars off
        return runner.RunOutcome(Path(out), "succeeded", 0)

    monkeypatch.setattr(runner, "run_suite", fake_run)
    assert main(["run", "--config", "c.yaml", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == f"succeeded: {tmp_path / 'r' / 'index.html'}\n"
