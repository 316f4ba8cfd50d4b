"""Statistics over seeds: estimates with 95% intervals, paired verdicts, anytime scores, monotonicity.

Training noise is the largest noise in this benchmark, so training seeds are
the unit of replication. Sampling seeds are nested inside training seeds: each
training seed's value is first averaged over its sampling seeds, and intervals
are Student-t intervals over those per-training-seed means (with two or three
seeds a bootstrap would be far too narrow). With a single training seed the
interval covers sampling noise only, and says so. Comparisons between models
are paired on the training seed (and the run it came from).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

LEVEL = 0.95
TRAINING = "training seeds"
SAMPLING = "sampling seeds only (1 training seed)"

#: Columns that identify one training replicate: the run it came from and its training seed.
REPLICATE = ["run_id", "train_seed"]


def t_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean of ``values``; NaNs when there are fewer than two."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    half = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval, over ``n`` replicates of ``basis`` (training or sampling seeds)."""

    mean: float
    low: float = float("nan")
    high: float = float("nan")
    n: int = 1
    basis: str = ""

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.low)

    def text(self, digits: int = 4) -> str:
        if math.isnan(self.mean):
            return "-"
        if not self.has_interval:
            return f"{self.mean:.{digits}g}"
        return f"{self.mean:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def replicate_means(part: pd.DataFrame) -> pd.Series:
    """One value per training replicate (run, training seed): the mean over its sampling seeds."""
    part = part[np.isfinite(part.value.to_numpy(float))]
    return part.groupby(REPLICATE, sort=True)["value"].mean()


def estimate(part: pd.DataFrame) -> Estimate:
    """Mean and interval of one cell (one model, metric and budget) from its tidy rows."""
    part = part[np.isfinite(part.value.to_numpy(float))]
    if part.empty:
        return Estimate(float("nan"), n=0)
    means = replicate_means(part)
    if len(means) >= 2:
        low, high = t_interval(means.to_numpy())
        return Estimate(float(means.mean()), low, high, len(means), TRAINING)
    values = part.value.to_numpy(float)
    if len(values) >= 2:
        low, high = t_interval(values)
        return Estimate(float(values.mean()), low, high, 1, SAMPLING)
    return Estimate(float(values.mean()), n=1)


@dataclass(frozen=True)
class Verdict:
    """A paired comparison of model A against model B (A minus B), over shared training replicates."""

    difference: Estimate
    verdict: str
    """``better`` / ``worse`` (A than B, by the metric's orientation), ``not distinguishable``, or why untested."""


def judge(difference: Estimate, higher_is_better: bool) -> str:
    if not difference.has_interval:
        return f"untested (n={difference.n})"
    if difference.low <= 0.0 <= difference.high:
        return "not distinguishable"
    a_higher = difference.low > 0
    return "better" if a_higher == higher_is_better else "worse"


def paired(a: pd.DataFrame, b: pd.DataFrame, higher_is_better: bool) -> Verdict:
    """A minus B at one budget, paired on (run, training seed); each side averaged over its sampling seeds.

    Pairs need a training replicate both models have: models of one run share
    their training seeds, so ``ordered - unordered`` compares models trained on
    the same seed. With fewer than two pairs there is no interval and no verdict.
    """
    return paired_means(replicate_means(a).to_dict(), replicate_means(b).to_dict(), higher_is_better)


def paired_means(a: dict[Any, float], b: dict[Any, float], higher_is_better: bool) -> Verdict:
    """:func:`paired` from each side's :func:`replicate_means` as dicts: a summary comparing many models takes
    each cell's means once, not once per pair it is in."""
    diffs = np.array([a[key] - b[key] for key in sorted(a.keys() & b.keys())], dtype=float)
    if len(diffs) == 0:
        return Verdict(Estimate(float("nan"), n=0), "untested (no shared training seed)")
    low, high = t_interval(diffs)
    difference = Estimate(float(diffs.mean()), low, high, len(diffs), TRAINING if len(diffs) > 1 else "")
    return Verdict(difference, judge(difference, higher_is_better))


def paired_ratio(a: pd.DataFrame, b: pd.DataFrame) -> Estimate:
    """A over B at one budget: the mean of the per-replicate ratios (paired on run and training seed), with its
    interval."""
    joined = pd.concat([replicate_means(a).rename("a"), replicate_means(b).rename("b")], axis=1).dropna()
    joined = joined[joined.b != 0]
    ratios = (joined.a / joined.b).to_numpy(float)
    if len(ratios) == 0:
        return Estimate(float("nan"), n=0)
    low, high = t_interval(ratios)
    return Estimate(float(ratios.mean()), low, high, len(ratios), TRAINING if len(ratios) > 1 else "")


def anytime_score(budgets: np.ndarray, values: np.ndarray) -> float:
    """Normalized area under the quality-versus-budget curve: its mean height over the budget range (trapezoid)."""
    order = np.argsort(budgets)
    b, v = np.asarray(budgets, float)[order], np.asarray(values, float)[order]
    if len(b) == 1:
        return float(v[0])
    return float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(b)) / (b[-1] - b[0]))


def scored_range(part: pd.DataFrame) -> tuple[float, float]:
    """The budgets an anytime score of ``part`` spans (its finite values' smallest and largest budget).

    A score is a mean height over its own range, so two scores are comparable only over one range: the same curve
    measured from 0.125 instead of 0.25 averages in its worst budget too."""
    budgets = part.budget[np.isfinite(part.value.to_numpy(float))].to_numpy(float)
    return (float(budgets.min()), float(budgets.max())) if len(budgets) else (float("nan"), float("nan"))


def range_rank(scored: tuple[float, float]) -> tuple[float, float]:
    """Sort key of a :func:`scored_range`: the widest range first (then the one that starts lower), so that
    rankings by anytime score compare curves over the widest range they share first."""
    low, high = scored
    return (-(high - low), low) if high == high else (float("inf"), float("inf"))


def range_text(scored: tuple[float, float]) -> str:
    low, high = scored
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def score_estimate(part: pd.DataFrame) -> tuple[Estimate, Estimate]:
    """The anytime score of one model and metric, and that score over the full-budget value, with intervals over
    training replicates (each replicate's curve is its sampling-seed mean at every budget)."""
    part = part[np.isfinite(part.value.to_numpy(float))]
    curves = part.groupby(REPLICATE + ["budget"])["value"].mean().unstack("budget").dropna(axis=0)
    if curves.empty:
        return Estimate(float("nan"), n=0), Estimate(float("nan"), n=0)
    budgets = curves.columns.to_numpy(float)
    scores = np.array([anytime_score(budgets, row) for row in curves.to_numpy(float)])
    full = curves[curves.columns.max()].to_numpy(float)
    relative = np.divide(scores, full, out=np.full_like(scores, np.nan), where=full != 0)

    def summarize(values: np.ndarray) -> Estimate:
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return Estimate(float("nan"), n=0)
        low, high = t_interval(values)
        return Estimate(float(values.mean()), low, high, len(values), TRAINING if len(values) > 1 else "")

    return summarize(scores), summarize(relative)


NOT_JUDGED = "not judged (a likelihood per code, of more codes at each budget)"
"""The monotone column of a metric of the prior's likelihood: its value at a budget averages over that budget's
codes, so a rise with the budget says which codes are harder to predict, not that quality was lost."""


def curve_judgement(part: pd.DataFrame, higher_is_better: bool, requires: str | None) -> str:
    """:func:`monotone`, or :data:`NOT_JUDGED` for a metric that requires ``"likelihood"`` (``requires`` as the
    run recorded it; None for runs recorded before it was)."""
    return NOT_JUDGED if requires == "likelihood" else monotone(part, higher_is_better)


def monotone(part: pd.DataFrame, higher_is_better: bool) -> str:
    """Whether quality never gets worse as the budget grows, judged with intervals.

    Each step between neighbouring budgets is a paired difference over training
    replicates. A step whose interval lies wholly on the worse side is a dip; a
    worse step whose interval holds zero is a dip within the noise, not called a
    dip; with one training seed the steps cannot be tested and the point
    estimates are reported as such.
    """
    part = part[np.isfinite(part.value.to_numpy(float))]
    curves = part.groupby(REPLICATE + ["budget"])["value"].mean().unstack("budget")
    budgets = sorted(curves.columns)
    dips, noise, untested = [], [], []
    for small, large in zip(budgets, budgets[1:], strict=False):
        steps = (curves[large] - curves[small]).dropna().to_numpy(float)
        if len(steps) == 0:
            continue
        worse_steps = steps if not higher_is_better else -steps  # > 0 means quality got worse
        mean = float(worse_steps.mean())
        if mean <= 0:
            continue
        if len(steps) < 2:
            untested.append(large)
            continue
        low, _ = t_interval(worse_steps)
        (dips if low > 0 else noise).append(large)
    fmt = ", ".join
    if dips:
        return f"no (worse at {fmt(f'{b:g}' for b in dips)})"
    if untested:
        return f"no (worse at {fmt(f'{b:g}' for b in untested)}; 1 training seed, not tested)"
    if noise:
        return f"yes (dips within the noise at {fmt(f'{b:g}' for b in noise)})"
    return "yes"


def interpolate(curve: pd.Series, budget: float) -> float:
    """Quality at ``budget``: measured if present, else linear interpolation between measured budgets."""
    if budget in curve.index:
        return float(curve[budget])
    b = curve.index.to_numpy(float)
    if len(b) == 0 or budget < b.min() or budget > b.max():
        return float("nan")
    return float(np.interp(budget, b, curve.to_numpy(float)))
