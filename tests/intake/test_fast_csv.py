"""The fast way in (pyarrow, dictionary-encoded text) reads exactly what the exact way reads.

Every case is read twice: by :func:`analysis.intake.ingest.read_log` as it is (plain files take
:mod:`analysis.intake.fast_csv`) and with the fast path switched off (pandas / csv module). Header,
labels, cells, file lines, field counts and structural faults must agree; so must the validated
table, the k-anonymity table, the arms and every row of a failure report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.config import RunConfig
from analysis.errors import ValidationFailed
from analysis.intake import fast_csv, ingest
from analysis.intake.arms import assign_arms
from analysis.intake.validate import validate_log
from analysis.studies.simulate import write_simulation

PLAIN = {
    "basic": b"a,b\n1,2\n3,4\n",
    "no final newline": b"a,b\n1,2\n3,4",
    "crlf": b"a,b\r\n1,2\r\n3,\r\n",
    "blank lines": b"\n\na,b\n1,2\n\n3,4\n\n",
    "blank crlf lines": b"\r\na,b\r\n1,2\r\n\r\n3,4\r\n",
    "bom and semicolons": b"\xef\xbb\xbfa;b\n1;2\n",
    "utf-8 text": "a,b\nÄ,ö\n".encode(),
    "tabs": b"a\tb\n1\t2\n",
    "trailing delimiter": b"a,b,\n1,2,\n",
    "duplicate header": b"a,a\n1,2\n",
    "spaces kept": b"a,b\n 1 , 2\n",
}
EXACT_ONLY = {
    "header only": b"a,b\n",
    "short row": b"a,b\n1\n3,4\n",
    "long row": b"a,b\n1,2,3\n3,4\n",
    "line of spaces": b"a,b\n1,2\n   \n3,4\n",
    "quotes": b'a,b\n"1,5",2\n',
    "not utf-8": b"a,b\n\xff,1\n",
    "one column": b"a\n1\n2\n",
}


def _exact(monkeypatch, path):
    with monkeypatch.context() as m:
        m.setattr(ingest, "_read_plain_csv", lambda *a: None)
        try:
            return ingest.read_log(path)
        except Exception as exc:  # noqa: BLE001 — compared below
            return exc


def _same(a, b):
    assert a.header == b.header and a.labels == b.labels and a.faults == b.faults
    assert (a.delimiter, a.encoding, a.sha256) == (b.delimiter, b.encoding, b.sha256)
    np.testing.assert_array_equal(a.lines, b.lines)
    np.testing.assert_array_equal(a.n_fields, b.n_fields)
    pd.testing.assert_frame_equal(a.cells.astype(object), b.cells.astype(object))


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_files_take_the_fast_path_and_read_the_same(tmp_path, monkeypatch, name):
    path = tmp_path / "log.csv"
    path.write_bytes(PLAIN[name])
    fast = ingest.read_log(path)
    assert all(isinstance(fast.cells[c].dtype, pd.CategoricalDtype) for c in fast.cells)
    _same(fast, _exact(monkeypatch, path))


@pytest.mark.parametrize("name", sorted(EXACT_ONLY))
def test_other_files_take_the_exact_path(tmp_path, name):
    data = EXACT_ONLY[name]
    path = tmp_path / "log.csv"
    path.write_bytes(data)
    assert ingest._read_plain_csv(path, "", data, ingest.ReadOptions()) is None


def test_a_simulated_log_validates_and_gets_arms_the_same_both_ways(tmp_path, monkeypatch):
    path, _ = write_simulation(tmp_path / "log.csv", n_patients=300, n_clinics=4, seed=3)
    cfg = RunConfig(name="t", data=path)
    fast = validate_log(cfg)
    with monkeypatch.context() as m:
        m.setattr(ingest, "_read_plain_csv", lambda *a: None)
        exact = validate_log(cfg)
    pd.testing.assert_frame_equal(fast.data, exact.data, check_exact=True)
    pd.testing.assert_frame_equal(fast.k_anonymity, exact.k_anonymity)
    assert fast.summary() == exact.summary()
    assert fast.data["patient_id"].map(type).eq(str).all()
    a, b = assign_arms(fast.data, "usual_care"), assign_arms(exact.data, "usual_care")
    pd.testing.assert_frame_equal(a.data, b.data)
    pd.testing.assert_frame_equal(a.table, b.table)


def test_failure_reports_name_the_same_lines_columns_and_values(tmp_path, monkeypatch):
    path, _ = write_simulation(tmp_path / "log.csv", n_patients=60, n_clinics=3, seed=4)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    col = {name: i for i, name in enumerate(header)}
    broken = {3: ("pain_score", "11"), 7: ("intervention", "yoga"), 9: ("visit_date", "2025-13-01"),
              12: ("episodes", "1.5"), 15: ("pain_score", "6.5.1"), 20: ("patient_id", "")}
    for line, (name, value) in broken.items():
        cells = lines[line - 1].split(",")
        cells[col[name]] = value
        lines[line - 1] = ",".join(cells)
    lines[30] = lines[29]  # a duplicate visit
    path.write_text("\n".join(lines) + "\n")
    assert isinstance(ingest.read_log(path).cells["pain_score"].dtype, pd.CategoricalDtype)
    cfg = RunConfig(name="t", data=path)
    with pytest.raises(ValidationFailed) as fast:
        validate_log(cfg)
    with monkeypatch.context() as m:
        m.setattr(ingest, "_read_plain_csv", lambda *a: None)
        with pytest.raises(ValidationFailed) as exact:
            validate_log(cfg)
    pd.testing.assert_frame_equal(fast.value.report, exact.value.report)
    found = set(zip(fast.value.report["line"], fast.value.report["column"]))
    assert {(3, "pain_score"), (7, "intervention"), (9, "visit_date"), (12, "episodes"),
            (15, "pain_score"), (20, "patient_id"), (31, "visit_date")} <= found


def test_record_lines_count_lines_with_and_without_blank_ones():
    assert fast_csv._record_lines(b"a\nb\nc", 0).tolist() == [1, 2, 3]
    assert fast_csv._record_lines(b"a\n\nb\r\n\r\nc\n", 0).tolist() == [1, 3, 5]


@pytest.mark.parametrize("text", [b"a,b\r\n1,2\r\n3,\r\n" * 50, b"a,b\n1,2\n3,4" * 3, b"a,b\n1\r\n2\r3\n"])
@pytest.mark.parametrize("step", [1, 2, 3, 7, 1 << 24])
def test_memory_map_counts_and_checks_as_bytes_do(tmp_path, monkeypatch, text, step):
    monkeypatch.setattr(fast_csv, "_COUNT_STEP", step)
    path = tmp_path / "log.csv"
    path.write_bytes(text)
    with fast_csv.mapped(path) as view:
        assert not isinstance(view, bytes)
        for sub in (b"\n", b"\r", b"\r\n", b",", b"1,"):
            for start in (0, 1, 5):
                assert fast_csv.count(view, sub, start) == text.count(sub, start)
        assert fast_csv.is_plain(view, ",") == fast_csv.is_plain(text, ",")
        np.testing.assert_array_equal(fast_csv._record_lines(view, 0), fast_csv._record_lines(text, 0))
    with fast_csv.mapped(tmp_path / "empty.csv" if (tmp_path / "empty.csv").write_bytes(b"") == 0
                         else path) as empty:
        assert empty == b""


def _record_lines_before(data: bytes, offset: int) -> np.ndarray:
    """_record_lines as it was (bytes.find for the empty lines, bytes.count for the lines)."""
    size = len(data) - offset
    if size and not (data[offset:offset + 2].startswith((b"\n", b"\r\n"))
                     or data.find(b"\n\n", offset) >= 0 or data.find(b"\n\r\n", offset) >= 0):
        n = data.count(b"\n", offset) + (0 if data[-1:] == b"\n" else 1)
        return np.arange(1, n + 1, dtype=np.int64)
    return fast_csv._nonempty_lines(data, offset)


@pytest.mark.parametrize("step", [1, 2, 3, 5, 64, 1 << 24])
def test_record_lines_in_one_pass_equal_the_finds_they_replace(monkeypatch, step):
    monkeypatch.setattr(fast_csv, "_COUNT_STEP", step)
    rng = np.random.default_rng(step)
    texts = [b"\n", b"a", b"a\n\r", b"\r\n", b"a\r\n\r\nb", b"a\n\nb", b"\xef\xbb\xbfa\nb\n"]
    texts += [bytes(rng.choice(list(b"ab,\n\n\r "), rng.integers(1, 40))) for _ in range(300)]
    for text in texts:
        for offset in (0, 3) if text.startswith(b"\xef\xbb\xbf") else (0,):
            np.testing.assert_array_equal(fast_csv._record_lines(text, offset),
                                          _record_lines_before(text, offset), err_msg=repr(text))
