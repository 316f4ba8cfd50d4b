"""``anytime-bench evaluate``: score saved samples and write the results."""

from __future__ import annotations

import click

from anytime_bench.cli.params import ListParam, PathParam
from anytime_bench.cli.reopen import reopen, reopen_options
from anytime_bench.store.rundir import METRICS_CSV, SUMMARY_MD


@click.command("evaluate", help=f"Evaluate every metric on RUN_DIR's samples; write {METRICS_CSV}, {SUMMARY_MD} "
                                 f"and the plots.")
@click.argument("run_dir", type=PathParam())
@click.option("--sample-seeds", type=ListParam("int", ranges=True),
              help="Sampling seeds to evaluate (default: the run's). Their samples must exist.")
@reopen_options
@click.pass_obj
def command(plugins, run_dir, sample_seeds, **options):
    from anytime_bench.analysis.results import headline
    from anytime_bench.engine.stages import evaluate_stage

    with reopen(plugins, run_dir, options) as run:
        frame = run.stage("evaluate", lambda: evaluate_stage(run, sample_seeds))
        click.echo(f"evaluated: results in {run.paths.root}/ ({headline(frame, run.cfg.run.headline)})")
