"""``anytime-bench runs``: the run folders a user has, with status and whether this version recognises them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .params import PathParam


@click.command("runs")
@click.argument("folder", required=False, type=PathParam(), default=Path("results"))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(folder, as_json):
    """List the run folders in FOLDER (default: results), or FOLDER itself when it is one: id, dataset, models,
    status, seeds, the version that wrote it, and whether this version recognises it.

    A run whose record says running while no process holds its lock is listed as stopped: it died without
    saying so (kill -9, a crash); run its command again to resume it.
    """
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..inventory import list_runs
    from ..record import SCHEMA

    entries = list_runs(folder)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"no run folders in {folder}")
        return
    table = Table(box=box.SIMPLE_HEAD, show_lines=False)
    for column in ("run", "dataset", "models", "status", "train seeds", "written by", "recognised"):
        table.add_column(column, overflow="fold", no_wrap=column in ("run", "recognised"))
    for e in entries:
        status = e.status + (f" ({e.stage})" if e.stage and e.status in ("running", "stopped", "failed",
                                                                       "interrupted") else "")
        recognised = ("yes" if e.recognised else "no") + (f" (schema {e.schema}, migrated)" if e.recognised and
                                                          e.schema and e.schema < SCHEMA else "")
        if e.problem:
            recognised = f"no: {e.problem}"
        table.add_row(*(escape(x) for x in (e.run_id, e.dataset, ", ".join(e.models), status,
                                             ",".join(map(str, e.train_seeds)), e.written_by, recognised)))
    Console(width=200).print(table)
