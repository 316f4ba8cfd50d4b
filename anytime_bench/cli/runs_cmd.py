"""``anytime-bench runs``: the run folders a user has, with status and whether this version recognises them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from anytime_bench.cli.params import PathParam
from anytime_bench.errors import ConfigError


@click.command("runs")
@click.argument("folder", required=False, type=PathParam(), default=Path("results"))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--markdown", "as_markdown", is_flag=True,
              help="Print a Markdown index instead: what each run asks, its config file, seeds and headline numbers "
                   "(results/README.md is this).")
@click.option("--configs", type=PathParam(), default=None,
              help="The config files that --markdown names each run's config from (default: ./configs where it "
                   "exists, else none: each run's main options instead).")
def command(folder, as_json, as_markdown, configs):
    """List the run folders in FOLDER (default: results), or FOLDER itself when it is one: id, dataset, models,
    status, seeds, the version that wrote it, and whether this version recognises it.

    A run whose record says running while no process holds its lock is listed as stopped: it died without
    saying so (kill -9, a crash); run its command again to resume it.

    With --markdown: an index of the runs, for a README beside them (`anytime-bench runs results --markdown >
    results/README.md`): the config file under --configs whose comment runs each one with its --run-id (else the
    closest by its options), the first sentence of that comment, the training seeds, and the headline metric at the
    smallest and largest budget, the mean over seeds per model.
    """
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from anytime_bench.errors import printable
    from anytime_bench.store.inventory import list_runs, markdown_index
    from anytime_bench.store.record import SCHEMA

    if as_json and as_markdown:
        raise ConfigError("--json and --markdown: choose one")
    if as_markdown:
        if configs is None and Path("configs").is_dir():
            configs = Path("configs")
        click.echo(markdown_index(folder, configs), nl=False)
        return
    entries = list_runs(folder)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"no run folders in {folder}")
        return
    table = Table(box=box.SIMPLE_HEAD, show_lines=False)
    for column in ("run", "dataset", "models", "status", "train seeds", "written by", "recognised"):
        table.add_column(column, overflow="fold", no_wrap=column == "run")
    problems: list[str] = []
    for e in entries:
        status = e.status + (f" ({e.stage})" if e.stage and e.status in ("running", "stopped", "failed",
                                                                       "interrupted") else "")
        recognised = ("yes" if e.recognised else "no") + (f" (schema {e.schema}, migrated)" if e.recognised and
                                                          e.schema and e.schema < SCHEMA else "")
        if e.problem:  # a sentence, under the table: in a column it would squeeze every other one
            recognised = "no (below)"
            problems.append(f"{Path(e.path).name}: {e.problem}")
        # the folder is what other commands are given; a copy's record still holds the id it was made with
        name = Path(e.path).name
        run = name if e.run_id == name else f"{name} (run id {e.run_id})"
        table.add_row(*(escape(printable(x)) for x in (run, e.dataset, ", ".join(e.models), status,
                                                       ",".join(map(str, e.train_seeds)), e.written_by, recognised)))
    # A terminal's own width; piped output is not folded to rich's default of 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    for line in problems:
        console.print(escape(printable(line)), soft_wrap=True)
