"""The report's figures: quality versus budget and versus time, per dataset, pooled over replicate runs.

Each curve is an *entry*: a model of one experiment (:class:`Entry`). Entries are grouped by family
(:func:`~anytime_bench.analysis.labels.model_family`): an overview draws the best entry of each family per dataset, and
per dataset small multiples draw one panel per family on shared axes. No axis draws more than :data:`MAX_LINES`
lines; each figure's count per axis is returned with it and recorded in the HTML page.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from anytime_bench.analysis.labels import model_family, model_label
from anytime_bench.analysis.plots import LOG_SPAN, curves_of, draw_curves, draw_quality_vs_time, save_figure
from anytime_bench.analysis.report.gather import Gathered, measured_models
from anytime_bench.analysis.report.render import Figure
from anytime_bench.analysis.stats import range_rank, score_estimate, scored_range
from anytime_bench.analysis.tradeoffs import quality_vs_time
from anytime_bench.errors import ConfigError
from anytime_bench.files import storage
from anytime_bench.store.rundir import ReportPaths

MAX_LINES = 8
"""No axis of a report's figure draws more lines than this, however many runs it reads: a family of more entries
gets more panels (the overview and the cost figure likewise), so that every line can still be told apart."""
COLUMNS = 3
"""Panels a row in a figure of several."""
MAX_COPY_BYTES = 50 * 2**20
PREVIEW_WIDTH = 800
"""A run's sample grid is shown in the report at most this wide, in 128 colours: an overview of many runs stays
a few megabytes, and the full grid stays in each run folder."""
MAX_GRID_PIXELS = 50_000_000
"""A sample grid declaring more pixels is not decoded (a small file can declare a huge image)."""


def preview_png(data: bytes) -> bytes:
    """A run's sample grid, reduced for the report; ``ValueError`` if it is not a PNG that decodes safely."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                if image.width * image.height > MAX_GRID_PIXELS:
                    raise ValueError("too many pixels")
                image = image.convert("RGB")
    except (OSError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(str(exc)) from None
    if image.width > PREVIEW_WIDTH:
        image = image.resize((PREVIEW_WIDTH, max(1, round(image.height * PREVIEW_WIDTH / image.width))),
                             Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(colors=128).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def datasets(runs: list[Gathered]) -> list[str]:
    names: list[str] = []
    for run in runs:
        if run.metrics is not None:
            names += [d for d in run.metrics.dataset.unique() if d not in names]
    return names


def experiment_label(names: list[str]) -> str:
    """A short label for the runs an entry draws (replicates, and experiments that measured it alike): the shortest
    run name (the reference run, say, rather than an ablation that resumed it), with '+N' for the others; the same
    whatever the order the run folders were given in."""
    names = list(dict.fromkeys(names))
    return min(names, key=lambda n: (len(n), n)) + (f" +{len(names) - 1}" if len(names) > 1 else "")


@dataclass
class Entry:
    """One curve of a dataset and metric: a model of one experiment, its replicate runs pooled."""

    family: str
    """:func:`~anytime_bench.analysis.labels.model_family`."""
    model: str
    """The model as tables name it (:func:`~anytime_bench.analysis.labels.model_label`)."""
    experiment: str
    frame: pd.DataFrame
    members: list[Gathered]
    score: float
    """Mean anytime score over training replicates (NaN where no replicate has a whole curve)."""
    budgets: tuple[float, float]
    """The budgets the score spans (:func:`~anytime_bench.analysis.stats.scored_range`)."""

    @property
    def label(self) -> str:
        return f"{self.experiment}: {self.model}"


def entries(runs: list[Gathered], dataset: str, metric: str, higher_is_better: bool) -> list[Entry]:
    """Every curve of ``dataset`` and ``metric``, best first.

    One entry per experiment and model (replicate runs pooled; a model measured identically in several experiments,
    or in one at fewer budgets or seeds than in another, is drawn once, as the leaderboard shows it once). *Best* is
    the best mean anytime score (the normalized area under the quality-versus-budget curve, the leaderboard's
    ranking): it weighs every budget, where the full-budget value would rank an anytime model by its last point
    alone. Scores over the widest range of budgets come first
    (a score is comparable only over one range), then the narrower ones; entries without a score come last.
    """
    groups: dict[str, list[Gathered]] = {}
    for run in runs:
        if run.metrics is not None:
            groups.setdefault(run.group, []).append(run)
    out: list[Entry] = []
    for m in measured_models(list(groups.values()), metric):
        if m.dataset != dataset:
            continue
        first = m.part.iloc[0]
        encoder = first.encoder if "encoder" in m.part.columns and isinstance(first.encoder, str) else None
        out.append(Entry(family=model_family(first.model, first.ordered, first.per_budget, encoder),
                         model=model_label(first.model, first.ordered, first.per_budget),
                         experiment=experiment_label([r.name for r in m.runs]), frame=m.part, members=m.runs,
                         score=score_estimate(m.part)[0].mean, budgets=scored_range(m.part)))
    sign = -1 if higher_is_better else 1
    out.sort(key=lambda e: (math.isnan(e.score), range_rank(e.budgets), sign * e.score if not math.isnan(e.score)
                            else 0.0))
    return out


def best_of_families(ranked: list[Entry]) -> list[Entry]:
    """The best entry of each family (``ranked`` best first, as :func:`entries` gives them), best first."""
    best: dict[str, Entry] = {}
    for entry in ranked:
        best.setdefault(entry.family, entry)
    return list(best.values())


def families(ranked: list[Entry]) -> dict[str, list[Entry]]:
    """The entries of each family, best first; the family of the best entry first."""
    out: dict[str, list[Entry]] = {}
    for entry in ranked:
        out.setdefault(entry.family, []).append(entry)
    return out


def split(items: list, most: int = MAX_LINES) -> list[list]:
    """``items`` in order, in the fewest parts of at most ``most``, of sizes as even as possible (11 in 6 and 5)."""
    parts = max(1, math.ceil(len(items) / most))
    size, extra = divmod(len(items), parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + size + (i < extra))
    return [items[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _panels(count: int, share: bool) -> tuple[plt.Figure, list[Any]]:
    """A grid of ``count`` panels, at most :data:`COLUMNS` a row, each with room for a legend below it."""
    columns = min(COLUMNS, count)
    rows = math.ceil(count / columns)
    # Fixed spacing rather than a layout engine (several times slower to draw): each panel is 2.6 inches high,
    # with 1.8 inches below it for its axis label and a legend of up to MAX_LINES entries, and its title above.
    fig, grid = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.6 * rows), sharex=share, sharey=share,
                             squeeze=False, gridspec_kw=dict(hspace=0.85, wspace=0.3, top=1 - 0.55 / (4.6 * rows),
                                                             bottom=1.6 / (4.6 * rows)))
    axes = list(grid.ravel())
    for ax in axes[count:]:
        fig.delaxes(ax)
    for ax in axes[:count]:  # every panel keeps its tick labels: its legend is below it, not another panel
        ax.tick_params(labelbottom=True, labelleft=True)
    return fig, axes[:count]


def _curves(chosen: list[Entry], label, drawn: dict[str, list] | None = None) -> dict[str, list]:
    """The curve of each entry, under ``label(entry)``; taken from ``drawn`` (curves by entry label) where given."""
    if drawn is not None:
        return {label(e): drawn[e.label] for e in chosen}
    return curves_of(pd.concat([e.frame.assign(curve=label(e)) for e in chosen]), lambda p: p.curve)


def _panel_title(name: str, part: int, parts: list[list[Entry]]) -> str:
    if len(parts) == 1:
        return name
    first = sum(len(p) for p in parts[:part]) + 1
    return f"{name}: {first}-{first + len(parts[part]) - 1} of {sum(len(p) for p in parts)}"


def small_multiples(ranked: list[Entry], dataset: str, metric: str, path: Path) -> list[int] | None:
    """One panel per family (a family of more than :data:`MAX_LINES` entries in several, best first), on shared
    axes (log where the means of any panel span decades, for all); returns the lines drawn on each axis."""
    if not ranked:
        return None
    panels = [(name, i, parts) for name, members in families(ranked).items()
              for parts in [split(members)] for i in range(len(parts))]
    every = _curves(ranked, lambda e: e.label)  # entry labels are unique: runs are named apart
    fig, axes = _panels(len(panels), share=True)
    for ax, (name, i, parts) in zip(axes, panels, strict=True):
        chosen = parts[i]
        # the family names the model: a legend entry names the experiment, and the model only where they differ
        alone = len({e.model for e in families(ranked)[name]}) == 1
        curves = _curves(chosen, (lambda e: e.experiment) if alone else (lambda e: e.label), every)
        draw_curves(ax, curves, "budget (fraction of codes)", metric, _panel_title(name, i, parts), scale=every,
                    legend="below")
    for ax in axes:  # a clipped band fixes its panel's limits: the shared axes take every panel's data again
        ax.set_autoscaley_on(True)
        ax.relim()
    axes[0].autoscale_view()
    return save_figure(fig, path)


def overview_plot(panels: list[tuple[str, str, list[Entry]]], path: Path) -> list[int] | None:
    """One panel per dataset and metric (``panels``: the entries of each, best first): the best entry of each
    family; returns the lines drawn on each axis."""
    drawn = [(dataset, metric, part, i, parts) for dataset, metric, ranked in panels if ranked
             for parts in [split(best_of_families(ranked))] for i, part in enumerate(parts)]
    if not drawn:
        return None
    fig, axes = _panels(len(drawn), share=False)
    metrics_of = Counter(dataset for dataset, _, ranked in panels if ranked)
    for ax, (dataset, metric, part, i, parts) in zip(axes, drawn, strict=True):
        curves = _curves(part, lambda e: e.label)  # experiment: model, as in every panel
        name = f"{dataset} ({metric})" if metrics_of[dataset] > 1 else dataset  # a dataset ranked by two metrics
        draw_curves(ax, curves, "budget (fraction of codes)", metric, _panel_title(name, i, parts), legend="below")
    return save_figure(fig, path)


def time_plot(ranked: list[Entry], metric: str, path: Path) -> list[int] | None:
    """Quality against the cost of a sample: the best entry of each family whose runs were benchmarked (a cost
    table); returns the lines drawn on each axis."""
    chosen: dict[str, pd.DataFrame] = {}
    for entry in ranked:
        if entry.family in chosen:
            continue
        for run in entry.members:
            if run.cost is not None:
                joined = quality_vs_time(entry.frame, run.cost, metric)
                if not joined.empty:
                    chosen[entry.family] = joined.assign(curve=entry.label)
                    break
    if not chosen:
        return None
    parts = split(list(chosen.values()))
    data = pd.concat(chosen.values())
    values = data.value[np.isfinite(data.value)]
    log = bool(len(values)) and bool((values > 0).all()) and values.max() / values.min() > LOG_SPAN
    fig, axes = _panels(len(parts), share=True)
    for i, (ax, part) in enumerate(zip(axes, parts, strict=True)):
        draw_quality_vs_time(ax, pd.concat(part), metric, label="curve", log=log, legend="below",
                             title=f"{metric} versus cost" + (f" ({i + 1} of {len(parts)})" if len(parts) > 1 else ""))
    return save_figure(fig, path)


def figures(runs: list[Gathered], metric: str, ranked: dict[str, list[Entry]], out: ReportPaths) -> list[Figure]:
    """Every figure of ``metric`` written into ``out``, per dataset (``ranked``: its :func:`entries`)."""
    written: list[Figure] = []
    for dataset in datasets(runs):
        file = out.quality_plot(dataset, metric)
        lines = small_multiples(ranked.get(dataset, []), dataset, metric, file)
        if lines is not None:
            written.append(Figure(dataset, f"{metric} versus budget, one panel per family: mean over training seeds "
                                           f"of every experiment, 95% bands; at most {MAX_LINES} lines a panel (a "
                                           "larger family in several, best anytime score first)", file, tuple(lines)))
        file = out.time_plot(dataset, metric)
        lines = time_plot(ranked.get(dataset, []), metric, file)
        if lines is not None:
            written.append(Figure(dataset, f"{metric} versus cost per sample: the best entry of each family with a "
                                           "cost table", file, tuple(lines)))
        for run in runs:
            if run.metrics is None or dataset not in set(run.metrics.dataset):
                continue
            try:
                grid = run.paths.samples_png
            except ConfigError:  # a link that leads out of the run folder is not followed
                run.missing.append("a sample grid inside the run folder")
                continue
            if not grid.is_file():
                continue
            if grid.stat().st_size > MAX_COPY_BYTES:
                run.missing.append(f"a sample grid under {MAX_COPY_BYTES // 2**20} MB")
                continue
            try:
                preview = preview_png(grid.read_bytes())
            except ValueError:
                run.missing.append("a sample grid that is a readable PNG")
                continue
            copy, n = out.samples_copy(run.name), 1
            while copy.exists():  # two runs whose names differ only where a file name cannot follow ('a/r', 'a_r')
                n += 1
                copy = out.samples_copy(f"{run.name}-{n}")
            storage.write_bytes(copy, preview)
            written.append(Figure(dataset, f"samples of {run.name} (rows: models, columns: budgets)", copy))
    return written
