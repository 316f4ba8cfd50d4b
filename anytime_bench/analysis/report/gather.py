"""Reading run folders for a report: only the results contract, every file validated, nothing trusted.

A run folder that misses a file or holds a malformed one is listed with what
is wrong, and the rest of the report is still written. Runs whose configs
differ only in their seeds form one *group*: their training seeds are pooled
as replicates of one model (a seed trained twice starts another group). A
model whose measurements in one group equal those of another group (runs that
share its checkpoints and seeds), or that are part of them (fewer budgets or
seeds), is one experiment, shown once (:func:`measurements_of`, :func:`holders`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anytime_bench.errors import ConfigError, first_line
from anytime_bench.store import identity
from anytime_bench.store.record import read_record
from anytime_bench.store.rundir import COMPARABILITY_KEYS, METRICS_CSV, RUN_JSON, RunPaths
from anytime_bench.store.tables import json_cell, read_cost, read_metrics, source_of


@dataclass
class Gathered:
    paths: RunPaths
    name: str
    metrics: pd.DataFrame | None = None
    cost: pd.DataFrame | None = None
    state: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    """Runs with the same group differ only in seeds."""
    missing: list[str] = field(default_factory=list)
    unscored: list[str] = field(default_factory=list)
    """Metrics it was ranked by that its record says it never measured: not missing, the run is whole."""

    @property
    def listed_metrics(self) -> list[str] | None:
        """The metric plugins the run's record lists (``run.metrics``), or None without a readable list."""
        config = self.state.get("config")
        run = config.get("run") if isinstance(config, dict) else None
        listed = run.get("metrics") if isinstance(run, dict) else None
        return [str(m) for m in listed] if isinstance(listed, list) else None

    def measures(self, metric: str) -> bool | None:
        """Whether the run's record lists the metric plugin that gives ``metric``; None without a readable list."""
        listed = self.listed_metrics
        return None if listed is None else source_of(metric, listed) in listed


def config_group(state: dict[str, Any], fallback: str) -> str:
    """The run's identity without its seeds (:func:`.identity.group_digest`); ``fallback`` without a record."""
    form = state.get("identity")
    return identity.group_digest(form) if isinstance(form, dict) else f"run:{fallback}"


def shown(name: str) -> str:
    """A folder's name as text: a byte that is not UTF-8 (kept by Python as a lone surrogate, which no text or
    figure can hold) as the replacement character."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def load_run(path: Path) -> Gathered:
    paths = RunPaths(Path(path))
    run = Gathered(paths=paths, name=shown(paths.root.name))
    if not paths.root.is_dir():
        run.missing.append("the folder itself")
        run.group = config_group({}, run.name)
        return run
    try:
        run.state = read_record(paths.run_json).state
    except ConfigError as exc:  # reported as incomplete, saying why: its metrics can still be ranked
        run.missing.append(f"a readable {paths.run_json.name} ({first_line(exc, 200)})")
    run.group = config_group(run.state, run.name)
    if paths.metrics_csv.is_file():
        config = run.state.get("config")
        settings = config.get("run") if isinstance(config, dict) else None
        settings = settings if isinstance(settings, dict) else {}
        recorded = settings.get("seed", 0)
        run.metrics = read_metrics(paths.metrics_csv, run.missing, recorded if isinstance(recorded, int) else 0,
                                   settings)
        if run.metrics is not None:
            run.metrics["run_id"] = run.name  # replicates are told apart by the folder they came from
            run.missing += short_of_record(run.metrics, run.state) + unfinished_pass(run.state)
    else:
        run.missing.append(paths.metrics_csv.name)
    if paths.cost_csv.is_file():
        run.cost = read_cost(paths.cost_csv, run.missing)
    return run


def model_settings(state: dict[str, Any], part: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """What one model of a run was made with, flat, each value as text: its encoder's options (bare names), its prior
    and the prior's options (``prior.NAME``), its sampling settings, its dataset's options (``dataset.NAME``); and,
    apart, the defaults in force when it ran
    of the options that it left at them. Options are those of the run's identity, with the model entry's own options
    over them. Both empty without a readable record: nothing tells the model apart then."""
    form = state.get("identity")
    if not isinstance(form, dict) or not len(part):
        return {}, {}
    first = part.iloc[0]

    def layer(name: str, kind: str, component: Any, prefix: str) -> dict[str, str]:
        tables = form.get(name)
        found = tables.get(kind) if isinstance(tables, dict) else None
        found = found.get(component) if isinstance(found, dict) else None
        return {prefix + str(k)[:40]: setting_text(v) for k, v in (found if isinstance(found, dict) else {}).items()}

    def own(text: Any, prefix: str) -> dict[str, str]:
        given = json_cell(text)
        return {prefix + str(k)[:40]: setting_text(v) for k, v in (given if isinstance(given, dict) else {}).items()}

    defaults = layer("defaults", "encoder", first.encoder, "") | layer("defaults", "prior", first.prior, "prior.")
    settings = (defaults | layer("set", "encoder", first.encoder, "") | own(first.encoder_options, "")
                | layer("set", "prior", first.prior, "prior.") | own(first.prior_options, "prior."))
    settings |= {"prior": setting_text(first.prior)} | {key: setting_text(first[key])
                                                        for key in ("temperature", "top_k", "top_p")}
    data = layer("defaults", "dataset", first.dataset, "dataset.")  # the data it was trained on, too
    return settings | data | layer("set", "dataset", first.dataset, "dataset."), defaults | data


def setting_text(value: Any) -> str:
    """A setting as a table shows it: numbers in their shortest form, anything else as JSON, at most 40 characters."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    if isinstance(value, str):
        return value[:40]
    try:
        return json.dumps(value, sort_keys=True)[:40]
    except (TypeError, ValueError):
        return str(value)[:40]


def short_of_record(metrics: pd.DataFrame, state: dict[str, Any]) -> list[str]:
    """What a finished run's metrics table lacks of what its record says was measured: a model, or a training seed
    of one (a table cut short at a row's end still reads as a table). Nothing for a run still going."""
    seeds = state.get("seeds")
    wanted = seeds.get("train") if isinstance(seeds, dict) else None
    models = state.get("models")
    if state.get("status") not in ("done", "evaluated") or not isinstance(wanted, list) or not isinstance(models, dict):
        return []
    wanted = sorted(seed for seed in wanted if isinstance(seed, int))
    have = metrics.groupby("model").train_seed.unique()
    out = [f"model {str(model)[:40]!r} in {METRICS_CSV}" for model in list(models)[:5] if model not in have.index]
    for model, seeds in have.items():
        short = sorted(set(wanted) - {int(s) for s in seeds})
        if short:
            out.append(f"training seeds {short[:8]} of {str(model)[:40]!r} in {METRICS_CSV}")
    return out


def unfinished_pass(state: dict[str, Any]) -> list[str]:
    """What a run whose table was written by an earlier pass lacks: the end of the pass its record says failed, was
    interrupted or is still going (``run --redo`` stopped part way), whose samples its table may no longer score."""
    status = state.get("status")
    if not state or status in ("done", "evaluated"):
        return []
    stage = state.get("stage")
    where = f" in stage {str(stage)[:40]}" if isinstance(stage, str) and stage else ""
    return [f"the end of its last pass ({RUN_JSON} says {str(status)[:40]}{where}: {METRICS_CSV} may be an "
            "earlier pass's)"]


def distinct_folders(paths: list[Path], seen: set[str]) -> list[Path]:
    """``paths`` without the folders already in ``seen`` (one folder named twice, or by two paths, is read once)."""
    out = []
    for path in paths:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append(Path(path))
    return out


def name_apart(runs: list[Gathered]) -> None:
    """Runs in folders of the same name (``cpu/r``, ``gpu/r``) are named by as much of their path as tells them
    apart: replicates are told apart by that name, and two runs must never pool as one replicate."""
    by_name: dict[str, list[Gathered]] = {}
    for run in runs:
        by_name.setdefault(run.name, []).append(run)
    for same in by_name.values():
        if len(same) < 2:
            continue
        names = [run.name for run in same]
        for d in range(2, max(len(run.paths.root.parts) for run in same) + 1):
            names = [shown("/".join(run.paths.root.parts[-d:])) for run in same]
            if len(set(names)) == len(names):
                break
        if len(set(names)) < len(names):
            names = [f"{name}#{i + 1}" for i, name in enumerate(names)]
        for run, name in zip(same, names, strict=True):
            run.name = name
            if run.metrics is not None:
                run.metrics["run_id"] = name


def resolved_options(state: dict[str, Any]) -> dict[str, str]:
    """A run's identity flat, seeds left out: each option as it ran (what was set, over the defaults then in
    force), keyed by its path (``encoder.rvq.steps``), its value as JSON. Empty without a recorded identity."""
    form = state.get("identity")
    out: dict[str, str] = {}
    for layer in ("defaults", "set"):
        tables = form.get(layer) if isinstance(form, dict) else None
        for kind, table in (tables.items() if isinstance(tables, dict) else ()):
            if not isinstance(table, dict):
                continue
            for name, options in table.items():
                if kind == "run":  # its table holds options; the others hold a table per component or entry
                    if name not in identity.SEED_KEYS:
                        out[f"run.{name}"] = _as_text(options)
                elif isinstance(options, dict):
                    out |= {f"{kind}.{name}.{key}": _as_text(value) for key, value in options.items()}
    return out


def _as_text(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def split_changed_defaults(runs: list[Gathered]) -> None:
    """Runs of one config pool as replicates only where every option that both record holds the same value: the
    config digest hashes what was set, so runs made while a plugin's default was another value share it (and an
    option added since, which one of them does not record, does not keep them apart)."""
    parts: dict[str, list[dict[str, str]]] = {}
    for run in runs:
        if run.metrics is None or not isinstance(run.state.get("identity"), dict):
            continue
        values = resolved_options(run.state)
        taken = parts.setdefault(run.group, [])
        index = next((i for i, seen in enumerate(taken)
                      if all(seen[key] == value for key, value in values.items() if key in seen)), len(taken))
        if index == len(taken):
            taken.append({})
        taken[index] |= values
        if index:
            run.group = f"{run.group}~{index + 1}"


def split_repeated_seeds(runs: list[Gathered]) -> None:
    """Runs of one config pool as training replicates only where their training seeds differ: two runs that
    trained the same seed (the same config on two machines) are two experiments, compared rather than pooled."""
    parts: dict[str, list[set[float]]] = {}
    for run in runs:
        if run.metrics is None:
            continue
        seeds = set(run.metrics.train_seed.dropna().tolist())  # as read: a crafted seed (inf, 1e300) is a value
        taken = parts.setdefault(run.group, [])
        index = next((i for i, used in enumerate(taken) if not used & seeds), len(taken))
        if index == len(taken):
            taken.append(set())
        taken[index] |= seeds
        if index:
            run.group = f"{run.group}#{index + 1}"


def provenance_of(frame: pd.DataFrame | None, metric: str) -> dict[str, Any]:
    """The first provenance record of ``metric`` in a metrics frame, or an empty dict."""
    if frame is None:
        return {}
    part = frame[frame.metric == metric].provenance.dropna()
    for text in part:
        value = json_cell(text)
        if isinstance(value, dict):
            return value
    return {}


def comparability(frame: pd.DataFrame | None, metric: str) -> str:
    """What decides whether numbers of ``metric`` (rows of a metrics frame: one model's, so that a run whose models
    were scored by different versions is not taken as one) can be ranked together."""
    prov = provenance_of(frame, metric)
    if not prov:
        return "unknown"
    # Whole values, in a form no value can break apart: a reference set's name ends in the hash of its items, so
    # two sets of one long-named dataset differ only at their ends.
    return json.dumps([str(prov.get(key, "?")) for key in COMPARABILITY_KEYS])


def measurements_of(part: pd.DataFrame, key: str) -> frozenset[str]:
    """One model's measurements of one metric (rows of a metrics frame) under their comparability ``key``, each a
    string: equal sets in two groups are the same experiment reached from two configs, e.g. an ablation run that
    resumed the reference run's checkpoints; a set within another is part of it (:func:`holders`)."""
    columns = ["dataset", "model", "ordered", "per_budget", "train_seed", "sample_seed", "budget", "tokens", "value"]
    columns = [c for c in columns if c in part.columns]  # tokens: absent from runs made before it was written
    return frozenset("|".join(map(str, (key, *row))) for row in part[columns].itertuples(index=False))


def holders(measured: list[frozenset[str]]) -> list[int | None]:
    """For each set of measurements (:func:`measurements_of`), the index of a larger set that holds all of it,
    else None: a model measured at fewer budgets or seeds in one experiment than in another that shares its
    checkpoints and seeds adds nothing to it, and is shown as part of it. The largest sets hold first."""
    out: list[int | None] = [None] * len(measured)
    kept: list[int] = []
    for i in sorted(range(len(measured)), key=lambda i: -len(measured[i])):
        out[i] = next((k for k in kept if measured[i] < measured[k]), None)
        if out[i] is None:
            kept.append(i)
    return out


@dataclass
class Measured:
    """One model's measurements of one metric on one dataset in one experiment, with every run that measured them
    (the same values in several experiments, or part of them in one: :func:`holders`)."""

    dataset: str
    model: str
    comparability: str
    part: pd.DataFrame
    """The rows shown: those of the experiment, of the ones that measured all of it, whose runs' first name is
    first in order of names (the same whatever the order the run folders were given in)."""
    full_budget: float
    """That experiment's full budget on the dataset, as its summary takes it (the largest any of its models has)."""
    runs: list[Gathered]
    """Every run that measured it or part of it, by name."""
    shown: list[Gathered]
    """The runs of the experiment whose rows are shown, by name: whose record tells its settings."""


def measured_models(groups: list[list[Gathered]], metric: str) -> list[Measured]:
    """Every model's finite measurements of ``metric`` per dataset in the experiments ``groups`` (each the runs of
    one config, differing in seeds), one :class:`Measured` per distinct set of measurements; a set within another is
    part of it. The report's leaderboard and its figures show the same experiments from this one reading."""
    found: dict[frozenset[str], list[tuple[list[Gathered], pd.DataFrame, float, str, str, str]]] = {}
    for members in groups:
        frame = pd.concat([r.metrics[r.metrics.metric == metric] for r in members if r.metrics is not None])
        frame = frame[np.isfinite(frame.value.to_numpy(float))]
        # The experiment's full budget, as its summary takes it: a per-budget oracle trained up to 0.6 has no
        # full-budget value, where its own largest budget would pass for one.
        full_budgets = frame.groupby("dataset").budget.max()
        for (dataset, model), part in frame.groupby(["dataset", "model"], sort=False):
            key = comparability(part, metric)
            found.setdefault(measurements_of(part, key), []).append(
                (members, part, float(full_budgets[dataset]), str(dataset), str(model), key))
    measured = list(found)
    held = holders(measured)
    extra: dict[int, list[Gathered]] = {}
    for i, holder in enumerate(held):
        if holder is not None:
            extra.setdefault(holder, []).extend(r for members, *_ in found[measured[i]] for r in members)
    out = []
    for i, (fingerprint, holder) in enumerate(zip(measured, held, strict=True)):
        if holder is not None:
            continue
        whole = found[fingerprint]
        members, part, full_budget, dataset, model, key = min(whole, key=lambda g: min(r.name for r in g[0]))
        runs = {id(r): r for g in whole for r in g[0]} | {id(r): r for r in extra.get(i, [])}
        out.append(Measured(dataset, model, key, part, full_budget, sorted(runs.values(), key=lambda r: r.name),
                            sorted(members, key=lambda r: r.name)))
    return out
