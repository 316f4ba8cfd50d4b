"""Stage 2: draw samples from each prior at every budget, and reconstruct the test set.

At budget k the prior generates only its first k codes and the encoder decodes
that prefix. Every budget uses the same generator seed, so the k-code samples
are prefixes of the full-length ones and budgets are compared sample for sample.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import torch

from .. import storage
from ..config import BenchConfig
from ..context import RunContext
from ..interfaces import DataSplits
from ..plugin_manager import Plugins
from ..rundir import RunDir
from .common import (
    blame,
    build_encoder,
    build_prior,
    decode_all,
    encode_all,
    encoder_digest,
    load_dataset,
    prior_digest,
    tokens_for,
)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Data in [-1, 1] as 8-bit images: what is saved, shown and scored."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def from_uint8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32)) / 127.5 - 1


def sample_stage(cfg: BenchConfig, plugins: Plugins, run_dir: RunDir, ctx: RunContext,
                 seeds: list[int] | None = None, splits: DataSplits | None = None) -> None:
    started = time.perf_counter()
    splits = splits if splits is not None else load_dataset(cfg, plugins)
    seeds = seeds if seeds is not None else [cfg.run.seed]
    for model in cfg.run.encoders:
        component, encoder = build_encoder(cfg, plugins, model, splits.data_shape, ctx.device)
        payload = storage.load_checkpoint(run_dir.encoder_checkpoint(model), kind="encoder", name=model,
                                          config_digest=encoder_digest(cfg, model))
        with blame(component, "load encoder checkpoint"):
            encoder.load_state_dict(payload["state"])
        D, K = int(encoder.code_length), int(encoder.codebook_size)
        prior_component, prior = build_prior(cfg, plugins, K, D, ctx.device)
        payload = storage.load_checkpoint(run_dir.prior_checkpoint(model), kind="prior", name=model,
                                          config_digest=prior_digest(cfg, model))
        with blame(prior_component, "load prior checkpoint"):
            prior.load_state_dict(payload["state"])

        with blame(component, "encode test set"):
            test_codes = encode_all(encoder, splits.test, ctx.device)
        budgets = [(b, tokens_for(b, D)) for b in cfg.run.budgets]
        for seed in seeds:
            arrays: dict[str, np.ndarray] = {}
            with ctx.progress(f"sampling {model} (seed {seed})", len(budgets)) as task:
                for budget, k in budgets:
                    generator = torch.Generator().manual_seed(seed)
                    with blame(prior_component, f"sample {model} at {k} tokens"):
                        codes = prior.sample(cfg.run.num_samples, k, generator=generator,
                                             temperature=cfg.run.temperature, top_k=cfg.run.top_k or None)
                    with blame(component, f"decode {k} tokens"):
                        arrays[f"generated_k{k}"] = to_uint8(decode_all(encoder, codes, ctx.device))
                        arrays[f"reconstructed_k{k}"] = to_uint8(decode_all(encoder, test_codes[:, :k], ctx.device))
                    arrays[f"codes_k{k}"] = codes.numpy().astype(np.int32)
                    task.advance(budget=budget)
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            storage.write_bytes(run_dir.samples(model, seed), buffer.getvalue())
    seconds = time.perf_counter() - started
    run_dir.update_state(stage_seconds={"sample": round(seconds, 3)}, sample_seeds=seeds, status="sampled")


def load_samples(run_dir: RunDir, model: str, seed: int) -> dict[str, Any]:
    with np.load(run_dir.samples(model, seed)) as data:
        return {key: data[key] for key in data.files}
