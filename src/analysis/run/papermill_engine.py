"""The papermill engine that executes a notebook in one of the run's running kernels.

``papermill.execute_notebook(..., engine_name=ENGINE, km=<running kernel manager>)`` executes
through :class:`ReusedKernelEngine`: papermill's own nbclient engine with two changes.

- Before the first cell, the kernel is reset (:func:`analysis.run.kernel_state.reset`:
  namespace, execution count, figures, rcParams, warning filters, cwd, environment, random
  states), so that no name a notebook defined is visible to the next; the kernel itself is the
  run's (:mod:`analysis.run.kernel`) and stays running after the notebook.
- The executed notebook is written when it completes or fails (:class:`SaveAtEndManager`), not
  also at the start and end of every cell: papermill wrote (and nbformat validated) the whole
  notebook about 36 times per notebook, 324 times in a run (2.7 s of wall-clock time between
  cells at 20,000 patients, 1.5 s of the runner's CPU). Those intermediate files were never
  read: the run folder is a staging folder until the run commits it, and a notebook that fails
  or whose kernel dies is still written, as before, when its execution ends. papermill's
  time-based autosave (every 30 s of a long cell) is kept.

Everything papermill writes is as before: the injected-parameters cell, outputs, cell and
notebook metadata; execution counts start at 1 in every notebook.

Importing this module imports papermill (and so nbformat and jsonschema); the runner does it
after it has started its kernels.
"""

from __future__ import annotations

from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.utils import merge_kwargs, remove_args

from analysis.run.kernel import _RESET, START_TIMEOUT, _run_silently

#: The papermill engine that executes a notebook in an already running kernel (``km=``).
ENGINE = "clinic-outcomes-reused-kernel"


class SaveAtEndManager(NotebookExecutionManager):
    """papermill's execution manager without the save at the start of the notebook and at the
    start and end of every cell; :meth:`notebook_complete` (called when execution ends, also
    after a failure) and the 30-second autosave still write the notebook."""

    _save_now = False

    def save(self, **kwargs):
        if self._save_now:
            super().save(**kwargs)

    def autosave_cell(self):
        self._save_now = True
        try:
            super().autosave_cell()
        finally:
            self._save_now = False

    def notebook_complete(self, **kwargs):
        self._save_now = True
        super().notebook_complete(**kwargs)


#: Seconds a new client waits for ipykernel's ``iopub_welcome`` before it falls back to
#: jupyter_client's ``wait_for_ready``.
WELCOME_WAIT = 5.0


async def _subscribed(kc, timeout: float = WELCOME_WAIT) -> None:
    """Return once ``kc``'s IOPub subscription is live: ipykernel (7+) sends ``iopub_welcome`` to
    each new subscriber, so no output of the first cell can be published before the client listens.

    jupyter_client's ``wait_for_ready``, which nbclient calls, ends by reading IOPub until it has
    been quiet for 0.2 s: 0.2 s of nothing before every notebook (1.8 s a run, most of it on the
    critical path). A kernel without the welcome message (or one that sent it before this client
    read) gets ``wait_for_ready`` after ``timeout`` seconds, as before.
    """
    import queue
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = await kc.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            if not await kc.is_alive():
                raise RuntimeError("the kernel died before the notebook started") from None
            continue
        if msg["msg_type"] == "iopub_welcome":
            return
    await kc.wait_for_ready(timeout=START_TIMEOUT)


class ResettingNotebookClient(PapermillNotebookClient):
    """papermill's notebook client on a kernel it does not own: reset first, channels closed after.

    It starts its client as nbclient's ``async_start_new_kernel_client`` does, waiting for the
    IOPub subscription (:func:`_subscribed`) instead of ``wait_for_ready``; the kernel is the run's
    and has answered already (it ran :func:`analysis.run.kernel_state.snapshot`).
    """

    async def async_start_new_kernel_client(self):
        from nbclient.util import run_hook

        self.kc = self.km.client()
        try:
            self.kc.start_channels()
            await _subscribed(self.kc)
            await _run_silently(self.kc, _RESET, timeout=START_TIMEOUT)
        except BaseException:
            self.kc.stop_channels()
            self.kc = None
            raise
        self.kc.allow_stdin = False
        await run_hook(self.on_notebook_start, notebook=self.nb)
        return self.kc

    # nbclient binds the synchronous wrapper to its own coroutine; bind it to ours.
    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def execute(self, **kwargs):
        try:
            return super().execute(**kwargs)
        finally:
            if self.kc is not None:  # the kernel stays for the next notebook; its client does not
                self.kc.stop_channels()
                self.kc = None


class ReusedKernelEngine(NBClientEngine):
    """papermill's nbclient engine, executing with :class:`ResettingNotebookClient` and saving
    through :class:`SaveAtEndManager`.

    Called by ``papermill.execute_notebook(..., engine_name=ENGINE, km=<running manager>)``;
    the arguments are handled as :meth:`papermill.engines.Engine.execute_notebook` and
    :meth:`papermill.engines.NBClientEngine.execute_managed_notebook` handle them.
    """

    @classmethod
    def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                         autosave_cell_every=30, **kwargs):
        # papermill's Engine.execute_notebook (papermill 2.7), with SaveAtEndManager.
        nb_man = SaveAtEndManager(nb, output_path=output_path, progress_bar=progress_bar,
                                  log_output=log_output, autosave_cell_every=autosave_cell_every)
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                 stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
        from papermill.engines import logger

        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
            log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file,
        )
        return ResettingNotebookClient(nb_man, **final_kwargs).execute()


papermill_engines.register(ENGINE, ReusedKernelEngine)
