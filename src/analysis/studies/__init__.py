"""Studies: the simulator, the calibration study and the benchmarks.

Owns ``simulate`` (synthetic clinic logs with their known truth), ``calibration`` (coverage and
type-I error over many simulated logs, ``make validate-stats``) and ``bench`` (``make bench``). May
import anything; other modules must not import studies, except ``run.cli`` (and tests).
"""
