"""``anytime-bench choose``: how each model is best sampled, read from a run scored on the validation split."""

from __future__ import annotations

import json
from pathlib import Path

import click

from anytime_bench.cli.params import PathParam
from anytime_bench.errors import ConfigError


@click.command("choose")
@click.argument("run_dir", type=PathParam())
@click.option("--metric", default=None, help="The measurement to choose by (default: the run's headline metric).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table and entries.")
def command(run_dir, metric, as_json):
    """Choose how each model of RUN_DIR is sampled, on held-out data.

    RUN_DIR scored its candidates with run.reference_split = "validation": model entries that share an encoder,
    a prior and its options, and differ in their sampling settings (temperature, top_k, top_p). For each such
    family, the candidate with the best METRIC averaged over the run's budgets and training seeds is chosen: one
    setting for every budget, since settings that changed with the budget would not be anytime. Prints each
    candidate's score and the chosen entries as [[model]] tables, for the config whose results are reported.

    A run scored against its training or test split is refused: choosing on it would tune on the results.
    """
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from anytime_bench.analysis.report import headline_of, recorded_directions
    from anytime_bench.analysis.report.gather import load_run
    from anytime_bench.analysis.selection import choose, entry_toml

    if metric is not None and not metric.strip():
        raise ConfigError("--metric: expected a metric name, got ''")
    run = load_run(Path(run_dir))
    if run.metrics is None:
        raise ConfigError(f"{run_dir}: no readable metrics.csv ({'; '.join(run.missing)[:200] or 'missing'})")
    name = metric or headline_of(Path(run_dir))
    if not name:
        raise ConfigError(f"{run_dir}: its record names no headline metric: pass --metric")
    directions = recorded_directions([Path(run_dir)])
    if name not in directions:
        raise ConfigError(f"{run_dir}: its record does not say whether higher {name[:40]!r} is better")
    splits, requires = (run.state.get(key) or {} for key in ("metric_references", "metric_requires"))
    if name not in splits:
        raise ConfigError(f"{run_dir}: its record does not say which real data {name[:40]!r} was scored against "
                          f"(a run evaluated before anytime-bench recorded it): evaluate it again")
    candidates = choose(run.metrics, name, directions[name], splits[name], requires.get(name, ""))
    if as_json:
        click.echo(json.dumps([{"model": c.model, **{k: _plain(v) for k, v in c.family.items()},
                                **{k: _plain(v) for k, v in c.settings.items()}, "score": c.score,
                                "per_budget": {f"{b:g}": v for b, v in c.per_budget.items()}, "chosen": c.chosen}
                               for c in candidates], indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), title=f"{escape(name)} on the validation split, averaged over budgets "
                                              f"({'higher' if directions[name] else 'lower'} is better)")
    settings = list(candidates[0].settings) if candidates else []
    # the family's columns that tell candidates apart here (a prior shared by all is said in the entries below)
    family = [k for k in ("encoder", "prior", "prior_options") if len({str(c.family.get(k)) for c in candidates}) > 1]
    for column in ("model", *family, *settings, name, "chosen"):
        table.add_column(escape(column), no_wrap=True)
    for c in candidates:
        table.add_row(escape(c.model), *(escape(str(c.family.get(k, ""))) for k in family),
                      *(escape(f"{_plain(c.settings[k]):g}") for k in settings), f"{c.score:.4g}",
                      "yes" if c.chosen else "")
    Console(soft_wrap=True).print(table)
    click.echo("\n".join(["# chosen on the validation split of " + str(run_dir)]
                         + [entry_toml(c) + "\n" for c in candidates if c.chosen]).rstrip("\n"))


def _plain(value):
    return value.item() if hasattr(value, "item") else value
