"""Inside a reused kernel: what a notebook may leave behind, and putting it back before the next.

The runner executes several notebooks, one after another, in one kernel
(:mod:`analysis.run.kernel`). A notebook must find the kernel as a fresh one would be after its
own imports, so before each notebook the runner calls :func:`reset`, which

- clears the IPython user namespace, ``In``/``Out``, ``_``/``__``/``___`` and the output cache
  and restarts the execution count at 1 (``InteractiveShell.reset(new_session=True)``, what
  ``%reset -f`` does, plus the new history session that restarts the count);
- closes every pyplot figure and puts back ``matplotlib.rcParams`` (the library sets a few at
  import; those stay, as they would after the notebook's own import);
- puts back the warning filters and invalidates every module's "already shown" registry, so that
  a warning shown in one notebook is shown again in the next, as in a fresh kernel;
- puts back the working directory, ``sys.path``, ``os.environ``, numpy's error handling, the
  global random states of numpy and ``random``, and pandas' options;
- drops ``sys.last_*`` (a failed cell's frames) and collects garbage, so that the previous
  notebook's tables are freed before the next one loads its own.

:func:`snapshot` ends with ``gc.freeze()``: the few million objects the imports made (modules,
functions, docstrings of pandas, scipy, statsmodels, matplotlib) move to the collector's permanent
generation, so neither the collection of :func:`reset` nor the automatic ones while a notebook
runs walk them again (a full collection over them took 0.25-0.5 s, at every reset and every
oldest-generation collection in a cell). Garbage a notebook makes is collected as before; only
what was alive at the snapshot is never collected, and it lives as long as the kernel anyway.

Modules stay imported: that is the point of reusing the kernel (pandas, matplotlib, statsmodels
and the library load once per run). Our library keeps no module-level state between calls
(no registries; ``tests/run/test_kernel.py`` holds a reused kernel to this) but one cache:
``analysis.models.design_direct`` keeps the patsy DesignInfo of a direct-class formula, keyed by
everything it depends on (formula, categorical columns and their levels), so a notebook gets the
DesignInfo it would have built.

:func:`snapshot` records the state to return to; the runner calls it once, after the kernel
has started and imported the library (:data:`WARM_UP`), before the first notebook.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import warnings

#: The package whose modules the notebooks import first (one per notebook, and everything they
#: use), loaded while the runner validates the log.
WARM_UP = "analysis.report.sections"

_baseline: dict | None = None


def snapshot() -> None:
    """Import :data:`WARM_UP` and record the state :func:`reset` returns to."""
    import importlib
    import pkgutil

    import matplotlib
    import numpy as np
    import pandas as pd

    package = importlib.import_module(WARM_UP)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{WARM_UP}.{module.name}")

    global _baseline
    _baseline = {
        "cwd": os.getcwd(), "path": list(sys.path), "environ": dict(os.environ),
        "filters": list(warnings.filters), "rc": dict(matplotlib.rcParams),
        "seterr": np.geterr(), "np_random": np.random.get_state(), "random": random.getstate(),
        "pandas": {key: pd.get_option(key) for key in _pandas_options()},
    }
    gc.collect()
    gc.freeze()  # see the module docstring


def _pandas_options() -> list[str]:
    import pandas as pd

    # Every registered option that is not deprecated (reading those warns).
    registered = pd._config.config._registered_options  # noqa: SLF001 — pandas has no public list
    deprecated = pd._config.config._deprecated_options  # noqa: SLF001
    return sorted(k for k in registered if k not in deprecated)


def reset() -> None:
    """Put the kernel back to the state :func:`snapshot` recorded (see the module docstring)."""
    if _baseline is None:
        raise RuntimeError("kernel_state.reset() before snapshot()")
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        shell.reset(new_session=True)
    plt.close("all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few rcParams warn when set, even to their own value
        matplotlib.rcParams.update(_baseline["rc"])
    warnings.filters[:] = _baseline["filters"]
    warnings._filters_mutated()  # noqa: SLF001 — makes every __warningregistry__ stale
    os.chdir(_baseline["cwd"])
    sys.path[:] = _baseline["path"]
    os.environ.clear()
    os.environ.update(_baseline["environ"])
    np.seterr(**_baseline["seterr"])
    np.random.set_state(_baseline["np_random"])
    random.setstate(_baseline["random"])
    for key, value in _baseline["pandas"].items():
        if pd.get_option(key) != value:
            pd.set_option(key, value)
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            delattr(sys, name)
    gc.collect()
