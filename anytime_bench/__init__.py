"""anytime-bench: a benchmark harness for anytime autoregressive generation.

The public API that plugins use is what this module exports (and
:mod:`anytime_bench.testing`, the conformance kit); everything else is
internal and may change.
"""

from . import archives
from .context import RunContext, seed_everything
from .conventions import from_pcm16, from_uint8, to_pcm16, to_uint8, to_unit, tokens_for
from .datafiles import contained, data_file, named_file
from .errors import (
    AnytimeBenchError,
    CheckpointError,
    ComponentError,
    ConfigError,
    DataError,
    NonFiniteLossError,
    PluginError,
    check_finite,
    first_line,
)
from .hookspecs import hookimpl, hookspec
from .interfaces import (
    PROVENANCE_KEYS,
    Dataset,
    DataSplits,
    Encoder,
    Metric,
    MetricInputs,
    Modality,
    Prior,
)
from .schema import require
from .storage import atomic_write, load_untrusted, nonfinite_entry

__version__ = "0.2.0"

__all__ = [
    "AnytimeBenchError",
    "CheckpointError",
    "ComponentError",
    "ConfigError",
    "DataError",
    "DataSplits",
    "Dataset",
    "Encoder",
    "Metric",
    "MetricInputs",
    "Modality",
    "NonFiniteLossError",
    "PROVENANCE_KEYS",
    "PluginError",
    "Prior",
    "RunContext",
    "archives",
    "atomic_write",
    "check_finite",
    "contained",
    "data_file",
    "first_line",
    "from_pcm16",
    "from_uint8",
    "hookimpl",
    "hookspec",
    "load_untrusted",
    "named_file",
    "nonfinite_entry",
    "require",
    "seed_everything",
    "to_pcm16",
    "to_uint8",
    "to_unit",
    "tokens_for",
]
