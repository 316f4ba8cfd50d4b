"""``anytime-bench run``: train, sample and evaluate in one go."""

from __future__ import annotations

import time

import click

from .options import config_options, start


@click.command("run")
@config_options
@click.pass_obj
def command(plugins, **params):
    """Run the whole benchmark (defaults: digits, ovqvae against both unordered baselines)."""
    from ..results import headline
    from ..stages import evaluate_stage, sample_stage, train_stage

    started = time.perf_counter()
    with start(plugins, params) as run:
        run.ctx.log(f"run [bold]{run.paths.run_id}[/] on {run.ctx.device}: {run.cfg.run.dataset}, "
                    f"models {', '.join(run.models)}, budgets {', '.join(f'{b:g}' for b in run.cfg.run.budgets)}, "
                    f"training seeds {run.cfg.run.train_seed_list}")
        run.stage("train", lambda: train_stage(run))
        if not run.ctx.is_main:
            return  # under torchrun, rank 0 alone samples and evaluates what all ranks trained
        run.stage("sample", lambda: sample_stage(run))
        frame = run.stage("evaluate", lambda: evaluate_stage(run))
        seconds = time.perf_counter() - started
        run.record.update(wall_seconds=round(seconds, 3), status="done")
        click.echo(f"done in {seconds:.0f}s: results in {run.paths.root}/ ({headline(frame, run.cfg.run.headline)})")
