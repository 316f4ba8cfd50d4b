"""The benchmark as a library call: the stage sequence, beneath the CLI.

::

    import anytime_bench.engine.pipeline as ab

    results = ab.run_benchmark("configs/digits.toml", out="results", run_id="mine",
                               overrides={"run": {"budgets": [0.25, 1.0]}})
    results.metrics      # metrics.csv as a pandas frame: one row per measurement
    results.summary()    # mean over seeds per (model, metric, budget)

``anytime-bench run`` and ``train`` are thin over :func:`prepare` and
:func:`execute`; this module alone knows the order of the stages.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from anytime_bench.contract.plugin_manager import Plugins, load_plugins
from anytime_bench.engine.config import BenchConfig, build_config
from anytime_bench.engine.run import FINISHED, Run
from anytime_bench.engine.stages import evaluate_stage, sample_stage, train_stage
from anytime_bench.errors import ConfigError, PluginError
from anytime_bench.files.configfiles import merge, read_config
from anytime_bench.store.record import read_record, run_settings
from anytime_bench.store.rundir import METRICS_CSV, RUN_JSON
from anytime_bench.store.tables import read_metrics

STAGES: dict[str, Callable[[Run], Any]] = {"train": train_stage, "sample": sample_stage, "evaluate": evaluate_stage}
"""The stages in data-flow order: encoders, codes and priors; samples; metrics, tables and plots."""


@dataclass
class Results:
    """What a benchmark run left in its folder, read back as frames."""

    run_dir: Path
    metrics: pd.DataFrame
    """``metrics.csv``: one row per (model, training seed, sampling seed, budget, metric)."""

    def summary(self) -> pd.DataFrame:
        """Mean and count over seeds, per model, metric and budget."""
        keys = [c for c in ("model", "metric", "budget", "tokens") if c in self.metrics.columns]
        return (self.metrics.groupby(keys, sort=False)["value"].agg(["mean", "count"]).reset_index())


def load_config(config: BenchConfig | str | Path | dict[str, Any] | None = None, *,
                overrides: dict[str, Any] | None = None, plugins: Plugins | None = None) -> BenchConfig:
    """A validated config from a :class:`BenchConfig`, a TOML path, a dict of tables, or None (the defaults),
    with ``overrides`` (a dict of tables; ``{"model": {label: {...}}}`` changes model entries) laid over it."""
    if isinstance(config, BenchConfig):
        if overrides:
            raise ConfigError("overrides apply to a TOML path or a dict of tables, not to a built config")
        return config
    raw = read_config(Path(config)) if isinstance(config, (str, Path)) else dict(config or {})
    overrides = dict(overrides or {})
    entries = overrides.pop("model", None)  # {label: {key: value}}: applied to the entries by label, as --set does
    return build_config(merge(raw, overrides), plugins or load_plugins(), model_overrides=entries)


def prepare(cfg: BenchConfig, plugins: Plugins, out: str | Path, run_id: str | None = None, *,
            quiet: bool = True, redo: bool = True) -> Run:
    """A run folder to start or resume, once config, data and every component have been checked: bad input fails
    here, before anything is written. With ``redo=False``, a folder that holds this run finished is left as it is
    (``run.left_as_is``: nothing to resume; nothing was loaded or written, and :func:`execute` is not to be
    called)."""
    run = Run.prepare(cfg, plugins, Path(out), run_id, quiet)
    run.check_folder()
    if not redo and run.done_before():
        run.left_as_is = True
        return run
    run.data()
    run.preflight()
    run.begin()
    return run


def execute(run: Run, stages: Sequence[str] = tuple(STAGES)) -> pd.DataFrame | None:
    """Run ``stages`` (in data-flow order) on a prepared run; the metrics frame when ``evaluate`` ran. A run that
    ran every stage is marked done."""
    if run.left_as_is:
        raise ValueError("a run left as it is (prepare(redo=False) found it finished) was not begun: nothing to execute")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage {unknown[0][:40]!r} (stages: {', '.join(STAGES)})")
    started = time.perf_counter()
    frame = None
    if set(stages) == set(STAGES):
        # The whole run done again (``run --redo``) is not an extra command on a finished run: stopped part way, its
        # folder holds results no longer of its samples, so the record says where it stopped and a plain ``run``
        # resumes it, rather than calling it done and showing the scores of the samples it replaced.
        run.finished_before = False
    for name in [s for s in STAGES if s in stages]:
        if name != "train" and not run.ctx.is_main:
            return None  # under torchrun, rank 0 alone samples and evaluates what all ranks trained
        result = run.stage(name, lambda name=name: STAGES[name](run))
        if name == "evaluate":
            frame = result
    if set(stages) == set(STAGES) and run.ctx.is_main:
        run.record.update(wall_seconds=round(time.perf_counter() - started, 3), status=FINISHED)
    return frame


def run_benchmark(config: BenchConfig | str | Path | dict[str, Any] | None = None, *, out: str | Path = "results",
                  run_id: str | None = None, overrides: dict[str, Any] | None = None,
                  stages: Sequence[str] = tuple(STAGES), plugins: Plugins | None = None,
                  quiet: bool = True, redo: bool = False) -> Results | None:
    """Run the benchmark (or some of its stages) and return its results: None when the stages asked for stop before
    ``evaluate`` and the folder holds no results yet.

    ``config`` is what :func:`load_config` takes; re-running on an existing ``out/run_id`` with the same config
    resumes it, as the CLI does: a run that finished is not run again (its results are returned) unless ``redo``,
    which samples and evaluates it again from its checkpoints. Training workers are spawned processes, which import
    the calling script: in a script, call this under ``if __name__ == "__main__":``.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # A spawned worker still importing the script that spawned it (multiprocessing's own test for starting a
        # process from there): it would start the run again and find its folder locked by the run that spawned it.
        raise ConfigError("run_benchmark was called as a training worker imported the script that calls it: call "
                          "it under `if __name__ == \"__main__\":` (workers are processes that import that script)")
    plugins = plugins or load_plugins()
    cfg = load_config(config, overrides=overrides, plugins=plugins)
    with prepare(cfg, plugins, out, run_id, quiet=quiet, redo=redo or set(stages) != set(STAGES)) as run:
        if not run.left_as_is:
            execute(run, stages)
        if "evaluate" not in stages and not run.paths.metrics_csv.is_file():
            return None
        return open_results(run.paths.root)


def open_results(run_dir: str | Path) -> Results:
    """The results of a finished run folder, read back (no torch needed to call it on its own)."""
    run_dir = Path(run_dir)
    missing: list[str] = []
    path = run_dir / METRICS_CSV
    frame = read_metrics(path, missing, run_settings=_run_settings(run_dir)) if path.is_file() else None
    if frame is None:
        raise ConfigError(f"{run_dir} has no readable metrics.csv yet ({', '.join(missing) or 'not evaluated'})")
    return Results(run_dir, frame)


@dataclass
class TrainedModel:
    """One model entry of a run folder as trained with one seed: what :mod:`anytime_bench.sampling` takes."""

    encoder: Any
    """The encoder, its weights loaded from the run's checkpoint (decodes any prefix of codes), as the core binds it:
    it takes what the plugin's encoder takes and checks what it returns; ``.obj`` is the plugin's own object."""
    prior: Any
    """The prior, its weights loaded likewise (streams codes, KV-cached where it has a cache), bound likewise."""
    sampling: dict[str, Any]
    """The entry's sampling settings (``temperature``, ``top_k``, ``top_p``), to pass on as ``**sampling``."""


def load_model(run_dir: str | Path, model: str, train_seed: int | None = None, *, device: str | None = "cpu",
               plugins: Plugins | None = None) -> TrainedModel:
    """The trained encoder and prior of ``model`` (an entry's label) in a run folder, from its checkpoints.

    ``train_seed`` is one of the run's training seeds (its first when None); ``device`` overrides the run's (None:
    the run's own). The run folder is read as untrusted, as the CLI reads it; a per-budget model has one member
    per budget and no anytime sampling, so it is refused, as is a model whose encoder or prior cannot be loaded
    here (its plugin broken or uninstalled: ``PluginError`` with the plugin's reason); the others load, also where
    the run's dataset cannot be loaded here (none of its data is read).
    """
    plugins = plugins or load_plugins()
    run = Run.open(Path(run_dir), plugins, quiet=True, device=device, set_aside=True, data=False)
    if model in run.cfg.set_aside:
        raise PluginError(f"{run_dir}: model {model!r} cannot be loaded here: {run.cfg.set_aside[model]}")
    if model not in run.models:
        aside = f" (and {', '.join(run.cfg.set_aside)}, which cannot be loaded here)" if run.cfg.set_aside else ""
        raise ConfigError(f"{run_dir} has no model {model!r}; its models: {', '.join(run.models)}{aside}")
    seeds = run.cfg.run.train_seed_list
    seed = seeds[0] if train_seed is None else train_seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed not in seeds:
        raise ConfigError(f"{run_dir} has no training seed {seed!r}; its seeds: {', '.join(map(str, seeds))}")
    entry = run.entry(model)
    if run.shape_of(run.cfg.instance(entry)).per_budget:
        raise ConfigError(f"{model!r} in {run_dir} is a per-budget model: each member samples its own length, and "
                          "none samples anytime")
    encoder, prior = run.load_trained(model, seed)
    return TrainedModel(encoder, prior, dict(entry.sampling))


def _run_settings(run_dir: Path) -> dict[str, Any]:
    """The ``[run]`` table a run folder records (what a run made before model entries sampled with), or none."""
    try:
        return run_settings(read_record(run_dir / RUN_JSON).state)
    except ConfigError:
        return {}


__all__ = ["STAGES", "Results", "TrainedModel", "execute", "load_config", "load_model", "open_results", "prepare",
           "run_benchmark"]
