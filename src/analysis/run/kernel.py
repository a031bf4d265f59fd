"""The kernels the notebooks run in: started once per run, reused, reset between notebooks.

A run used to start one kernel per notebook; each paid about 2 s to start, import pandas,
matplotlib, statsmodels and the library, and stop. Now a run starts one kernel per worker
(:class:`KernelWorker`, usually one or two) while the runner validates the log, and every
notebook the worker is given is executed in it by papermill, through the registered papermill
engine :data:`analysis.run.papermill_engine.ENGINE`
(``papermill.execute_notebook(..., engine_name=ENGINE, km=...)``), which resets the kernel before
the first cell (:func:`analysis.run.kernel_state.reset`). This module imports jupyter_client only,
not papermill, so that the runner starts its kernels before it imports papermill (nbformat,
jsonschema: 0.5-1 s, more under load) and the kernels' warm-up runs meanwhile.

Two messages used to reach the console of every run, both from the kernel process (whose stderr
is the runner's):

- ipykernel's "Kernel is running over TCP without encryption" is logged whenever the kernel's
  transport is TCP without CurveZMQ keys. The kernel only talks to the runner on this machine, so
  it is started on the IPC transport (Unix sockets in a private temporary folder), which is what
  the warning itself recommends, and the warning has nothing to say;
- "KeyboardInterrupt caught in kernel": jupyter_client's ``shutdown_kernel`` sends SIGINT before
  the shutdown request, to stop a cell that may still run. When the runner shuts a kernel down
  every cell has finished, and the SIGINT only races with ipykernel's message handlers (which log
  the interrupt as an error). :class:`QuietKernelManager` skips that interrupt. A kernel that is
  still busy (a cell that timed out) is not left running: ipykernel answers the shutdown request
  on its control thread, and jupyter_client kills the process when it has not exited within its
  ``shutdown_wait_time``.

Kernels that run side by side share the machine's cores: each kernel's BLAS and OpenMP pools get
``cores // kernels`` threads (:func:`kernel_environment`; a variable the user set is kept). Two
kernels with two BLAS threads each on two cores made the fits of 05-07 1.3-1.9 times slower at
20,000 patients (OpenBLAS threads spinning against each other and the other kernel); the
products are split between threads by rows and columns, not along the sums, so the numbers are
the same (the demo's results.json is byte-identical with one and two workers, tested).

Each kernel belongs to one thread (its worker's): jupyter_client's asynchronous clients are tied
to the event loop of the thread that made them, so a kernel is started, used and shut down there.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from concurrent.futures import Future
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_core.utils import run_sync
from traitlets.config import Config

KERNEL_NAME = "python3"
#: Seconds a kernel may take to start and import the library (a loaded machine is slow).
START_TIMEOUT = 300
_SNAPSHOT = "from analysis.run import kernel_state as _ks; _ks.snapshot(); del _ks"
_RESET = "from analysis.run import kernel_state as _ks; _ks.reset()"


#: The thread-count variables of the BLAS and OpenMP libraries numpy and scipy load.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def kernel_environment(kernels: int, cores: int | None = None) -> dict[str, str]:
    """The environment of one of ``kernels`` kernels running side by side: the runner's, with
    ``cores // kernels`` (at least 1) BLAS/OpenMP threads unless the user set a count."""
    cores = cores or os.cpu_count() or 1
    env = dict(os.environ)
    if kernels > 1:
        for name in THREAD_VARIABLES:
            env.setdefault(name, str(max(1, cores // kernels)))
    return env


class KernelError(RuntimeError):
    """A kernel could not be started, warmed up or reset."""


class QuietKernelManager(AsyncKernelManager):
    """An AsyncKernelManager that does not send SIGINT to a kernel it is shutting down."""

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()


async def _run_silently(kc, code: str, timeout: float) -> None:
    """Execute ``code`` in the kernel without history or outputs; raise if it failed or the kernel
    died (checked every 0.2 s, so that a killed kernel never leaves the runner waiting)."""
    import queue as _queue
    import time

    msg_id = kc.execute(code, silent=True, store_history=False)
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = await kc.get_shell_msg(timeout=0.2)
        except _queue.Empty:
            if not await kc.is_alive():
                raise KernelError("the kernel died") from None
            if time.monotonic() > deadline:
                raise KernelError(f"no reply from the kernel within {timeout:g} s") from None
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    content = reply["content"]
    if content["status"] != "ok":
        raise KernelError(f"{code!r} failed in the kernel: {content.get('ename')}: "
                          f"{content.get('evalue')}")


class KernelWorker(threading.Thread):
    """One kernel and the thread that owns it; runs the tasks given to :meth:`submit` in order.

    The kernel starts as soon as the thread does (:meth:`start`) and imports the library
    (:func:`analysis.run.kernel_state.snapshot`); a task is a callable taking the running kernel
    manager, e.g. ``lambda km: papermill.execute_notebook(..., engine_name=ENGINE, km=km)``.

    Parameters
    ----------
    socket_dir : Path
        A private, short-lived folder for the kernel's Unix sockets.
    cwd : Path
        The kernel's working directory (the project root).
    slot : int
        Which worker this is (names its sockets).
    """

    def __init__(self, socket_dir: Path, cwd: Path, slot: int = 0, kernels: int = 1):
        super().__init__(name=f"outcomes-kernel-{slot}", daemon=True)
        self.slot = slot
        self.env = kernel_environment(kernels)
        self.cwd = Path(cwd)
        self.config = Config({"KernelManager": {"transport": "ipc",
                                                "ip": str(Path(socket_dir) / f"kernel{slot}")}})
        self.ready: Future = Future()
        self.starts = 0
        self._tasks: queue.Queue = queue.Queue()
        self._km: QuietKernelManager | None = None
        self._closing = threading.Event()

    def submit(self, task) -> Future:
        """Queue ``task(km)``; the future holds its return value or exception."""
        future: Future = Future()
        self._tasks.put((task, future))
        return future

    def release(self, now: bool = False) -> None:
        """Let the thread run what is queued, then shut the kernel down, without waiting
        (``now``: kill the kernel at once; queued tasks then fail)."""
        if now:
            self._closing.set()
            self._kill()
        self._tasks.put((None, now))

    def close(self, now: bool = False) -> None:
        """:meth:`release` and wait for the thread to end."""
        self.release(now)
        self.join()

    def run(self) -> None:
        now = False
        try:
            self._start_kernel()
            self.ready.set_result(self)
        except BaseException as exc:  # noqa: BLE001 — reported through ready, the thread ends
            self.ready.set_exception(KernelError(f"the notebook kernel did not start: {exc}"))
            now = self._drain(exc)
        else:
            while True:
                task, arg = self._tasks.get()
                if task is None:
                    now = arg
                    break
                if arg.set_running_or_notify_cancel():
                    try:
                        arg.set_result(task(self._km))
                    except BaseException as exc:  # noqa: BLE001 — handed to the caller
                        arg.set_exception(exc)
        finally:
            self._shutdown(now)
            self._close_loop()

    @staticmethod
    def _close_loop() -> None:
        """Close this thread's event loop (jupyter_core made it for the kernel's clients): left
        open, it is collected later in another run, whose manifest would then record the
        ResourceWarning "unclosed event loop"."""
        import asyncio

        from jupyter_core.utils import ensure_event_loop

        loop = ensure_event_loop()
        asyncio.set_event_loop(None)
        loop.close()

    def _start_kernel(self) -> None:
        km = QuietKernelManager(kernel_name=KERNEL_NAME, config=self.config)
        self._km = km
        # What nbclient passes when it starts a kernel itself: an in-memory IPython history.
        run_sync(km.start_kernel)(cwd=str(self.cwd), env=self.env,
                                  extra_arguments=["--HistoryManager.hist_file=:memory:"])
        self.starts += 1
        if self._closing.is_set():  # the run was refused while the kernel started
            raise KernelError("the run ended before the kernel was needed")
        kc = km.client()
        kc.start_channels()
        try:
            # No separate wait_for_ready: the request waits in its socket until the kernel listens,
            # and _run_silently notices a kernel that died (or was killed) within 0.2 s.
            run_sync(_run_silently)(kc, _SNAPSHOT, START_TIMEOUT)
        finally:
            kc.stop_channels()

    def _drain(self, exc: BaseException) -> bool:
        """After a failed start: fail every task until close() is called; return its ``now``."""
        while True:
            task, arg = self._tasks.get()
            if task is None:
                return arg
            arg.set_exception(KernelError(f"the notebook kernel did not start: {exc}"))

    def _kill(self) -> None:
        km = self._km
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)

    def _shutdown(self, now: bool) -> None:
        km = self._km
        if km is None:
            return
        try:
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=now)
        except RuntimeError:
            pass  # already gone
        finally:
            run_sync(km.cleanup_resources)()


class KernelPool:
    """The run's kernels: :class:`KernelWorker` s sharing one private socket folder.

    ``size`` workers (default 1) start when the pool is made, while the runner validates the log:
    a run that will have notebooks side by side starts all its kernels then, so that the second
    one has imported the library before its first notebook instead of starting (about 2-9 s on a
    busy machine) while the first kernel already works. :meth:`grow` starts more when the run
    reaches notebooks that can run side by side. :meth:`close` shuts every kernel down (``now``:
    kills them, for a run refused before any notebook).
    """

    def __init__(self, cwd: Path, size: int = 1):
        import tempfile

        self.cwd = Path(cwd)
        # Unix socket paths are limited to ~100 characters: a short private folder under /tmp.
        self._sockets = tempfile.TemporaryDirectory(prefix="outcomes-")
        self.workers: list[KernelWorker] = []
        self.grow(max(1, size))

    def grow(self, size: int) -> list[KernelWorker]:
        """Start workers until there are ``size``; return the first ``size``."""
        while len(self.workers) < size:
            worker = KernelWorker(Path(self._sockets.name), self.cwd, slot=len(self.workers),
                                  kernels=size)
            worker.start()
            self.workers.append(worker)
        return self.workers[:size]

    @property
    def kernel_starts(self) -> int:
        """Kernels started so far in this run."""
        return sum(w.starts for w in self.workers)

    def release(self, now: bool = False) -> None:
        """Every kernel shuts down once its queued notebooks are done; nothing waits for it."""
        for worker in self.workers:
            worker.release(now=now)

    def close(self, now: bool = False) -> None:
        """:meth:`release` every worker, wait for all (they shut down side by side)."""
        try:
            self.release(now)
            for worker in self.workers:
                worker.join()
        finally:
            self._sockets.cleanup()

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close(now=exc[0] is not None)
