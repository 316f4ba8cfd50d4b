"""anytime-bench: a benchmark harness for anytime autoregressive generation.

The public API that plugins use is what this module exports; everything else
is internal and may change.
"""

from .context import RunContext, seed_everything
from .errors import (
    AnytimeBenchError,
    CheckpointError,
    ConfigError,
    DataError,
    NonFiniteLossError,
    PluginError,
    check_finite,
)
from .hookspecs import hookimpl, hookspec
from .interfaces import Dataset, DataSplits, Encoder, Metric, MetricInputs, Prior
from .schema import require
from .storage import atomic_write

__version__ = "0.1.0"

__all__ = [
    "AnytimeBenchError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DataSplits",
    "Dataset",
    "Encoder",
    "Metric",
    "MetricInputs",
    "NonFiniteLossError",
    "PluginError",
    "Prior",
    "RunContext",
    "atomic_write",
    "check_finite",
    "hookimpl",
    "hookspec",
    "require",
    "seed_everything",
]
