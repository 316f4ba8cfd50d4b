"""A run's tables: the tidy metrics table and the summary (means with intervals, paired verdicts, scores)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from anytime_bench.analysis.labels import model_label
from anytime_bench.analysis.plots import plot_quality_vs_budget, plot_samples
from anytime_bench.analysis.stats import (
    LEVEL,
    SAMPLING,
    Estimate,
    curve_judgement,
    estimate,
    paired_means,
    paired_ratio,
    range_text,
    replicate_means,
    score_estimate,
    scored_range,
)
from anytime_bench.errors import printable
from anytime_bench.files import storage
from anytime_bench.files.markdown import code, escape, markdown_table
from anytime_bench.store.rundir import ENTRY_COLUMNS, METRICS_COLUMNS, now
from anytime_bench.store.tables import headline_measurement

INTERVALS = (f"Cells give the mean over training seeds and, with several, a {LEVEL:.0%} Student-t interval over the "
             "training seeds (each training seed's value is first averaged over its sampling seeds; sampling seeds "
             "are nested in training seeds, not pooled with them). With one training seed, several sampling seeds "
             "give an interval of the sampling noise alone, marked as such.")


VALUE_DIGITS = 6
"""Significant digits of the values the metrics table holds."""


def write_results(run: Any, frame: pd.DataFrame, higher_is_better: dict[str, bool],
                  previews: dict[str, dict[float, np.ndarray]], floors: dict[str, dict[str, Any]],
                  notes: dict[str, str] | None = None, requires: dict[str, str] | None = None) -> None:
    """The metrics table, the summary, the quality plot and the sample grid of ``run``."""
    frame = frame[METRICS_COLUMNS]
    paths = run.paths
    storage.write_text(paths.metrics_csv, frame.to_csv(index=False, float_format=f"%.{VALUE_DIGITS}g"))
    # summarised as written: rows kept from an earlier evaluation are read back from the table at these digits, and
    # the summary is the same whether written now or later from the table alone (``evaluate --floors-only``)
    frame = frame.assign(value=frame.value.map(lambda v: float(f"{v:.{VALUE_DIGITS}g}")))
    order = write_summary(run, frame, higher_is_better, floors, notes, requires)
    plot_quality_vs_budget(frame, order, higher_is_better, paths.quality_plot, floors)
    plot_samples(previews, run.modality(), run.data_facts().as_info(), paths.samples_png)
    run.ctx.log(f"wrote {paths.metrics_csv}, {paths.summary_md.name}, {paths.quality_plot.name}, "
                f"{paths.samples_png.name}")


def write_summary(run: Any, frame: pd.DataFrame, higher_is_better: dict[str, bool],
                  floors: dict[str, dict[str, Any]], notes: dict[str, str] | None = None,
                  requires: dict[str, str] | None = None, headline: str | None = None) -> list[str]:
    """``summary.md`` of ``run`` from its metrics table, ``headline`` first (default: the run's); returns the order of
    its measurements."""
    headline = headline or run.cfg.run.headline
    order = metric_order(frame, headline)
    storage.write_text(run.paths.summary_md, summary_markdown(frame, run.cfg, higher_is_better, order, floors,
                                                              notes, requires, headline))
    return order


def metric_order(frame: pd.DataFrame, headline: str) -> list[str]:
    """The measurements of the table, those of the headline metric first (by their ``source`` column)."""
    names = list(dict.fromkeys(frame.metric))
    sources = sources_of(frame)
    head = [m for m in names if sources[m] == headline]
    return head + [m for m in names if m not in head]


def sources_of(frame: pd.DataFrame) -> dict[str, str]:
    """measurement -> the metric plugin that gave it (the ``source`` column)."""
    return dict(zip(frame.metric, frame.source, strict=True))


def orientation(higher_is_better: dict[str, bool], metric: str) -> bool:
    """Whether higher is better for measurement ``metric``, as evaluate recorded it for each measurement."""
    return higher_is_better[metric]


def kinds(frame: pd.DataFrame) -> tuple[dict[str, bool], dict[str, bool]]:
    """Per model: ordered or not, and per-budget (an oracle) or not."""
    ordered = frame.groupby("model", sort=False)["ordered"].first().astype(bool).to_dict()
    per_budget = (frame.groupby("model", sort=False)["per_budget"].first().astype(bool).to_dict()
                  if "per_budget" in frame.columns else dict.fromkeys(ordered, False))
    return ordered, per_budget


def entries(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per model (its label): its encoder, prior and sampling settings, in the table's order."""
    columns = [c for c in ENTRY_COLUMNS if c in frame.columns]
    return frame.drop_duplicates("model")[["model", *columns]].set_index("model")


ENCODER_COLUMNS = ("encoder", "encoder_options")
"""The entry columns that say which encoder a model uses; the others say how its codes are modelled and sampled."""


def _settings(table: pd.DataFrame) -> list[str]:
    return [c for c in ENTRY_COLUMNS if c not in ENCODER_COLUMNS and c in table.columns]


def compares_priors(frame: pd.DataFrame) -> bool:
    """Whether the models differ in more than their encoders' names (an encoder's own options, a prior or a
    sampling setting): then the summary lists what each model is and pairs the entries."""
    table = entries(frame)
    columns = [c for c in ENTRY_COLUMNS if c != "encoder" and c in table.columns]
    return bool(columns) and len(table[columns].drop_duplicates()) > 1


def entry_pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The model entries compared pairwise when a run compares more than encoders: entries with one encoder (and its
    options) and different priors or settings, and entries with one prior and settings and different encoders or
    encoder options (the comparisons that change one thing)."""
    if not compares_priors(frame):
        return []
    table = entries(frame)
    settings = _settings(table)
    labels = list(table.index)
    pairs = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            same_encoder = all(table.at[a, c] == table.at[b, c] for c in ENCODER_COLUMNS if c in table.columns)
            same_prior = all(table.at[a, c] == table.at[b, c] for c in settings)
            if same_encoder != same_prior:
                pairs.append((a, b))
    return pairs


def summary_markdown(frame: pd.DataFrame, cfg: Any, higher_is_better: dict[str, bool], order: list[str],
                     floors: dict[str, dict[str, Any]], notes: dict[str, str] | None = None,
                     requires: dict[str, str] | None = None, headline: str | None = None) -> str:
    run_id = frame.run_id.iloc[0] if len(frame) else "?"
    ordered, per_budget = kinds(frame)
    train_seeds = sorted(frame.train_seed.unique().tolist())
    sample_seeds = sorted(frame.sample_seed.unique().tolist())
    several = compares_priors(frame)
    priors = ", ".join(code(p) for p in dict.fromkeys(m.prior for m in cfg.models))
    parts = [
        f"# {escape(run_id)}",  # from the table: someone's, as the notes below may be
        "",
        f"Dataset {code(cfg.run.dataset)}, prior{'s' if several else ''} {priors}, training seeds {train_seeds}, "
        f"sampling seeds {sample_seeds} (per training seed), {cfg.run.num_samples} samples per budget, reference "
        f"split {code(cfg.run.reference_split)}. Budget = fraction of the code length D used (k/D). {INTERVALS} "
        f"Written {now()}.",
        "",
    ]
    if several:
        table = entries(frame)
        parts += ["## Models", "", "Each model is an encoder, the prior trained on its codes and how it is sampled "
                  "(top-k 0: no limit; top-p 1: the full distribution).", "", markdown_table(
                      ["model", *table.columns], [[m, *(f"{v:g}" if isinstance(v, float) else str(v) for v in row)]
                                                  for m, row in zip(table.index, table.itertuples(index=False),
                                                                    strict=True)]), ""]
    models = list(dict.fromkeys(frame.model))
    budgets = sorted(frame.budget.unique())
    label = {m: model_label(m, bool(ordered.get(m)), bool(per_budget.get(m))) for m in models}
    scores = []
    for metric in order:
        part = frame[frame.metric == metric]
        higher = orientation(higher_is_better, metric)
        rows = []
        bases = set()
        whole = scored_range(part)
        for model in models:
            cells = []
            for b in budgets:
                cell = estimate(part[(part.model == model) & (part.budget == b)])
                bases.add(cell.basis)
                cells.append(cell.text())
            rows.append([label[model]] + cells)
            mine = part[part.model == model]
            if len(mine):
                score, relative = score_estimate(mine)
                # A per-budget oracle's curve stops short of the full budget: its score spans fewer budgets, and
                # its last value is not a full-budget value.
                span = scored_range(mine)
                if span[0] != span[0]:  # nan: no finite value, so no curve to score or judge
                    scores.append([metric, label[model], "-", "-", "no finite value"])
                else:
                    scores.append([metric, label[model], score.text() + (
                        "" if span == whole else f" (budgets {range_text(span)})"),
                        relative.text(3) if span[1] == whole[1] else "-",
                        curve_judgement(mine, higher, (requires or {}).get(metric))])
        if metric in floors:  # what real data scores, beside every model at every budget
            rows.append([REAL_ROW] + [floor_text(floors[metric])] * len(budgets))
        title = "headline: " if sources_of(frame)[metric] == (headline or cfg.run.headline) else ""
        arrow = "higher is better" if higher else "lower is better"
        note = " (intervals of sampling noise only: 1 training seed)" if bases == {SAMPLING} else ""
        parts += [f"## {title}{escape(metric)} by budget ({arrow}){note}", "", markdown_table(
            ["model"] + [f"{b:g}" for b in budgets], rows), ""]
    parts += floor_section(frame, order, floors, label, notes)
    # Every metric, not the headline alone: no conclusion should rest on one feature space.
    for metric in order:
        parts += verdict_section(frame, metric, higher_is_better, label, ordered, per_budget, budgets)
    pairs = entry_pairs(frame)
    for metric in order if pairs else []:
        parts += comparison_section(frame, metric, higher_is_better, pairs, budgets, "between model entries",
                                    "Entries that differ in one thing: the prior or its sampling settings with one "
                                    "encoder and its options, or the encoder or its options with one prior and "
                                    "settings. ")
    for metric in order:
        parts += price_section(frame, metric, higher_is_better, ordered, per_budget, budgets)
    parts += [
        "## Anytime scores",
        "",
        "Score: normalized area under the quality-versus-budget curve (trapezoid over the budgets, divided by the "
        "budget range), in the metric's units, per training seed, then averaged; relative: the score over the "
        "full-budget value (1 = no loss at any budget). Monotone: no budget is significantly worse than the one "
        "before it (each step a paired difference over training seeds, not corrected for the number of steps; a "
        "worse step whose interval holds zero is within the noise): it judges neighbouring steps, so a rise within "
        "the noise at every step still reads yes, and the tables by budget show the whole curve; a metric of the "
        "prior's likelihood is not judged: its value at a budget averages over that budget's codes.",
        "",
        markdown_table(["metric", "model", "anytime score", "relative to full budget", "monotone"], scores),
        "",
    ]
    return "\n".join(parts)


FLOOR = ("The score of real data against real data: for each of several seeded splits of the reference split, n "
         "held-out items against the disjoint rest (n: the run's sample count, capped at half the reference set). "
         "Generated samples are scored with the run's sample count against the whole reference split, and scores "
         "such as FID fall as either count grows, so the floor lies above what a perfect generator would score at "
         "the run's counts, the more so where n is capped: a model's distance from it understates what it could "
         "still gain. Floor: mean over splits with a {level:.0%} Student-t interval over the splits; the splits "
         "share items, so the interval shows how the floor moves with the split, and is narrower than one over "
         "independent reference sets would be.")


REAL_ROW = "real data (floor)"
"""The row of a metric's by-budget table that gives the real data's own score, when the metric records one."""

RECONSTRUCTION_FLOOR = ("For a metric of reconstructions the floor is the real test items' own score, what a perfect "
                        "reconstruction would score (a recognizer's accuracy on the real clips): the test split cut "
                        "into disjoint seeded folds of n items, scored as reconstructions are; mean over the folds "
                        "with a {level:.0%} Student-t interval over them.")


def floor_text(floor: dict[str, Any]) -> str:
    """A recorded floor as ``mean [low, high]``."""
    return Estimate(floor["mean"], floor["low"], floor["high"], int(floor.get("splits", 0))).text()


def floor_section(frame: pd.DataFrame, order: list[str], floors: dict[str, dict[str, Any]],
                  label: dict[str, str], notes: dict[str, str] | None = None) -> list[str]:
    """The real-versus-real floor of each metric that has one, and each model's full-budget distance from it."""
    parts = ["## Real-versus-real floor", "", FLOOR.format(level=LEVEL), ""]
    have = [m for m in order if m in floors]
    if any(floors[m].get("requires") == "reconstructed" for m in have):
        parts += [RECONSTRUCTION_FLOOR.format(level=LEVEL), ""]
    if have:
        parts += [markdown_table(["metric", "feature space", "reference set", "n per split", "splits", "floor"], [
            [m, str(floors[m].get("feature_space", "?")), str(floors[m].get("reference_set", "?")),
             f"{floors[m]['n']}" + (f" (capped from {floors[m].get('num_samples', '?')}: half the reference set)"
                                    if floors[m].get("capped") else ""),
             str(floors[m]["splits"]), floor_text(floors[m])] for m in have]), ""]
        rows = []
        for metric in have:
            part = frame[frame.metric == metric]
            full = part[part.budget == part.budget.max()]
            for model in dict.fromkeys(part.model):
                cell = estimate(full[full.model == model])
                rows.append([metric, label.get(model, model), cell.text(), distance(cell, floors[metric]).text()])
        parts += ["Each model's full-budget value and its distance from the floor (value minus floor mean; the "
                  "interval is the value's).", "", markdown_table(["metric", "model", "full budget", "minus floor"],
                                                                 rows), ""]
    notes = notes or {}
    for metric in (m for m in order if m not in floors and m in notes):
        parts += [f"No floor for {code(metric)}: {escape(notes[metric])}.", ""]
    without = [m for m in order if m not in floors and m not in notes]
    if without:
        parts += ["No floor for " + ", ".join(code(m) for m in without) + ": a reconstruction metric that compares "
                  "the very items reconstructed has none (a perfect reconstruction scores its best value), nor has a "
                  "metric of the prior's likelihood of the test codes (real data has no codes of its own), and any "
                  "metric has one only where it computes it.", ""]
    return parts


def distance(cell: Estimate, floor: dict[str, Any]) -> Estimate:
    """A model's estimate minus the floor's mean (the estimate's interval, shifted)."""
    shift = float(floor["mean"])
    return Estimate(cell.mean - shift, cell.low - shift, cell.high - shift, cell.n, cell.basis)


def verdict_section(frame: pd.DataFrame, metric: str, higher_is_better: dict[str, bool], label: dict[str, str],
                    ordered: dict[str, bool], per_budget: dict[str, bool], budgets: list[float]) -> list[str]:
    """Ordered minus each unordered model at every budget, paired on the training seed, with a verdict."""
    ordered_models = [m for m, o in ordered.items() if o]
    baselines = [m for m, o in ordered.items() if not o and not per_budget.get(m)]
    if not ordered_models or not baselines:
        return []
    pairs = [(a, b) for a in ordered_models for b in baselines]
    return comparison_section(frame, metric, higher_is_better, pairs, budgets, "ordered minus unordered")


def comparison_section(frame: pd.DataFrame, metric: str, higher_is_better: dict[str, bool],
                       pairs: list[tuple[str, str]], budgets: list[float], title: str, why: str = "") -> list[str]:
    """``a`` minus ``b`` for each pair at every budget, paired on the training seed, with a verdict."""
    part = frame[frame.metric == metric]
    higher = orientation(higher_is_better, metric)
    means = {cell: replicate_means(rows).to_dict() for cell, rows in part.groupby(["model", "budget"], sort=False)}
    rows = []
    for a, b in pairs:
        cells = []
        for budget in budgets:
            v = paired_means(means.get((a, budget), {}), means.get((b, budget), {}), higher)
            cells.append(f"{v.difference.text()} {v.verdict}" if v.difference.n else "-")
        rows.append([f"{a} - {b}"] + cells)
    n = part.groupby(["run_id", "train_seed"]).ngroups
    return [f"## Paired comparisons: {escape(metric)}, {title}", "",
            f"{why}The difference of the means at each budget, paired on the training seed ({n} training seed"
            f"{'s' if n != 1 else ''}), with its {LEVEL:.0%} interval and a verdict: better or worse when the "
            f"interval excludes zero ({'higher' if higher else 'lower'} is better), not distinguishable when it holds "
            f"zero, untested with fewer than two training seeds. Intervals are per budget, not corrected for the "
            f"number of comparisons.", "",
            markdown_table(["comparison"] + [f"{b:g}" for b in budgets], rows), ""]


def price_section(frame: pd.DataFrame, metric: str, higher_is_better: dict[str, bool], ordered: dict[str, bool],
                  per_budget: dict[str, bool], budgets: list[float]) -> list[str]:
    """The price of anytime: each ordered model's quality over a per-budget oracle's, at every budget both have."""
    oracles = [m for m, p in per_budget.items() if p]
    ordered_models = [m for m, o in ordered.items() if o]
    if not oracles or not ordered_models:
        return []
    part = frame[frame.metric == metric]
    covered = [b for b in budgets if any(((part.model == o) & (part.budget == b)).any() for o in oracles)]
    rows = []
    for a in ordered_models:
        for oracle in oracles:
            cells = [paired_ratio(part[(part.model == a) & (part.budget == b)],
                                  part[(part.model == oracle) & (part.budget == b)]).text(3) for b in covered]
            rows.append([f"{a} / {oracle}"] + cells)
    worse = "above" if not orientation(higher_is_better, metric) else "below"
    return [f"## The price of anytime: {escape(metric)}, ordered over per-budget oracle", "",
            f"One ordered model serves every budget; a per-budget oracle trains one model for each. Each cell is the "
            f"ordered model's {escape(metric)} over the oracle's, per training seed, averaged, with its {LEVEL:.0%} interval: "
            f"1 means anytime costs nothing at that budget, {worse} 1 is what it costs.", "",
            markdown_table(["ratio"] + [f"{b:g}" for b in covered], rows), ""]


def headline(frame: pd.DataFrame, metric: str) -> str:
    """A one-line digest of the headline metric at the smallest, middle and full budget (means over seeds), for the
    terminal: a model's name may come from someone's table, so its control characters are escaped."""
    metric = headline_measurement(frame, metric)
    part = frame[frame.metric == metric]
    if part.empty:
        return ""
    budgets = sorted(part.budget.unique())
    picks = sorted({budgets[0], budgets[len(budgets) // 2], budgets[-1]})
    table = part.groupby(["model", "budget"], sort=False)["value"].mean()
    bits = [f"{model} " + "/".join(f"{table[(model, b)]:.3g}" if (model, b) in table.index else "-" for b in picks)
            for model in part.model.unique()]
    return printable(f"{metric} at budgets {'/'.join(f'{b:g}' for b in picks)}: " + "; ".join(bits))
