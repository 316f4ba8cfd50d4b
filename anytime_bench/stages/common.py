"""Helpers shared by the stages: building components, attributing their failures, digests."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..config import BenchConfig
from ..context import RunContext
from ..distributed import init_from_env
from ..errors import AnytimeBenchError, ComponentError
from ..interfaces import DataSplits, MetricInputs
from ..plugin_manager import Component, Plugins
from ..schema import to_dict


@contextlib.contextmanager
def blame(component: Component, stage: str) -> Iterator[None]:
    """Attribute an exception raised inside a component to it, its plugin and the stage."""
    try:
        yield
    except (AnytimeBenchError, ComponentError):
        raise
    except Exception as exc:
        raise ComponentError(
            f"stage {stage!r} failed in {component.kind} {component.name!r} from {component.origin}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def load_dataset(cfg: BenchConfig, plugins: Plugins) -> DataSplits:
    component = plugins.get("dataset", cfg.run.dataset)
    data_root = Path(cfg.run.data_root) if cfg.run.data_root else None
    extra = {}
    if "cache_dir" in inspect.signature(component.cls).parameters:  # datasets built once, then cached
        extra["cache_dir"] = cache_root(cfg) / "datasets"
    with blame(component, "load data"):
        dataset = component.cls(cfg.component_config("dataset", component.name), data_root, **extra)
        splits = dataset.load()
    if not isinstance(splits, DataSplits):
        raise ComponentError(f"dataset {component.name!r} from {component.origin}: load() must return DataSplits")
    return splits


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encoder_digest(cfg: BenchConfig, model: str) -> str:
    """What decides an encoder's weights: the data, the seed and its own options."""
    return _hash({
        "dataset": cfg.run.dataset,
        "dataset_options": to_dict(cfg.component_config("dataset", cfg.run.dataset)),
        "seed": cfg.run.seed,
        "encoder": model,
        "options": to_dict(cfg.component_config("encoder", model)),
    })


def prior_digest(cfg: BenchConfig, model: str) -> str:
    return _hash({
        "encoder": encoder_digest(cfg, model),
        "prior": cfg.run.prior,
        "options": to_dict(cfg.component_config("prior", cfg.run.prior)),
    })


def build_encoder(cfg: BenchConfig, plugins: Plugins, model: str, data_shape: tuple[int, ...], device: torch.device):
    component = plugins.get("encoder", model)
    with blame(component, "build"):
        encoder = component.cls(cfg.component_config("encoder", model), data_shape)
        encoder.to(device)
    return component, encoder


def build_prior(cfg: BenchConfig, plugins: Plugins, vocab_size: int, seq_len: int, device: torch.device):
    component = plugins.get("prior", cfg.run.prior)
    with blame(component, "build"):
        prior = component.cls(cfg.component_config("prior", component.name), vocab_size, seq_len)
        prior.to(device)
    return component, prior


@torch.no_grad()
def encode_all(encoder: Any, data: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    chunks = [encoder.encode(data[i:i + batch_size].to(device)).cpu() for i in range(0, len(data), batch_size)]
    return torch.cat(chunks).long()


@torch.no_grad()
def decode_all(encoder: Any, codes: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    chunks = [encoder.decode(codes[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(codes), batch_size)]
    return torch.cat(chunks)


def preflight_metrics(cfg: BenchConfig, plugins: Plugins, splits: DataSplits, ctx: RunContext) -> None:
    """Let each metric check what it needs (weights files, labels) before any training starts."""
    for name in cfg.run.metrics:
        component = plugins.get("metric", name)
        if not hasattr(component.cls, "preflight"):
            continue
        generated = component.cls.requires == "generated"
        reference = splits.train if generated and cfg.run.reference_split == "train" else splits.test
        inputs = MetricInputs(splits.test[:2], reference, cfg.run.dataset,
                              cfg.run.reference_split if generated else "test", splits, cfg.run.seed,
                              feature_extractor=cfg.run.feature_extractor, feature_weights=cfg.run.feature_weights)
        with blame(component, "preflight"):
            component.cls(cfg.component_config("metric", name)).preflight(inputs, ctx)


def tokens_for(budget: float, code_length: int) -> int:
    """The number of codes a budget (a fraction of D) allows; never below one."""
    return max(1, min(code_length, round(budget * code_length)))


def cache_root(cfg: BenchConfig) -> Path:
    return Path(cfg.run.cache_dir).expanduser() if cfg.run.cache_dir else Path.home() / ".cache" / "anytime-bench"


def context_for(cfg: BenchConfig, device: torch.device, quiet: bool) -> RunContext:
    """The context of this process; under torchrun it joins the process group first."""
    topology, device = init_from_env(device)
    return RunContext(device=device, seed=cfg.run.seed, cache_dir=cache_root(cfg), quiet=quiet, topology=topology,
                      precision=cfg.run.precision, checkpoint_every=cfg.run.checkpoint_every)
