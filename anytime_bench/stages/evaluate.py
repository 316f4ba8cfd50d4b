"""Stage 3: score the saved samples and reconstructions with every metric, write the results.

Metrics of reconstructions do not depend on the sampling seed: each is
computed once per model, training seed and budget, and its row repeated for
every sampling seed so that every cell of the metrics table has the same seeds.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from .. import archives
from ..components import BoundModality
from ..context import seed_everything
from ..conventions import tokens_for
from ..errors import DataError
from ..interfaces import MetricInputs
from ..results import write_results
from ..run import Run
from ..rundir import GENERATED, RECONSTRUCTED, archive_key

PREVIEW = 16
"""Generated items per model and budget shown in the sample grid."""


def read_samples(run: Run, model: str, train_seed: int, sample_seed: int, ks: list[int], modality: BoundModality,
                 num_samples: int, test_size: int) -> dict[str, Any]:
    """The generated and reconstructed data of one samples archive, checked against what the run promises."""
    path = run.paths.samples(model, train_seed, sample_seed)
    if not path.exists():  # archives.read names one that exists but is not a regular file
        raise DataError(f"{path} is missing: run `anytime-bench sample {run.paths.root}` first")
    arrays = archives.read(path, "samples archive")
    shape = tuple(run.data_facts().data_shape)
    out = {}
    for k in ks:
        for what, n in ((GENERATED, num_samples), (RECONSTRUCTED, test_size)):
            key = archive_key(what, k)
            a = archives.require_array(arrays, key, path, shape=(n, *shape))
            out[key] = modality.from_stored(a, f"{path} ({key})")
    return out


def evaluate_stage(run: Run, sample_seeds: list[int] | None = None) -> pd.DataFrame:
    started = time.perf_counter()
    cfg = run.cfg.run
    splits = run.data()
    modality = run.modality()
    seeds = sample_seeds if sample_seeds is not None else cfg.sample_seed_list
    metrics = run.metrics()
    rows: list[dict[str, Any]] = []
    provenance: dict[str, Any] = {}
    previews: dict[str, dict[float, np.ndarray]] = {}
    jobs = (sum(len(run.budgets_of(run.entry(m).encoder)) for m in run.models) * len(cfg.train_seed_list)
            * len(seeds) * len(metrics))
    with run.ctx.progress("evaluating", jobs) as task:
        for model in run.models:
            entry = run.entry(model)
            shape = run.shape_of(entry.encoder)
            D, ordered, per_budget = shape.code_length, shape.ordered, shape.per_budget
            budgets = run.budgets_of(entry.encoder)
            described = entry.columns()
            ks = [tokens_for(b, D) for b in budgets]
            for train_seed in cfg.train_seed_list:
                per_seed = {s: read_samples(run, model, train_seed, s, sorted(set(ks)), modality, cfg.num_samples,
                                            len(splits.test)) for s in seeds}
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
                                what = GENERATED if metric.generated else RECONSTRUCTED
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
                                    "budget": budget, "tokens": k, "metric": name, "value": value,
                                    "provenance": prov_text,
                                })
                            task.advance(model=model, budget=budget)
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise DataError("no measurement was made: the run has no models, budgets or seeds to evaluate")
    orientation = {m.name: m.higher_is_better for m in metrics}
    # Recorded so that reading results (report) needs no plugin, nor torch, to know which way is better.
    run.record.update(metrics_provenance=provenance, metric_directions=orientation,
                      stage_seconds={"evaluate": round(time.perf_counter() - started, 3)})
    write_results(run, frame, orientation, previews)
    run.record.update(status="evaluated")
    return frame

