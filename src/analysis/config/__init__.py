"""Run configuration: one pydantic model per YAML section, unknown keys refused by name.

A run config says where the log is, how its columns and labels map onto the data contract
(docs/data-contract.md), which arm is the comparator, and the model options. Relative paths
(``data``, ``claims``) are resolved against the folder of the config file, so a config and the
log it names can be moved together.

One module per concern: ``sections`` (the base of every section), ``data`` (reading and the meaning
of the file's columns), ``models`` (analysis options), ``outcomes`` (what each outcome is, and the design), ``run`` (the whole config) and ``loading``
(YAML in, errors named by key). The names below are the package's public face.
"""

from analysis.config.data import (
                                     CONSTANT_COLUMNS,
                                     CONTRACT_COLUMNS,
                                     DEFAULT_INTERVENTIONS,
                                     ReadOptions,
                                     ScaleRange,
)
from analysis.config.loading import _format_errors, load_config, load_yaml, parse_config
from analysis.config.mapping import (
                                     UNIT_WORD,
                                     WEEKS_PER_UNIT,
                                     BaselineOptions,
                                     ReshapeOptions,
                                     ReshapePattern,
                                     from_weeks,
                                     to_weeks,
)
from analysis.config.models import (
                                     BenchmarkingOptions,
                                     EpisodesModelOptions,
                                     ModelsConfig,
                                     ModeratorOptions,
                                     PainModelOptions,
                                     ResponderOptions,
                                     StrengthModelOptions,
)
from analysis.config.outcomes import DEFAULT_OUTCOMES, Mcid, OutcomeMeta, outcome_meta, outcome_word
from analysis.config.run import RunConfig

__all__ = ["UNIT_WORD", "WEEKS_PER_UNIT", "BaselineOptions", "ReshapeOptions", "ReshapePattern",
           "from_weeks", "to_weeks", "DEFAULT_OUTCOMES", "Mcid", "OutcomeMeta", "outcome_meta", "outcome_word", "CONSTANT_COLUMNS", "CONTRACT_COLUMNS", "DEFAULT_INTERVENTIONS", "BenchmarkingOptions", "EpisodesModelOptions",
           "ModelsConfig", "ModeratorOptions", "PainModelOptions", "ReadOptions", "ResponderOptions",
           "RunConfig", "ScaleRange", "StrengthModelOptions", "_format_errors", "load_config",
           "load_yaml", "parse_config"]
