"""The ``anytime-bench`` command line: one module per command, plugins may add more."""

from __future__ import annotations

import sys

import click

from ..errors import AnytimeBenchError, ComponentError
from ..plugin_manager import Plugins, load_plugins


def build_cli(plugins: Plugins) -> click.Group:
    """A fresh command group with the built-in commands and those that plugins add."""
    from . import bench, evaluate, plugins_cmd, report, run, sample, train

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="anytime-bench")
    def cli() -> None:
        """Benchmark anytime autoregressive generation: quality versus the number of codes sampled."""

    for module in (run, train, sample, evaluate, bench, report, plugins_cmd):
        cli.add_command(module.command)
    plugins.add_commands(cli)
    return cli


def main(argv: list[str] | None = None) -> None:
    try:
        plugins = load_plugins()
        group = build_cli(plugins)
        group.main(args=argv, prog_name="anytime-bench", standalone_mode=False, obj=plugins)
    except (AnytimeBenchError, ComponentError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        # one line, like every other bad-input error, rather than click's usage block
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted: finished stages are kept; run the same command again to resume.", err=True)
        sys.exit(130)
