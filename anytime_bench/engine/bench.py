"""Cost versus budget: wall-clock time of the prior and the decoder at every budget.

Timings use a warm-up run, device synchronization and the minimum of repeats
(timeit's convention: on a shared machine, interference only ever adds time).
The prior is timed with its key/value cache and without it (re-running the
whole prefix at every step), which is what the cache saves.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch

from anytime_bench.contract.components import BoundEncoder, BoundPrior
from anytime_bench.contract.conventions import tokens_for
from anytime_bench.engine.run import Run
from anytime_bench.errors import ConfigError
from anytime_bench.store.rundir import COST_COLUMNS


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


def _drain(prior: BoundPrior, n: int, k: int, cache: bool) -> None:
    for _ in prior.stream(n, k, generator=torch.Generator().manual_seed(0), use_cache=cache, stage="bench"):
        pass


def _decode(encoder: BoundEncoder, codes: torch.Tensor) -> None:
    encoder.decode(codes, "bench decode")


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


def bench_run(run: Run, batches: list[int], repeats: int, no_cache: bool,
              min_seconds: float = 2.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cost table's rows (the minimum over rounds) and the prior's time ratios (paired within rounds).

    Timing does not depend on the weights, so each model is timed once, with
    the weights of its first training seed. Sampling without the key/value
    cache is timed only for priors that declare one (``kv_cache``). A
    per-budget model is timed member by member, each at its own full length;
    its time ratios are not those of one model's prefixes, so none are given.
    """
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    train_seed = run.cfg.run.train_seed_list[0]
    for model in run.models:
        entry = run.entry(model)
        encoder = run.cfg.instance(entry)
        D = run.shape_of(encoder).code_length
        by_tokens: dict[int, list[float]] = {}
        for budget in run.budgets_of(encoder):
            by_tokens.setdefault(tokens_for(budget, D), []).append(budget)
        described = run.cfg.columns(entry)
        for tokens in run.members(encoder):
            ks = sorted(by_tokens) if tokens is None else [tokens]
            for row in _time_member(run, model, train_seed, tokens, ks, batches, repeats, no_cache, min_seconds,
                                    ratios if tokens is None else None):
                for budget in by_tokens[row["tokens"]]:
                    rows.append({**row, **described, "budget": budget})
    frame = pd.DataFrame(rows)
    frame.insert(0, "run_id", run.paths.run_id)
    frame["seconds_per_sample"] = frame.seconds / frame.batch
    return frame[COST_COLUMNS], pd.DataFrame(ratios)


def _time_member(run: Run, model: str, train_seed: int, tokens: int | None, ks: list[int], batches: list[int],
                 repeats: int, no_cache: bool, min_seconds: float,
                 ratios: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    encoder, prior = run.load_trained(model, train_seed, tokens)
    D = encoder.code_length
    variants = [True] + ([False] if no_cache and prior.kv_cache else [])
    rows = []
    for batch in batches:
        codes = prior.sample(batch, D, generator=torch.Generator().manual_seed(0), stage="bench")
        # Cached, uncached and decoder jobs are timed in separate groups, so that every ratio compares
        # like jobs measured in the same rounds.
        groups: list[dict[tuple[int, bool, str], Callable[[], Any]]] = [
            {(k, cache, "prior"): partial(_drain, prior, batch, k, cache) for k in ks} for cache in variants]
        groups.append({(k, True, "decode"): partial(_decode, encoder, codes[:, :k]) for k in ks})
        run.ctx.log(f"timing {model} at batch {batch}: {sum(map(len, groups))} jobs x {repeats} rounds")
        for jobs in groups:
            times = timed(jobs, run.ctx.device, repeats, min_seconds)
            for (k, cache, stage), seconds in times.items():
                # What the prior declares: one without a cache samples the same way whatever it is asked.
                rows.append(dict(model=model, train_seed=train_seed, tokens=k, batch=batch,
                                 cache=cache and prior.kv_cache, stage=stage, seconds=min(seconds)))
            if ratios is not None and (D, True, "prior") in times:
                ratios += paired_ratios({key[0]: v for key, v in times.items()}, model, batch, D)
    return rows


def ideal_cache_speedup(tokens: int) -> float:
    """What the key/value cache saves at equal cost per token fed: re-running the prefix feeds 1 + 2 + ... + k
    = k(k+1)/2 tokens for k codes, the cache k, so (k+1)/2, about D/2 at the full length D. Attention, whose
    cost grows with the prefix in both, and the per-step draw, the same in both, move the measured ratio from it."""
    return (tokens + 1) / 2


def synthetic_cache_speedup(run: Run, vocab: int, length: int, batch: int, repeats: int) -> dict[str, float] | None:
    """Cached against uncached sampling of ``length`` tokens with an untrained prior of the first model's
    architecture.

    Timing does not depend on the weights, so this measures the cache at a code
    length the run itself may not have (the paper's 64-token grids). None when
    the prior declares no key/value cache.
    """
    entry = run.cfg.models[0]
    component = run.plugins.get("prior", entry.prior)
    torch.manual_seed(0)
    prior = BoundPrior.build(component, run.cfg.prior_configs[entry.label], vocab, length, run.ctx.device)
    prior.use_code_vectors(torch.randn(length, vocab, 64))  # read by priors whose options ask for them
    if not prior.kv_cache:
        return None
    device = run.ctx.device
    times = timed({True: partial(_drain, prior, batch, length, True),
                   False: partial(_drain, prior, batch, length, False)}, device, repeats)
    cached, uncached = min(times[True]), min(times[False])
    return {"tokens": length, "batch": batch, "cached_seconds": cached, "uncached_seconds": uncached,
            "speedup": uncached / cached, "ideal_speedup": ideal_cache_speedup(length)}


def earlier_cost(run: Run, models: list[str]) -> pd.DataFrame:
    """The rows of ``models`` in the run's cost table as an earlier bench wrote them (none if it has none, or it
    cannot be read): the models set aside or left out (:attr:`.BenchConfig.not_worked_on`) are not timed again, and
    their times are kept."""
    from anytime_bench.store.tables import read_cost

    path = run.paths.cost_csv
    if not models or not (path.is_file() or path.is_symlink()):
        return pd.DataFrame()
    problems: list[str] = []
    frame = None if path.is_symlink() else read_cost(path, problems)
    if frame is None:  # the others' rows would be lost with the table: refused (check_kept_batches says so first)
        raise ConfigError(f"{path} cannot be read ({'; '.join(problems)[:300] or 'a link, which is not followed'}): "
                          f"timing only some models would replace it and lose the rows of {', '.join(models)}; "
                          f"repair or remove it, or time every model")
    return frame[frame.model.isin(models)].assign(run_id=run.paths.run_id)


def earlier_ratios(run: Run) -> list[dict[str, Any]]:
    """The time ratios an earlier bench recorded of the models not timed now (:attr:`.BenchConfig.not_worked_on`:
    kept, as their times are in the cost table)."""
    earlier = _recorded_bench(run).get("time_ratio")
    return [row for row in earlier if isinstance(row, dict) and row.get("model") in run.cfg.not_worked_on
            and all(isinstance(row.get(k), int | float) for k in ("batch", "tokens", "time_ratio", "excess"))] \
        if isinstance(earlier, list) else []


def _in_run_order(run: Run, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return run.in_recorded_order(pd.DataFrame(rows)).to_dict(orient="records") if rows else []


def _recorded_bench(run: Run) -> dict[str, Any]:
    state = run.record.read() if run.paths.run_json.is_file() else {}
    return state["bench"] if isinstance(state.get("bench"), dict) else {}


def check_kept_batches(run: Run, batches: list[int]) -> None:
    """Refuse to time some models (``--models``) at other batch sizes than the cost table holds the others at: the
    table would compare times taken at different batch sizes, and the others' could only be dropped."""
    earlier_cost(run, run.cfg.not_worked_on)  # before any timing: refused if the others' times cannot be kept
    recorded = _recorded_bench(run).get("batches")
    if run.cfg.left_out and isinstance(recorded, list) and run.paths.cost_csv.is_file() \
            and sorted(set(recorded)) != sorted(set(batches)):
        raise ConfigError(f"--models: {run.paths.cost_csv.name} holds the other models at batch sizes "
                          f"{','.join(map(str, recorded))[:60]}: time at those (--batch-sizes "
                          f"{','.join(map(str, recorded))[:60]}), or leave out --models")


def bench_and_record(run: Run, batches: list[int], repeats: int, no_cache: bool, synthetic_length: int,
                     synthetic_batch: int, min_seconds: float = 2.0) -> dict[str, Any]:
    """Time the run, write the cost table and its plots, record the summary and return it."""
    from anytime_bench.analysis.plots import plot_cost_vs_budget, plot_quality_vs_time
    from anytime_bench.analysis.tradeoffs import quality_vs_time
    from anytime_bench.files import storage
    from anytime_bench.store.tables import read_metrics

    cost, ratios = bench_run(run, batches, repeats, no_cache, min_seconds)
    kept = earlier_cost(run, [m for m in run.cfg.not_worked_on if m not in cost.model.values])
    if len(kept):
        cost = run.in_recorded_order(pd.concat([cost, kept], ignore_index=True))
    storage.write_text(run.paths.cost_csv, cost.to_csv(index=False, float_format="%.6g"))
    plot_cost_vs_budget(cost, run.paths.cost_plot)
    summary: dict[str, Any] = {
        "batches": batches, "repeats": repeats, "min_seconds": min_seconds,
        "time_ratio_method": "median over rounds of time(k)/time(D) measured in the same round",
        "time_ratio": _in_run_order(run, ratios.round(4).to_dict(orient="records") + earlier_ratios(run))}
    # over every model's ratios, those kept from an earlier bench too: it speaks for the run
    excess = [row["excess"] for row in summary["time_ratio"]]
    summary["max_time_ratio_excess"] = round(float(max(excess)), 4) if excess else None
    if synthetic_length:
        speed = synthetic_cache_speedup(run, 128, synthetic_length, synthetic_batch, min(repeats, 2))
        summary["synthetic_cache"] = None if speed is None else {
            k: round(v, 5) if isinstance(v, float) else v for k, v in speed.items()}
    if run.paths.metrics_csv.is_file():
        metrics = read_metrics(run.paths.metrics_csv, [], run_settings=dataclasses.asdict(run.cfg.run))
        if metrics is not None:
            joined = quality_vs_time(metrics, cost, run.cfg.run.headline)
            if len(joined):
                plot_quality_vs_time(joined, run.cfg.run.headline, run.paths.time_plot)
    run.record.update(bench=summary)
    return summary
