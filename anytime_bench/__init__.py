"""anytime-bench: a benchmark harness for anytime autoregressive generation.

The public API that plugins use is what this module exports (and
:mod:`anytime_bench.testing`, the conformance kit); everything else is
internal and may change.
"""

from typing import Any

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
from .schema import require

# The rest of the API needs torch: imported when first used, so that reading results (``report``, ``runs``,
# :mod:`anytime_bench.record`) never pays for it.
_LAZY = {
    "archives": (".archives", None),
    "TrainingLoop": (".checkpoints", "TrainingLoop"),
    "RunContext": (".context", "RunContext"),
    "seed_everything": (".context", "seed_everything"),
    **{name: (".conventions", name) for name in ("draw_codes", "from_pcm16", "from_uint8", "to_pcm16",
                                                 "to_uint8", "to_unit", "tokens_for")},
    **{name: (".datafiles", name) for name in ("contained", "data_file", "named_file")},
    **{name: (".interfaces", name) for name in ("PROVENANCE_KEYS", "Dataset", "DataSplits", "Encoder", "Metric",
                                                "MetricInputs", "Modality", "Prior")},
    **{name: (".storage", name) for name in ("atomic_write", "load_untrusted", "nonfinite_entry")},
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'anytime_bench' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


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
    "TrainingLoop",
    "archives",
    "atomic_write",
    "check_finite",
    "contained",
    "data_file",
    "draw_codes",
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
