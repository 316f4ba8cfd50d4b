"""``anytime-bench config``: the fully resolved config of a run, as TOML to save, edit and pass back."""

from __future__ import annotations

import click

from .options import config_options, resolve
from .params import PathParam


@click.command("config")
@config_options
@click.option("--of-run", "run_dir", type=PathParam(),
              help="Print the config recorded in this run folder instead.")
@click.pass_obj
def command(plugins, run_dir, **params):
    """Print the resolved config (every [run] key and every selected component's options) as TOML.

    It takes the same CONFIG and options as ``run``; save the output, edit it
    and pass it back: ``anytime-bench run my.toml``.
    """
    from ..run import recorded
    from ..rundir import RunPaths

    cfg = recorded(RunPaths(run_dir), plugins, {})[1] if run_dir is not None else resolve(params, plugins)
    click.echo(cfg.to_toml(), nl=False)
