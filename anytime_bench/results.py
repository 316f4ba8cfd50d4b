"""Writing a run's tables: ``metrics.csv`` (tidy) and ``summary.md`` (means, intervals, anytime scores)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import storage
from .config import BenchConfig
from .context import RunContext
from .plots import plot_quality_vs_budget, plot_samples
from .rundir import METRICS_COLUMNS, RunDir, now

BOOTSTRAP_RESAMPLES = 2000


def write_results(run_dir: RunDir, frame: pd.DataFrame, cfg: BenchConfig, ctx: RunContext,
                  higher_is_better: dict[str, bool] | None = None) -> None:
    frame = frame[METRICS_COLUMNS]
    storage.write_text(run_dir.metrics_csv, frame.to_csv(index=False, float_format="%.6g"))
    storage.write_text(run_dir.summary_md, summary_markdown(frame, cfg, higher_is_better or {}))
    plot_quality_vs_budget(frame, metric_order(frame, cfg), run_dir.quality_plot)
    plot_samples(run_dir, cfg, run_dir.samples_png)
    ctx.log(f"wrote {run_dir.metrics_csv}, {run_dir.summary_md.name}, {run_dir.quality_plot.name}, "
            f"{run_dir.samples_png.name}")


def metric_order(frame: pd.DataFrame, cfg: BenchConfig) -> list[str]:
    names = list(dict.fromkeys(frame.metric))
    head = [m for m in names if m == cfg.run.headline or m.startswith(f"{cfg.run.headline}_")]
    return head + [m for m in names if m not in head]


def bootstrap_interval(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean (over seeds)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(BOOTSTRAP_RESAMPLES, len(values)), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def anytime_score(budgets: np.ndarray, values: np.ndarray) -> float:
    """Normalized area under the quality-versus-budget curve: its mean height over the budget range (trapezoid)."""
    order = np.argsort(budgets)
    b, v = budgets[order], values[order]
    if len(b) == 1:
        return float(v[0])
    return float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(b)) / (b[-1] - b[0]))


def monotone_violations(budgets: np.ndarray, values: np.ndarray, higher_is_better: bool) -> list[float]:
    """Budgets at which quality got worse than at the previous, smaller budget."""
    order = np.argsort(budgets)
    b, v = budgets[order], values[order]
    worse = np.diff(v) < 0 if higher_is_better else np.diff(v) > 0
    return [float(x) for x in b[1:][worse]]


def _cell(values: np.ndarray) -> str:
    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{mean:.4g}"
    lo, hi = bootstrap_interval(values)
    return f"{mean:.4g} [{lo:.4g}, {hi:.4g}]"


def summary_markdown(frame: pd.DataFrame, cfg: BenchConfig, higher_is_better: dict[str, bool]) -> str:
    run_id = frame.run_id.iloc[0] if len(frame) else "?"
    ordered = frame.groupby("model", sort=False)["ordered"].first().to_dict()
    seeds = sorted(frame.seed.unique().tolist())
    interval = ("Cells with several seeds give the mean and a 95% percentile bootstrap interval over seeds "
                f"({BOOTSTRAP_RESAMPLES} resamples). ") if len(seeds) > 1 else ""
    parts = [
        f"# {run_id}",
        "",
        f"Dataset `{cfg.run.dataset}`, prior `{cfg.run.prior}`, sampling seeds {seeds}, "
        f"{cfg.run.num_samples} samples per budget, reference split `{cfg.run.reference_split}`. "
        f"Budget = fraction of the code length D used (k/D). {interval}Written {now()}.",
        "",
    ]
    models = list(dict.fromkeys(frame.model))
    budgets = sorted(frame.budget.unique())
    label = {m: m + ("" if ordered.get(m) else " (unordered)") for m in models}
    scores = []
    for metric in metric_order(frame, cfg):
        part = frame[frame.metric == metric]
        base = metric.split("_")[0]
        higher = higher_is_better.get(metric, higher_is_better.get(base, False))
        rows = []
        for model in models:
            cells = []
            for b in budgets:
                values = part[(part.model == model) & (part.budget == b)].value.to_numpy()
                cells.append(_cell(values) if len(values) else "")
            rows.append([label[model]] + cells)
            curve = part[part.model == model].groupby("budget")["value"].mean()
            if len(curve):
                b_arr, v_arr = curve.index.to_numpy(float), curve.to_numpy(float)
                full = v_arr[np.argmax(b_arr)]
                score = anytime_score(b_arr, v_arr)
                bad = monotone_violations(b_arr, v_arr, higher)
                scores.append([metric, label[model], f"{score:.4g}", f"{score / full:.3g}" if full else "",
                               "yes" if not bad else "no (worse at " + ", ".join(f"{x:g}" for x in bad) + ")"])
        title = "headline: " if base == cfg.run.headline else ""
        arrow = "higher is better" if higher else "lower is better"
        header = ["model"] + [f"{b:g}" for b in budgets]
        parts += [f"## {title}{metric} by budget ({arrow})", "", markdown_table(header, rows), ""]
    parts += [
        "## Anytime scores",
        "",
        "Score: normalized area under the curve of the seed-mean values (trapezoid over the budgets, divided by "
        "the budget range), in the metric's units; relative: the score over the full-budget value (1 = no loss "
        "at any budget). Monotone: quality never gets worse as the budget grows.",
        "",
        markdown_table(["metric", "model", "anytime score", "relative to full budget", "monotone"], scores),
        "",
    ]
    return "\n".join(parts)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
