"""Run corpus cases in one process under a memory limit and a per-case hang guard.

``python corpus_child.py CASES.json RESULTS.json MEMORY_MB SECONDS``: ``CASES.json`` lists
``{"name", "argv", "cwd"}``; for each case the command line (``analysis.run.cli.main``) runs with
stderr captured, and one result is written per case: exit code, stderr, seconds, and the traceback
if the command raised instead of answering. The memory limit is set with ``resource.setrlimit``
(address space) before anything is imported, so a blow-up ends the case with ``MemoryError``.
"""

import contextlib
import io
import json
import os
import resource
import signal
import sys
import time
import traceback


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def main() -> None:
    cases_path, results_path, memory_mb, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    limit = memory_mb * 1024**2
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from analysis.run.cli import main as outcomes

    signal.signal(signal.SIGALRM, _alarm)
    results = []
    for case in json.loads(open(cases_path).read()):
        os.chdir(case["cwd"])
        err, out = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        code, crash = None, None
        signal.alarm(seconds)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                code = outcomes(case["argv"])
        except SystemExit as exc:
            code = exc.code
        except Hang:
            crash = f"hang: no answer within {seconds} s"
        except BaseException:  # noqa: BLE001 - the point is to record it
            crash = traceback.format_exc()
        finally:
            signal.alarm(0)
        results.append({"name": case["name"], "code": code, "stderr": err.getvalue(), "stdout": out.getvalue(), "crash": crash,
                        "seconds": round(time.perf_counter() - t0, 3),
                        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024})
    with open(results_path, "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main()
