"""``anytime-bench train``: train encoders and priors, saving checkpoints in the run folder."""

from __future__ import annotations

import click

from .options import config_options, resolve


@click.command("train")
@config_options
@click.pass_obj
def command(plugins, **params):
    """Train each encoder, dump its codes and train a prior on them."""
    from ..context import resolve_device
    from ..runner import run_stage, start_run
    from ..stages import train_stage
    from ..stages.common import context_for, load_dataset, preflight_metrics

    cfg = resolve(params, plugins)
    splits = load_dataset(cfg, plugins)  # bad data fails before a run folder exists
    preflight_metrics(cfg, plugins, splits, context_for(cfg, resolve_device(cfg.run.device), params["quiet"]))
    run_dir, ctx = start_run(cfg, plugins, params["out"], params.get("run_id"), params["quiet"])
    run_stage(run_dir, "train", lambda: train_stage(cfg, plugins, run_dir, ctx, splits))
    if ctx.is_main:
        click.echo(f"trained: checkpoints in {run_dir.root / 'checkpoints'}/; next: anytime-bench sample {run_dir.root}")
