"""``anytime-bench bench``: cost versus budget of a trained run."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError


def _ints(value: str, option: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a comma-separated list of integers") from None
    if not out or min(out) < 1:
        raise ConfigError(f"{option}: values must be positive integers")
    return out


@click.command("bench")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--batch-sizes", default="1,1000", show_default=True,
              help="Comma-separated sampling batch sizes.")
@click.option("--repeats", default=9, show_default=True, type=click.IntRange(1, 100),
              help="Least number of timed rounds over all budgets (the minimum is kept; short jobs get more).")
@click.option("--no-cache/--cache-only", default=True, show_default=True,
              help="Also time sampling without the KV cache.")
@click.option("--synthetic-length", default=64, show_default=True, type=click.IntRange(0, 4096),
              help="Also time cached against uncached sampling of this many tokens (untrained prior); 0: skip.")
@click.option("--synthetic-batch", default=1000, show_default=True, type=click.IntRange(1, 100000),
              help="Batch size of that comparison.")
@click.option("--device", default=None, help="Override the run's device.")
@click.option("--quiet", is_flag=True)
@click.pass_obj
def command(plugins, run_dir, batch_sizes, repeats, no_cache, synthetic_length, synthetic_batch, device, quiet):
    """Time the prior and the decoder of RUN_DIR at every budget; write cost.csv and cost plots."""
    import pandas as pd

    from .. import storage
    from ..bench import bench_run, synthetic_cache_speedup
    from ..plots import plot_cost_vs_budget, plot_quality_vs_time
    from ..runner import open_run, run_stage

    batches = _ints(batch_sizes, "--batch-sizes")
    cfg, run, ctx = open_run(run_dir, plugins, quiet, device)
    cost, ratios = run_stage(run, "bench", lambda: bench_run(cfg, plugins, run, ctx, batches, repeats, no_cache))
    storage.write_text(run.root / "cost.csv", cost.to_csv(index=False, float_format="%.6g"))
    plot_cost_vs_budget(cost, run.root / "cost_vs_budget.png")
    summary = {"batches": batches, "repeats": repeats, "time_ratio_method": "median over rounds of time(k)/time(D) "
               "measured in the same round",
               "max_time_ratio_excess": round(float(ratios.excess.max()), 4) if len(ratios) else None,
               "time_ratio": ratios.round(4).to_dict(orient="records")}
    if synthetic_length:
        component = plugins.get("prior", cfg.run.prior)
        speed = synthetic_cache_speedup(component.cls, cfg.component_config("prior", cfg.run.prior), 128,
                                        synthetic_length, synthetic_batch, min(repeats, 2), ctx.device)
        summary["synthetic_cache"] = {k: round(v, 5) if isinstance(v, float) else v for k, v in speed.items()}
    if run.metrics_csv.is_file():
        metrics = pd.read_csv(run.metrics_csv)
        metrics = metrics[metrics.metric == cfg.run.headline].groupby(["model", "budget"], as_index=False)["value"].mean()
        biggest = cost[(cost.batch == max(batches)) & cost.cache].groupby(["model", "budget"], as_index=False)[
            "seconds_per_sample"].sum()
        joined = metrics.merge(biggest, on=["model", "budget"])
        if len(joined):
            plot_quality_vs_time(joined, cfg.run.headline, run.root / "quality_vs_time.png")
    run.update_state(bench=summary)
    excess = summary["max_time_ratio_excess"]
    line = f"bench: {run.root / 'cost.csv'}; prior time(k)/time(D) exceeds k/D by at most {excess:.3f}"
    if synthetic_length:
        line += (f"; KV cache {summary['synthetic_cache']['speedup']:.1f}x faster than re-running the prefix at "
                 f"{synthetic_length} tokens (batch {synthetic_batch})")
    click.echo(line)
