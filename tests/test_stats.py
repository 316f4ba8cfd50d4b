"""The statistics over seeds can fail: identical models are not distinguishable, a shifted copy is better, a
dip inside the noise is not called a dip, and sampling seeds are nested in training seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from anytime_bench.analysis.stats import SAMPLING, TRAINING, estimate, monotone, paired, paired_ratio, t_interval


def rows(model: str, values: dict[tuple[int, int], float], budget: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame([{"run_id": "r", "model": model, "train_seed": t, "sample_seed": s, "budget": budget,
                          "value": v} for (t, s), v in values.items()])


def synthetic(shift: float, seeds: int = 5, noise: float = 1.0, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Model B is model A plus its own training noise, plus ``shift``; both see the same training-seed effect."""
    rng = np.random.default_rng(seed)
    common = rng.normal(10, 3, seeds)  # what a training seed does to both models alike
    a = {(t, 0): common[t] + rng.normal(0, noise) for t in range(seeds)}
    b = {(t, 0): common[t] + rng.normal(0, noise) + shift for t in range(seeds)}
    return rows("a", a), rows("b", b)


def test_identical_models_up_to_noise_are_not_distinguishable():
    verdicts = [paired(*synthetic(0.0, seed=s), higher_is_better=False).verdict for s in range(20)]
    assert verdicts.count("not distinguishable") >= 17  # a 95% interval: about one false verdict in twenty


def test_a_shifted_copy_is_better_or_worse_by_the_metrics_orientation():
    a, b = synthetic(5.0)  # b is 5 higher
    assert paired(a, b, higher_is_better=False).verdict == "better"  # a lower, lower is better
    assert paired(a, b, higher_is_better=True).verdict == "worse"
    difference = paired(a, b, higher_is_better=False).difference
    assert difference.low < -5 + 3 and difference.high > -5 - 3 and difference.n == 5


def test_one_training_seed_is_untested_and_the_interval_says_what_it_covers():
    a, b = synthetic(5.0, seeds=1)
    assert paired(a, b, higher_is_better=False).verdict == "untested (n=1)"
    one = rows("a", {(0, 0): 1.0, (0, 1): 2.0, (0, 2): 3.0})
    assert estimate(one).basis == SAMPLING and estimate(one).has_interval
    many = rows("a", {(t, s): t + 0.1 * s for t in range(3) for s in range(4)})
    e = estimate(many)
    assert e.basis == TRAINING and e.n == 3  # sampling seeds averaged within each training seed, not pooled
    assert np.isclose(e.mean, 1.15) and np.allclose((e.low, e.high), t_interval(np.array([0.15, 1.15, 2.15])))


def test_a_dip_smaller_than_the_noise_is_not_called_a_dip():
    rng = np.random.default_rng(1)
    small = {(t, 0): 5.0 + rng.normal(0, 1) for t in range(4)}
    larger = {(t, 0): 5.3 + rng.normal(0, 1) for t in range(4)}  # slightly worse (lower is better) within noise
    noisy = pd.concat([rows("a", small, 0.5), rows("a", larger, 1.0)])
    assert monotone(noisy, higher_is_better=False).startswith("yes (dips within the noise at 1)")
    clear = pd.concat([rows("a", {(t, 0): 5.0 + 0.01 * t for t in range(4)}, 0.5),
                       rows("a", {(t, 0): 8.0 + 0.01 * t for t in range(4)}, 1.0)])
    assert monotone(clear, higher_is_better=False) == "no (worse at 1)"
    assert monotone(clear, higher_is_better=True) == "yes"


def test_the_price_of_anytime_is_a_paired_ratio():
    a = rows("a", {(t, 0): 2.0 * (t + 1) for t in range(3)})
    b = rows("b", {(t, 0): 1.0 * (t + 1) for t in range(3)})
    ratio = paired_ratio(a, b)
    assert ratio.mean == 2.0 and ratio.n == 3 and ratio.low == ratio.high == 2.0


def test_a_summary_scores_no_curve_for_a_metric_without_a_finite_value():
    from types import SimpleNamespace

    from anytime_bench.analysis.results import summary_markdown
    from anytime_bench.store.rundir import METRICS_COLUMNS

    rows = [dict(run_id="r", dataset="digits", model=model, encoder=model, prior="transformer", prior_options="",
                 encoder_options="", temperature=1.0, top_k=0, top_p=1.0, ordered=True, per_budget=False,
                 train_seed=seed, sample_seed=0, budget=budget, tokens=int(budget * 16), metric="fid", source="fid",
                 value=value + 0.1 * seed, provenance=None)
            for model, values in (("ovqvae", (3.0, 2.0)), ("odd", (np.nan, np.nan))) for seed in range(2)
            for budget, value in zip((0.5, 1.0), values, strict=True)]
    cfg = SimpleNamespace(run=SimpleNamespace(dataset="digits", reference_split="train", num_samples=10,
                                              headline="fid"), models=[SimpleNamespace(prior="transformer")])
    scores = summary_markdown(pd.DataFrame(rows)[METRICS_COLUMNS], cfg, {"fid": False}, ["fid"], {}).split(
        "## Anytime scores", 1)[1]
    assert "| fid | odd | - | - | no finite value |" in scores  # not "yes", nor a range of nan
    assert "| fid | ovqvae | 2.55 " in scores


def test_paired_from_means_taken_once_is_paired():
    from anytime_bench.analysis.stats import paired, paired_means, replicate_means

    rng = np.random.default_rng(0)
    rows = [{"run_id": "r", "train_seed": t, "sample_seed": s, "model": m, "value": rng.normal()}
            for m in ("a", "b") for t in range(4) for s in range(2) if not (m == "b" and t == 3)]
    frame = pd.DataFrame(rows)
    a, b = frame[frame.model == "a"], frame[frame.model == "b"]
    for higher in (True, False):
        assert paired_means(replicate_means(a).to_dict(), replicate_means(b).to_dict(), higher) == paired(a, b, higher)
    assert paired_means({}, replicate_means(b).to_dict(), True).difference.n == 0
