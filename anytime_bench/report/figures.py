"""The report's figures: quality versus budget and versus time, per dataset, pooled over replicate runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .. import storage
from ..analysis import quality_vs_time
from ..conventions import model_label
from ..errors import ConfigError
from ..plots import curves_of, draw_curves, plot_quality_vs_time, save_figure
from ..rundir import ReportPaths
from .gather import Gathered, comparability, measurements_of

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


def _experiment_labels(runs: list[Gathered]) -> dict[str, str]:
    """A short label per experiment (group of replicate runs): its first run's name, with '+N' for the others."""
    members: dict[str, list[str]] = {}
    for run in runs:
        members.setdefault(run.group, []).append(run.name)
    return {group: names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "") for group, names in members.items()}


def quality_plot(runs: list[Gathered], dataset: str, metric: str, path: Path) -> bool:
    """One curve per experiment and model (replicate runs pooled, an experiment repeated in several runs drawn
    once); a model keeps its colour across experiments and an experiment its line style."""
    labels = _experiment_labels(runs)
    groups: dict[str, list[Gathered]] = {}
    for run in runs:
        if run.metrics is not None:
            groups.setdefault(run.group, []).append(run)
    frames, styles, seen = [], {}, set()
    for group, members in groups.items():
        frame = pd.concat([r.metrics[(r.metrics.dataset == dataset) & (r.metrics.metric == metric)]
                           for r in members])
        key = comparability(members[0], metric)
        for _, part in frame.groupby("model", sort=False):
            fingerprint = measurements_of(part, key)
            if fingerprint in seen:
                continue
            seen.add(fingerprint)
            model = model_label(part.model.iloc[0], part.ordered.iloc[0], part.per_budget.iloc[0])
            curve = f"{labels[group]}: {model}"
            styles[curve] = (model, labels[group])
            frames.append(part.assign(curve=curve))
    data = pd.concat(frames) if frames else pd.DataFrame()
    if data.empty:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4))
    draw_curves(ax, curves_of(data, lambda p: p.curve), "budget (fraction of codes)", metric,
                f"{dataset}: {metric} versus budget", styles)
    save_figure(fig, path)
    return True


def time_plot(runs: list[Gathered], dataset: str, metric: str, path: Path) -> bool:
    frames = []
    for run in runs:
        if run.metrics is None or run.cost is None:
            continue
        joined = quality_vs_time(run.metrics[run.metrics.dataset == dataset], run.cost, metric)
        joined["curve"] = [f"{run.name}: {m}" for m in joined.model]
        frames.append(joined)
    data = pd.concat(frames) if frames else pd.DataFrame()
    if data.empty:
        return False
    plot_quality_vs_time(data, metric, path, label="curve")
    return True


def figures(runs: list[Gathered], metric: str, out: ReportPaths) -> list[tuple[str, str, Path]]:
    """``(section, caption, file)`` of every figure written into ``out``."""
    written: list[tuple[str, str, Path]] = []
    for dataset in datasets(runs):
        file = out.quality_plot(dataset, metric)
        if quality_plot(runs, dataset, metric, file):
            written.append((dataset, f"{metric} versus budget: mean over training seeds of every experiment, "
                                     "95% bands", file))
        file = out.time_plot(dataset, metric)
        if time_plot(runs, dataset, metric, file):
            written.append((dataset, f"{metric} versus cost per sample", file))
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
            written.append((dataset, f"samples of {run.name} (rows: models, columns: budgets)", copy))
    return written
