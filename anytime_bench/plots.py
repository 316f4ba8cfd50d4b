"""Figures of a run: quality versus budget (seaborn) and the sample grid (spectrograms for audio)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless machines and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from . import storage  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    storage.write_bytes(path, buffer.getvalue())


def plot_quality_vs_budget(frame: pd.DataFrame, metrics: list[str], path: Path) -> None:
    """One panel per metric, one line per model; several seeds draw a 95% band."""
    metrics = [m for m in metrics if (frame.metric == m).any()]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = frame[frame.metric == metric].copy()
        part["model"] = [m if o else f"{m} (unordered)" for m, o in zip(part.model, part.ordered, strict=True)]
        sns.lineplot(data=part, x="budget", y="value", hue="model", marker="o", errorbar=("ci", 95), ax=ax)
        ax.set_title(metric)
        ax.set_xlabel("budget (fraction of codes)")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """[N, C, H, W] uint8 -> one [rows*H, columns*W, C] mosaic."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    canvas = np.zeros((rows * h, columns * w, c), dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * h:(r + 1) * h, col * w:(col + 1) * w] = img.transpose(1, 2, 0)
    return canvas


def plot_samples(run_dir, cfg, path: Path, per_cell: int = 16) -> None:
    """Rows: models; columns: budgets; every cell shows the same sample indices of the first seed."""
    state = run_dir.read_state()
    data = state.get("data", {})
    if data.get("modality") == "audio":
        rate = int(data["sample_rate"])

        def draw(ax, generated: np.ndarray) -> None:
            # the spectrogram of the first three clips, end to end
            wave = generated[:3].reshape(-1).astype(np.float32) / 32767
            ax.specgram(wave + 1e-6, NFFT=512, Fs=rate, noverlap=384, cmap="magma", vmin=-120, vmax=-20)

        _sample_grid(run_dir, state, cfg, path, draw, cell=(2.2, 1.6))
        return

    def draw(ax, generated: np.ndarray) -> None:
        images = generated[:per_cell]
        mosaic = tile(images, int(np.ceil(np.sqrt(len(images)))))
        ax.imshow(mosaic.squeeze(-1) if mosaic.shape[-1] == 1 else mosaic, cmap="gray", vmin=0, vmax=255)

    _sample_grid(run_dir, state, cfg, path, draw, cell=(1.3, 1.4))


def _sample_grid(run_dir, state: dict, cfg, path: Path, draw, cell: tuple[float, float]) -> None:
    from .stages.common import tokens_for
    from .stages.sample import load_samples

    seed = state.get("sample_seeds", [cfg.run.seed])[0]
    models, budgets = cfg.run.encoders, cfg.run.budgets
    fig, axes = plt.subplots(len(models), len(budgets), figsize=(cell[0] * len(budgets), cell[1] * len(models)),
                             squeeze=False)
    for r, model in enumerate(models):
        arrays = load_samples(run_dir, model, seed)
        D = int(state["models"][model]["code_length"])
        for c, budget in enumerate(budgets):
            k = tokens_for(budget, D)
            ax = axes[r][c]
            draw(ax, arrays[f"generated_k{k}"])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{budget:g} ({k})", fontsize=8)
            if c == 0:
                ax.set_ylabel(model, fontsize=8)
    save_figure(fig, path)


def plot_cost_vs_budget(cost: pd.DataFrame, path: Path) -> None:
    """Seconds per sample against tokens: prior (cached and not) and decoder, one panel per batch size."""
    batches = sorted(cost.batch.unique())
    fig, axes = plt.subplots(1, len(batches), figsize=(4.5 * len(batches), 3.6), squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        part = cost[cost.batch == batch].copy()
        part["stage"] = [f"{s}{'' if c or s != 'prior' else ' (no cache)'}" for s, c in
                         zip(part.stage, part.cache, strict=True)]
        sns.lineplot(data=part, x="budget", y="seconds_per_sample", hue="model", style="stage", marker="o", ax=ax)
        ax.set_yscale("log")
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("budget (fraction of codes)")
        ax.set_ylabel("seconds per sample")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_quality_vs_time(joined: pd.DataFrame, metric: str, path: Path) -> None:
    """Quality against the seconds a sample costs (prior + decoder): the anytime trade-off."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    sns.lineplot(data=joined, x="seconds_per_sample", y="value", hue="model", marker="o", sort=True, ax=ax)
    for _, row in joined.iterrows():
        ax.annotate(f"{row.budget:g}", (row.seconds_per_sample, row.value), fontsize=6, alpha=0.7)
    ax.set_xlabel("seconds per sample (prior + decoder)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} versus cost")
    save_figure(fig, path)
