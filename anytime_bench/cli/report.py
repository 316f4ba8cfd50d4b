"""``anytime-bench report``: compare run folders in one Markdown and one self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import click

from anytime_bench.cli import warn
from anytime_bench.cli.params import ListParam, PathParam
from anytime_bench.errors import ConfigError


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=PathParam())
@click.option("--out", type=PathParam(), default=Path("results/report"), show_default=True)
@click.option("--metric", default=None, help="The metric to rank and plot (default: each run's headline metric).")
@click.option("--format", "formats", type=ListParam(), default="md,html", show_default=True, help="md, html or both.")
@click.option("--strict", is_flag=True,
              help="Refuse (exit 2, nothing written) when a run folder cannot be read, instead of listing it as "
                   "skipped and reporting the others.")
@click.pass_obj
def command(plugins, run_dirs, out, metric, formats, strict):
    """Compare RUN_DIRS: leaderboard, plots per dataset, provenance; report.md and report.html.

    An overview draws the best entry of each model family per dataset; each dataset's section has its leaderboard
    and one plot panel per family (at most eight lines on an axis). The HTML tables sort and filter offline.

    A run folder that cannot be read is listed under "Skipped" with the reason, and the others are reported;
    with --strict it is refused instead.
    """
    from anytime_bench.analysis.report import build_report, headlines, readable

    if metric is not None and not metric.strip():
        raise ConfigError("--metric: expected a metric name, got ''")
    if not formats or any(f not in ("md", "html") for f in formats):
        raise ConfigError(f"--format: {','.join(formats)[:40]!r} must be md, html or md,html")
    paths, skipped = readable(list(run_dirs))
    if skipped and (strict or not paths):
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        why = "--strict: a run folder cannot be read" if paths else "no run folder can be read"
        raise ConfigError(f"{why}: {skipped[0]}{more}")
    groups = headlines(paths, metric)
    higher = metric_directions(groups, paths, plugins, "--metric" if metric else "a run's headline metric",
                               strict=metric is not None)
    unranked = [f"{path}: its headline metric {name[:40]!r} records no direction, and no installed plugin gives it "
                f"(pass --metric to rank it by another)" for name in list(groups) if name not in higher
                for path in groups.pop(name)]  # one run's unknown metric stops no other run
    if unranked and (strict or not groups):
        why = "--strict: a run folder cannot be ranked" if groups else "no run folder can be ranked"
        raise ConfigError(f"{why}: {unranked[0]}")
    skipped += unranked
    result = build_report(groups, out, formats, higher, skipped)
    for line in result["missing"]:
        warn(line)
    if skipped:  # one line, however many: each is listed with its reason in the report
        warn(f"skipped {len(skipped)} run folder(s) that cannot be read (listed in the report): "
             + "; ".join(line[:200] for line in skipped[:5]) + ("; ..." if len(skipped) > 5 else ""))
    if result["removed"]:
        click.echo(f"removed {len(result['removed'])} file(s) of an earlier report in {out} that this one does not "
                   f"write: {', '.join(result['removed'][:5])}{', ...' if len(result['removed']) > 5 else ''}", err=True)
    runs, rows = result["runs"], result["rows"]
    click.echo(f"report of {runs} run{'' if runs == 1 else 's'} ({rows} leaderboard row{'' if rows == 1 else 's'}): "
               + ", ".join(str(p) for p in result["written"].values()))


def metric_directions(groups: dict[str, object], run_dirs: list[Path], plugins, where: str,
                      strict: bool = True) -> dict[str, bool]:
    """Whether higher is better for each metric: as the runs recorded it, else from the installed metric plugins
    (runs written before directions were recorded; the only case where ``report`` imports the plugins). A metric
    neither gives is refused, or with ``strict`` off left out of the result."""
    from anytime_bench.analysis.report import recorded_directions
    from anytime_bench.store.tables import source_of

    directions = recorded_directions(run_dirs)
    needed = [name for name in groups if name not in directions]
    if needed and plugins is None:
        from anytime_bench.contract.plugin_manager import load_plugins

        plugins = load_plugins()
    for name in needed:
        base = source_of(name, list(plugins.names("metric")))
        if base not in plugins.names("metric"):
            if not strict:
                continue
            raise ConfigError(f"{where}: {name[:40]!r} is not a metric of an installed plugin")
        directions[name] = bool(plugins.get("metric", base).cls.higher_is_better)
    return {name: directions[name] for name in groups if name in directions}
