"""analysis.run.batch: `outcomes batch` on a Dask LocalCluster, and refusal of bad batch files.

The batch runs the whole suite twice (a network-wide run and one with a clinic highlighted) on a
small simulated log, plus two runs that are refused (a log with an invalid label, a data file that
does not exist), on two workers; meanwhile the network run's config is run directly (`outcomes
run`, i.e. run_suite) and the two results.json files must be byte-identical.
"""

import contextlib
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from analysis.errors import ConfigError
from analysis.run import batch as batch_module
from analysis.run.batch import BatchOutcome, load_batch
from analysis.run.cli import main
from analysis.studies.simulate import write_simulation

BATCH = """\
name: t
template: run.yaml
out: out
runs:
  - name: network
  - name: bad-label
    config: bad.yaml
  - name: missing-data
    set: {data: nowhere.csv}
per_clinic:
  clinics: [C02]
"""


def _inputs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_simulation(folder / "log.csv", n_patients=60, n_clinics=3, seed=5)
    (folder / "run.yaml").write_text("name: t\ndata: log.csv\n")
    text = (folder / "log.csv").read_text()
    (folder / "bad.csv").write_text(text.replace("orthotics", "reiki", 1))  # one invalid label
    (folder / "bad.yaml").write_text("name: bad\ndata: bad.csv\n")
    (folder / "batch.yaml").write_text(BATCH)
    return folder / "batch.yaml"


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    """The batch on two workers; meanwhile, the network run's config run directly (`outcomes run`,
    i.e. run_suite, in its own process) for the byte-for-byte comparison."""
    folder = tmp_path_factory.mktemp("batch")
    batch_file = _inputs(folder)
    network = load_batch(batch_file).runs[0]
    (folder / "direct.yaml").write_text(yaml.safe_dump(network.mapping, sort_keys=False))
    direct = subprocess.Popen([sys.executable, "-m", "analysis.run.cli", "run", "--config", str(folder / "direct.yaml"),
                               "--out", str(folder / "direct"), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["batch", "--config", str(batch_file), "--workers", "2"])
    _, direct_err = direct.communicate(timeout=900)
    assert direct.returncode == 0, direct_err
    manifest = json.loads((folder / "out" / "batch_manifest.json").read_text())
    return folder, code, manifest, out.getvalue(), err.getvalue()


def test_every_run_is_done_and_one_bad_run_does_not_stop_the_others(batch_run):
    folder, code, manifest, stdout, stderr = batch_run
    runs = {r["name"]: r for r in manifest["runs"]}
    assert code == 1, runs  # a run did not succeed
    assert list(runs) == ["network", "bad-label", "missing-data", "clinic-C02"]
    assert manifest["status"] == "failed" and manifest["n_succeeded"] == 2, [r["error"] for r in runs.values()]
    assert manifest["scheduler"] == "LocalCluster (2 workers, 1 thread each)"
    out = folder / "out"
    for name in ("network", "clinic-C02"):
        r = runs[name]
        assert r["status"] == "succeeded" and r["exit_code"] == 0 and r["error"] is None, r["error"]
        assert r["manifest"] == f"runs/{name}/manifest.json" and r["report"] == f"runs/{name}/index.html"
        run_manifest = json.loads((out / r["manifest"]).read_text())
        assert run_manifest["status"] == "succeeded" and run_manifest["config"]["name"] == name
        assert (out / r["results"]).exists() and (out / "runs" / name / "notebooks" / "07_benchmarking.ipynb").exists()
    bad = runs["bad-label"]
    assert bad["status"] == "refused" and bad["exit_code"] == 2 and "validation failure" in bad["error"]
    assert sorted(p.name for p in (out / "runs" / "bad-label").iterdir()) == [".outcomes-run.json",
                                                                         "validation_report.csv"]
    assert bad["manifest"] is None and bad["validation_report"] == "runs/bad-label/validation_report.csv"
    missing = runs["missing-data"]
    assert missing["status"] == "refused" and "nowhere.csv: file not found" in missing["error"]
    for r in runs.values():  # every run's generated config is recorded with its hash
        config = out / r["config"]
        assert hashlib.sha256(config.read_bytes()).hexdigest() == r["config_sha256"]
    assert sum(f"[{k}/4]" in stderr for k in range(1, 5)) == 4 and "clinic-C02 done" in stderr
    assert "bad-label     refused" in stdout and "2/4 runs succeeded" in stdout


def test_per_clinic_run_highlights_its_clinic(batch_run):
    folder, _, manifest, _, _ = batch_run
    out = folder / "out"
    generated = yaml.safe_load((out / "configs" / "clinic-C02.yaml").read_text())
    assert generated["benchmarking"] == {"clinic_id": "C02"} and Path(generated["data"]).is_absolute()
    mine = json.loads((out / "runs" / "clinic-C02" / "results.json").read_text())["benchmarking"]
    network = json.loads((out / "runs" / "network" / "results.json").read_text())["benchmarking"]
    assert mine["highlighted"]["shown"] is True and mine["clinic_effects"]["rows"][0]["term"] == "your clinic"
    assert network["highlighted"]["requested"] is False
    assert "your clinic" not in {r["term"] for r in network["clinic_effects"]["rows"]}


def test_a_batch_run_equals_a_direct_run_byte_for_byte(batch_run):
    folder, _, _, _, _ = batch_run
    generated = yaml.safe_load((folder / "out" / "configs" / "network.yaml").read_text())
    assert yaml.safe_load((folder / "direct.yaml").read_text()) == generated  # the same config
    batch_bytes = (folder / "out" / "runs" / "network" / "results.json").read_bytes()
    direct_bytes = (folder / "direct" / "results.json").read_bytes()
    assert direct_bytes == batch_bytes, _differences(json.loads(batch_bytes), json.loads(direct_bytes))


def _differences(a, b, path="results") -> list[str]:
    """Where two JSON documents differ (for the failure message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.parametrize("text, message", [
    (BATCH + "workers: 3\n", "unknown key 'workers'"),
    (BATCH.replace("  - name: bad-label", "  - name: network"), "run name 'network' is used twice"),
    (BATCH.replace("    set: {data: nowhere.csv}", "    set: {modles: {}}"), "run 'missing-data'"),
    (BATCH.replace("template: run.yaml\n", ""), "`template` is required"),
    (BATCH.replace("clinics: [C02]", "clinics: [C02]\n  name: 'clinic {clinic}'"), "may hold only letters"),
    ("name: t\ntemplate: run.yaml\n", "needs `runs` or `per_clinic`"),
])
def test_a_bad_batch_file_is_refused_before_anything_runs(tmp_path, capsys, text, message):
    batch_file = _inputs(tmp_path)
    batch_file.write_text(text)
    assert main(["batch", "--config", str(batch_file)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_batch_folder_is_not_emptied(tmp_path, capsys):
    batch_file = _inputs(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main(["batch", "--config", str(batch_file)]) == 2
    assert "is not a batch folder" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_load_batch_expands_and_validates(tmp_path):
    plan = load_batch(_inputs(tmp_path))
    assert [r.name for r in plan.runs] == ["network", "bad-label", "missing-data", "clinic-C02"]
    assert plan.runs[2].mapping["data"] == str((tmp_path / "nowhere.csv").resolve())
    assert plan.runs[0].run_dir == (tmp_path / "out" / "runs" / "network").resolve()
    with pytest.raises(ConfigError, match="file not found"):
        (tmp_path / "run.yaml").unlink()
        load_batch(tmp_path / "batch.yaml")


def test_batch_throughput_reports_runs_per_minute(monkeypatch):
    seen = {}

    def fake_run_batch(path, workers=None, progress=True, scheduler=None):
        plan = load_batch(path)  # the batch file it wrote must be valid
        seen.update(runs=len(plan.runs), workers=workers)
        records = [{"status": "succeeded"}] * len(plan.runs)
        return BatchOutcome(plan, records, 0, "fake", seconds=30.0, startup_seconds=2.0)

    monkeypatch.setattr(batch_module, "run_batch", fake_run_batch)
    from analysis.studies.throughput import batch_throughput

    result = batch_throughput(n_runs=4, workers=2)
    assert seen == {"runs": 4, "workers": 2}
    assert result["runs_per_minute"] == pytest.approx(8.0) and result["succeeded"] == 4
    assert result["seconds"] == 30.0 and result["startup_seconds"] == 2.0
