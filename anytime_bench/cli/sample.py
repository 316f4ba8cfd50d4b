"""``anytime-bench sample``: sample a trained run at every budget."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError


@click.command("sample")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--seeds", default=None, help="Comma-separated sampling seeds (default: the run's seed).")
@click.option("--device", default=None, help="Override the run's device.")
@click.option("--quiet", is_flag=True)
@click.pass_obj
def command(plugins, run_dir, seeds, device, quiet):
    """Sample every model of RUN_DIR at every budget from its saved checkpoints."""
    from ..runner import open_run, run_stage
    from ..stages import sample_stage
    cfg, run, ctx = open_run(run_dir, plugins, quiet, device)
    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise ConfigError(f"--seeds: {seeds!r} is not a comma-separated list of integers") from None
    run_stage(run, "sample", lambda: sample_stage(cfg, plugins, run, ctx, seed_list))
    click.echo(f"sampled: {run.root / 'samples'}/; next: anytime-bench evaluate {run.root}")
