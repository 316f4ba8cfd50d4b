"""``anytime-bench sample``: sample a trained run at every budget, or against a deadline."""

from __future__ import annotations

import click

from anytime_bench.cli.options import machine_flags
from anytime_bench.cli.params import ListParam, PathParam
from anytime_bench.cli.reopen import reopen, reopen_options
from anytime_bench.errors import ConfigError


def _renamed(ctx, param, value):
    if value is not None:
        raise ConfigError("--seeds was renamed: use --sample-seeds")
    return value


@click.command("sample")
@click.argument("run_dir", type=PathParam())
@click.option("--sample-seeds", type=ListParam("int", ranges=True),
              help="Comma-separated sampling seeds (default: the run's).")
@click.option("--seeds", hidden=True, expose_value=False, callback=_renamed)
@click.option("--deadline", type=float, default=None,
              help="Instead of the budgets: generate until this many seconds have passed, then decode what was reached.")
@click.option("-n", "--num-samples", type=click.IntRange(1, 1_000_000), default=16, show_default=True,
              help="Samples per model with --deadline.")
@reopen_options
@click.pass_obj
def command(plugins, run_dir, sample_seeds, deadline, num_samples, **options):
    """Sample the models of RUN_DIR (every one, or those of --models) at every budget from their saved
    checkpoints."""
    from anytime_bench.engine.stages import deadline_stage, sample_stage

    if deadline is not None and not 0 < deadline <= 86400:
        raise ConfigError(f"--deadline: {deadline} is not a number of seconds in (0, 86400]")
    if sample_seeds is not None and not all(0 <= s <= 2**31 - 1 for s in sample_seeds):
        raise ConfigError("--sample-seeds: seeds must be in 0..2147483647")
    with reopen(plugins, run_dir, options, scores=False, trained=True, data=deadline is None) as run:
        if deadline is not None:
            seed = (sample_seeds or run.cfg.run.sample_seed_list)[0]
            for line in run.stage("sample --deadline", lambda: deadline_stage(run, deadline, num_samples, seed)):
                click.echo(line)
            return
        run.stage("sample", lambda: sample_stage(run, sample_seeds))
        # evaluate scores the run's own sampling seeds unless told others: the same ones, or these samples stay aside
        seeds = f" --sample-seeds {','.join(map(str, sample_seeds))}" if sample_seeds is not None else ""
        seeds += machine_flags(run.cfg)
        if sample_seeds is not None and run.cfg.left_out:  # the metrics table holds one set of seeds for all
            click.echo(f"sampled: {run.paths.root / 'samples'}/; next: the other models at these seeds too "
                       f"(anytime-bench sample {run.paths.root}{seeds} --models {','.join(run.cfg.left_out)}), then "
                       f"anytime-bench evaluate {run.paths.root}{seeds}")
            return
        models = f" --models {','.join(run.models)}" if run.cfg.left_out else ""
        click.echo(f"sampled: {run.paths.root / 'samples'}/; next: anytime-bench evaluate {run.paths.root}{seeds}"
                   f"{models}")
