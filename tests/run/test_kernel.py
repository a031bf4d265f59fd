"""analysis.run.kernel and analysis.run.execute: one kernel for many notebooks, reset between them,
the stages that run side by side, and a refused run that leaves no kernel behind."""

import json
from pathlib import Path

import nbformat
import pytest

from analysis.run.execute import LONGEST_FIRST, execute_notebooks, kernels_needed, longest_first, stages
from analysis.run.kernel import THREAD_VARIABLES, KernelPool, kernel_environment

ROOT = Path(__file__).resolve().parents[2]

# Everything a notebook could leave in a kernel for the next one.
LEAVES = '''# %% tags=["parameters"]
config: str = ""  # unused
run_dir: str = ""  # unused

# %%
import os, random, sys, warnings
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
leaked = "from the first notebook"
np.mean([])  # shown, and remembered as shown at this code location (filter action "default")
plt.figure()
matplotlib.rcParams["lines.linewidth"] = 9.0
warnings.simplefilter("ignore")
os.environ["OUTCOMES_LEAK"] = "1"
sys.path.append("/leaked")
pd.set_option("display.max_rows", 3)
np.seterr(all="ignore")
np.random.seed(7); random.seed(7)
os.chdir("/")
'''

FINDS = '''# %% tags=["parameters"]
config: str = ""  # unused
run_dir: str = ""  # unused

# %%
import os, sys, warnings
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
found = {
    "leaked": "leaked" in globals(), "figures": plt.get_fignums(),
    "linewidth": matplotlib.rcParams["lines.linewidth"], "env": "OUTCOMES_LEAK" in os.environ,
    "path": "/leaked" in sys.path, "max_rows": pd.get_option("display.max_rows"),
    "seterr": np.geterr()["divide"], "cwd": os.getcwd(), "In": len(In),
}
print(found)

# %%
np.mean([])  # shown again: a fresh kernel has never shown it
'''


def _notebook(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _run_on_pool(sources, run_dir):
    """Execute ``sources`` on a fresh two-worker pool; the pool (closed) and what was done."""
    pool = KernelPool(ROOT)
    try:
        done = execute_notebooks(sources, run_dir, {"config": "c", "run_dir": "r"}, pool, workers=2,
                                 progress=False)
    finally:
        pool.close()
    return pool, done


def test_a_reused_kernel_shows_the_next_notebook_nothing_of_the_last(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "notebooks").mkdir(parents=True)
    sources = [_notebook(tmp_path, "01_leaves.py", LEAVES), _notebook(tmp_path, "08_finds.py", FINDS)]
    pool, done = _run_on_pool(sources, run_dir)
    assert done.error is None and done.notebooks == ["01_leaves", "08_finds"]
    assert pool.kernel_starts == 1  # 01 and 08 are stages of their own: one kernel for both
    nb = nbformat.read(run_dir / "notebooks" / "08_finds.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3, 4]  # as in a fresh kernel
    found = eval(code[2].outputs[0]["text"])  # noqa: S307 — our own notebook's printed dict
    fresh = {"leaked": False, "figures": [], "linewidth": 1.5, "env": False, "path": False,
             "max_rows": 60, "seterr": "warn", "cwd": str(ROOT), "In": 4}
    assert found == fresh
    shown = "".join(o.get("text", "") for o in code[3].outputs)
    assert "Mean of empty slice" in shown
    # papermill wrote its metadata and the injected parameters as in a fresh kernel.
    assert nb.metadata.papermill.parameters == {"config": "c", "run_dir": "r"}
    assert "injected-parameters" in code[1].metadata.tags
    assert nb.metadata.language_info.name == "python"


def test_notebooks_02_to_07_form_one_stage_and_the_others_one_each():
    names = ["01_validate", "02_describe", "03_pain", "07_benchmarking", "08_claims", "09_summary",
             "99_extra"]
    got = [[p.stem for p in stage] for stage in stages([Path(f"{n}.py") for n in names])]
    assert got == [["01_validate"], ["02_describe", "03_pain", "07_benchmarking"], ["08_claims"],
                   ["09_summary"], ["99_extra"]]
    assert [[p.stem for p in s] for s in stages([Path("03_pain.py"), Path("99_x.py"),
                                                   Path("04_episodes.py")])] == \
        [["03_pain"], ["99_x"], ["04_episodes"]]


def test_a_stage_starts_longest_first_and_unknown_notebooks_last_in_pipeline_order():
    stage = [Path(f"{n}.py") for n in ("02_describe", "03_pain", "04_episodes", "05_strength",
                                       "06_responders", "07_benchmarking", "77_b", "66_a")]
    order = [p.name[:2] for p in longest_first(stage)]
    assert order == [*LONGEST_FIRST, "77", "66"]
    assert sorted(LONGEST_FIRST) == ["02", "03", "04", "05", "06", "07"]


def test_the_pool_starts_as_many_kernels_as_the_widest_stage_uses():
    suite = [Path(f"{n}.py") for n in ("01_validate", "02_describe", "03_pain", "04_episodes",
                                       "08_claims", "09_summary")]
    assert kernels_needed(suite, workers=2) == 2
    assert kernels_needed(suite, workers=1) == 1
    assert kernels_needed(suite, workers=8) == 3  # a stage of three notebooks
    alone = [Path("03_pain.py"), Path("04_episodes.py")]  # no visit table yet: one after the other
    assert kernels_needed(alone, workers=2) == 1
    assert kernels_needed(alone, workers=2, visits_ready=True) == 2
    assert kernels_needed([Path("01_validate.py"), Path("08_claims.py")], workers=2) == 1


def test_kernels_side_by_side_share_the_cores_among_their_blas_threads(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert {n: kernel_environment(2, cores=2)[n] for n in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "1")
    assert kernel_environment(2, cores=8)["OPENBLAS_NUM_THREADS"] == "4"
    assert not set(THREAD_VARIABLES) & set(kernel_environment(1, cores=2))  # one kernel: the defaults
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own count is kept
    assert kernel_environment(2, cores=2)["OMP_NUM_THREADS"] == "3"


@pytest.mark.parametrize("wait", [0.0, 1.0])
def test_a_refused_run_kills_its_kernel_at_once(wait):
    import time

    pool = KernelPool(ROOT)
    time.sleep(wait)  # before the kernel exists, and while it starts or imports the library
    t0 = time.perf_counter()
    pool.close(now=True)
    worker = pool.workers[0]
    assert not worker.is_alive()
    assert worker._km is None or not worker._km.has_kernel or worker._km.provisioner.process.poll() is not None
    assert time.perf_counter() - t0 < 30  # generous: a hang would be minutes (START_TIMEOUT)
    assert worker.ready.exception() is not None  # and no notebook can be given to it


def test_a_notebook_that_fails_side_by_side_fails_the_run_with_its_own_error(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "notebooks").mkdir(parents=True)
    (run_dir / "private").mkdir()
    (run_dir / "private" / "visits.parquet").write_bytes(b"")  # 01 has run: 02-07 side by side
    quiet = '# %% tags=["parameters"]\nconfig: str = ""  # c\nrun_dir: str = ""  # r\n# %%\n1 + 1\n'
    # 03 fails after the other kernel has run 04 and then 02 (started last: longest first), so
    # that the saved notebooks are 02, 03 and 04 however fast the kernels are.
    broken = quiet.replace("1 + 1", 'import time\ntime.sleep(3)\nraise RuntimeError("deliberate failure in 03")')
    sources = [_notebook(tmp_path, "02_fine.py", quiet), _notebook(tmp_path, "03_broken.py", broken),
               _notebook(tmp_path, "04_fine.py", quiet), _notebook(tmp_path, "08_after.py", quiet)]
    pool, done = _run_on_pool(sources, run_dir)
    assert done.error.startswith("03_broken: PapermillExecutionError") and "deliberate failure" in done.error
    assert pool.kernel_starts == 2
    assert "08_after" not in done.notebooks  # nothing starts after a failure
    assert done.notebooks[:2] == ["02_fine", "03_broken"]  # pipeline order, whatever finished first
    saved = json.loads((run_dir / "notebooks" / "03_broken.ipynb").read_text())
    assert any(o.get("ename") == "RuntimeError" for c in saved["cells"] for o in c.get("outputs", []))


def test_a_notebook_is_written_when_it_ends_not_at_every_cell(tmp_path, monkeypatch):
    import papermill.engines

    written = []
    real = papermill.engines.write_ipynb
    monkeypatch.setattr(papermill.engines, "write_ipynb",
                        lambda nb, path: written.append(path) or real(nb, path))
    run_dir = tmp_path / "run"
    (run_dir / "notebooks").mkdir(parents=True)
    cells = "".join(f"# %%\nprint({i})\n" for i in range(5))
    text = '# %% tags=["parameters"]\nconfig: str = ""  # c\nrun_dir: str = ""  # r\n' + cells
    _, done = _run_on_pool([_notebook(tmp_path, "09_cells.py", text)], run_dir)
    assert done.error is None
    assert len(written) == 1  # papermill's manager wrote 2 + 2 per cell (16 here) before
    nb = nbformat.read(run_dir / "notebooks" / "09_cells.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.outputs[0]["text"] for c in code[2:]] == [f"{i}\n" for i in range(5)]
    assert {c.metadata.papermill.status for c in nb.cells} == {"completed"}


def test_the_notebook_of_a_kernel_that_died_is_still_written(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "notebooks").mkdir(parents=True)
    text = ('# %% tags=["parameters"]\nconfig: str = ""  # c\nrun_dir: str = ""  # r\n'
            '# %%\nprint("before")\n# %%\nimport os\nos._exit(1)\n# %%\nprint("never")\n')
    _, done = _run_on_pool([_notebook(tmp_path, "09_dies.py", text)], run_dir)
    assert done.error is not None and done.error.startswith("09_dies: ")
    assert done.notebooks == ["09_dies"]  # written when its execution ended, as papermill did
    nb = nbformat.read(run_dir / "notebooks" / "09_dies.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[2].outputs[0]["text"] == "before\n"
    assert code[-1].outputs == []


def test_a_notebook_starts_on_the_iopub_welcome_without_waiting_for_quiet(tmp_path, monkeypatch):
    from jupyter_client.asynchronous.client import AsyncKernelClient

    def no_wait(self, *args, **kwargs):  # the 0.2 s of quiet wait_for_ready ends with
        raise AssertionError("wait_for_ready called")

    monkeypatch.setattr(AsyncKernelClient, "wait_for_ready", no_wait)
    run_dir = tmp_path / "run"
    (run_dir / "notebooks").mkdir(parents=True)
    text = '# %% tags=["parameters"]\nconfig: str = ""  # c\nrun_dir: str = ""  # r\n# %%\nprint("first")\n'
    sources = [_notebook(tmp_path, "01_a.py", text), _notebook(tmp_path, "08_b.py", text)]
    _, done = _run_on_pool(sources, run_dir)
    assert done.error is None
    for stem in ("01_a", "08_b"):  # the first cell's output is there: IOPub listened from the start
        nb = nbformat.read(run_dir / "notebooks" / f"{stem}.ipynb", as_version=4)
        assert [c.outputs for c in nb.cells if c.cell_type == "code"][-1][0]["text"] == "first\n"
