"""Figures: quality versus budget (means with interval bands), the sample grid, cost versus budget."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless machines and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from . import storage  # noqa: E402
from .conventions import model_label  # noqa: E402
from .stats import Estimate, estimate  # noqa: E402

LOG_SPAN = 10.0
"""A metric axis is log-scaled when its positive values span more than this factor."""


def save_figure(fig: plt.Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    storage.write_bytes(path, buffer.getvalue())


def curves_of(frame: pd.DataFrame, key: Callable[[pd.DataFrame], pd.Series]) -> dict[str, list[tuple[float, Estimate]]]:
    """One curve per label (``key`` labels each row): the estimate at every budget."""
    out: dict[str, list[tuple[float, Estimate]]] = {}
    labels = key(frame)
    for label in dict.fromkeys(labels):
        part = frame[labels == label]
        out[label] = [(float(b), estimate(group)) for b, group in part.groupby("budget", sort=True)]
    return out


def draw_curves(ax: Any, curves: dict[str, list[tuple[float, Estimate]]], xlabel: str, ylabel: str,
                title: str) -> None:
    """Means as lines with markers and their intervals as bands; a log axis when values span a wide range."""
    palette = sns.color_palette(n_colors=max(1, len(curves)))
    values = []
    for color, (label, points) in zip(palette, curves.items(), strict=False):
        x = np.array([p[0] for p in points])
        mean = np.array([p[1].mean for p in points])
        low = np.array([p[1].low for p in points])
        high = np.array([p[1].high for p in points])
        ax.plot(x, mean, marker="o", markersize=3.5, color=color, label=label)
        if np.isfinite(low).any():
            ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
        values += [v for v in np.concatenate([mean, low, high]) if np.isfinite(v)]
    positive = [v for v in values if v > 0]
    if positive and len(positive) == len(values) and max(positive) / min(positive) > LOG_SPAN:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)


def plot_quality_vs_budget(frame: pd.DataFrame, metrics: list[str], higher_is_better: dict[str, bool],
                           path: Path) -> None:
    """One panel per metric, one line per model: the mean over training seeds with its 95% band."""
    metrics = [m for m in metrics if (frame.metric == m).any()]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = frame[frame.metric == metric]
        per_budget = part.per_budget if "per_budget" in part.columns else [False] * len(part)
        part = part.assign(label=[model_label(m, o, pb) for m, o, pb in zip(part.model, part.ordered, per_budget,
                                                                            strict=True)])
        curves = curves_of(part, lambda p: p.label)
        higher = higher_is_better.get(metric, higher_is_better.get(metric.split("_")[0], False))
        draw_curves(ax, curves, "budget (fraction of codes)", metric,
                    f"{metric} ({'higher' if higher else 'lower'} is better)")
    save_figure(fig, path)


def plot_samples(previews: dict[str, dict[float, np.ndarray]], modality: Any, info: dict[str, Any],
                 path: Path) -> None:
    """Rows: models; columns: budgets; every cell shows the same sample indices, drawn by the modality."""
    models = list(previews)
    budgets = sorted({budget for cells in previews.values() for budget in cells})
    if not models or not budgets:
        return
    width, height = modality.preview_size
    fig, axes = plt.subplots(len(models), len(budgets), figsize=(width * len(budgets), height * len(models)),
                             squeeze=False)
    for r, model in enumerate(models):
        for c, budget in enumerate(budgets):
            ax = axes[r][c]
            if budget in previews[model]:
                modality.preview(ax, previews[model][budget], info)
            else:  # a per-budget model lacks some budgets: an empty cell, which still carries its row's name
                ax.patch.set_visible(False)
                for spine in ax.spines.values():
                    spine.set_visible(False)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"budget {budget:g}", fontsize=8)
            if c == 0:
                ax.set_ylabel(model, fontsize=8)
    save_figure(fig, path)


def plot_cost_vs_budget(cost: pd.DataFrame, path: Path) -> None:
    """Seconds per sample against the budget: prior (cached and not) and decoder, one panel per batch size."""
    batches = sorted(cost.batch.unique())
    fig, axes = plt.subplots(1, len(batches), figsize=(4.5 * len(batches), 3.6), squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        part = cost[cost.batch == batch].copy()
        part["stage"] = [f"{s}{'' if c or s != 'prior' else ' (no cache)'}" for s, c in
                         zip(part.stage, part.cache, strict=True)]
        sns.lineplot(data=part, x="budget", y="seconds_per_sample", hue="model", style="stage", marker="o", ax=ax,
                     errorbar=None)
        ax.set_yscale("log")
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("budget (fraction of codes)")
        ax.set_ylabel("seconds per sample")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_quality_vs_time(joined: pd.DataFrame, metric: str, path: Path, label: str = "model") -> None:
    """Quality against the seconds a sample costs (prior + decoder): the anytime trade-off."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sns.lineplot(data=joined, x="seconds_per_sample", y="value", hue=label, marker="o", sort=True, ax=ax,
                 errorbar=None)
    for _, row in joined.iterrows():
        ax.annotate(f"{row.budget:g}", (row.seconds_per_sample, row.value), fontsize=6, alpha=0.7)
    values = joined.value[np.isfinite(joined.value)]
    if len(values) and (values > 0).all() and values.max() / values.min() > LOG_SPAN:
        ax.set_yscale("log")
    ax.set_xlabel("seconds per sample (prior + decoder)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} versus cost")
    ax.legend(fontsize=7)
    save_figure(fig, path)
