"""Figures: quality versus budget (means with interval bands), the sample grid, cost versus budget."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless machines and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from anytime_bench.analysis.labels import model_label  # noqa: E402
from anytime_bench.analysis.stats import Estimate, estimate  # noqa: E402
from anytime_bench.errors import printable  # noqa: E402
from anytime_bench.files import storage  # noqa: E402

LOG_SPAN = 10.0
"""A metric axis is log-scaled when its means are positive and span more than this factor."""


PALETTE_COLOURS = 256


def compress_png(data: bytes, exact: bool = False) -> bytes:
    """A PNG written small: in a palette of 256 colours, or losslessly when ``exact`` and the image has more.

    Plots (lines, text, flat bands) lose nothing visible in a palette and shrink about three times. A sample grid
    (``exact``) goes to a palette only when it has at most 256 colours (grey-scale digits: lossless); otherwise it
    stays true colour (natural images, spectrograms), written with Pillow's ``optimize``.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=["PNG"]) as opened:
        image = opened.convert("RGBA")
    if image.getchannel("A").getextrema() == (255, 255):  # matplotlib's opaque white background: alpha says nothing
        image = image.convert("RGB")
    colours = image.getcolors(PALETTE_COLOURS)
    if colours is not None or not exact:
        # Median cut keeps white white and changes about one pixel in ten of a plot (antialiased edges, overlapping
        # bands), by a few levels; with at most 256 colours it gives each its own entry (checked below). Fast octree
        # (smaller, but every background pixel off by one) only where there is transparency, which median cut lacks.
        method = Image.Quantize.MEDIANCUT if image.mode == "RGB" else Image.Quantize.FASTOCTREE
        palette = image.quantize(colors=PALETTE_COLOURS, method=method, dither=Image.Dither.NONE)
        if colours is None or palette.convert(image.mode).tobytes() == image.tobytes():
            image = palette
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def lines_per_axis(fig: plt.Figure) -> list[int]:
    """How many lines each axis of ``fig`` draws (matplotlib's own count: bands, markers and legends are not lines)."""
    return [len(ax.get_lines()) for ax in fig.axes]


def save_figure(fig: plt.Figure, path: Path, exact: bool = False) -> list[int]:
    """Write ``fig`` as a compressed PNG (:func:`compress_png`; ``exact`` for a sample grid); returns
    :func:`lines_per_axis`, which a report records beside the image."""
    lines = lines_per_axis(fig)
    ticks = {text for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)  # the formatters' own, mathtext on log axes
             for text in axis.findobj(matplotlib.text.Text) if text is not axis.label}
    for text in fig.findobj(matplotlib.text.Text):  # names from run folders: no control character reaches a glyph
        rows = text.get_text().split("\n")  # the line breaks that wrap a legend's labels are the figure's own
        if any(row != printable(row) for row in rows):
            text.set_text("\n".join(printable(row) for row in rows))
        if text not in ticks and "$" in text.get_text():  # a name's "$", not mathtext (a bad formula stops the report)
            text.set_parse_math(False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    storage.write_bytes(path, compress_png(buffer.getvalue(), exact))
    return lines


def curves_of(frame: pd.DataFrame, key: Callable[[pd.DataFrame], pd.Series]) -> dict[str, list[tuple[float, Estimate]]]:
    """One curve per label (``key`` labels each row): the estimate at every budget."""
    out: dict[str, list[tuple[float, Estimate]]] = {}
    labels = key(frame)
    for label in dict.fromkeys(labels):
        part = frame[labels == label]
        out[label] = [(float(b), estimate(group)) for b, group in part.groupby("budget", sort=True)]
    return out


LEGEND_INSIDE = 6
"""With more curves than this the legend goes beside the axes, where it hides no curve and no title."""
LINE_STYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
"""Cycled together: their lengths are coprime, so the first 28 line keys all look different."""


def draw_curves(ax: Any, curves: dict[str, list[tuple[float, Estimate]]], xlabel: str, ylabel: str,
                title: str, styles: dict[str, tuple[str, str]] | None = None,
                scale: dict[str, list[tuple[float, Estimate]]] | None = None, legend: str = "auto") -> None:
    """Means as lines with markers and their intervals as bands; a log axis when the means span a wide range.

    ``styles`` gives each curve a (colour, line) key: curves that share a colour key share a colour (one model
    across several experiments), curves that share a line key share a line style and marker (one experiment).
    ``scale`` holds the curves that decide the log axis and the floor of clipped bands (default: ``curves``): every
    curve of a figure whose panels share their axes, so that all panels decide alike. ``legend`` is "auto" (inside
    for a few curves, else beside the axes) or "below" (under the axes: panels side by side keep their legends off
    each other's data).
    """
    styles = styles or {label: (label, "") for label in curves}
    hues = list(dict.fromkeys(styles[label][0] for label in curves))
    lines = list(dict.fromkeys(styles[label][1] for label in curves))
    palette = dict(zip(hues, sns.color_palette("tab10" if len(hues) <= 10 else "husl", n_colors=max(1, len(hues))),
                       strict=True))
    scale = curves if scale is None else scale
    means = [p[1].mean for points in scale.values() for p in points if np.isfinite(p[1].mean)]
    log = bool(means) and min(means) > 0 and max(means) / min(means) > LOG_SPAN
    # A t-interval of a positive distance over 3 seeds may reach below zero, or decades below its mean: on a log
    # axis such a band is cut at a quarter of the lowest mean, so that the means, not one wide band, set the scale.
    bottom = min([p[1].mean for points in scale.values() for p in points if np.isfinite(p[1].mean) and p[1].mean > 0],
                 default=1.0) / 4
    clipped = False
    for label, points in curves.items():
        hue, line = styles[label]
        index = lines.index(line)
        linestyle, marker = LINE_STYLES[index % len(LINE_STYLES)], MARKERS[index % len(MARKERS)]
        x = np.array([p[0] for p in points])
        mean = np.array([p[1].mean for p in points])
        low = np.array([p[1].low for p in points])
        high = np.array([p[1].high for p in points])
        ax.plot(x, mean, marker=marker, markersize=3.5, color=palette[hue], linestyle=linestyle, label=label)
        if np.isfinite(low).any():
            if log and (np.isfinite(low) & (low < bottom)).any():
                low, clipped = np.where(np.isfinite(low) & (low < bottom), bottom, low), True
            ax.fill_between(x, low, high, color=palette[hue], alpha=0.2, linewidth=0)
    if log:
        ax.set_yscale("log")
        if clipped:
            ax.set_ylim(bottom=bottom)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    place_legend(ax, len(curves), legend)


BELOW_WIDTH = 58
"""Characters per line of a legend below a panel: about what a panel of the report's grid and its gap hold at 7 pt."""


def place_legend(ax: Any, entries: int, where: str = "auto") -> None:
    """A legend where it hides no data: see :func:`draw_curves`'s ``legend``."""
    if where == "below":
        # wrapped to the width of a panel and the gap beside it, so that a long run name stays off its neighbour's
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, [textwrap.fill(label, BELOW_WIDTH) for label in labels], fontsize=7, loc="upper left",
                  bbox_to_anchor=(0.0, -0.2), borderaxespad=0, frameon=False)
    elif entries > LEGEND_INSIDE:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=7)


def plot_quality_vs_budget(frame: pd.DataFrame, metrics: list[str], higher_is_better: dict[str, bool],
                           path: Path, floors: dict[str, dict[str, Any]] | None = None) -> None:
    """One panel per metric, one line per model: the mean over training seeds with its 95% band; a dotted line at
    what real data scores, for a metric that recorded it (``floors``, as evaluate records them)."""
    metrics = [m for m in metrics if (frame.metric == m).any()]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = frame[frame.metric == metric]
        per_budget = part.per_budget if "per_budget" in part.columns else [False] * len(part)
        part = part.assign(label=[model_label(m, o, pb) for m, o, pb in zip(part.model, part.ordered, per_budget,
                                                                            strict=True)])
        curves = curves_of(part, lambda p: p.label)
        higher = higher_is_better[metric]  # recorded per measurement by evaluate
        draw_curves(ax, curves, "budget (fraction of codes)", metric,
                    f"{metric} ({'higher' if higher else 'lower'} is better)")
        floor = (floors or {}).get(metric)
        if floor is not None and (ax.get_yscale() != "log" or floor["mean"] > 0):
            ax.axhline(floor["mean"], color="0.35", linestyle=":", linewidth=1.2, label="real data (floor)")
            # axhline leaves the limits to the curves: a floor far below them would be in the legend only.
            low, high = ax.get_ylim()
            if ax.get_yscale() == "log":
                ax.set_ylim(min(low, floor["mean"] / 1.5), max(high, floor["mean"] * 1.5))
            else:
                margin = 0.05 * (max(high, floor["mean"]) - min(low, floor["mean"]))
                ax.set_ylim(min(low, floor["mean"] - margin), max(high, floor["mean"] + margin))
            place_legend(ax, len(curves) + 1)
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
    save_figure(fig, path, exact=True)


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
    draw_quality_vs_time(ax, joined, metric, label)
    save_figure(fig, path)


def draw_quality_vs_time(ax: Any, joined: pd.DataFrame, metric: str, label: str = "model", title: str = "",
                         log: bool | None = None, legend: str = "auto") -> None:
    """One line per ``label`` on ``ax``, each point annotated with its budget; a log quality axis when ``log``
    (default: when the values span more than :data:`LOG_SPAN`). ``legend`` as in :func:`draw_curves`."""
    # one plain line per label (seaborn would add a hidden line per legend entry: the axis would count them too)
    labels = list(dict.fromkeys(joined[label]))
    colours = sns.color_palette("tab10" if len(labels) <= 10 else "husl", n_colors=max(1, len(labels)))
    for name, colour in zip(labels, colours, strict=True):
        part = joined[joined[label] == name].sort_values("seconds_per_sample")
        ax.plot(part.seconds_per_sample, part.value, marker="o", markersize=4, color=colour, label=name)
    for _, row in joined.iterrows():
        ax.annotate(f"{row.budget:g}", (row.seconds_per_sample, row.value), fontsize=6, alpha=0.7)
    if log is None:
        values = joined.value[np.isfinite(joined.value)]
        log = bool(len(values)) and bool((values > 0).all()) and values.max() / values.min() > LOG_SPAN
    if log:
        ax.set_yscale("log")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))  # seconds of 1e-4 would print 0.000150
    ax.set_xlabel("seconds per sample (prior + decoder)")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} versus cost")
    place_legend(ax, joined[label].nunique(), legend)
