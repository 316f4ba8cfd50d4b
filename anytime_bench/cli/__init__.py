"""The ``anytime-bench`` command line: one module per command, plugins may add more.

Every error a user can cause ends in one line on stderr and exit code 2; an
error inside a plugin's component in one line naming it and exit code 1;
Ctrl-C in the documented line and exit code 130. ``--debug`` (or
``ANYTIME_BENCH_DEBUG=1``) adds the traceback behind any of them.
"""

from __future__ import annotations

import os
import re
import sys
import traceback

import click

from ..errors import AnytimeBenchError, ComponentError
from ..plugin_manager import Plugins, load_plugins

INTERRUPTED = "Interrupted: finished stages are kept; run the same command again to resume."


def build_cli(plugins: Plugins) -> click.Group:
    """A fresh command group with the built-in commands and those that plugins add."""
    from . import bench, config_cmd, evaluate, plugins_cmd, report, run, sample, train
    from .options import with_component_flags

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.version_option(package_name="anytime-bench")
    @click.option("--debug", is_flag=True, help="Show the traceback behind any one-line error.")
    def cli(debug: bool) -> None:
        """Benchmark anytime autoregressive generation: quality versus the number of codes sampled."""

    for module in (run, train):
        cli.add_command(with_component_flags(module.command, plugins))
    for module in (sample, evaluate, bench):  # they reopen a run: machine-local options are given again
        cli.add_command(with_component_flags(module.command, plugins, local_only=True))
    for module in (report, plugins_cmd):
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


MAX_QUOTE = 200
"""The most characters of one unbroken value (a word, a path, a quoted string) that an error line shows."""
MAX_LINE = 1000

_LONG_WORD = re.compile(rf"\S{{{MAX_QUOTE + 1},}}")


def _cut(match: re.Match[str]) -> str:
    word = match.group(0)
    return f"{word[:MAX_QUOTE - 50]}...[{len(word) - MAX_QUOTE + 3} characters]...{word[-47:]}"


def one_line(message: str) -> str:
    """A message on one line whatever it quotes: control characters (a newline in a file name) escaped, and a
    huge value that a message quotes whole (a 100,000-character ``--set``) cut to :data:`MAX_QUOTE` characters,
    the line to :data:`MAX_LINE`. Messages quote values through ``schema.short`` already; this is the last guard."""
    line = _LONG_WORD.sub(_cut, message.translate(_CONTROL))
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."


def short_path(path: object) -> str:
    """A path for an error line: whole up to :data:`MAX_QUOTE` characters, else its start and its end."""
    text = str(path)
    return text if len(text) <= MAX_QUOTE else f"{text[:100]}...{text[-(MAX_QUOTE - 103):]}"


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    click.echo(f"Error: {one_line(message)}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    debug, argv = _split_debug(list(sys.argv[1:] if argv is None else argv))
    try:
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
        if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt):
            _fail(INTERRUPTED, 130, debug)
        _fail("aborted", 1, debug)
    except RecursionError:
        _fail("input nested too deeply to process", 2, debug)
    except OSError as exc:
        where = f" {short_path(exc.filename)}" if exc.filename else ""
        _fail(f"cannot access{where}: {exc.strerror or exc}", 2, debug)
    except MemoryError:
        _fail("out of memory; use smaller batch sizes or fewer samples", 1, debug)
    except Exception as exc:  # a bug in anytime-bench itself: still one line, the traceback with --debug
        _fail(f"internal error ({type(exc).__name__}: {str(exc)[:200]}); run with --debug for the traceback and "
              "please report it", 1, debug)
