"""Cost versus budget: wall-clock time of the prior and the decoder at every budget.

Timings use a warm-up run, device synchronization and the median of repeats.
The prior is timed with its key/value cache and without it (re-running the
whole prefix at every step), which is what the cache saves.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd
import torch

from .config import BenchConfig
from .context import RunContext
from .plugin_manager import Plugins
from .rundir import RunDir
from .stages.common import tokens_for
from .stages.loading import load_trained

COST_COLUMNS = ["run_id", "model", "budget", "tokens", "batch", "cache", "stage", "seconds", "seconds_per_sample"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    fn()  # warm-up: allocator, kernels, caches
    _sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _drain(prior: Any, n: int, k: int, cache: bool) -> None:
    # use_cache=False is an option of priors that offer it (the built-in transformer) for this comparison
    extra = {} if cache else {"use_cache": False}
    for _ in prior.stream(n, k, generator=torch.Generator().manual_seed(0), **extra):
        pass


@torch.no_grad()
def _decode(encoder: Any, codes: torch.Tensor) -> None:
    encoder.decode(codes)


def bench_run(cfg: BenchConfig, plugins: Plugins, run_dir: RunDir, ctx: RunContext, batches: list[int],
              repeats: int, no_cache: bool) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for model in cfg.run.encoders:
        encoder, prior = load_trained(cfg, plugins, run_dir, model, ctx)
        D = int(encoder.code_length)
        ks = sorted({tokens_for(b, D) for b in cfg.run.budgets})
        variants = [True] + ([False] if no_cache else [])
        with ctx.progress(f"timing {model}", len(batches) * len(ks) * (len(variants) + 1)) as task:
            for batch in batches:
                codes = prior.sample(batch, D, generator=torch.Generator().manual_seed(0)).to(ctx.device)
                for k in ks:
                    for cache in variants:
                        seconds = timed(partial(_drain, prior, batch, k, cache), ctx.device, repeats)
                        rows.append(dict(model=model, budget=k / D, tokens=k, batch=batch, cache=cache, stage="prior",
                                         seconds=seconds))
                        task.advance()
                    seconds = timed(partial(_decode, encoder, codes[:, :k]), ctx.device, repeats)
                    rows.append(dict(model=model, budget=k / D, tokens=k, batch=batch, cache=True, stage="decode",
                                     seconds=seconds))
                    task.advance()
    frame = pd.DataFrame(rows)
    frame.insert(0, "run_id", run_dir.run_id)
    frame["seconds_per_sample"] = frame.seconds / frame.batch
    return frame[COST_COLUMNS]


def synthetic_cache_speedup(prior_cls: type, config: Any, vocab: int, length: int, batch: int, repeats: int,
                            device: torch.device) -> dict[str, float]:
    """Cached against uncached sampling of ``length`` tokens with an untrained prior of the run's architecture.

    Timing does not depend on the weights, so this measures the cache at a code
    length the run itself may not have (the paper's 64-token grids).
    """
    torch.manual_seed(0)
    prior = prior_cls(config, vocab, length).to(device).eval()
    cached = timed(partial(_drain, prior, batch, length, True), device, repeats)
    uncached = timed(partial(_drain, prior, batch, length, False), device, repeats)
    return {"tokens": length, "batch": batch, "cached_seconds": cached, "uncached_seconds": uncached,
            "speedup": uncached / cached}


def linearity(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and batch: prior time at k over time at D, against k/D (the paper's claim: cost ~ k)."""
    part = frame[(frame.stage == "prior") & frame.cache]
    out = []
    for (model, batch), group in part.groupby(["model", "batch"], sort=False):
        full = group[group.budget == group.budget.max()].seconds.iloc[0]
        for _, row in group.iterrows():
            out.append({"model": model, "batch": batch, "tokens": row.tokens, "budget": row.budget,
                        "time_ratio": row.seconds / full, "excess": row.seconds / full - row.budget})
    return pd.DataFrame(out)
