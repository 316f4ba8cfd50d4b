"""Opening run folders and running stages with their outcome recorded in run.json."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .config import BenchConfig, config_from_dict
from .context import RunContext, resolve_device
from .distributed import broadcast_object
from .errors import ConfigError
from .plugin_manager import Plugins
from .provenance import device_description, git_commit, package_versions
from .rundir import RunDir, new_run_id, now
from .stages.common import context_for

T = TypeVar("T")


def start_run(cfg: BenchConfig, plugins: Plugins, out: Path, run_id: str | None, quiet: bool) -> tuple[RunDir, RunContext]:
    """Create ``out/<run-id>``, or reopen it when it holds a run of the same config (to resume)."""
    if run_id is not None and (not run_id or "/" in run_id or run_id.startswith(".")):
        raise ConfigError(f"--run-id {run_id!r} must be a plain folder name")
    device = resolve_device(cfg.run.device)
    ctx = context_for(cfg, device, quiet)
    # Under torchrun every rank must name the same folder: rank 0's timestamp decides.
    run_dir = RunDir(Path(out) / broadcast_object(run_id or new_run_id(cfg.run.dataset)))
    if ctx.is_main:
        if run_dir.run_json.is_file():
            previous = run_dir.read_state()
            if previous.get("config_digest") != cfg.digest():
                raise ConfigError(f"{run_dir.root} holds a run of another config; choose another --run-id")
        elif run_dir.root.exists() and any(run_dir.root.iterdir()):
            raise ConfigError(f"{run_dir.root} exists and is not a run folder; choose another --run-id")
    state = run_dir.read_state() if ctx.is_main and run_dir.run_json.is_file() else {}
    run_dir.update_state(
        run_id=run_dir.run_id,
        config=cfg.to_dict(),
        config_digest=cfg.digest(),
        seeds={"train": cfg.run.seed, "sample": cfg.run.sample_seeds},
        versions=package_versions(plugins),
        git_commit=git_commit(),
        device=device_description(ctx.device),
        processes=ctx.topology.world_size,
        created=state.get("created", now()),
        status="started",
    )
    return run_dir, ctx


def open_run(path: Path, plugins: Plugins, quiet: bool, device: str | None = None) -> tuple[BenchConfig, RunDir, RunContext]:
    run_dir = RunDir(path)
    state = run_dir.read_state()
    if "config" not in state:
        raise ConfigError(f"{run_dir.run_json} has no 'config'")
    cfg = config_from_dict(state["config"], plugins)
    if device is not None:
        cfg.run.device = device
    return cfg, run_dir, context_for(cfg, resolve_device(cfg.run.device), quiet)


def run_stage(run_dir: RunDir, stage: str, fn: Callable[[], T]) -> T:
    """Run one stage; if it fails, run.json says where it stopped before the error propagates."""
    started = time.perf_counter()
    try:
        return fn()
    except BaseException as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        run_dir.update_state(status=f"failed in {stage}", failure=reason[:2000],
                             stage_seconds={f"{stage} (failed)": round(time.perf_counter() - started, 3)})
        raise


def headline(frame: Any, metric: str) -> str:
    """A one-line digest of the headline metric at the smallest, middle and full budget."""
    part = frame[frame.metric == metric]
    if part.empty:
        return ""
    budgets = sorted(part.budget.unique())
    picks = sorted({budgets[0], budgets[len(budgets) // 2], budgets[-1]})
    table = part.groupby(["model", "budget"], sort=False)["value"].mean()
    bits = []
    for model in part.model.unique():
        values = "/".join(f"{table[(model, b)]:.3g}" for b in picks)
        bits.append(f"{model} {values}")
    return f"{metric} at budgets {'/'.join(f'{b:g}' for b in picks)}: " + "; ".join(bits)
