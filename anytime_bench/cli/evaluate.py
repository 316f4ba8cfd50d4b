"""``anytime-bench evaluate``: score saved samples and write the results."""

from __future__ import annotations

import click

from anytime_bench.cli import warn
from anytime_bench.cli.params import ListParam, PathParam
from anytime_bench.cli.reopen import reopen, reopen_options
from anytime_bench.errors import ConfigError, printable
from anytime_bench.store.rundir import METRICS_CSV, SUMMARY_MD


@click.command("evaluate", help=f"Evaluate every metric on RUN_DIR's samples; write {METRICS_CSV}, {SUMMARY_MD} "
                                 f"and the plots.")
@click.argument("run_dir", type=PathParam())
@click.option("--sample-seeds", type=ListParam("int", ranges=True),
              help="Sampling seeds to evaluate (default: the run's). Their samples must exist.")
@click.option("--floors-only", is_flag=True,
              help=f"Only record the real-versus-real floors of the run's metrics and write {SUMMARY_MD} anew from "
                   f"{METRICS_CSV}: no sample is read, no model scored, and no data where every floor is recorded (for "
                   f"runs evaluated before floors were recorded, whose samples are gone, or whose summary is stale).")
@reopen_options
@click.pass_obj
def command(plugins, run_dir, sample_seeds, floors_only, **options):
    from anytime_bench.analysis.results import floor_text, headline
    from anytime_bench.engine.stages import evaluate_stage, floors_stage
    from anytime_bench.engine.stages.evaluate import check_earlier_table, left_out_without_scores

    if floors_only and sample_seeds is not None:
        raise ConfigError("--floors-only scores no samples: it takes no --sample-seeds")
    if floors_only and options.get("models") is not None:
        raise ConfigError("--floors-only scores no model: it takes no --models")
    with reopen(plugins, run_dir, options, scores=not floors_only) as run:
        if not floors_only:  # before sampling: refused then, nothing is redone
            check_earlier_table(run)
        left_out_without_scores(run, sample_seeds)
        if floors_only:
            recorded, notes = run.stage("floors", lambda: floors_stage(run))
            floors = "; ".join([f"{name} {floor_text(f)}" for name, f in recorded.items()]
                               + [f"{name} none: {note}" for name, note in notes.items()]) or "no metric gives one"
            # the notes of metrics this run does not load are kept from the run folder: someone's text
            click.echo(printable(f"floors recorded in {run.paths.root}/ ({floors}); {SUMMARY_MD} written anew"))
            return
        frame = run.stage("evaluate", lambda: evaluate_stage(run, sample_seeds))
        for line in run.warnings:
            warn(line)
        kept = [m for m in run.cfg.not_worked_on if m in set(frame.model)]
        click.echo(f"evaluated: results in {run.paths.root}/ ({headline(frame, run.cfg.run.headline)})"
                   + (f"; the earlier scores of {', '.join(kept)} are kept" if kept else ""))
