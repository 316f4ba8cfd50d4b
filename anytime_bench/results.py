"""Writing a run's tables: ``metrics.csv`` (tidy) and ``summary.md``."""

from __future__ import annotations

import pandas as pd

from . import storage
from .config import BenchConfig
from .context import RunContext
from .plots import plot_quality_vs_budget, plot_samples
from .rundir import METRICS_COLUMNS, RunDir, now


def write_results(run_dir: RunDir, frame: pd.DataFrame, cfg: BenchConfig, ctx: RunContext) -> None:
    frame = frame[METRICS_COLUMNS]
    storage.write_text(run_dir.metrics_csv, frame.to_csv(index=False, float_format="%.6g"))
    storage.write_text(run_dir.summary_md, summary_markdown(frame, cfg))
    plot_quality_vs_budget(frame, cfg.run.metrics, run_dir.quality_plot)
    plot_samples(run_dir, cfg, run_dir.samples_png)
    ctx.log(f"wrote {run_dir.metrics_csv}, {run_dir.summary_md.name}, {run_dir.quality_plot.name}, "
            f"{run_dir.samples_png.name}")


def pivot(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """models x budgets, mean over seeds, models in run order."""
    part = frame[frame.metric == metric]
    table = part.pivot_table(index="model", columns="budget", values="value", aggfunc="mean", sort=False)
    return table


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(frame: pd.DataFrame, cfg: BenchConfig) -> str:
    run_id = frame.run_id.iloc[0] if len(frame) else "?"
    ordered = frame.groupby("model", sort=False)["ordered"].first().to_dict()
    seeds = sorted(frame.seed.unique().tolist())
    parts = [
        f"# {run_id}",
        "",
        f"Dataset `{cfg.run.dataset}`, prior `{cfg.run.prior}`, seeds {seeds}, "
        f"{cfg.run.num_samples} samples per budget, reference split `{cfg.run.reference_split}`. "
        f"Budget = fraction of the code length D used (k/D). Written {now()}.",
        "",
    ]
    for metric in [cfg.run.headline] + [m for m in cfg.run.metrics if m != cfg.run.headline]:
        table = pivot(frame, metric)
        if table.empty:
            continue
        header = ["model"] + [f"{b:g}" for b in table.columns]
        rows = []
        for model, values in table.iterrows():
            label = f"{model}" + ("" if ordered.get(model) else " (unordered)")
            rows.append([label] + [f"{v:.4g}" for v in values])
        title = "headline: " if metric == cfg.run.headline else ""
        parts += [f"## {title}{metric} by budget", "", markdown_table(header, rows), ""]
    return "\n".join(parts)
