"""A measurement's metric is a column (``source``), never parsed out of its name: ``ink_w1`` is a metric of its own.

Before the column, ``ink_w1`` was read as a measurement ``w1`` of a metric ``ink``: its direction was looked up
under ``ink`` (not there, so "lower is better", wrongly) and it could not be the headline.
"""

from __future__ import annotations

import json

import pandas as pd

from anytime_bench import hookimpl
from anytime_bench.store.tables import source_of

from .conftest import TINY, run_cli


class InkW1:
    """Higher is better: a made-up score whose name has an underscore."""

    name = "ink_w1"
    requires = "reconstructed"
    higher_is_better = True

    from dataclasses import dataclass as _dataclass

    @_dataclass
    class Config:
        pass

    def __init__(self, config):
        self.config = config

    def compute(self, inputs, ctx):
        return float(inputs.candidate.float().mean())

    def provenance(self):
        return {"implementation": "test"}


class _Plugin:
    @hookimpl
    def register_metrics(self):
        return [InkW1]


def test_a_metric_named_ink_w1_is_its_own_source_direction_and_headline(cli_plugins, tmp_path):
    cli_plugins(("ink", _Plugin()))
    result = run_cli("run", TINY, "--encoders", "ovqvae", "--metrics", "ink_w1,mse", "--budgets", "0.5,1",
                     "--set", "run.num_samples=8", "--out", tmp_path, "--run-id", "ink", "--quiet")
    assert result.code == 0, result.err
    run = tmp_path / "ink"
    frame = pd.read_csv(run / "metrics.csv")
    assert dict(zip(frame.metric, frame.source, strict=True)) == {"ink_w1": "ink_w1", "mse": "mse"}
    assert json.loads((run / "run.json").read_text())["metric_directions"]["ink_w1"] is True
    summary = (run / "summary.md").read_text().replace("\\", "")
    assert "## headline: ink_w1 by budget (higher is better)" in summary


def test_tables_written_before_the_column_take_their_source_from_the_recorded_metrics():
    assert source_of("prc_precision", ["fid", "prc"]) == "prc"
    assert source_of("ink_w1", ["ink_w1", "ink"]) == "ink_w1"  # a plugin of that name: itself
    assert source_of("ink_w1", ["ink"]) == "ink"  # a dict result of ink, as such tables wrote it
    assert source_of("ink_w1", None) == "ink_w1"  # no record: nothing is guessed from the name
