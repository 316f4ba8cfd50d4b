"""Stage 3: score the saved samples and reconstructions with every metric, write the results.

Metrics of reconstructions and of likelihoods do not depend on the sampling
seed: each is computed once per model, training seed and budget, and its row repeated for
every sampling seed so that every cell of the metrics table has the same seeds.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from anytime_bench.analysis.results import write_results, write_summary
from anytime_bench.analysis.stats import t_interval
from anytime_bench.contract.components import BoundMetric, BoundModality
from anytime_bench.contract.context import seed_everything
from anytime_bench.contract.conventions import tokens_for
from anytime_bench.contract.interfaces import MetricInputs
from anytime_bench.engine.run import Run
from anytime_bench.errors import ConfigError, DataError, PluginError, first_line
from anytime_bench.files import archives
from anytime_bench.store.record import run_settings
from anytime_bench.store.rundir import GENERATED, LOG_PROB, RECONSTRUCTED, archive_key
from anytime_bench.store.tables import read_metrics

PREVIEW = 16
"""Generated items per model and budget shown in the sample grid."""
FLOOR_SPLITS = 5
"""Seeded splits of the reference set over which the real-versus-real floor and its interval are computed."""


def read_samples(run: Run, model: str, train_seed: int, sample_seed: int, ks: list[int], modality: BoundModality,
                 num_samples: int, test_size: int, log_prob: bool = False,
                 reconstructed: bool = True) -> dict[str, Any]:
    """The generated and (with ``reconstructed``) reconstructed data of one samples archive, checked against what
    the run promises, and with ``log_prob`` the prior's log-probabilities of the test codes."""
    path = run.paths.samples(model, train_seed, sample_seed)
    if not path.exists():  # archives.read names one that exists but is not a regular file
        raise DataError(f"{path} is missing: run `anytime-bench sample {run.paths.root}` first")
    kinds = (GENERATED,) + ((RECONSTRUCTED,) if reconstructed else ()) + ((LOG_PROB,) if log_prob else ())
    wanted = [archive_key(what, k) for k in ks for what in kinds]
    arrays = archives.read(path, "samples archive", keys=wanted)
    shape = tuple(run.data_facts().data_shape)
    out = {}
    for k in ks:
        for what, n in ((GENERATED, num_samples),) + (((RECONSTRUCTED, test_size),) if reconstructed else ()):
            key = archive_key(what, k)
            a = archives.require_array(arrays, key, path, shape=(n, *shape))
            out[key] = modality.from_stored(a, f"{path} ({key})")
        if log_prob:
            key = archive_key(LOG_PROB, k)
            if key not in arrays:
                raise DataError(f"{path} has no {key!r}, the prior's log-probabilities of the test codes that metrics "
                                f"of likelihoods score (sampled before they were kept): run `anytime-bench sample "
                                f"{run.paths.root}` again")
            a = archives.require_array(arrays, key, path, dtypes=("float32",), shape=(test_size, k), finite=True)
            if a.size and float(a.max()) > 0:
                raise DataError(f"{path}: array {key!r} holds values above 0, which no log-probability has")
            out[key] = torch.from_numpy(np.array(a))
    return out


def floors(run: Run, metrics: list[BoundMetric], scored_in: dict[str, Any] | None = None,
           recorded: dict[str, Any] | None = None,
           measured: dict[str, set[str]] | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The real data's own score for every metric that gives one, per value it records, and why a metric that
    gives one has none.

    A metric of generated samples: its real-versus-real floor, ``n`` held-out reference items (the run's sample
    count, capped at half the reference set so that the rest is at least as large) against the disjoint rest, over
    :data:`FLOOR_SPLITS` seeded splits. A metric of reconstructions: the real test items' own score (what a perfect
    reconstruction scores, e.g. a recognizer's accuracy on the real clips), over :data:`FLOOR_SPLITS` disjoint folds
    of ``n`` test items. Either way the mean, and a Student-t interval over the splits; the metric caches it.
    ``scored_in``: the provenance the run's measurements recorded, per metric, when they were made earlier; a floor
    in another feature space or against another reference set (a feature extractor trained anew since) is not
    comparable with them, so it is not recorded, and the note says so. A floor the run ``recorded`` beside the same
    measurements is kept: it was computed from the very data they were scored on, which today's may not be; a metric
    is not scored again when a floor is kept for every value it ``measured`` (per metric, the measurement names of
    the run's metrics table)."""
    cfg = run.cfg.run
    out: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    for metric in metrics:
        if not metric.has_floor:  # never for metrics of likelihoods
            continue
        # A metric of reconstructions scores the run's own test items, measurements and floor alike: only the
        # feature space tells them apart.
        keys = ("feature_space", "reference_set") if metric.generated else ("feature_space",)
        scored = (scored_in or {}).get(metric.name)
        kept = {name: (recorded or {}).get(name) for name in sorted((measured or {}).get(metric.name, ()))}
        if kept and all(recorded_beside(floor, scored, keys) for floor in kept.values()):
            # Every value it measured has its floor: scoring it again (a recognizer transcribing every clip, say)
            # would be thrown away, and the data need not be here (a summary written anew from the table alone).
            run.ctx.log(f"{', '.join(kept)}: kept the floors the run recorded beside its measurements")
            out |= kept
            continue
        reference, split = run.reference(metric.generated)
        n = min(cfg.num_samples, len(reference) // 2) if metric.generated else len(reference) // FLOOR_SPLITS
        if n < 2:
            run.ctx.log(f"{metric.name}: no floor of real data: the {split} split has {len(reference)} items")
            continue
        inputs = MetricInputs(reference, reference, cfg.dataset, split, run.data(), cfg.seed)
        stage = f"evaluate the {'real-versus-real floor' if metric.generated else 'real test items'} of {metric.name}"
        seed_everything(cfg.seed)
        values = metric.floor(inputs, run.ctx, n, FLOOR_SPLITS, stage)
        prov = metric.provenance(stage)
        elsewhere = other_space(prov, scored, keys)
        for name, per_split in values.items():
            previous = (recorded or {}).get(name)
            if recorded_beside(previous, scored, keys):
                run.ctx.log(f"{name}: kept the floor the run recorded beside its measurements")
                out[name] = previous
                continue
            if elsewhere:
                run.ctx.log(f"{name}: no real-versus-real floor: {elsewhere}")
                notes[name] = elsewhere
                continue
            finite = np.array([v for v in per_split if np.isfinite(v)])
            if len(finite) < 2:
                run.ctx.log(f"{name}: no floor of real data: fewer than two finite values over the splits")
                continue
            low, high = t_interval(finite)
            out[name] = {"mean": float(finite.mean()), "low": low, "high": high, "values": [float(v) for v in finite],
                         "n": n, "splits": len(finite), "capped": metric.generated and n < cfg.num_samples,
                         "num_samples": cfg.num_samples, "split": split, "reference_size": len(reference),
                         "requires": metric.requires, "reference_set": str(prov.get("reference_set", "?"))[:200],
                         "feature_space": str(prov.get("feature_space", "?"))[:200]}
    return out, notes


def recorded_beside(floor: Any, scored: Any, keys: tuple[str, ...]) -> bool:
    """Whether a recorded ``floor`` belongs with measurements that recorded ``scored`` (see :func:`other_space`)."""
    return isinstance(floor, dict) and not other_space(floor, scored, keys)


def implementation(provenance: dict[str, Any]) -> str:
    """Which code computed a metric's values, as its provenance says (``implementation`` and ``version``)."""
    return " ".join(str(provenance.get(key, "?"))[:80] for key in ("implementation", "version"))


def other_space(today: dict[str, Any], recorded: Any,
                keys: tuple[str, ...] = ("feature_space", "reference_set")) -> str:
    """Why a floor computed with provenance ``today`` does not belong with measurements that recorded ``recorded``
    (another feature space or reference set, of ``keys``), or ``""``."""
    if not isinstance(recorded, dict):
        return ""
    for key in keys:
        if recorded.get(key) is None:
            continue
        now, then = str(today.get(key, "?"))[:200], str(recorded[key])[:200]  # as floors() records them
        if now != then:
            return (f"its {key.replace('_', ' ')} is {now} today, not {then} as when the run was scored; "
                    "re-evaluate its samples to have both (a run folder that kept none is run again)")
    return ""


def directions(metrics: list[BoundMetric], frame: pd.DataFrame) -> dict[str, bool]:
    """Whether higher is better, per metric plugin and per measurement it gave (``prc_precision``): readers look a
    measurement up, never parse its name."""
    higher = {m.name: m.higher_is_better for m in metrics}
    unknown = sorted(set(frame.source) - set(higher))
    if unknown:
        raise DataError(f"the metrics table holds measurements of {', '.join(unknown)}, which the run's metrics "
                        f"({', '.join(higher) or 'none'}) do not include")
    return per_measurement(higher, frame)


def requirements(metrics: list[BoundMetric], frame: pd.DataFrame) -> dict[str, str]:
    """What each metric plugin, and each measurement it gave, scores (its ``requires``), for readers without
    plugins: the summary and the report judge a likelihood's curve differently."""
    return per_measurement({m.name: m.requires for m in metrics}, frame)


def references(run: Run, metrics: list[BoundMetric], frame: pd.DataFrame) -> dict[str, str]:
    """The split each metric plugin, and each measurement it gave, compares with, for readers without plugins:
    ``choose`` takes only samples scored against held-out data."""
    return per_measurement({m.name: run.reference_split(m.generated) for m in metrics}, frame)


def per_measurement(by_plugin: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    """``by_plugin`` (a value per metric plugin) with each measurement of ``frame`` given its plugin's value."""
    return {**by_plugin, **{name: by_plugin[source] for name, source in zip(frame.metric, frame.source, strict=True)
                            if source in by_plugin}}


def check_earlier_table(run: Run) -> None:
    """Refuse, before any scoring, to rewrite a metrics table that cannot be read while models are left out of the
    evaluation: their rows, kept from it otherwise (:func:`earlier_rows`), would be lost with the table."""
    path = run.paths.metrics_csv
    if not run.cfg.not_worked_on or not (path.is_file() or path.is_symlink()):
        return
    problems: list[str] = []
    if path.is_symlink() or read_metrics(path, problems, run_settings=run_settings(run.record.read())) is None:
        why = "; ".join(problems)[:300] or "a link, which is not followed"
        raise ConfigError(f"{path} cannot be read ({why}): evaluating only some models would replace it and lose "
                          f"the rows of {', '.join(run.cfg.not_worked_on)}; repair or remove it, or evaluate every "
                          f"model")


def earlier_rows(run: Run, models: list[str], seeds: list[int]) -> pd.DataFrame:
    """The rows of ``models`` at sampling ``seeds`` in the run's metrics table as the last evaluation wrote them
    (none if it has none, or cannot be read): the models set aside or left out
    (:attr:`.BenchConfig.not_worked_on`) are not scored again, and what was measured of them is not thrown away. A
    model with no row at those seeds is named in the run's warnings: the table holds the seeds evaluated, for every
    model alike."""
    path = run.paths.metrics_csv
    if not models or not path.is_file():
        return pd.DataFrame()
    frame = read_metrics(path, [], run_settings=run_settings(run.record.read()))
    if frame is None:  # read before, by check_earlier_table: changed since, by another process
        raise ConfigError(f"{path} cannot be read now: the rows of {', '.join(models)} it held are not kept")
    kept = frame[frame.model.isin(models) & frame.sample_seed.isin(seeds)]
    missing = [model for model in models if model not in set(kept.model)]
    if missing:
        run.warnings.append(f"{', '.join(missing)}, not scored now, had no earlier scores at sampling seeds "
                            f"{', '.join(map(str, seeds))}: {path.name} now leaves them out")
    return kept.assign(run_id=run.paths.run_id)  # the folder's name now, as every other row has it


def kept_previews(run: Run, kept: pd.DataFrame, sample_seed: int,
                  modality: BoundModality) -> dict[str, dict[float, np.ndarray]]:
    """The sample grid's rows of the models not scored now, from the samples they have (their first training seed,
    ``sample_seed``), at the budgets of their kept scores: the grid shows every model the table holds. One whose
    samples cannot be read is left out of the grid, which the run's warnings say."""
    out: dict[str, dict[float, np.ndarray]] = {}
    for model, rows in kept.groupby("model", sort=False):
        at = dict(sorted(zip(rows.budget.astype(float), rows.tokens.astype(int), strict=True)))
        try:
            generated = read_samples(run, str(model), run.cfg.run.train_seed_list[0], sample_seed,
                                     sorted(set(at.values())), modality, run.cfg.run.num_samples, 0,
                                     reconstructed=False)
            out[str(model)] = {budget: modality.to_stored(generated[archive_key(GENERATED, k)][:PREVIEW])
                               for budget, k in at.items()}
        except DataError as exc:
            run.warnings.append(f"{run.paths.samples_png.name} leaves out {model}: {first_line(exc)}")
    return out


def left_out_without_scores(run: Run, seeds: list[int] | None) -> None:
    """Refuse to score some models (``--models``) at sampling ``seeds`` at which the metrics table holds none of the
    others: the table holds one set of seeds for every model, so the others' scores could only be dropped."""
    if seeds is None or not run.cfg.left_out or not run.paths.metrics_csv.is_file():
        return
    frame = read_metrics(run.paths.metrics_csv, [], run_settings=run_settings(run.record.read()))
    held = {} if frame is None else {m: set(rows.sample_seed) for m, rows in frame.groupby("model")}
    lacking = [m for m in run.cfg.left_out if not set(seeds) <= held.get(m, set())]
    if lacking:
        listed = ",".join(map(str, seeds))
        raise ConfigError(f"--models with --sample-seeds {listed}: {run.paths.metrics_csv.name} holds no scores of "
                          f"{', '.join(lacking)} at those seeds, and it holds the same seeds for every model: sample "
                          f"those too (anytime-bench sample {run.paths.root} --sample-seeds {listed} --models "
                          f"{','.join(lacking)}), then evaluate them all at those seeds, or leave out --models")


def floors_stage(run: Run) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Record the real-versus-real floors of an evaluated run's metrics and write its summary anew from its metrics
    table: for a run evaluated before floors were recorded, or whose samples are gone. It reads no sample and scores
    no model, so its measurements stay as they are; the plots are not redrawn."""
    started = time.perf_counter()
    problems: list[str] = []
    path = run.paths.metrics_csv
    recorded = run.record.read()
    settings = run_settings(recorded)
    frame = read_metrics(path, problems, run_settings=settings) if path.is_file() else None
    if frame is None:
        raise DataError(f"{path} cannot be read ({', '.join(problems) or 'missing'}): run "
                        f"`anytime-bench evaluate {run.paths.root}` first")
    metrics = run.metrics()
    # A metric whose plugin cannot be loaded here (set aside) is summarised from what the record holds of it:
    # its table rows, and its measurements' directions, floors and the rest, as the last evaluation recorded them.
    aside = frame.source.isin(list(run.cfg.metrics_set_aside))
    kept = {key: recorded_of(recorded, key, frame[aside], run.cfg.metrics_set_aside)
            for key in ("metric_directions", "metric_requires", "metric_references", "metric_floors", "floor_notes")}
    frame_here = frame[~aside]
    orientation = directions(metrics, frame_here) | kept["metric_directions"]
    scored_in = recorded.get("metrics_provenance")
    previous = recorded.get("metric_floors")
    measured = {str(source): set(map(str, rows))
                for source, rows in frame_here.groupby("source")["metric"].unique().items()}
    metric_floors, notes = floors(run, metrics, scored_in if isinstance(scored_in, dict) else {},
                                  previous if isinstance(previous, dict) else {}, measured)
    metric_floors, notes = metric_floors | kept["metric_floors"], notes | kept["floor_notes"]
    run.record.replace(metric_floors=metric_floors, floor_notes=notes)
    requires = requirements(metrics, frame_here) | kept["metric_requires"]
    run.record.update(metric_directions=orientation, metric_requires=requires,
                      metric_references=references(run, metrics, frame_here) | kept["metric_references"],
                      stage_seconds={"floors": round(time.perf_counter() - started, 3)})
    # headed as the run was, also where its headline metric is set aside here
    listed = settings.get("metrics") if isinstance(settings.get("metrics"), list) else []
    headline = settings.get("headline_metric") or (listed[0] if listed else None)
    write_summary(run, frame, orientation, metric_floors, notes, requires,
                  headline if isinstance(headline, str) and headline in set(frame.source) else None)
    return metric_floors, notes


REQUIRED_OF_RECORD = ("metric_directions", "metric_requires")
"""What the summary of a metric set aside cannot do without: the record must hold it for each of its measurements."""


def recorded_of(recorded: dict[str, Any], key: str, rows: pd.DataFrame, aside: dict[str, str]) -> dict[str, Any]:
    """What the record holds under ``key`` (``metric_directions``, ...) of the metric plugins set aside and of each
    measurement they gave (``rows``); refused when it lacks what the summary needs."""
    table = recorded.get(key)
    table = table if isinstance(table, dict) else {}
    names = list(dict.fromkeys([*aside, *map(str, rows.metric)]))
    out = {name: table[name] for name in names if name in table}
    lacking = [name for name in map(str, dict.fromkeys(rows.metric)) if name not in out]
    if key in REQUIRED_OF_RECORD and lacking:
        source = str(rows[rows.metric == lacking[0]].source.iloc[0])
        raise PluginError(f"metric {source!r} cannot be loaded here ({aside.get(source, '?')}), and the run's "
                          f"record holds no {key} of its measurement {lacking[0][:40]!r} to summarise it without it")
    return out


def evaluate_stage(run: Run, sample_seeds: list[int] | None = None) -> pd.DataFrame:
    started = time.perf_counter()
    cfg = run.cfg.run
    splits = run.data()
    modality = run.modality()
    seeds = sample_seeds if sample_seeds is not None else cfg.sample_seed_list
    check_earlier_table(run)
    metrics = run.metrics()
    rows: list[dict[str, Any]] = []
    provenance: dict[str, Any] = {}
    previews: dict[str, dict[float, np.ndarray]] = {}
    jobs = (sum(len(run.budgets_of(run.cfg.instance(m))) for m in run.models) * len(cfg.train_seed_list)
            * len(seeds) * len(metrics))
    with run.ctx.progress("evaluating", jobs) as task:
        for model in run.models:
            entry = run.entry(model)
            shape = run.shape_of(run.cfg.instance(entry))
            D, ordered, per_budget = shape.code_length, shape.ordered, shape.per_budget
            budgets = run.budgets_of(run.cfg.instance(entry))
            described = run.cfg.columns(entry)
            ks = [tokens_for(b, D) for b in budgets]
            for train_seed in cfg.train_seed_list:
                per_seed = {s: read_samples(run, model, train_seed, s, sorted(set(ks)), modality, cfg.num_samples,
                                            len(splits.test), any(m.likelihood for m in metrics)) for s in seeds}
                if model not in previews:  # the same sample indices of the first seeds at every budget
                    previews[model] = {b: modality.to_stored(per_seed[seeds[0]][archive_key(GENERATED, k)][:PREVIEW])
                                       for b, k in zip(budgets, ks, strict=True)}
                for budget, k in zip(budgets, ks, strict=True):
                    for metric in metrics:
                        reference, split = run.reference(metric.generated)
                        stage = f"evaluate {model} (training seed {train_seed}) at {k} tokens"
                        computed: dict[str, float] | None = None
                        for seed in seeds:
                            if computed is None or metric.generated:
                                what = (GENERATED if metric.generated else LOG_PROB if metric.likelihood
                                        else RECONSTRUCTED)
                                inputs = MetricInputs(per_seed[seed][archive_key(what, k)], reference, cfg.dataset,
                                                      split, splits, seed if metric.generated else cfg.seed)
                                seed_everything(seed)  # a metric may draw from the global random streams
                                computed = metric.compute(inputs, run.ctx, stage)
                                prov = metric.provenance(stage)
                                provenance[metric.name] = prov
                                prov_text = json.dumps(prov, sort_keys=True)
                            for name, value in computed.items():
                                rows.append({
                                    "run_id": run.paths.run_id, "dataset": cfg.dataset, "model": model,
                                    **described, "ordered": ordered, "per_budget": per_budget, "train_seed": train_seed,
                                    "sample_seed": seed,
                                    "budget": budget, "tokens": k, "metric": name, "source": metric.name,
                                    "value": value,
                                    "provenance": prov_text,
                                })
                            task.advance(model=model, budget=budget)
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise DataError("no measurement was made: the run has no models, budgets or seeds to evaluate")
    kept = earlier_rows(run, [m for m in run.cfg.not_worked_on if m not in frame.model.values], seeds)
    if len(kept):
        frame = run.in_recorded_order(pd.concat([frame, kept], ignore_index=True))
        previews.update(kept_previews(run, kept, seeds[0], modality))
        previews = {model: previews[model] for model in dict.fromkeys(frame.model) if model in previews}
    orientation = directions(metrics, frame)
    earlier = run.record.read().get("metrics_provenance") if run.paths.run_json.is_file() else None
    for name, prov in provenance.items():
        then = (earlier if isinstance(earlier, dict) else {}).get(name)
        moved = other_space(prov, then, ("feature_space",))
        old = sorted(set(kept.model[kept.source == name])) if len(kept) else []
        held = (f"{run.paths.metrics_csv.name} now holds today's" if not old else
                f"{run.paths.metrics_csv.name} holds today's, and the earlier ones of the models not scored now "
                f"({', '.join(old)})" + (", which reports do not rank with today's" if moved else ""))
        if moved:  # the rows written before are replaced: say so, the values cannot be had back
            run.warnings.append(f"{name} was scored in another feature space than the run's earlier scores: "
                                f"{moved.split(';')[0]}; {held}")
        elif isinstance(then, dict) and implementation(then) != implementation(prov):
            run.warnings.append(f"{name} was scored by {implementation(prov)}, the run's earlier scores by "
                                f"{implementation(then)}; {held}")
    metric_floors, notes = floors(run, metrics)
    # Recorded so that reading results (report) needs no plugin, nor torch, to know which way is better, nor how
    # far each model is from what real data scores.
    run.record.replace(metric_floors=metric_floors, floor_notes=notes)
    requires = requirements(metrics, frame)
    run.record.update(metrics_provenance=provenance, metric_directions=orientation, metric_requires=requires,
                      metric_references=references(run, metrics, frame),
                      stage_seconds={run.seconds_key("evaluate"): round(time.perf_counter() - started, 3)})
    write_results(run, frame, orientation, previews, metric_floors, notes, requires)
    run.record.update(status="evaluated")
    return frame

