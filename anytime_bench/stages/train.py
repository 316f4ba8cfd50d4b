"""Stage 1: train each encoder, dump its codes once, train a prior on them.

A component whose checkpoint already matches the config is loaded, not
retrained, so that re-running an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import torch

from .. import storage
from ..config import BenchConfig
from ..context import RunContext, seed_everything
from ..distributed import gather_objects, weights_digest
from ..errors import CheckpointError, ComponentError, NonFiniteLossError
from ..interfaces import DataSplits
from ..plugin_manager import Plugins
from ..rundir import RunDir
from .common import blame, build_encoder, build_prior, encode_all, encoder_digest, load_dataset, prior_digest


def train_stage(cfg: BenchConfig, plugins: Plugins, run_dir: RunDir, ctx: RunContext,
                splits: DataSplits | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    splits = splits if splits is not None else load_dataset(cfg, plugins)
    ctx.log(f"dataset [bold]{cfg.run.dataset}[/]: {len(splits.train)} train, {len(splits.test)} test, "
            f"shape {tuple(splits.data_shape)}")
    models: dict[str, Any] = {}
    for model in cfg.run.encoders:
        models[model] = _train_model(cfg, plugins, run_dir, ctx, splits, model)
        run_dir.update_state(models={model: models[model]})
    seconds = time.perf_counter() - started
    run_dir.update_state(stage_seconds={"train": round(seconds, 3)}, status="trained")
    return models


def _train_model(cfg, plugins, run_dir, ctx, splits, model: str) -> dict[str, Any]:
    device = ctx.device
    # Initial weights come from the global stream: seed it here, not wherever earlier work left it.
    seed_everything(cfg.run.seed)
    component, encoder = build_encoder(cfg, plugins, model, splits.data_shape, device)
    info = _fit_or_resume(run_dir, ctx, "encoder", model, encoder, component, encoder_digest(cfg, model),
                          run_dir.encoder_checkpoint(model), cfg.run.seed, lambda: encoder.fit(splits.train, ctx))
    info.update(code_length=int(encoder.code_length), codebook_size=int(encoder.codebook_size),
                ordered=bool(component.cls.ordered), data_shape=list(splits.data_shape))

    with blame(component, "encode"):
        codes = encode_all(encoder, splits.train, device)
    _check_codes(codes, encoder, component)
    storage.atomic_write(run_dir.codes(model), lambda fh: torch.save(codes, fh))
    info["codes_used"] = int(codes.unique().numel())

    seed_everything(cfg.run.seed + 1)
    prior_component, prior = build_prior(cfg, plugins, int(encoder.codebook_size), int(encoder.code_length), device)
    info.update(_fit_or_resume(run_dir, ctx, "prior", model, prior, prior_component, prior_digest(cfg, model),
                               run_dir.prior_checkpoint(model), cfg.run.seed + 1, lambda: prior.fit(codes, ctx)))
    ctx.log(f"trained [bold]{model}[/] (D={encoder.code_length}, K={encoder.codebook_size}, "
            f"{info['codes_used']} codes used) in {info['encoder_seconds'] + info['prior_seconds']:.1f}s")
    return info


def _fit_or_resume(run_dir: RunDir, ctx: RunContext, kind: str, model: str, module, component, digest: str,
                   path, seed: int, fit) -> dict[str, Any]:
    """Load ``module`` from a checkpoint of the same config, or train it and save one; report what happened."""
    started = time.perf_counter()
    info: dict[str, Any] = {}
    if _try_resume(path, kind, model, digest, module, component, ctx):
        info[f"{kind}_resumed"] = True
    else:
        seed_everything(seed)
        stage = "train encoder" if kind == "encoder" else f"train prior for {model}"
        # Mid-stage checkpoints of this fit go to checkpoints/partial/, keyed by the same digest.
        ctx.loop_dir, ctx.loop_digest = run_dir.root / "checkpoints" / "partial" / f"{model}.{kind}", digest
        ctx.batch_streams.clear()
        try:
            with blame(component, stage), _keep_last_good(run_dir, kind, model, module):
                stats = fit()
        finally:
            ctx.loop_dir = None
        storage.save_checkpoint(path, kind=kind, name=model, config_digest=digest, state=module.state_dict())
        info[f"{kind}_fit"] = stats or {}
        if ctx.topology.world_size > 1:
            # DDP broadcasts buffers (batch-norm statistics, code usage) from rank 0 before each forward; the
            # last forward's updates are rank 0's too. Parameters are compared as trained.
            for buffer in module.buffers():
                ctx.broadcast_(buffer)
            info[f"{kind}_ranks"] = _rank_records(ctx, module)
    info[f"{kind}_seconds"] = round(time.perf_counter() - started, 3)
    return info


def _rank_records(ctx: RunContext, module) -> list[dict[str, Any]]:
    """What each torchrun process saw and ended with: different data, the same weights."""
    mine = {"rank": ctx.topology.rank, "items_seen": sum(b.count for b in ctx.batch_streams),
            "data_digest": "-".join(b.digest for b in ctx.batch_streams),
            "weights_digest": weights_digest(module.state_dict())}
    return gather_objects(mine)


@contextlib.contextmanager
def _keep_last_good(run_dir: RunDir, kind: str, model: str, module) -> Iterator[None]:
    """On a NaN/inf loss, save the last good weights beside the checkpoints and say where."""
    try:
        yield
    except NonFiniteLossError as exc:
        path = run_dir.root / "checkpoints" / f"{model}.{kind}.last-good.pt"
        storage.save_checkpoint(path, kind=kind, name=model, config_digest="last-good", state=module.state_dict(),
                                extra={"stage": exc.stage, "step": exc.step})
        raise ComponentError(f"training {kind} {model!r} stopped: {exc}; the last good weights are in {path}") from exc


def _try_resume(path, kind, model, digest, module, component, ctx: RunContext) -> bool:
    if not path.is_file():
        return False
    try:
        payload = storage.load_checkpoint(path, kind=kind, name=model, config_digest=digest)
    except CheckpointError as exc:
        ctx.log(f"[yellow]not resuming {kind} {model}: {exc}; training again[/]")
        return False
    with blame(component, f"load {kind} checkpoint"):
        module.load_state_dict(payload["state"])
    ctx.log(f"resumed {kind} {model} from {path}")
    return True


def _check_codes(codes: torch.Tensor, encoder, component) -> None:
    if codes.ndim != 2 or codes.shape[1] != encoder.code_length:
        raise ComponentError(f"encoder {component.name!r} from {component.origin}: encode() returned shape "
                             f"{tuple(codes.shape)}, expected [N, {encoder.code_length}]")
    if codes.min() < 0 or codes.max() >= encoder.codebook_size:
        raise ComponentError(f"encoder {component.name!r} from {component.origin}: codes outside [0, K)")
