"""Options shared by ``run``, ``train`` and ``config``, their parsing into a config, and starting a run."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import click

from anytime_bench.cli.params import Assignment, ListParam, PathParam, SeedsParam, assignments_to_config
from anytime_bench.contract.plugin_manager import Plugins
from anytime_bench.contract.schema import is_local
from anytime_bench.engine.config import BenchConfig, data_root_path, flag_fields, load_config
from anytime_bench.engine.run import Run
from anytime_bench.errors import ConfigError
from anytime_bench.files.configfiles import merge

FLAG_PREFIX = "flag__"


def machine_flags(cfg: BenchConfig) -> str:
    """The machine-local options this command was given, as the next command of a ``next:`` hint needs them again:
    a run folder keeps neither its data root nor its cache (:func:`~anytime_bench.contract.schema.is_local`)."""
    given = [("--data-root", cfg.run.data_root), ("--cache-dir", cfg.run.cache_dir)]
    return "".join(f" {flag} {shlex.quote(value)}" for flag, value in given if value)


def _renamed(new: str) -> Any:
    def refuse(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            raise ConfigError(f"{param.opts[0]} was renamed: use {new}")
        return value
    return refuse


def config_options(f):
    """The options that override ``[run]`` keys of a config file."""
    options = [
        click.argument("config", required=False, type=PathParam()),
        click.option("--dataset", help="Dataset plugin name (default: digits)."),
        click.option("--encoders", type=ListParam(),
                     help="Comma-separated encoder plugin names: the models compared, each with --prior (a config "
                          "without [[model]] entries)."),
        click.option("--prior", help="Prior plugin name (of the models that do not name theirs)."),
        click.option("--models", type=ListParam(),
                     help="Comma-separated model labels: run only these of the config's models (with run.encoders, "
                          "a model's label is its encoder)."),
        click.option("--metrics", type=ListParam(), help="Comma-separated metric plugin names."),
        click.option("--budgets", type=ListParam("number"),
                     help="Comma-separated budgets in (0, 1]: fractions of the code length (1/8 works)."),
        click.option("--seed", type=int, help="Base seed: counts of training and sampling seeds start here."),
        click.option("--train-seeds", type=SeedsParam(),
                     help="Training seeds: a count (3: seed, seed+1, seed+2) or a list (0,1,2 or 0..2). Every model "
                          "is trained once per training seed."),
        click.option("--sample-seeds", type=SeedsParam(),
                     help="Sampling seeds per trained model: a count or a list."),
        click.option("--seeds", hidden=True, expose_value=False,
                     callback=_renamed("--sample-seeds (sampling seeds) or --train-seeds (training seeds)")),
        click.option("--device", help="auto (default: CUDA when available), cpu, cuda, cuda:N or mps."),
        click.option("--num-samples", type=int, help="Generated samples per model, budget and seed."),
        click.option("--data-root", type=PathParam(str), help="Folder holding the dataset's files."),
        click.option("--cache-dir", type=PathParam(str),
                     help="Cache for feature extractors, reference statistics and built datasets."),
        click.option("--set", "assignments", type=Assignment(), multiple=True,
                     help="Set any option: run.key=value or kind.name.key=value (encoder.ovqvae.steps=100); "
                          "the value is read as TOML, else as text. Repeatable."),
        click.option("--out", type=PathParam(), default=Path("results"), show_default=True,
                     help="Folder that receives the run folder, <out>/<run-id>/."),
        click.option("--run-id", help="Name of the run folder (default: <dataset>-<timestamp>)."),
        click.option("--quiet", is_flag=True, help="No progress bars or log lines (warnings still shown)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _click_type(tp: Any) -> Any:
    if get_origin(tp) is Literal:
        return click.Choice([str(a) for a in get_args(tp)])
    return {int: click.INT, float: click.FLOAT, bool: click.BOOL}.get(tp, click.STRING)


def with_component_flags(command: click.Command, plugins: Plugins, local_only: bool = False) -> click.Command:
    """A copy of ``command`` with the flags that components declare on their options (``metadata["flag"]``); with
    ``local_only``, those of machine-local options only (for the commands that reopen a run)."""
    command = copy.copy(command)
    command.params = list(command.params)
    for flag, targets in sorted(flag_fields(plugins).items()):
        kind, name, field = targets[0]
        if local_only and not any(is_local(f) for _, _, f in targets):
            continue
        hints = get_type_hints(plugins.get(kind, name).cls.Config)
        owners = ", ".join(f"{k}.{n}.{f.name}" for k, n, f in targets)
        command.params.append(click.Option([flag, FLAG_PREFIX + flag[2:].replace("-", "_")],
                                           type=_click_type(hints.get(field.name, str)),
                                           help=f"Sets {owners} of every selected component that has it."))
    return command


def overrides_from(params: dict[str, Any]) -> dict[str, Any]:
    run: dict[str, Any] = {}
    for key in ("dataset", "prior", "seed", "train_seeds", "sample_seeds", "device", "num_samples", "data_root",
                "cache_dir", "encoders", "metrics", "budgets"):
        if params.get(key) is not None:
            run[key] = params[key]
    data_root_path(params.get("data_root") or "", "--data-root")
    if params.get("cache_dir") and Path(params["cache_dir"]).expanduser().exists() \
            and not Path(params["cache_dir"]).expanduser().is_dir():
        raise ConfigError(f"--cache-dir {params['cache_dir']} is a file, not a folder")
    overrides = assignments_to_config(list(params.get("assignments") or []))
    return merge(overrides, {"run": run}) if run else overrides


def flags_from(params: dict[str, Any], plugins: Plugins) -> dict[str, Any]:
    names = {FLAG_PREFIX + flag[2:].replace("-", "_"): flag for flag in flag_fields(plugins)}
    return {names[k]: v for k, v in params.items() if k in names and v is not None}


def resolve(params: dict[str, Any], plugins: Plugins) -> BenchConfig:
    cfg = load_config(params.get("config"), overrides_from(params), plugins, flags_from(params, plugins),
                      only=params.get("models"))
    data_root_path(cfg.run.data_root)
    return cfg


def start(plugins: Plugins, params: dict[str, Any]) -> Run:
    """The common start of ``run`` and ``train``: config, data and metric checks, then the run folder (left as it
    is where the folder holds the run finished and ``params`` do not say to ``redo`` it).

    Bad input (config, data, a metric's missing resource) fails before the run
    folder is created, so nothing half-made is left behind.
    """
    from anytime_bench.engine.pipeline import prepare

    return prepare(resolve(params, plugins), plugins, params["out"], params.get("run_id"), quiet=params["quiet"],
                   redo=params.get("redo", True))
