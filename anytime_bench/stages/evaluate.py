"""Stage 3: score the saved samples and reconstructions with every metric, write the results."""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd

from ..config import BenchConfig
from ..context import RunContext, seed_everything
from ..interfaces import DataSplits, MetricInputs
from ..plugin_manager import Plugins
from ..results import write_results
from ..rundir import RunDir
from .common import blame, load_dataset, tokens_for
from .sample import from_stored, load_samples


def evaluate_stage(cfg: BenchConfig, plugins: Plugins, run_dir: RunDir, ctx: RunContext,
                   splits: DataSplits | None = None) -> pd.DataFrame:
    started = time.perf_counter()
    state = run_dir.read_state()
    seeds = state.get("sample_seeds", cfg.run.sample_seeds)
    splits = splits if splits is not None else load_dataset(cfg, plugins)
    reference = splits.train if cfg.run.reference_split == "train" else splits.test
    metrics = {}
    for name in cfg.run.metrics:
        component = plugins.get("metric", name)
        with blame(component, "build"):
            metrics[name] = (component, component.cls(cfg.component_config("metric", name)))

    rows: list[dict[str, Any]] = []
    models = state.get("models", {})
    jobs = [(seed, model, b) for seed in seeds for model in cfg.run.encoders for b in cfg.run.budgets]
    with ctx.progress("evaluating", len(jobs) * len(metrics)) as task:
        for seed in seeds:
            for model in cfg.run.encoders:
                arrays = load_samples(run_dir, model, seed)
                D = int(models[model]["code_length"])
                for budget in cfg.run.budgets:
                    k = tokens_for(budget, D)
                    for name, (component, metric) in metrics.items():
                        generated = component.cls.requires == "generated"
                        inputs = MetricInputs(
                            from_stored(arrays[f"{'generated' if generated else 'reconstructed'}_k{k}"]),
                            reference if generated else splits.test, cfg.run.dataset,
                            cfg.run.reference_split if generated else "test", splits, seed,
                            feature_extractor=cfg.run.feature_extractor, feature_weights=cfg.run.feature_weights)
                        seed_everything(seed)  # torch-fidelity's loaders draw from the global stream
                        with blame(component, f"evaluate {model} at {k} tokens"):
                            result = metric.compute(inputs, ctx)
                            provenance = json.dumps(metric.provenance(), sort_keys=True)
                        values = {name: result} if not isinstance(result, dict) else {
                            f"{name}_{key}": value for key, value in result.items()}
                        for metric_name, value in values.items():
                            rows.append({
                                "run_id": run_dir.run_id, "dataset": cfg.run.dataset, "model": model,
                                "ordered": bool(models[model].get("ordered", False)), "seed": seed,
                                "budget": budget, "tokens": k, "metric": metric_name, "value": float(value),
                                "provenance": provenance,
                            })
                        task.advance(model=model, budget=budget)
    frame = pd.DataFrame(rows)
    provenance = {name: metric.provenance() for name, (_, metric) in metrics.items()}
    orientation = {name: bool(component.cls.higher_is_better) for name, (component, _) in metrics.items()}
    seconds = time.perf_counter() - started
    run_dir.update_state(metrics_provenance=provenance, stage_seconds={"evaluate": round(seconds, 3)})
    write_results(run_dir, frame, cfg, ctx, orientation)
    run_dir.update_state(status="evaluated")
    return frame
