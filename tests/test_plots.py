"""The figures a run writes, drawn from tiny inputs."""

from __future__ import annotations

import numpy as np

from anytime_bench import plots


class GreyImages:
    preview_size = (1.0, 1.0)

    def preview(self, ax, stored, info):
        ax.imshow(stored[0, 0], cmap="gray")


def test_every_row_of_the_sample_grid_is_named_even_when_its_first_budgets_are_empty(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.setdefault("fig", fig))
    cell = np.zeros((1, 1, 4, 4), dtype=np.uint8)
    plots.plot_samples({"ovqvae": {0.5: cell, 1.0: cell}, "oracle": {1.0: cell}}, GreyImages(), {},
                       tmp_path / "samples.png")
    axes = np.array(drawn["fig"].axes).reshape(2, 2)
    assert [axes[r][0].get_ylabel() for r in range(2)] == ["ovqvae", "oracle"]
    assert axes[1][0].axison and not axes[1][0].get_images()  # the empty cell keeps its label, shows nothing
    assert not any(spine.get_visible() for spine in axes[1][0].spines.values())
