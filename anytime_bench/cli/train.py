"""``anytime-bench train``: train encoders and priors, saving checkpoints in the run folder."""

from __future__ import annotations

import click

from anytime_bench.cli.options import config_options, machine_flags, start


@click.command("train")
@config_options
@click.pass_obj
def command(plugins, **params):
    """Train each encoder, dump its codes and train a prior on them, once per training seed."""
    from anytime_bench.engine.pipeline import execute

    with start(plugins, params) as run:
        execute(run, ["train"])
        if run.ctx.is_main:
            click.echo(f"trained: checkpoints in {run.paths.root / 'checkpoints'}/; next: anytime-bench sample "
                       f"{run.paths.root}{machine_flags(run.cfg)}")
