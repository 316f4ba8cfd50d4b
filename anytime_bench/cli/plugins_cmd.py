"""``anytime-bench plugins``: what is installed, from which distribution, and each component's options; what is
broken (quarantined when plugins loaded) and why."""

from __future__ import annotations

import json

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from anytime_bench.contract.plugin_manager import did_you_mean
from anytime_bench.contract.schema import options_of
from anytime_bench.errors import BrokenPluginError, PluginError


@click.command("plugins")
@click.argument("name", required=False)
@click.option("--kind", type=click.Choice(["dataset", "encoder", "prior", "metric", "modality"]),
              help="With NAME: the kind, where two kinds share a name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--check", is_flag=True,
              help="Exit with code 1 when an installed plugin or component is broken (for a plugin's CI).")
@click.pass_obj
def command(plugins, name, kind, as_json, check):
    """List every registered component and every broken plugin or component (with the reason); with NAME, show
    that component's options (type, default, meaning)."""
    if name is not None:
        _show_options(plugins, name, kind, as_json)
    else:
        _list(plugins, as_json)
    if check and plugins.broken:
        error = PluginError(f"{len(plugins.broken)} broken plugin(s) or component(s): "
                            + "; ".join(f"{b.subject}: {b.reason}" for b in plugins.broken))
        error.exit_code = 1  # not bad input: the answer to the question --check asks
        raise error


def _list(plugins, as_json: bool) -> None:
    rows = [c.as_dict() for c in plugins.all()] + [b.as_dict() for b in plugins.broken]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    console = Console()
    for kind in ("dataset", "encoder", "prior", "metric", "modality"):
        mine = [row for row in rows if row["kind"] == kind]
        if not mine:
            continue
        title = "modalities" if kind == "modality" else f"{kind}s"
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, expand=False, pad_edge=False)
        table.add_column("name", no_wrap=True, style="bold")
        table.add_column("from", overflow="fold", max_width=22)
        table.add_column("description", overflow="fold", ratio=1)
        for row in mine:
            table.add_row(row["name"], escape(f"{row['distribution']} {row['version']}"), escape(row["description"]))
        console.print(table)
    broken = [row for row in rows if row["broken"] is not None]
    if broken:
        table = Table(title="broken, skipped", title_justify="left", box=box.SIMPLE_HEAD, expand=False,
                      pad_edge=False)
        table.add_column("plugin", overflow="fold", max_width=24, style="bold")
        table.add_column("from", overflow="fold", max_width=32)
        table.add_column("what", overflow="fold", max_width=22)
        table.add_column("reason", overflow="fold", ratio=1)
        for row in broken:
            what = f"{row['kind']} {row['name']}" if row["kind"] else "whole plugin"
            table.add_row(escape(row["plugin"]), escape(f"{row['distribution']} {row['version']}"), escape(what),
                          escape(row["broken"]))
        console.print(table)
    console.print("anytime-bench plugins NAME shows a component's options; --json adds the plugin names.")


def _show_options(plugins, name: str, kind: str | None, as_json: bool) -> None:
    matches = [c for c in plugins.all() if c.name == name and (kind is None or c.kind == kind)]
    if not matches:
        for broken_kind in [kind] if kind else ["dataset", "encoder", "prior", "metric", "modality"]:
            refusal = plugins.refusal(broken_kind, name)
            if refusal is not None:
                raise BrokenPluginError(refusal)
        others = sorted({c.kind for c in plugins.all() if c.name == name})
        if others:
            kinds = " and ".join(f"{'an' if k[0] in 'aeiou' else 'a'} {k}" for k in others)
            raise PluginError(f"no installed {kind} is named {name[:60]!r}; {name[:60]!r} is {kinds}")
        raise plugins.not_found(f"no installed component is named {name[:60]!r}",
                                did_you_mean(name, {c.name for c in plugins.all() if kind is None or c.kind == kind}),
                                " (anytime-bench plugins lists them)")
    out = []
    for component in matches:
        options = options_of(component.cls.Config)
        out.append({**component.as_dict(), "table": f"[{component.kind}.{component.name}]", "options": options})
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    console = Console()
    for entry in out:
        table = Table(title=escape(f"{entry['kind']} {entry['name']}: {entry['description']}\noptions of "
                                   f"{entry['table']} (from {entry['distribution']} {entry['version']})"),
                      expand=False)
        table.add_column("option", no_wrap=True)
        table.add_column("type", overflow="fold")
        table.add_column("default", overflow="fold")
        table.add_column("meaning", overflow="fold", ratio=1)
        for option in entry["options"]:
            meaning = option["doc"] + (f" (flag {option['flag']}{', machine-local' if option['local'] else ''})"
                                       if option["flag"] else "")
            table.add_row(option["name"], escape(option["type"]), escape(json.dumps(option["default"], default=str)),
                          escape(meaning))
        if not entry["options"]:
            table.add_row("(none)", "", "", "")
        console.print(table)
