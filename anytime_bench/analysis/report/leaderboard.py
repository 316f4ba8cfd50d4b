"""The leaderboard: one row per dataset, experiment and model, with its training replicates pooled.

Runs whose configs differ only in seeds are one experiment: a model's row
pools their training seeds, shows how many there are (n) and gives every
number a 95% interval over them. A model measured identically in several
experiments (runs that share its checkpoints and seeds) is one row naming
every run. Experiments of one dataset whose metric came from another feature
space, reference set or sample count are flagged rather than ranked together
(the keys are the Metric contract's ``PROVENANCE_KEYS``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from anytime_bench.analysis.labels import model_label
from anytime_bench.analysis.report.gather import (
    Gathered,
    measured_models,
    model_settings,
    provenance_of,
)
from anytime_bench.analysis.stats import (
    REPLICATE,
    Estimate,
    curve_judgement,
    range_rank,
    range_text,
    score_estimate,
    scored_range,
    t_interval,
)
from anytime_bench.analysis.tradeoffs import speedup_at_equal_quality
from anytime_bench.store.rundir import COMPARABILITY_KEYS

QUARTILES = (0.25, 0.5, 0.75)


def _at(part: pd.DataFrame, budget: float) -> Estimate:
    """Quality at ``budget`` per training replicate (interpolated between measured budgets), then its estimate."""
    curves = part.groupby(REPLICATE + ["budget"])["value"].mean().unstack("budget")
    values = []
    for _, row in curves.iterrows():
        row = row.dropna()
        b = row.index.to_numpy(float)
        if len(b) and b.min() <= budget <= b.max():
            values.append(float(np.interp(budget, b, row.to_numpy(float))))
    values = np.array(values)
    if len(values) == 0:
        return Estimate(float("nan"), n=0)
    low, high = t_interval(values)
    return Estimate(float(values.mean()), low, high, len(values))


def leaderboard(runs: list[Gathered], metric: str, higher_is_better: bool) -> list[dict[str, Any]]:
    groups: dict[str, list[Gathered]] = {}
    for run in runs:
        if run.metrics is None:
            continue
        if not (run.metrics.metric == metric).any():
            if run.measures(metric) is False:
                run.unscored.append(metric)
            else:
                run.missing.append(f"metric {metric!r} in {run.paths.metrics_csv.name}")
            continue
        groups.setdefault(run.group, []).append(run)
    rows: list[dict[str, Any]] = []
    for m in measured_models(list(groups.values()), metric):
        part = m.part
        score, _ = score_estimate(part)
        full = _at(part, m.full_budget)
        curve = part.groupby("budget")["value"].mean()
        speed = [speedup_at_equal_quality(curve, r.cost, m.model, higher_is_better) for r in m.runs
                 if r.cost is not None]
        speed = [s for s in speed if s == s]
        floor = floor_of(m.shown + m.runs, metric)
        rows.append({
            "dataset": m.dataset, "runs": ", ".join(r.name for r in m.runs), "model": m.model,
            "ordered": bool(part.ordered.iloc[0]), "per_budget": bool(part.per_budget.iloc[0]),
            "n": part.groupby(REPLICATE).ngroups,
            "anytime score": score, "budgets": scored_range(part), "full budget": full,
            "minus floor": full.mean - floor["mean"] if floor else float("nan"),
            **{f"at {q:g}": _at(part, q) for q in QUARTILES},
            "speed-up at equal quality": float(np.mean(speed)) if speed else float("nan"),
            "monotone": curve_judgement(part, higher_is_better, recorded_requires(m.shown + m.runs, metric)),
            "comparability": m.comparability,
            **dict(zip(("settings", "defaults"), model_settings(m.shown[0].state, part), strict=True)),
        })
    tell_apart(rows)
    # Experiments of one dataset scored in different feature spaces, reference sets or sample counts are flagged,
    # and so are scores over another range of budgets than the widest one of their group: each is ranked apart.
    for row in rows:
        keys = sorted({r["comparability"] for r in rows if r["dataset"] == row["dataset"]})
        flags = [] if len(keys) == 1 else [f"not comparable: group {keys.index(row['comparability']) + 1} of "
                                           f"{len(keys)} ({incomparable(row['comparability'], keys)})"]
        widest = min((r["budgets"] for r in rows if r["dataset"] == row["dataset"]
                      and r["comparability"] == row["comparability"]), key=range_rank)
        if row["budgets"] != widest:
            flags.append(f"anytime score over budgets {range_text(row['budgets'])}: ranked after the scores over "
                         f"{range_text(widest)}")
        row["flag"] = "; ".join(flags)
    sign = -1 if higher_is_better else 1
    rows.sort(key=lambda r: (r["dataset"], r["comparability"], range_rank(r["budgets"]), sign * r["anytime score"].mean
                             if r["anytime score"].mean == r["anytime score"].mean else float("inf")))
    return rows


def incomparable(key: str, keys: list[str]) -> str:
    """What sets the group of comparability ``key`` apart from the others of ``keys`` (:func:`.comparability`):
    each setting in which the groups differ, with this group's value and the others'."""
    if key == "unknown" or "unknown" in keys:
        return "a run records no provenance of this metric" if key == "unknown" else "the others' provenance"
    ours, parts = json.loads(key), [json.loads(other) for other in keys if other != key]
    said = []
    for i, name in enumerate(COMPARABILITY_KEYS):
        others = sorted({p[i] for p in parts if len(p) > i and p[i] != ours[i]} if i < len(ours) else set())
        if others:
            said.append(f"{name.replace('_', ' ')} {_short_value(ours[i])}, other groups "
                        + " or ".join(_short_value(v) for v in others))
    return "; ".join(said) or "feature space, reference set or sample count differ"


def _short_value(value: str) -> str:
    # both ends: names of reference sets share their start (the dataset's) and differ at their end (a hash)
    return value if len(value) <= 16 else value[:8] + "..." + value[-5:]


def floor_of(members: list[Gathered], metric: str) -> dict[str, Any] | None:
    """The real-versus-real floor of ``metric`` that the first of ``members`` to record one recorded (runs of one
    group share their config, so their reference set, feature space and sample count), or None."""
    return first_recorded(members, "metric_floors", metric, dict)


def recorded_requires(members: list[Gathered], metric: str) -> str | None:
    """What ``metric`` scores, as the first of ``members`` to record it recorded (None for runs before it was)."""
    return first_recorded(members, "metric_requires", metric, str)


def first_recorded(members: list[Gathered], key: str, metric: str, kind: type) -> Any:
    """``metric``'s entry of the table ``key`` in the first of ``members`` whose record holds one of ``kind``, or
    None."""
    for run in members:
        table = run.state.get(key)
        if isinstance(table, dict) and isinstance(table.get(metric), kind):
            return table[metric]
    return None


def recorded_floors(runs: list[Gathered]) -> set[str]:
    """The metrics for which one of ``runs`` records a floor, or a note on why it has none."""
    names: set[str] = set()
    for run in runs:
        for key in ("metric_floors", "floor_notes"):
            table = run.state.get(key)
            names |= set(table) if isinstance(table, dict) else set()
    return names


NOT_RECORDED = "floor not recorded (run `anytime-bench evaluate --floors-only {run}` to compute it)"


def floor_lines(runs: list[Gathered], metric: str) -> list[tuple[str, str]]:
    """``(dataset, line)``: the real-versus-real floor of ``metric`` per dataset, feature space, reference set and
    sample count, naming the runs that recorded it; a run evaluated before floors were recorded is named as such,
    with the command that computes it, never given another run's floor."""
    found: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        if run.metrics is None or not len(run.metrics) or not (run.metrics.metric == metric).any():
            continue
        dataset = str(run.metrics.dataset.iloc[0])
        floors = run.state.get("metric_floors")
        floor = floors.get(metric) if isinstance(floors, dict) else None
        notes = run.state.get("floor_notes")
        note = notes.get(metric) if isinstance(notes, dict) and floor is None else None
        if isinstance(note, str):
            line = f"{metric}: no real-versus-real floor: {note}"
        elif isinstance(floor, dict):
            capped = f", capped from {floor.get('num_samples', '?')}" if floor.get("capped") else ""
            items = (f"{floor['n']} test items per fold, {floor['splits']} folds" if floor.get("requires") ==
                     "reconstructed" else f"{floor['n']} held-out items{capped}, {floor['splits']} splits")
            line = (f"{metric} in {floor.get('feature_space', '?')} (reference set {floor.get('reference_set', '?')}, "
                    f"{items}): "
                    f"{Estimate(floor['mean'], floor['low'], floor['high']).text()}")
        elif isinstance(floors, dict):
            line = f"{metric}: no real-versus-real floor (a reconstruction metric, or one that computes none)"
        elif not run.state:  # no record read: `evaluate` could not open the folder either
            line = f"{metric}: floor unknown (no readable {run.paths.run_json.name})"
        else:
            line = f"{metric}: " + NOT_RECORDED.format(run=run.paths.root)
            found[(dataset, line)] = []  # the command names the run: no list of runs to add
            continue
        found.setdefault((dataset, line), []).append(run.name)
    return [(dataset, line + (f" - runs {', '.join(names)}" if names else ""))
            for (dataset, line), names in found.items()]


SHOWN_SETTINGS = 4
"""Settings a row's "differs" cell names at most (then how many more)."""


def tell_apart(rows: list[dict[str, Any]]) -> None:
    """Give each row the settings in which it differs from most rows of the same model on its dataset (``differs``):
    the rows of one model from many experiments (ablations of one encoder, say) are otherwise told apart by their
    run names only.

    An option that a row's record does not hold (a run made before the option existed) counts at the default
    another row's record gives it, since an option added later keeps, at its default, what runs did before; where
    no record gives a default, that row's value is unknown and names nothing. A value held by more rows than any
    other is the one the others differ from; where values tie for the most rows, the default (when a record gives
    it) is, and failing that every row names its value, so that the result never depends on the order of the run
    folders. A row names first the settings in which fewest rows share its value."""
    groups: dict[tuple[str, str, bool, bool], list[dict[str, Any]]] = {}
    for row in rows:
        row["differs"] = ""
        groups.setdefault((row["dataset"], row["model"], row["ordered"], row["per_budget"]), []).append(row)
    for group in groups.values():
        # a row without a readable record has none to compare; in order of runs, so that no result hangs on the
        # order the folders were given in (the defaults of the first record that gives one, say)
        members = sorted((r for r in group if r["settings"]), key=lambda r: r["runs"])
        if len(members) < 2:
            continue
        defaults: dict[str, str] = {}
        for r in members:
            defaults = r["defaults"] | defaults
        keys = list(dict.fromkeys(key for r in members for key in r["settings"]))
        named: list[list[tuple[int, str, str]]] = [[] for _ in members]  # (rows sharing the value, key, text)
        for key in keys:
            column = [r["settings"].get(key, defaults.get(key)) for r in members]
            known = [value for value in column if value is not None]
            if len(set(known)) < 2:
                continue
            counts = {value: known.count(value) for value in known}
            most = [value for value, count in counts.items() if count == max(counts.values())]
            baseline = most[0] if len(most) == 1 else defaults.get(key) if defaults.get(key) in most else None
            for i, value in enumerate(column):
                if value is not None and value != baseline:
                    named[i].append((counts[value], key, f"{key} {value}"))
        for row, settings in zip(members, named, strict=True):
            differs = [text for _, _, text in sorted(settings)]
            more = len(differs) - SHOWN_SETTINGS
            row["differs"] = ", ".join(differs[:SHOWN_SETTINGS]) + (f" (+{more} more)" if more > 0 else "")


def board_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "runs", "model", "differs", "n", "metric", "anytime score", "full budget", "minus floor"] + [
        f"at {q:g}" for q in QUARTILES] + ["speed-up at equal quality", "monotone", "flag"]
    out = []
    for r in rows:
        speed = r["speed-up at equal quality"]
        above = r.get("minus floor", float("nan"))
        out.append([r["dataset"], r["runs"], model_label(r["model"], r["ordered"], r["per_budget"]),
                    r.get("differs") or "-", str(r["n"]),
                    r.get("metric", ""), r["anytime score"].text(), r["full budget"].text(),
                    f"{above:.4g}" if above == above else "-"]
                   + [r[f"at {q:g}"].text() for q in QUARTILES]
                   + [f"{speed:.3g}x" if speed == speed else "-", r["monotone"], r["flag"]])
    return header, out


def provenance_table(runs: list[Gathered], metric: str) -> tuple[list[str], list[list[str]]]:
    header = ["run", "config digest", "git commit", "anytime-bench", "torch", "device", "metric implementation",
              "feature space", "reference set", "missing"]
    rows = []
    for run in runs:
        s = run.state
        versions = s.get("versions", {}) if isinstance(s.get("versions"), dict) else {}
        device = s.get("device", {})
        device_text = (device.get("gpu") or device.get("device", "?")) if isinstance(device, dict) else str(device)
        prov = provenance_of(run.metrics, metric)
        implementation = f"{prov.get('implementation', '?')} {prov.get('version', '')}".strip()
        commit = str(s.get("git_commit", "?"))[:12]
        scored = (s.get("stages_by") or {}).get("evaluate") if isinstance(s.get("stages_by"), dict) else None
        if isinstance(scored, dict) and str(scored.get("git_commit", "?"))[:12] != commit:
            commit += f" (evaluated by {str(scored.get('git_commit', '?'))[:12]})"  # a later version scored it
        rows.append([run.name, str(s.get("config_digest", "?"))[:16], commit,
                     str(versions.get("anytime-bench", "?")), str(versions.get("torch", "?")), str(device_text)[:40],
                     implementation[:60],
                     str(prov.get("feature_space", "?"))[:60], str(prov.get("reference_set", "?"))[:60],
                     ", ".join(run.missing) or "-"])
    return header, rows
