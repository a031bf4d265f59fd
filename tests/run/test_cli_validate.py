"""`outcomes validate`: exit 2 and only validation_report.csv on failure, exit 0 and nothing
written on success, identifiers refused without their values."""

from __future__ import annotations

import pandas as pd

from analysis.run.cli import main

HEADER = "patient_id,visit_date,intervention,pain_score"


def setup(tmp_path, rows: list[str], header: str = HEADER):
    log = tmp_path / "log.csv"
    log.write_text(header + "\n" + "\n".join(rows) + "\n")
    cfg = tmp_path / "run.yaml"
    cfg.write_text("name: clitest\ndata: log.csv\n")
    return log, cfg


def snapshot(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_failure_exits_2_and_writes_only_the_report(tmp_path, capsys):
    log, cfg = setup(tmp_path, ["P1,2024-01-01,usual_care,5", "P1,2024-01-08,usual_care,12"])
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    code = main(["validate", str(log), "--config", str(cfg), "--out", str(out)])
    assert code == 2
    assert [p.name for p in out.iterdir()] == ["validation_report.csv"]
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {out / "validation_report.csv"}
    assert all(after[p] == before[p] for p in before)  # the log and config are untouched
    report = pd.read_csv(out / "validation_report.csv", dtype=str)
    assert report[["line", "column", "check", "value"]].values.tolist() == [
        ["3", "pain_score", "out_of_range", "12"]]
    err = capsys.readouterr().err
    assert "1 validation failure" in err and "line 3, column 'pain_score'" in err
    assert "validation_report.csv" in err


def test_success_exits_0_prints_summary_and_writes_nothing(tmp_path, capsys):
    log, cfg = setup(tmp_path, ["P1,2024-01-01,usual_care,5", "P1,2024-01-08,usual_care,4"])
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    assert main(["validate", "--config", str(cfg), "--out", str(out)]) == 0  # log from config
    assert snapshot(tmp_path) == before and not out.exists()
    printed = capsys.readouterr().out
    assert "rows: 2 read, 2 valid; patients: 1" in printed


def test_identifiers_exit_2_without_values(tmp_path, capsys):
    rows = ["P1,2024-01-01,usual_care,5,SW1A 1AA", "P2,2024-01-01,usual_care,4,M1 1AE"]
    log, cfg = setup(tmp_path, rows, header=HEADER + ",home")
    out = tmp_path / "out"
    assert main(["validate", str(log), "--config", str(cfg), "--out", str(out)]) == 2
    assert [p.name for p in out.iterdir()] == ["validation_report.csv"]
    err = capsys.readouterr().err
    text = err + (out / "validation_report.csv").read_text()
    assert "'home'" in err and "postcode" in err
    assert "SW1A" not in text and "M1 1AE" not in text


def test_unreadable_log_exits_2_with_a_message(tmp_path, capsys):
    log, cfg = setup(tmp_path, [])
    log.write_bytes(HEADER.encode() + b"\nP1,2024-01-01,K\xe4lte,5\n")
    out = tmp_path / "out"
    assert main(["validate", str(log), "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "0xE4" in err and "Traceback" not in err
    assert not out.exists()
