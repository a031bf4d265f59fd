"""Run: one command, one run folder.

Owns the runner (pre-flight checks, executing the notebooks with papermill, merging results,
rendering HTML), the manifest, ``outcomes verify``, Dask batches and the command line. May import
every stage above (intake, models, endpoints, audit, report) and the foundations; only ``run.cli``
may import ``analysis.studies`` (for ``outcomes simulate``), and no module of another stage may
import run: it is the top of the pipeline. Modules here must not import studies otherwise.
"""
