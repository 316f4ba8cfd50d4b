"""Cost versus budget: wall-clock time of the prior and the decoder at every budget.

Timings use a warm-up run, device synchronization and the minimum of repeats
(timeit's convention: on a shared machine, interference only ever adds time).
The prior is timed with its key/value cache and without it (re-running the
whole prefix at every step), which is what the cache saves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
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


def timed(jobs: dict[Any, Callable[[], Any]], device: torch.device, repeats: int,
          min_seconds: float = 2.0) -> dict[Any, list[float]]:
    """Each job's time in every one of at least ``repeats`` rounds (and at least ``min_seconds`` in all).

    Rounds visit every job in turn, so a transient slowdown of the machine is
    spread over all of them instead of distorting one budget's ratio; the order
    is shuffled every round, so that no job always follows the same neighbour
    (whose freed memory, say, it would always inherit); short jobs get more
    rounds, since a few milliseconds are easily disturbed.
    """
    started = time.perf_counter()
    for fn in jobs.values():
        fn()  # warm-up: allocator, kernels, caches
    _sync(device)
    round_seconds = max(time.perf_counter() - started, 1e-6)
    rounds = max(repeats, min(1000, int(np.ceil(min_seconds / round_seconds))))
    times: dict[Any, list[float]] = {key: [] for key in jobs}
    keys = list(jobs)
    order = np.random.default_rng(0)
    for _ in range(rounds):
        for i in order.permutation(len(keys)):
            key, fn = keys[i], jobs[keys[i]]
            started = time.perf_counter()
            fn()
            _sync(device)
            times[key].append(time.perf_counter() - started)
    return times


def _drain(prior: Any, n: int, k: int, cache: bool) -> None:
    # use_cache=False is an option of priors that offer it (the built-in transformer) for this comparison
    extra = {} if cache else {"use_cache": False}
    for _ in prior.stream(n, k, generator=torch.Generator().manual_seed(0), **extra):
        pass


@torch.no_grad()
def _decode(encoder: Any, codes: torch.Tensor) -> None:
    encoder.decode(codes)


def paired_ratios(times: dict[int, list[float]], model: str, batch: int, D: int) -> list[dict[str, Any]]:
    """time(k)/time(D) per round (both measured in the same round), then the median over rounds.

    A slow spell of the machine hits the jobs of one round alike, so a ratio
    within a round is steadier than a ratio of two minima taken in different rounds.
    """
    full = np.array(times[D])
    out = []
    for k, values in sorted(times.items()):
        ratio = float(np.median(np.array(values) / full))
        out.append({"model": model, "batch": batch, "tokens": k, "budget": k / D, "time_ratio": ratio,
                    "excess": ratio - k / D})
    return out


def bench_run(cfg: BenchConfig, plugins: Plugins, run_dir: RunDir, ctx: RunContext, batches: list[int],
              repeats: int, no_cache: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``cost.csv``'s rows (the minimum over rounds) and the prior's time ratios (paired within rounds)."""
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    for model in cfg.run.encoders:
        encoder, prior = load_trained(cfg, plugins, run_dir, model, ctx)
        D = int(encoder.code_length)
        ks = sorted({tokens_for(b, D) for b in cfg.run.budgets})
        variants = [True] + ([False] if no_cache else [])
        for batch in batches:
            codes = prior.sample(batch, D, generator=torch.Generator().manual_seed(0)).to(ctx.device)
            # Cached, uncached and decoder jobs are timed in separate groups, so that every ratio compares
            # like jobs measured in the same rounds.
            groups: list[dict[tuple[int, bool, str], Callable[[], Any]]] = [
                {(k, cache, "prior"): partial(_drain, prior, batch, k, cache) for k in ks} for cache in variants]
            groups.append({(k, True, "decode"): partial(_decode, encoder, codes[:, :k]) for k in ks})
            ctx.log(f"timing {model} at batch {batch}: {sum(map(len, groups))} jobs x {repeats} rounds")
            for jobs in groups:
                times = timed(jobs, ctx.device, repeats)
                for (k, cache, stage), seconds in times.items():
                    rows.append(dict(model=model, budget=k / D, tokens=k, batch=batch, cache=cache, stage=stage,
                                     seconds=min(seconds)))
                if (D, True, "prior") in times:
                    ratios += paired_ratios({key[0]: v for key, v in times.items()}, model, batch, D)
    frame = pd.DataFrame(rows)
    frame.insert(0, "run_id", run_dir.run_id)
    frame["seconds_per_sample"] = frame.seconds / frame.batch
    return frame[COST_COLUMNS], pd.DataFrame(ratios)


def synthetic_cache_speedup(prior_cls: type, config: Any, vocab: int, length: int, batch: int, repeats: int,
                            device: torch.device) -> dict[str, float]:
    """Cached against uncached sampling of ``length`` tokens with an untrained prior of the run's architecture.

    Timing does not depend on the weights, so this measures the cache at a code
    length the run itself may not have (the paper's 64-token grids).
    """
    torch.manual_seed(0)
    prior = prior_cls(config, vocab, length).to(device).eval()
    times = timed({True: partial(_drain, prior, batch, length, True),
                   False: partial(_drain, prior, batch, length, False)}, device, repeats)
    cached, uncached = min(times[True]), min(times[False])
    return {"tokens": length, "batch": batch, "cached_seconds": cached, "uncached_seconds": uncached,
            "speedup": uncached / cached}
