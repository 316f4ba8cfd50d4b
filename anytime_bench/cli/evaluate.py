"""``anytime-bench evaluate``: score saved samples and write the results."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--device", default=None, help="Override the run's device.")
@click.option("--quiet", is_flag=True)
@click.pass_obj
def command(plugins, run_dir, device, quiet):
    """Evaluate every metric on RUN_DIR's samples; write metrics.csv, summary.md and plots."""
    from ..runner import headline, open_run, run_stage
    from ..stages import evaluate_stage
    cfg, run, ctx = open_run(run_dir, plugins, quiet, device)
    frame = run_stage(run, "evaluate", lambda: evaluate_stage(cfg, plugins, run, ctx))
    click.echo(f"evaluated: results in {run.root}/ ({headline(frame, cfg.run.headline)})")
