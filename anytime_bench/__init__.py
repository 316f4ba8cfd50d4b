"""anytime-bench: a benchmark harness for anytime autoregressive generation.

The public API is what this module exports: what plugins use, and
:func:`run_benchmark` and :func:`open_results` for running and reading a
benchmark from Python, :func:`choose_sampling` for choosing how each model is
sampled on held-out data, :func:`load_model` and :mod:`sampling` for anytime
sampling of a run's trained model (to a budget, a deadline or a stop
signal); with :mod:`anytime_bench.testing`, the conformance kit. Everything
else (the layers ``files``, ``store``, ``contract``, ``analysis``, ``engine``
and ``cli``) is internal and may change.
"""

from typing import Any

from anytime_bench.contract.hookspecs import hookimpl, hookspec
from anytime_bench.contract.schema import require
from anytime_bench.errors import (
    AnytimeBenchError,
    CheckpointError,
    ComponentError,
    ConfigError,
    DataError,
    Interrupted,
    NonFiniteLossError,
    PluginError,
    check_finite,
    first_line,
)

# The rest of the API needs torch: imported when first used, so that reading results (``report``, ``runs``,
# :mod:`anytime_bench.store.record`) never pays for it.
_LAZY = {
    "archives": (".files.archives", None),
    "sampling": (".sampling", None),
    "TrainingLoop": (".contract.checkpoints", "TrainingLoop"),
    "RunContext": (".contract.context", "RunContext"),
    "seed_everything": (".contract.context", "seed_everything"),
    **{name: (".contract.conventions", name) for name in ("draw_codes", "from_pcm16", "from_uint8", "to_pcm16",
                                                 "to_uint8", "to_unit", "tokens_for")},
    **{name: (".files.datafiles", name) for name in ("contained", "data_file", "listing", "named_file",
                                                      "read_regular", "resolves_within")},
    **{name: (".contract.interfaces", name) for name in ("PROVENANCE_KEYS", "Dataset", "DataSplits", "Encoder", "Metric",
                                                "MetricInputs", "Modality", "Prior")},
    **{name: (".engine.pipeline", name) for name in ("TrainedModel", "load_model", "open_results", "run_benchmark")},
    "choose_sampling": (".analysis.selection", "choose_sampling"),
    "MAX_MAGNITUDE": (".store.tables", "MAX_MAGNITUDE"),
    **{name: (".files.storage", name) for name in ("atomic_write", "load_untrusted", "nonfinite_entry")},
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
    "Interrupted",
    "MAX_MAGNITUDE",
    "Metric",
    "MetricInputs",
    "Modality",
    "NonFiniteLossError",
    "PROVENANCE_KEYS",
    "PluginError",
    "Prior",
    "RunContext",
    "TrainedModel",
    "TrainingLoop",
    "archives",
    "atomic_write",
    "check_finite",
    "choose_sampling",
    "contained",
    "data_file",
    "draw_codes",
    "first_line",
    "from_pcm16",
    "from_uint8",
    "hookimpl",
    "hookspec",
    "listing",
    "load_model",
    "load_untrusted",
    "named_file",
    "nonfinite_entry",
    "open_results",
    "read_regular",
    "require",
    "resolves_within",
    "run_benchmark",
    "sampling",
    "seed_everything",
    "to_pcm16",
    "to_uint8",
    "to_unit",
    "tokens_for",
]
