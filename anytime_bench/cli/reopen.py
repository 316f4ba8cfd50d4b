"""Options of the commands that work on an existing run folder, and reopening it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from anytime_bench.cli.options import flags_from
from anytime_bench.cli.params import ListParam, PathParam
from anytime_bench.contract.plugin_manager import Plugins
from anytime_bench.engine.run import Run


def reopen_options(f):
    for option in reversed([
        click.option("--device", default=None, help="Override the run's device (auto, cpu, cuda, cuda:N, mps)."),
        click.option("--data-root", default=None, type=PathParam(str),
                     help="Folder holding the dataset's files on this machine (never taken from the run folder)."),
        click.option("--cache-dir", default=None, type=PathParam(str),
                     help="Cache folder on this machine (never taken from the run folder)."),
        click.option("--models", type=ListParam(),
                     help="Comma-separated model labels: work on these only (what the run folder holds of the others "
                          "is kept)."),
        click.option("--quiet", is_flag=True, help="No progress bars or log lines (warnings still shown)."),
    ]):
        f = option(f)
    return f


def reopen(plugins: Plugins, run_dir: Path, options: dict[str, Any], lock: bool = True,
           scores: bool = True, trained: bool = False, data: bool = True) -> Run:
    """The run in ``run_dir``, locked against a second process writing it at the same time. Its components'
    machine-local options come from their flags in ``options`` (added by ``with_component_flags(local_only=True)``),
    never from the run folder. A model whose encoder or prior cannot be loaded here is set aside, said on stderr
    (also with ``--quiet``: what the command writes leaves it out), and the others are worked on; so is a metric,
    for a command that ``scores`` nothing. So is a model whose encoder can no longer be built, and for a command
    that loads the ``trained`` weights, one whose prior can no longer be built or whose checkpoints no longer load
    (:meth:`.Run.set_aside_unusable`). ``--models`` leaves the other models out, kept as they are. For a command
    that reads no ``data``, a dataset that cannot be loaded here is set aside likewise (:meth:`.Run.open`)."""
    run = Run.open(run_dir, plugins, quiet=options.get("quiet", False), device=options.get("device"),
                   data_root=options.get("data_root"), cache_dir=options.get("cache_dir"),
                   flags=flags_from(options, plugins), set_aside=True, metrics_aside=not scores, data=data)
    if lock and run.ctx.is_main:  # before the models are built and loaded: another process may be writing them
        run.lock(new_run=False)
    chosen = options.get("models")
    if chosen is not None:
        run.only(chosen)
    run.set_aside_unusable(trained)
    for label, why in run.cfg.set_aside.items():
        if chosen is not None and label not in chosen:
            continue  # not asked for: nothing to say of it
        click.echo(f"model {label!r} set aside, the others go on (what the run folder holds of it is kept): {why}",
                   err=True)
    if run.dataset_aside is not None:
        click.echo(f"dataset {run.cfg.run.dataset!r} set aside (this command reads no data): {run.dataset_aside}",
                   err=True)
    for name, why in run.cfg.metrics_set_aside.items():
        click.echo(f"metric {name!r} set aside (this command scores nothing): {why}", err=True)
    return run
