"""``anytime-bench train``: train encoders and priors, saving checkpoints in the run folder."""

from __future__ import annotations

import click

from .options import config_options, start


@click.command("train")
@config_options
@click.pass_obj
def command(plugins, **params):
    """Train each encoder, dump its codes and train a prior on them, once per training seed."""
    from ..stages import train_stage

    with start(plugins, params) as run:
        run.stage("train", lambda: train_stage(run))
        if run.ctx.is_main:
            click.echo(f"trained: checkpoints in {run.paths.root / 'checkpoints'}/; next: anytime-bench sample "
                       f"{run.paths.root}")
