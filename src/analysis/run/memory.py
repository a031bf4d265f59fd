"""How the ``outcomes`` process uses memory: no transparent huge pages for numpy, and freed memory
reused during validation instead of handed back to the OS and faulted in again.

Set by the command (:mod:`analysis.run.cli`) and the benchmark's workers, never when a module is
imported: these are choices about a whole process, and a library imported into someone else's
process must not make them. docs/engine.md ("At 1,000,000 patients") has the measurements.

* **Huge pages.** numpy asks the kernel for transparent huge pages for every large array
  (``madvise(MADV_HUGEPAGE)``). Where the kernel's THP ``defrag`` setting is ``madvise``, the first
  touch of such an array may stall in memory compaction, and on a VM whose guest hands free memory
  back to its host a fresh 2 MB page is slow to come back. On the development VM, filling a
  fresh 1 GB array took 14.8-15.7 s with the advice and 0.75-0.83 s without it. numpy's documented
  switch is the environment variable ``NUMPY_MADVISE_HUGEPAGE``; :func:`no_huge_pages` sets it to
  ``0`` unless the user set it (the notebook kernels the runner starts inherit it) and turns the
  advice off in this process if numpy is already imported.
* **Reuse of freed memory** (glibc only). Above its mmap threshold (at most 32 MB) glibc gives each
  allocation its own mapping and unmaps it when freed, so the next array of that size is faulted
  in page by page again; below it, a free chunk at the top of the heap over 128 kB is trimmed.
  :func:`reuse_freed_memory` turns both off for the length of a block (``M_MMAP_MAX`` 0,
  ``M_TRIM_THRESHOLD`` 2 GiB), then restores them and gives what is free back
  (``malloc_trim(0)``). Validation of a million-patient log frees and allocates arrays of
  the same sizes over and over: inside the block it faulted 0.90 million pages instead of 2.13
  million, and its peak was lower (mimalloc, pyarrow's pool, hands back what glibc then reuses).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

#: glibc's mallopt parameters (malloc.h) and their defaults.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: Free memory at the heap's top kept inside :func:`reuse_freed_memory` (bytes).
KEEP_FREE_BYTES = 2**31 - 1  # mallopt takes an int
HUGEPAGE_VARIABLE = "NUMPY_MADVISE_HUGEPAGE"


def no_huge_pages() -> bool:
    """Turn numpy's transparent-huge-page advice off in this process and its children, unless
    ``NUMPY_MADVISE_HUGEPAGE`` is already set (the user's choice is kept).

    Returns
    -------
    bool
        Whether the advice is off in this process.
    """
    if HUGEPAGE_VARIABLE in os.environ:
        return os.environ[HUGEPAGE_VARIABLE] == "0"
    os.environ[HUGEPAGE_VARIABLE] = "0"
    if "numpy" in sys.modules:  # imported before: numpy read the variable then
        try:
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:  # numpy < 2: the same function in numpy.core
            from numpy.core.multiarray import _set_madvise_hugepage
        _set_madvise_hugepage(False)
    return True


def _glibc():
    """glibc's malloc tuning functions, or None (another C library, or not Linux)."""
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def reuse_freed_memory():
    """Inside the block, freed memory stays in the heap for the next allocation (glibc only;
    elsewhere a no-op); after it, the defaults are back and free memory is returned to the OS.

    Yields
    ------
    bool
        Whether the settings were applied.
    """
    libc = _glibc()
    applied = bool(libc) and bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREE_BYTES))
    try:
        yield applied
    finally:
        if libc:
            libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
            libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
