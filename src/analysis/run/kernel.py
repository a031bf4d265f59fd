"""The kernel each notebook runs in, started so that a healthy run prints nothing alarming.

Two messages used to reach the console of every run, both from the kernel process (whose stderr
is the runner's):

- ipykernel's "Kernel is running over TCP without encryption" is logged whenever the kernel's
  transport is TCP without CurveZMQ keys. The kernel only talks to the runner on this machine, so
  it is started on the IPC transport (Unix sockets in a private temporary folder), which is what
  the warning itself recommends, and the warning has nothing to say;
- "KeyboardInterrupt caught in kernel": jupyter_client's ``shutdown_kernel`` sends SIGINT before
  the shutdown request, to stop a cell that may still run. When papermill shuts a kernel down
  every cell has finished, and the SIGINT only races with ipykernel's message handlers (which log
  the interrupt as an error). :class:`QuietKernelManager` skips that interrupt. A kernel that is
  still busy (a cell that timed out) is not left running: ipykernel answers the shutdown request
  on its control thread, and jupyter_client kills the process when it has not exited within its
  ``shutdown_wait_time``.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_client import AsyncKernelManager
from traitlets.config import Config


class QuietKernelManager(AsyncKernelManager):
    """An AsyncKernelManager that does not send SIGINT to a kernel it is shutting down."""

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()


def kernel_options(socket_dir: Path) -> dict:
    """Keyword arguments for ``papermill.execute_notebook``: the quiet kernel manager on IPC.

    Parameters
    ----------
    socket_dir : Path
        A private, short-lived folder for the kernel's Unix sockets (the runner's temporary folder).
    """
    config = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(socket_dir) / "kernel")}})
    return {"kernel_manager_class": QuietKernelManager, "config": config}
