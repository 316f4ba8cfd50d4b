"""The figures a run writes, drawn from tiny inputs."""

from __future__ import annotations

import numpy as np

from anytime_bench.analysis import plots


class GreyImages:
    preview_size = (1.0, 1.0)

    def preview(self, ax, stored, info):
        ax.imshow(stored[0, 0], cmap="gray")


def test_every_row_of_the_sample_grid_is_named_even_when_its_first_budgets_are_empty(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, exact=False: drawn.setdefault("fig", fig))
    cell = np.zeros((1, 1, 4, 4), dtype=np.uint8)
    plots.plot_samples({"ovqvae": {0.5: cell, 1.0: cell}, "oracle": {1.0: cell}}, GreyImages(), {},
                       tmp_path / "samples.png")
    axes = np.array(drawn["fig"].axes).reshape(2, 2)
    assert [axes[r][0].get_ylabel() for r in range(2)] == ["ovqvae", "oracle"]
    assert axes[1][0].axison and not axes[1][0].get_images()  # the empty cell keeps its label, shows nothing
    assert not any(spine.get_visible() for spine in axes[1][0].spines.values())


def test_curves_keep_a_colour_per_model_and_a_style_per_experiment_on_a_log_axis_despite_negative_bounds():
    import matplotlib.pyplot as plt

    from anytime_bench.analysis.stats import Estimate

    def curve(scale):  # a t-interval of a distance may reach below zero
        return [(b, Estimate(scale / b, -scale, 3 * scale / b, 3)) for b in (0.25, 0.5, 1.0)]

    curves = {f"{run}: {model}": curve(scale) for run, scale in (("a", 1.0), ("b", 2.0), ("c", 40.0), ("d", 3.0))
              for model in ("ovqvae", "rvq")}
    styles = {label: tuple(reversed(label.split(": "))) for label in curves}
    fig, ax = plt.subplots()
    plots.draw_curves(ax, curves, "budget", "fid", "title", styles)
    lines = {line.get_label(): line for line in ax.get_lines()}
    look = {label: (line.get_color(), line.get_linestyle(), line.get_marker()) for label, line in lines.items()}
    plt.close(fig)
    assert ax.get_yscale() == "log"
    assert len(set(look.values())) == len(curves)
    assert look["a: ovqvae"][0] == look["b: ovqvae"][0] == look["c: ovqvae"][0] != look["a: rvq"][0]
    assert look["a: ovqvae"][1:] == look["a: rvq"][1:] != look["b: rvq"][1:]
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.bbox.x1  # eight curves: the legend is beside the axes


def test_figures_are_written_in_a_palette_and_sample_grids_only_where_that_loses_nothing(tmp_path):
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    def png(image):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return buffer.getvalue()

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [3, 1, 2], marker="o")
    ax.fill_between([0, 1, 2], [2, 0, 1], [4, 2, 3], alpha=0.2)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # as save_figure draws it, in true colour
    truecolour = buffer.getvalue()
    plots.save_figure(fig, tmp_path / "plot.png")
    with Image.open(tmp_path / "plot.png") as written, Image.open(io.BytesIO(truecolour)) as drawn:
        assert written.mode == "P" and written.size == drawn.size
        assert written.convert("RGB").getpixel((0, 0)) == (255, 255, 255)  # the background stays white
    assert (tmp_path / "plot.png").stat().st_size < len(truecolour) / 2
    rng = np.random.default_rng(0)
    grey = Image.fromarray(rng.integers(0, 256, (40, 60), dtype=np.uint8)).convert("RGB")  # 256 colours: exact
    assert Image.open(io.BytesIO(plots.compress_png(png(grey), exact=True))).mode == "P"
    assert Image.open(io.BytesIO(plots.compress_png(png(grey), exact=True))).convert("RGB").tobytes() == grey.tobytes()
    colour = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))  # thousands of colours: kept
    kept = Image.open(io.BytesIO(plots.compress_png(png(colour), exact=True)))
    assert kept.mode == "RGB" and kept.tobytes() == colour.tobytes()
    assert Image.open(io.BytesIO(plots.compress_png(png(colour)))).mode == "P"  # a plot would take the palette


def test_the_quality_plot_draws_what_real_data_scores_where_a_metric_recorded_it(tmp_path, monkeypatch):
    import pandas as pd

    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, exact=False: drawn.setdefault("fig", fig))
    frame = pd.DataFrame([{"run_id": "r", "model": m, "ordered": m == "ovqvae", "train_seed": 0, "sample_seed": 0, "budget": b,
                           "metric": metric, "value": 0.1 * b} for m in ("ovqvae", "vqvae-channel")
                          for b in (0.5, 1.0) for metric in ("asr", "mse")])
    floor = {"mean": 0.47, "low": 0.4, "high": 0.54, "n": 40, "splits": 5}
    plots.plot_quality_vs_budget(frame, ["asr", "mse"], {"asr": True, "mse": False}, tmp_path / "q.png",
                                 {"asr": floor})
    asr, mse = drawn["fig"].axes
    real = [line for line in asr.get_lines() if line.get_label() == "real data (floor)"]
    assert len(real) == 1 and list(real[0].get_ydata()) == [0.47, 0.47]
    assert "real data (floor)" in [t.get_text() for t in asr.get_legend().get_texts()]
    assert not [line for line in mse.get_lines() if line.get_label() == "real data (floor)"]
    assert asr.get_ylim()[0] < 0.47 < asr.get_ylim()[1]


def test_a_floor_far_below_the_curves_is_inside_the_axes(tmp_path, monkeypatch):
    """A FID floor two decades under the models' FIDs: on a log axis that the curves alone would end above it."""
    import pandas as pd

    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, exact=False: drawn.setdefault("fig", fig))
    frame = pd.DataFrame([{"run_id": "r", "model": m, "ordered": m == "ovqvae", "train_seed": 0, "sample_seed": 0,
                           "budget": b, "metric": "fid", "value": v} for m, values in (("ovqvae", (40.0, 2.0)),
                                                                                      ("vqvae-channel", (45.0, 2.5)))
                          for b, v in zip((0.5, 1.0), values, strict=True)])
    plots.plot_quality_vs_budget(frame, ["fid"], {"fid": False}, tmp_path / "q.png",
                                 {"fid": {"mean": 0.04, "low": 0.03, "high": 0.05, "n": 2000, "splits": 5}})
    (ax,) = drawn["fig"].axes
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] < 0.04 < ax.get_ylim()[1]


def test_a_figure_shows_control_characters_escaped_and_keeps_its_own_line_breaks(tmp_path):
    import matplotlib.pyplot as plt

    from anytime_bench.analysis.plots import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="wrapped\nlabel")
    ax.plot([0, 1], [1, 0], label="evil\x1b[31m")
    legend = ax.legend()
    assert save_figure(fig, tmp_path / "f.png") == [2]
    assert [t.get_text() for t in legend.get_texts()] == ["wrapped\nlabel", "evil\\x1b[31m"]
