"""Intake: the log comes in here and leaves as a validated, anonymity-checked table.

Owns reading files (CSV, Parquet, xlsx, with file line numbers), mapping a file's columns and labels
onto the data contract, the pandera schema and structural checks, the identifier guard and
k-anonymity, and the assignment of each patient to an arm. May import ``analysis.config``,
``analysis.errors`` and ``analysis.results``; must not import models, endpoints, audit, report, run or
studies: intake knows nothing of how the data will be analysed.
"""
