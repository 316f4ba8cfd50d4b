"""``anytime-bench run``: train, sample and evaluate in one go."""

from __future__ import annotations

import time

import click

from anytime_bench.cli import warn
from anytime_bench.cli.options import config_options, start


@click.command("run")
@config_options
@click.option("--redo", is_flag=True,
              help="Sample and evaluate again a run the folder holds finished (its models load from their "
                   "checkpoints); without it, such a run is left as it is.")
@click.pass_obj
def command(plugins, **params):
    """Run the whole benchmark (defaults: digits, ovqvae against both unordered baselines)."""
    from anytime_bench.analysis.results import headline
    from anytime_bench.engine.pipeline import execute, open_results

    started = time.perf_counter()
    with start(plugins, params) as run:
        if run.left_as_is:  # nothing loaded or written
            if not run.ctx.is_main:
                return  # under torchrun, rank 0 says so
            results = open_results(run.paths.root)
            click.echo(f"{run.paths.run_id} is done: results in {run.paths.root}/ "
                       f"({headline(results.metrics, run.cfg.run.headline)}); --redo samples and evaluates it again")
            return
        run.ctx.log(f"run {run.paths.run_id} on {run.ctx.device}: {run.cfg.run.dataset}, "
                    f"models {', '.join(run.models)}, budgets {', '.join(f'{b:g}' for b in run.cfg.run.budgets)}, "
                    f"training seeds {run.cfg.run.train_seed_list}")
        frame = execute(run)
        for line in run.warnings:
            warn(line)
        if run.ctx.is_main and frame is not None:
            click.echo(f"done in {time.perf_counter() - started:.0f}s: results in {run.paths.root}/ "
                       f"({headline(frame, run.cfg.run.headline)})")
