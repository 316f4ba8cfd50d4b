"""Metrics of the prior's likelihood of the test codes (``requires = "likelihood"``, the built-in ``nll``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from anytime_bench.analysis.stats import NOT_JUDGED

from .conftest import TINY, assert_clean_error, run_cli

LIKELIHOOD_RUN = TINY.read_text().replace("[run]\n", '[run]\nencoders = ["ovqvae"]\nmetrics = ["mse", "nll"]\n', 1)


def test_nll_is_the_mean_of_the_log_probabilities_the_sample_stage_kept(tmp_path, shared_cache):
    config = tmp_path / "likelihood.toml"
    config.write_text(LIKELIHOOD_RUN)
    result = run_cli("run", config, "--out", tmp_path, "--run-id", "r", "--cache-dir", shared_cache, "--quiet")
    assert result.code == 0, result.err
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    nll = metrics[metrics.metric == "nll"].set_index("tokens").value
    assert len(nll) == 3
    arrays = np.load(tmp_path / "r" / "samples" / "ovqvae" / "train0-sample0.npz")
    for k, value in nll.items():
        scores = arrays[f"logprob_k{k}"]
        assert scores.shape == (len(arrays[f"reconstructed_k{k}"]), k) and scores.max() <= 0
        assert value == pytest.approx(-scores.astype(np.float64).mean() / math.log(2), rel=1e-5)
    # a prefix's log-probabilities are the first columns of a longer one's: the prior scores code i from codes 0..i
    short, full = arrays[f"logprob_k{min(nll.index)}"], arrays[f"logprob_k{max(nll.index)}"]
    assert np.allclose(short, full[:, :short.shape[1]], atol=1e-5)
    assert 0 < nll.max() < math.log2(32) + 1  # bits per code, K = 32
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "## nll by budget (lower is better)" in summary and "nor has a metric of the prior's likelihood" in summary
    # what each measurement scores is recorded, and a likelihood's curve is not judged for monotonicity
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["metric_requires"] == {"mse": "reconstructed", "nll": "likelihood"}
    scores = [line for line in summary.splitlines() if line.startswith("| nll | ") and line.count("|") == 6]
    assert scores and all(line.endswith(f"| {NOT_JUDGED} |") for line in scores)
    mse = [line for line in summary.splitlines() if line.startswith("| mse | ") and line.count("|") == 6]
    assert mse and not any(NOT_JUDGED in line for line in mse)
    report = run_cli("report", tmp_path / "r", "--metric", "nll", "--out", tmp_path / "report")
    assert report.code == 0, report.err
    assert NOT_JUDGED in (tmp_path / "report" / "report.md").read_text()


@pytest.fixture()
def without_log_prob(cli_plugins):
    """The plugins with a prior that samples like the Transformer but does not score codes (no log_prob)."""
    from anytime_bench import hookimpl
    from anytime_bench_plugins.ngram import NGramPrior

    class Silent:
        name = "silent"
        Config = NGramPrior.Config

        def __init__(self, config, vocab_size, seq_len):
            self.inner = NGramPrior(config, vocab_size, seq_len)

        def fit(self, codes, ctx):
            return self.inner.fit(codes, ctx)

        def stream(self, n, length, *, generator, temperature=1.0, top_k=None):
            yield from self.inner.stream(n, length, generator=generator, temperature=temperature, top_k=top_k)

        def state_dict(self):
            return self.inner.state_dict()

        def load_state_dict(self, state):
            self.inner.load_state_dict(state)

    class Plugin:
        @hookimpl
        def register_priors(self):
            return [Silent]

    return cli_plugins(("mine", Plugin()))


def test_a_likelihood_metric_refuses_a_prior_without_log_prob_before_any_training(without_log_prob, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[run]\nmetrics = ["nll"]\n\n[[model]]\nencoder = "ovqvae"\nprior = "silent"\n')
    result = run_cli("run", config, "--out", tmp_path / "out", "--run-id", "r", "--cache-dir", tmp_path / "cache")
    assert_clean_error(result, 2, "metric 'nll' scores the prior's likelihood of the test codes",
                       "prior 'silent' (model 'ovqvae-silent') gives none (no log_prob)")
    assert not list((tmp_path / "out").glob("r/checkpoints/**/*.pt"))


def test_evaluating_nll_on_samples_kept_before_log_probabilities_names_the_archive(tmp_path, shared_cache):
    config = tmp_path / "likelihood.toml"
    config.write_text(LIKELIHOOD_RUN)
    assert run_cli("run", config, "--out", tmp_path, "--run-id", "r", "--cache-dir", shared_cache,
                   "--quiet").code == 0
    archive = tmp_path / "r" / "samples" / "ovqvae" / "train0-sample0.npz"
    kept = {k: v for k, v in np.load(archive).items() if not k.startswith("logprob_")}
    np.savez(archive, **kept)  # as the sample stage wrote it before log-probabilities were kept
    metrics_before = (tmp_path / "r" / "metrics.csv").read_bytes()
    result = run_cli("evaluate", tmp_path / "r", "--cache-dir", shared_cache, "--quiet")
    assert_clean_error(result, 2, "train0-sample0.npz has no 'logprob_k", "run `anytime-bench sample")
    assert (tmp_path / "r" / "metrics.csv").read_bytes() == metrics_before
