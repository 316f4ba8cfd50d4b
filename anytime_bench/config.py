"""Run configuration: defaults, TOML file, CLI overrides, validated before work starts.

A config file has a ``[run]`` table (:class:`RunConfig`) and one table per
component whose options differ from its defaults::

    [run]
    dataset = "digits"
    encoders = ["ovqvae", "vqvae-channel", "vqvae-spatial"]
    budgets = [0.25, 0.5, 1.0]

    [encoder.ovqvae]
    code_length = 16

Component tables are checked against the component's own ``Config`` dataclass.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomllib

from .errors import ConfigError
from .plugin_manager import KINDS, Plugins
from .schema import from_dict, require, to_dict

DEFAULT_BUDGETS = [i / 8 for i in range(1, 9)]


@dataclass
class RunConfig:
    """The ``[run]`` table: what to benchmark and how."""

    dataset: str = "digits"
    encoders: list[str] = field(default_factory=lambda: ["ovqvae", "vqvae-channel", "vqvae-spatial"])
    prior: str = "transformer"
    metrics: list[str] = field(default_factory=lambda: ["fid", "rfid", "mse", "psnr"])
    headline_metric: str = ""
    """The metric of summary tables and the final line; empty means the first of ``metrics``."""
    budgets: list[float] = field(default_factory=lambda: list(DEFAULT_BUDGETS))
    seed: int = 0
    device: str = "auto"
    num_samples: int = 1000
    """Generated samples per (model, budget) scored by ``generated`` metrics."""
    reference_split: Literal["train", "test"] = "train"
    """Real data that generated samples are compared with."""
    temperature: float = 1.0
    top_k: int = 0
    """0 samples from the full distribution, as the paper does."""
    seeds: int = 1
    """Sampling seeds: seed, seed+1, ...; metrics.csv keeps one row per seed and summaries give intervals."""
    feature_extractor: Literal["auto", "classifier", "inception-v3-compat"] = "auto"
    """Feature space of fid/kid/isc/prc/rfid: auto picks Inception for colour images >= 32x32, else a
    classifier trained on the dataset."""
    feature_weights: str = ""
    """Local Inception weights (offline use); empty: torch's hub cache, downloaded once if online."""
    data_root: str = ""
    cache_dir: str = ""
    """Classifier weights and reference statistics; empty means ~/.cache/anytime-bench."""
    checkpoint_every: int = 100
    """Training steps between mid-stage checkpoints (0: only at the end of each stage)."""
    precision: Literal["auto", "fp32"] = "auto"
    """auto: bf16 autocast for the prior on CUDA (fp32 on CPU); fp32: never autocast."""

    @property
    def sample_seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    @property
    def headline(self) -> str:
        return self.headline_metric or self.metrics[0]

    def validate(self) -> None:
        require(len(self.budgets) > 0, "budgets", "needs at least one budget")
        for b in self.budgets:
            require(0.0 < b <= 1.0, "budgets", f"{b} is outside (0, 1]")
        require(len(set(self.budgets)) == len(self.budgets), "budgets", "has duplicates")
        require(len(self.encoders) > 0, "encoders", "needs at least one encoder")
        require(len(set(self.encoders)) == len(self.encoders), "encoders", "has duplicates")
        require(len(self.metrics) > 0, "metrics", "needs at least one metric")
        require(self.headline_metric in ("", *self.metrics), "headline_metric",
                f"{self.headline_metric!r} is not in metrics")
        require(self.num_samples >= 1, "num_samples", "must be >= 1")
        require(self.temperature > 0, "temperature", "must be > 0")
        require(self.top_k >= 0, "top_k", "must be >= 0")
        require(self.seed >= 0, "seed", "must be >= 0")
        require(self.seeds >= 1, "seeds", "must be >= 1")
        require(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0")
        require(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"), "device",
                f"{self.device!r} is not auto, cpu, cuda[:N] or mps")


@dataclass
class BenchConfig:
    """A validated run config with every selected component's options resolved."""

    run: RunConfig
    options: dict[str, dict[str, Any]]
    """kind -> component name -> Config instance, for every selected component."""

    def component_config(self, kind: str, name: str) -> Any:
        return self.options[kind][name]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run": to_dict(self.run)}
        for kind, by_name in self.options.items():
            out[kind] = {name: to_dict(cfg) for name, cfg in by_name.items()}
        return out

    def digest(self) -> str:
        """A hash of everything that decides the results (used to match checkpoints to configs)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(raw: dict[str, Any], plugins: Plugins) -> BenchConfig:
    """Validate a raw config dict (file merged with CLI overrides) against the core and the plugins."""
    tables = {"run", *KINDS}
    unknown = sorted(set(raw) - tables)
    if unknown:
        raise ConfigError(f"unknown config table {unknown[0]!r} (known: {', '.join(sorted(tables))})")
    raw = merge(dataset_defaults(raw, plugins), raw)
    run = from_dict(RunConfig, raw.get("run", {}), "run")
    selected = {
        "dataset": [run.dataset],
        "encoder": list(run.encoders),
        "prior": [run.prior],
        "metric": list(run.metrics),
    }
    options: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
    for kind in KINDS:
        given = raw.get(kind, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{kind}: expected a table of per-{kind} tables")
        for name in given:
            plugins.get(kind, name)  # options for a component that is not installed are a typo
        for name in selected[kind]:
            component = plugins.get(kind, name)
            options[kind][name] = from_dict(component.cls.Config, given.get(name, {}), f"{kind}.{name}")
    return BenchConfig(run=run, options=options)


def dataset_defaults(raw: dict[str, Any], plugins: Plugins) -> dict[str, Any]:
    """The partial config a dataset class offers in ``defaults`` (audio encoders and metrics for an audio
    dataset, say); the user's file and options are merged over it."""
    run = raw.get("run", {})
    name = run.get("dataset", RunConfig.dataset) if isinstance(run, dict) else RunConfig.dataset
    if not isinstance(name, str):
        return {}  # from_dict reports the type error
    defaults = getattr(plugins.get("dataset", name).cls, "defaults", None) or {}
    if not isinstance(defaults, dict) or not set(defaults) <= {"run", *KINDS}:
        raise ConfigError(f"dataset {name!r}: its defaults must be a dict of config tables")
    return defaults


def load_config(path: Path | None, overrides: dict[str, Any], plugins: Plugins) -> BenchConfig:
    raw = read_toml(path) if path is not None else {}
    return build_config(merge(raw, overrides), plugins)


def config_from_dict(data: dict[str, Any], plugins: Plugins) -> BenchConfig:
    """Rebuild a config saved in ``run.json``."""
    return build_config(data, plugins)
