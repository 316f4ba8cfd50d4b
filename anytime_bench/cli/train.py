"""``anytime-bench train``: train encoders and priors, saving checkpoints in the run folder."""

from __future__ import annotations

import click

from ..runner import run_stage, start_run
from ..stages import train_stage
from .options import config_options, resolve


@click.command("train")
@config_options
@click.pass_obj
def command(plugins, **params):
    """Train each encoder, dump its codes and train a prior on them."""
    cfg = resolve(params, plugins)
    run_dir, ctx = start_run(cfg, plugins, params["out"], params.get("run_id"), params["quiet"])
    run_stage(run_dir, "train", lambda: train_stage(cfg, plugins, run_dir, ctx))
    click.echo(f"trained: checkpoints in {run_dir.root / 'checkpoints'}/; next: anytime-bench sample {run_dir.root}")
