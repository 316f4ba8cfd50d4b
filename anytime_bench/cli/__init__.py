"""The ``anytime-bench`` command line: one module per command, plugins may add more.

Every error a user can cause ends in one line on stderr and exit code 2; an
error inside a plugin's component in one line naming it and exit code 1;
Ctrl-C in the documented line and exit code 130. ``--debug`` (or
``ANYTIME_BENCH_DEBUG=1``) adds the traceback behind any of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from ..errors import AnytimeBenchError, ComponentError, Interrupted

if TYPE_CHECKING:
    from ..plugin_manager import Plugins

INTERRUPTED = "finished stages and checkpoints are kept; run the same command again to resume."


WITHOUT_PLUGINS = ("runs", "report")
"""Commands that read run folders only: they start without importing any plugin (nor torch)."""


def build_cli(plugins: Plugins | None) -> click.Group:
    """A fresh command group with the built-in commands and those that plugins add; without ``plugins``, only
    the commands of :data:`WITHOUT_PLUGINS`."""
    from . import runs_cmd

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.version_option(package_name="anytime-bench")
    @click.option("--debug", is_flag=True, help="Show the traceback behind any one-line error.")
    def cli(debug: bool) -> None:
        """Benchmark anytime autoregressive generation: quality versus the number of codes sampled."""

    from . import report

    if plugins is None:
        cli.add_command(runs_cmd.command)
        cli.add_command(report.command)
        return cli
    from . import bench, config_cmd, evaluate, plugins_cmd, run, sample, train
    from .options import with_component_flags

    for module in (run, train):
        cli.add_command(with_component_flags(module.command, plugins))
    for module in (sample, evaluate, bench):  # they reopen a run: machine-local options are given again
        cli.add_command(with_component_flags(module.command, plugins, local_only=True))
    for module in (report, plugins_cmd, runs_cmd):
        cli.add_command(module.command)
    cli.add_command(with_component_flags(config_cmd.command, plugins))
    plugins.add_commands(cli)
    return cli


def _split_debug(argv: list[str]) -> tuple[bool, list[str]]:
    """``--debug`` anywhere before a ``--`` (or ANYTIME_BENCH_DEBUG=1), and the arguments without it."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end] or os.environ.get("ANYTIME_BENCH_DEBUG", "") not in ("", "0")
    return debug, [a for i, a in enumerate(argv) if not (a == "--debug" and i < end)]


_CONTROL = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F] if i != 0x09} | {0x0A: "\\n", 0x0D: "\\r"}


def one_line(message: str) -> str:
    """A message on one line whatever it quotes: control characters (a newline in a file name) escaped."""
    return message.translate(_CONTROL)


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    click.echo(f"Error: {one_line(message)}", err=True)
    sys.exit(code)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT both raise :class:`Interrupted` where the program is, so that runs stop the same way
    (record updated, temporary files removed, one line); the previous handlers are put back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupted(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, Interrupted):
        how = "Ctrl-C" if exc.signum == signal.SIGINT else signal.Signals(exc.signum).name
        return f"interrupted by {how}{exc.where}: {INTERRUPTED}", exc.exit_code
    return f"interrupted{getattr(exc, 'where', '')}: {INTERRUPTED}", 130


def main(argv: list[str] | None = None) -> None:
    debug, argv = _split_debug(list(sys.argv[1:] if argv is None else argv))
    try:
        with _signals_interrupt():
            command = next((a for a in argv if not a.startswith("-")), None)
            if command in WITHOUT_PLUGINS:
                plugins = None
            else:
                from ..plugin_manager import load_plugins

                plugins = load_plugins()
            group = build_cli(plugins)
            group.main(args=argv, prog_name="anytime-bench", standalone_mode=False, obj=plugins)
    except (AnytimeBenchError, ComponentError) as exc:
        _fail(str(exc), exc.exit_code, debug)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.MissingParameter as exc:  # its message is empty: click builds "Missing argument 'RUN_DIR'." itself
        _fail(exc.format_message().replace("\n", " "), 2, debug)
    except click.BadParameter as exc:
        # "--budgets: 'half' is not a number", like the config errors, rather than click's usage block
        hint = exc.param_hint or (exc.param.opts[0] if exc.param is not None and exc.param.opts else None)
        hint = hint if isinstance(hint, str) else (" / ".join(hint) if hint else "")
        _fail((f"{hint}: " if hint else "") + exc.message.replace("\n", " "), 2, debug)
    except click.ClickException as exc:
        _fail(exc.format_message().replace("\n", " "), 2 if exc.exit_code == 2 else exc.exit_code, debug)
    except (click.Abort, KeyboardInterrupt) as exc:
        cause = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__
        if isinstance(cause, KeyboardInterrupt):
            _fail(*_interrupted(cause), debug)
        _fail("aborted", 1, debug)
    except RecursionError:
        _fail("input nested too deeply to process", 2, debug)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _fail(f"cannot access{where}: {exc.strerror or exc}", 2, debug)
    except MemoryError:
        _fail("out of memory; use smaller batch sizes or fewer samples", 1, debug)
    except Exception as exc:  # a bug in anytime-bench itself: still one line, the traceback with --debug
        _fail(f"internal error ({type(exc).__name__}: {str(exc)[:200]}); run with --debug for the traceback and "
              "please report it", 1, debug)
