"""Joining quality with cost: quality versus seconds per sample, and the speed-up at equal quality.

``bench`` and ``report`` both use these; they read the results contract only
(metrics and cost frames, :mod:`anytime_bench.store.tables`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EQUAL_QUALITY = 0.10
"""Speed-up at equal quality: full-budget cost over the cost of the smallest budget within 10% of full quality."""


def sampling_cost(cost: pd.DataFrame) -> pd.DataFrame:
    """Seconds per sample (cached prior + decoder) at the largest timed batch, per model and budget."""
    cached = cost[cost.cache.astype(bool)]
    if cached.empty:
        return pd.DataFrame(columns=["model", "budget", "seconds_per_sample"])
    cached = cached[cached.batch == cached.batch.max()]
    per_job = cached.assign(seconds_per_sample=cached.seconds / cached.batch)
    # several training seeds time the same architecture: their mean is the cost of the model
    per_seed = per_job.groupby(["model", "budget", "stage"] + (["train_seed"] if "train_seed" in per_job else []),
                               as_index=False)["seconds_per_sample"].sum()
    per_stage = per_seed.groupby(["model", "budget", "stage"], as_index=False)["seconds_per_sample"].mean()
    return per_stage.groupby(["model", "budget"], as_index=False)["seconds_per_sample"].sum()


def quality_vs_time(metrics: pd.DataFrame, cost: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean quality (over every seed) and seconds per sample, per model and budget."""
    quality = metrics[metrics.metric == metric]
    quality = quality[np.isfinite(quality.value.to_numpy(float))]
    quality = quality.groupby(["model", "budget"], as_index=False)["value"].mean()
    return quality.merge(sampling_cost(cost), on=["model", "budget"])


def speedup_at_equal_quality(curve: pd.Series, cost: pd.DataFrame, model: str, higher_is_better: bool) -> float:
    """Full-budget sampling time over that of the smallest budget within :data:`EQUAL_QUALITY` of full quality.

    ``curve`` is the model's mean quality by budget; NaN when the cost of either budget was not measured.
    """
    per_budget = sampling_cost(cost)
    per_budget = per_budget[per_budget.model == model].set_index("budget")["seconds_per_sample"]
    if per_budget.empty or curve.empty:
        return float("nan")
    full_budget = curve.index.max()
    full = float(curve[full_budget])
    tolerance = abs(full) * EQUAL_QUALITY
    good = [b for b in curve.index if (curve[b] >= full - tolerance if higher_is_better else curve[b] <= full + tolerance)]
    cheapest = min(good)
    if cheapest not in per_budget.index or full_budget not in per_budget.index:
        return float("nan")
    return float(per_budget[full_budget] / per_budget[cheapest])
