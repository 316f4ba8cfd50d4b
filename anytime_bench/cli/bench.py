"""``anytime-bench bench``: cost versus budget of a trained run."""

from __future__ import annotations

import click

from anytime_bench.cli.params import FiniteRange, ListParam, PathParam
from anytime_bench.cli.reopen import reopen, reopen_options
from anytime_bench.store.rundir import COST_CSV, COST_PNG, TIME_PNG


@click.command("bench", help=f"Time the prior and the decoder of RUN_DIR at every budget; write {COST_CSV}, "
                              f"{COST_PNG} and {TIME_PNG}.")
@click.argument("run_dir", type=PathParam())
@click.option("--batch-sizes", type=ListParam("int"), default="1,1000", show_default=True,
              help="Comma-separated sampling batch sizes.")
@click.option("--repeats", default=9, show_default=True, type=click.IntRange(1, 100),
              help="Least number of timed rounds over all budgets (the minimum is kept; short jobs get more).")
@click.option("--min-seconds", default=2.0, show_default=True, type=FiniteRange(0, 3600),
              help="Least time spent timing each group of jobs: short jobs get more rounds.")
@click.option("--no-cache/--cache-only", default=True, show_default=True,
              help="Also time sampling without the KV cache (priors that declare one).")
@click.option("--synthetic-length", default=64, show_default=True, type=click.IntRange(0, 4096),
              help="Also time cached against uncached sampling of this many tokens (untrained prior); 0: skip.")
@click.option("--synthetic-batch", default=1000, show_default=True, type=click.IntRange(1, 100000),
              help="Batch size of that comparison.")
@reopen_options
@click.pass_obj
def command(plugins, run_dir, batch_sizes, repeats, min_seconds, no_cache, synthetic_length, synthetic_batch,
            **options):
    from anytime_bench.engine.bench import bench_and_record, check_kept_batches

    if not all(1 <= b <= 100_000 for b in batch_sizes):
        raise click.BadParameter("batch sizes must be in 1..100000", param_hint="--batch-sizes")
    with reopen(plugins, run_dir, options, scores=False, trained=True, data=False) as run:
        check_kept_batches(run, batch_sizes)
        summary = run.stage("bench", lambda: bench_and_record(run, batch_sizes, repeats, no_cache, synthetic_length,
                                                               synthetic_batch, min_seconds))
        excess = summary["max_time_ratio_excess"]
        line = f"bench: {run.paths.cost_csv}; " + (
            f"prior time(k)/time(D) exceeds k/D by at most {excess:.3f}" if excess is not None else
            "no time ratios: every model is per-budget, each member timed at its own length")
        synthetic = summary.get("synthetic_cache")
        if synthetic:
            line += (f"; KV cache {synthetic['speedup']:.1f}x faster than re-running the prefix at "
                     f"{synthetic_length} tokens (batch {synthetic_batch}; ideal {synthetic['ideal_speedup']:.1f}x "
                     f"at equal cost per token)")
        elif synthetic_length:
            line += f"; prior {run.cfg.models[0].prior!r} declares no KV cache, so none was timed"
        click.echo(line)
