"""``anytime-bench run``: train, sample and evaluate in one go."""

from __future__ import annotations

import time

import click

from .options import config_options, resolve


@click.command("run")
@config_options
@click.pass_obj
def command(plugins, **params):
    """Run the whole benchmark (defaults: digits, ovqvae against both unordered baselines)."""
    from ..context import resolve_device
    from ..runner import headline, run_stage, start_run
    from ..stages import evaluate_stage, sample_stage, train_stage
    from ..stages.common import context_for, load_dataset, preflight_metrics

    started = time.perf_counter()
    cfg = resolve(params, plugins)
    splits = load_dataset(cfg, plugins)  # bad data fails before a run folder exists
    preflight_metrics(cfg, plugins, splits, context_for(cfg, resolve_device(cfg.run.device), params["quiet"]))
    run_dir, ctx = start_run(cfg, plugins, params["out"], params.get("run_id"), params["quiet"])
    ctx.log(f"run [bold]{run_dir.run_id}[/] on {ctx.device}: {cfg.run.dataset}, "
            f"encoders {', '.join(cfg.run.encoders)}, budgets {', '.join(f'{b:g}' for b in cfg.run.budgets)}")
    run_stage(run_dir, "train", lambda: train_stage(cfg, plugins, run_dir, ctx, splits))
    if not ctx.is_main:
        return  # under torchrun, rank 0 alone samples and evaluates what all ranks trained
    run_stage(run_dir, "sample", lambda: sample_stage(cfg, plugins, run_dir, ctx, splits=splits))
    frame = run_stage(run_dir, "evaluate", lambda: evaluate_stage(cfg, plugins, run_dir, ctx, splits))
    seconds = time.perf_counter() - started
    run_dir.update_state(wall_seconds=round(seconds, 3), status="done")
    click.echo(f"done in {seconds:.0f}s: results in {run_dir.root}/ ({headline(frame, cfg.run.headline)})")
