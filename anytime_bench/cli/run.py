"""``anytime-bench run``: train, sample and evaluate in one go."""

from __future__ import annotations

import time

import click

from anytime_bench.cli.options import config_options, start


@click.command("run")
@config_options
@click.pass_obj
def command(plugins, **params):
    """Run the whole benchmark (defaults: digits, ovqvae against both unordered baselines)."""
    from anytime_bench.analysis.results import headline
    from anytime_bench.engine.pipeline import execute

    started = time.perf_counter()
    with start(plugins, params) as run:
        run.ctx.log(f"run [bold]{run.paths.run_id}[/] on {run.ctx.device}: {run.cfg.run.dataset}, "
                    f"models {', '.join(run.models)}, budgets {', '.join(f'{b:g}' for b in run.cfg.run.budgets)}, "
                    f"training seeds {run.cfg.run.train_seed_list}")
        frame = execute(run)
        for line in run.warnings:
            click.echo(f"warning: {line}", err=True)
        if run.ctx.is_main and frame is not None:
            click.echo(f"done in {time.perf_counter() - started:.0f}s: results in {run.paths.root}/ "
                       f"({headline(frame, run.cfg.run.headline)})")
