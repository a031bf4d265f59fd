"""The outcomes process's memory settings (analysis.run.memory): set by the command, kept when the
user chose, never at import; freed memory reused inside reuse_freed_memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from analysis.run import memory

try:
    from numpy._core.multiarray import _get_madvise_hugepage, _set_madvise_hugepage
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _get_madvise_hugepage, _set_madvise_hugepage


@pytest.fixture
def advice():
    """Put numpy's huge-page advice and the variable back as they were."""
    before, env = _get_madvise_hugepage(), os.environ.get(memory.HUGEPAGE_VARIABLE)
    yield
    _set_madvise_hugepage(before)
    if env is None:
        os.environ.pop(memory.HUGEPAGE_VARIABLE, None)
    else:
        os.environ[memory.HUGEPAGE_VARIABLE] = env


def test_no_huge_pages_turns_the_advice_off_here_and_for_children(advice, monkeypatch):
    monkeypatch.delenv(memory.HUGEPAGE_VARIABLE, raising=False)
    _set_madvise_hugepage(True)
    assert memory.no_huge_pages() is True
    assert _get_madvise_hugepage() is False
    assert os.environ[memory.HUGEPAGE_VARIABLE] == "0"  # what the runner's kernels inherit


def test_a_users_choice_is_kept(advice, monkeypatch):
    monkeypatch.setenv(memory.HUGEPAGE_VARIABLE, "1")
    _set_madvise_hugepage(True)
    assert memory.no_huge_pages() is False
    assert _get_madvise_hugepage() is True and os.environ[memory.HUGEPAGE_VARIABLE] == "1"


def test_the_command_sets_it(advice, monkeypatch, capsys):
    from analysis.run.cli import main

    monkeypatch.delenv(memory.HUGEPAGE_VARIABLE, raising=False)
    _set_madvise_hugepage(True)
    with pytest.raises(SystemExit):  # argparse exits after --help; main() ran first
        main(["simulate", "--help"])
    assert os.environ[memory.HUGEPAGE_VARIABLE] == "0" and _get_madvise_hugepage() is False


def test_importing_the_package_sets_nothing():
    env = {k: v for k, v in os.environ.items() if k != memory.HUGEPAGE_VARIABLE}
    code = ("import os, analysis.run.cli, analysis.run.memory, analysis.run.runner, "
            "analysis.intake.validate, analysis.studies.bench; "
            "from numpy._core.multiarray import _get_madvise_hugepage as g; "
            f"print(os.environ.get({memory.HUGEPAGE_VARIABLE!r}), g())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["None", "True"]


def _faults_of_a_fresh_array(n_bytes: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    array = np.ones(n_bytes // 8)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del array
    return faults


@pytest.mark.skipif(memory._glibc() is None, reason="glibc's mallopt only")
def test_freed_memory_is_reused_inside_the_block_and_not_after(advice):
    _set_madvise_hugepage(False)  # count 4 kB pages: 16,384 for 64 MB
    size = 64 * 1024**2  # above glibc's largest mmap threshold (32 MB): mapped afresh by default
    with memory.reuse_freed_memory() as applied:
        assert applied
        _faults_of_a_fresh_array(size)
        again = _faults_of_a_fresh_array(size)
    after = [_faults_of_a_fresh_array(size) for _ in range(2)]
    pages = size // 4096
    assert again < pages // 10  # the freed 64 MB came back from the heap
    assert min(after) > pages // 2  # defaults back: each array mapped and faulted in again
