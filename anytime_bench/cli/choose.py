"""``anytime-bench choose``: how each model is best sampled, read from a run scored on the validation split."""

from __future__ import annotations

import json

import click

from anytime_bench.cli.params import PathParam
from anytime_bench.errors import printable


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

    from anytime_bench.analysis.selection import FAMILY, choose_sampling, entry_toml

    found = choose_sampling(run_dir, metric)
    name, candidates = found.metric, found.candidates
    if as_json:
        click.echo(json.dumps([{"model": c.model, "encoder": c.encoder, "encoder_options": c.encoder_options,
                                "prior": c.prior, "prior_options": c.prior_options, **c.settings, "score": c.score,
                                "per_budget": {f"{b:g}": v for b, v in c.per_budget.items()}, "chosen": c.chosen}
                               for c in candidates], indent=2, allow_nan=False))
        return
    direction = "higher" if found.higher_is_better else "lower"
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1),
                  title=f"{escape(name)} on the validation split, averaged over budgets ({direction} is better)")
    # only the columns that tell candidates apart: what they all share is said in the entries below
    family = [k for k in FAMILY
              if len({json.dumps(getattr(c, k), sort_keys=True, default=str) for c in candidates}) > 1]
    settings = [k for k in (candidates[0].settings if candidates else {})
                if len({c.settings[k] for c in candidates}) > 1]
    table.add_column("model", no_wrap=True)
    for column in family:
        table.add_column(column, overflow="fold")
    for column in settings:
        table.add_column(column, no_wrap=True)
    table.add_column("budgets", no_wrap=True, justify="right")
    table.add_column(escape(name), no_wrap=True, min_width=6)
    table.add_column("chosen", no_wrap=True, min_width=6)
    for c in candidates:
        # names from someone's metrics.csv: neither rich markup nor a terminal's escape codes
        table.add_row(escape(printable(c.model)),
                      *(escape(printable(json.dumps(getattr(c, k), default=str) if k.endswith("_options")
                                         else str(getattr(c, k)))) for k in family),
                      *(str(c.settings[k]) if k == "top_k" else f"{c.settings[k]:g}" for k in settings),
                      str(len(c.per_budget)), f"{c.score:.5g}",
                      ("yes" if c.rivals else "yes (only candidate)") if c.chosen else "")
    Console(soft_wrap=True).print(table)
    click.echo("\n".join([f"# chosen on the validation split of {run_dir}"]
                         + [entry_toml(c) + "\n" for c in candidates if c.chosen]).rstrip("\n"))
