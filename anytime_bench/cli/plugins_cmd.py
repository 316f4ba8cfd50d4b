"""``anytime-bench plugins``: what is installed, from which distribution."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def command(plugins, as_json):
    """List every registered dataset, encoder, prior and metric."""
    rows = [c.as_dict() for c in plugins.all()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="anytime-bench plugins")
    for column in ("kind", "name", "distribution", "version", "plugin", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["kind"], row["name"], row["distribution"], row["version"], row["plugin"], row["description"])
    Console().print(table)
