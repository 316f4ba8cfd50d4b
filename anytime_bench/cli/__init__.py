"""The ``anytime-bench`` command line: one module per command, plugins may add more.

Every error a user can cause ends in one line on stderr and exit code 2; an
error inside a plugin's component in one line naming it and exit code 1;
Ctrl-C in the documented line and exit code 130. ``--debug`` (or
``ANYTIME_BENCH_DEBUG=1``) adds the traceback behind any of them.

A broken plugin is quarantined when plugins load (:mod:`anytime_bench.contract.plugin_manager`):
every command but ``plugins`` (which lists it) adds one warning line on stderr
naming it, and works as long as nothing selects it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from anytime_bench.errors import (
    AnytimeBenchError,
    BrokenPluginError,
    ComponentError,
    ConfigError,
    Interrupted,
    PeerLost,
    interrupt,
    printable,
)

if TYPE_CHECKING:
    from anytime_bench.contract.plugin_manager import Plugins

INTERRUPTED = "finished stages and checkpoints are kept; run the same command again to resume."

WITHOUT_PLUGINS = ("runs", "report", "choose")
"""Commands that read run folders only: they start without importing any plugin (nor torch)."""

ONE_PROCESS = ("sample", "evaluate", "bench", "config", "plugins", *WITHOUT_PLUGINS)
"""The core's commands that run as one process: under torchrun each process would do the whole work and write the
same files (``train`` and ``run`` train across the processes, rank 0 alone sampling and evaluating)."""


def build_cli(plugins: Plugins | None) -> click.Group:
    """A fresh command group with the built-in commands and those that plugins add; without ``plugins``, only
    the commands of :data:`WITHOUT_PLUGINS`."""
    from anytime_bench.cli import choose, report, runs_cmd

    @click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.version_option(package_name="anytime-bench")
    @click.option("--debug", is_flag=True, help="Show the traceback behind any one-line error.")
    def cli(debug: bool) -> None:
        """Benchmark anytime autoregressive generation: quality versus the number of codes sampled."""

    if plugins is None:
        cli.add_command(runs_cmd.command)
        cli.add_command(report.command)
        cli.add_command(choose.command)
        return cli
    from anytime_bench.cli import bench, config_cmd, evaluate, plugins_cmd, run, sample, train
    from anytime_bench.cli.options import with_component_flags

    # sample, evaluate and bench reopen a run: machine-local options are given again
    flagged = [(run, False), (train, False), (sample, True), (evaluate, True), (bench, True), (config_cmd, False)]

    def add_flagged() -> dict[str, click.Command]:
        added = {}
        for module, local_only in flagged:
            added[module.command.name] = with_component_flags(module.command, plugins, local_only=local_only)
            cli.add_command(added[module.command.name])
        return added

    # A component's flag may not take over one of the core's: every command would read it the component's way.
    plugins.refuse_flags({opt for module, _ in flagged for param in module.command.params
                          for opt in (*param.opts, *param.secondary_opts)} | {"--debug", "--version", "--help", "-h"})
    added = add_flagged()
    for module in (report, plugins_cmd, runs_cmd, choose):
        cli.add_command(module.command)
    broken = len(plugins.broken)
    plugins.add_commands(cli)
    if len(plugins.broken) != broken and all(cli.commands.get(n) is c for n, c in added.items()):
        add_flagged()  # a plugin quarantined while adding commands: its components' flags go with it
    return cli


class _Group(click.Group):
    """The top-level group: a command that is not found while a broken plugin, which might have added it, was
    skipped names that plugin rather than only "no such command"."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            plugins = ctx.obj
            whole = [b for b in getattr(plugins, "broken", []) if b.kind is None]
            if not whole or not args or args[0] in self.commands:
                raise
            raise BrokenPluginError(
                f"no command {args[0][:60]!r}; broken plugins, which might have added it, were skipped: "
                + "; ".join(f"{b.origin} {b.reason}" for b in whole)) from exc


def broken_warning(plugins: Plugins) -> str | None:
    """The one warning line that names every quarantined plugin and component, or None when there is none."""
    if not plugins.broken:
        return None
    details = "anytime-bench plugins --check for details"
    if len(plugins.broken) == 1:
        broken = plugins.broken[0]
        return f"Warning: {broken.subject} is broken and was skipped: {broken.reason}; {details}"
    listed = "; ".join(f"{b.subject} ({b.reason if len(b.reason) <= 100 else b.reason[:97] + '...'})"
                       for b in plugins.broken)
    return f"Warning: {len(plugins.broken)} broken plugins or components were skipped: {listed}; {details}"


def _command_name(argv: list[str]) -> str | None:
    """The command a command line names (the first argument that is not an option of the group)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _split_debug(argv: list[str]) -> tuple[bool, list[str]]:
    """``--debug`` anywhere before a ``--`` (or ANYTIME_BENCH_DEBUG=1), and the arguments without it."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end] or os.environ.get("ANYTIME_BENCH_DEBUG", "") not in ("", "0")
    return debug, [a for i, a in enumerate(argv) if not (a == "--debug" and i < end)]


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
    line = _LONG_WORD.sub(_cut, printable(message))
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."


def warn(line: str) -> None:
    """A ``warning: ...`` line on stderr, one line whatever it quotes (:func:`one_line`): a warning names files and
    values from run folders, which may hold a newline or a terminal's escape codes."""
    click.echo(f"warning: {one_line(line)}", err=True)


def short_path(path: object) -> str:
    """A path for an error line: whole up to :data:`MAX_QUOTE` characters, else its start and its end."""
    text = str(path)
    return text if len(text) <= MAX_QUOTE else f"{text[:100]}...{text[-(MAX_QUOTE - 103):]}"


class _Warning:
    """The broken-plugin warning, printed once: after the command, or before its error line; never beside an
    error that names a broken plugin itself, which would say the same thing twice."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.plugins: Plugins | None = None

    def emit(self) -> None:
        plugins, self.plugins = self.plugins, None
        line = broken_warning(plugins) if plugins is not None else None
        rank = os.environ.get("RANK", "0")  # under torchrun, rank 0 alone says it
        if line is not None and _command_name(self.argv) != "plugins" and rank in ("", "0"):  # plugins lists them
            click.echo(one_line(line), err=True)


def _joined() -> bool:
    if "torch.distributed" not in sys.modules:
        return False
    from anytime_bench.contract.distributed import in_process_group

    return in_process_group()


def torchrun_rank() -> int | None:
    """This process's rank when torchrun's agent started it (rank 0 is there too, with the same command line), else
    None: a process started by hand with torchrun's variables speaks for itself."""
    rank = os.environ.get("RANK", "")
    return int(rank) if "TORCHELASTIC_RUN_ID" in os.environ and rank.isascii() and rank.isdigit() else None


def _fail(message: str, code: int, debug: bool, warning: _Warning | None = None, shared: bool = False) -> None:
    """End with ``Error: message`` on stderr and exit status ``code``. Under torchrun a line that rank 0 says too is
    said by rank 0 alone, unless ``--debug``: ``shared`` (rank 0's own refusal, passed to every rank; Ctrl-C, which
    reaches every rank), or bad input found before the process group was joined, which every rank reads alike from
    the same command line; such a rank waits for rank 0 to say it (:func:`_leave_to_rank_0`). A line of another
    rank's own (data missing on its machine, a lost process, a signal to it alone) names the rank."""
    rank = torchrun_rank()
    if rank and not debug and (shared or (code == 2 and not _joined())):
        if code != 2:  # an interrupt: torchrun is already stopping every rank
            sys.exit(code)
        _leave_to_rank_0()  # back only when rank 0 did not end: this rank says it then
    if debug:
        traceback.print_exc()
    if warning is not None:
        warning.emit()
    try:
        click.echo(f"Error: {'' if not rank else f'rank {rank}: '}{one_line(message)}", err=True)
    except BrokenPipeError:  # the reader of stderr is gone (`| head`): the exit code still says what happened
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())  # and Python's last flush has nowhere to fail
    sys.exit(code)


RANK_0_ENDS_WITHIN_S = 60.0
"""How long another rank waits, under torchrun, for rank 0 to say a line of bad input for the group and end."""


def _leave_to_rank_0() -> None:
    """Wait for torchrun to stop this process once rank 0 has said the line and ended. torchrun stops every process
    as soon as one fails: a rank that ended first got rank 0 stopped before it had said anything (seen in CI), and
    the group ended without a word. Returns after :data:`RANK_0_ENDS_WITHIN_S` when rank 0 did not end (it read the
    command line otherwise, on another machine): this rank says it then."""
    if _joined():
        from anytime_bench.contract.distributed import leave_process_group

        leave_process_group()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):  # torchrun's SIGTERM ends the wait, without a line of its own
            signal.signal(sig, signal.SIG_DFL)
    time.sleep(RANK_0_ENDS_WITHIN_S)


def _raise_interrupted(signum: int, frame: object) -> None:
    interrupt(signum)


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


def _said_by_rank_0(exc: BaseException) -> bool:
    """An interrupt of a torchrun group: torchrun passes the SIGTERM or SIGINT it gets to every process (they run in
    sessions of their own), and sends SIGTERM to those left when one fails, whose own line says why."""
    return not isinstance(exc, PeerLost)


def _interrupted(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, PeerLost):
        return f"{exc.said}{exc.where}: {INTERRUPTED}", exc.exit_code
    if isinstance(exc, Interrupted):
        how = "Ctrl-C" if exc.signum == signal.SIGINT else signal.Signals(exc.signum).name
        return f"interrupted by {how}{exc.where}: {INTERRUPTED}", exc.exit_code
    return f"interrupted{getattr(exc, 'where', '')}: {INTERRUPTED}", 130


def main(argv: list[str] | None = None) -> None:
    debug, argv = _split_debug(list(sys.argv[1:] if argv is None else argv))
    warning = _Warning(argv)
    try:
        try:
            _main(argv, debug, warning)
        finally:
            warning.emit()
    except SystemExit as exc:
        _end_rank(exc.code)
        raise
    _end_rank(0)


def _end_rank(code: int | str | None) -> None:
    """Under torchrun, end this process here (see :func:`~anytime_bench.contract.distributed.end_rank`); a lone
    process returns, or raises its ``SystemExit``, as usual."""
    if "torch.distributed" not in sys.modules:  # nothing imported torch: no process group to leave
        return
    from anytime_bench.contract.distributed import end_rank, in_process_group

    if in_process_group():
        end_rank(code)


def _peer_lost(exc: BaseException) -> str | None:
    if "torch.distributed" not in sys.modules:
        return None
    from anytime_bench.contract.distributed import peer_lost

    return peer_lost(exc)


def _main(argv: list[str], debug: bool, warning: _Warning) -> None:
    try:
        with _signals_interrupt():
            name = _command_name(argv)
            world = os.environ.get("WORLD_SIZE", "")
            # torchrun's variables, by torchrun or by hand (not WORLD_SIZE alone, which a shell may hold for another)
            if name in ONE_PROCESS and "RANK" in os.environ and world.isascii() and world.isdigit() and int(world) > 1:
                raise ConfigError(f"`{name}` runs as one process: start it without torchrun (under torchrun only "
                                  f"`train` and `run` work across processes)")
            if name in WITHOUT_PLUGINS:
                plugins = None
            else:
                from anytime_bench.contract.plugin_manager import load_plugins

                plugins = load_plugins()
            warning.plugins = plugins
            group = build_cli(plugins)
            group.main(args=argv, prog_name="anytime-bench", standalone_mode=False, obj=plugins)
    except BrokenPluginError as exc:
        warning.plugins = None
        _fail(str(exc), exc.exit_code, debug)
    except (AnytimeBenchError, ComponentError) as exc:
        _fail(str(exc), exc.exit_code, debug, warning, shared=getattr(exc, "rank_0_said", False))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.MissingParameter as exc:  # its message is empty: click builds "Missing argument 'RUN_DIR'." itself
        _fail(exc.format_message().replace("\n", " "), 2, debug, warning)
    except click.BadParameter as exc:
        # "--budgets: 'half' is not a number", like the config errors, rather than click's usage block
        hint = exc.param_hint or (exc.param.opts[0] if exc.param is not None and exc.param.opts else None)
        hint = hint if isinstance(hint, str) else (" / ".join(hint) if hint else "")
        _fail((f"{hint}: " if hint else "") + exc.message.replace("\n", " "), 2, debug, warning)
    except click.ClickException as exc:
        _fail(exc.format_message().replace("\n", " "), 2 if exc.exit_code == 2 else exc.exit_code, debug, warning)
    except (click.Abort, KeyboardInterrupt) as exc:
        cause = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__
        if isinstance(cause, KeyboardInterrupt):
            _fail(*_interrupted(cause), debug, warning, shared=_said_by_rank_0(cause))
        _fail("aborted", 1, debug, warning)
    except RecursionError:
        _fail("input nested too deeply to process", 2, debug, warning)
    except BrokenPipeError as exc:
        # An interrupt whose blank line click could not write: the pipe closed (SIGPIPE) or a signal came first.
        cause = exc.__context__.__context__ if isinstance(exc.__context__, click.Abort) else exc.__context__
        if isinstance(cause, KeyboardInterrupt):
            _fail(*_interrupted(cause), debug, warning, shared=_said_by_rank_0(cause))
        _fail("the output pipe was closed", 128 + signal.SIGPIPE, debug, warning)
    except OSError as exc:
        where = f" {short_path(exc.filename)}" if exc.filename else ""
        _fail(f"cannot access{where}: {exc.strerror or exc}", 2, debug, warning)
    except MemoryError:
        _fail("out of memory; use smaller batch sizes or fewer samples", 1, debug, warning)
    except Exception as exc:  # a bug in anytime-bench itself: still one line, the traceback with --debug
        if type(exc).__name__ == "OutOfMemoryError" and type(exc).__module__.startswith("torch"):
            # torch.OutOfMemoryError (a GPU's) is a RuntimeError, not a MemoryError
            _fail("out of GPU memory; use smaller batch sizes (a prior's sample_batch_size among them) or fewer "
                  "samples", 1, debug, warning)
        lost = _peer_lost(exc)
        if lost is not None:  # a collective of the core's own, under torchrun
            _fail(*_interrupted(PeerLost(lost)), debug, warning)
        _fail(f"internal error ({type(exc).__name__}: {str(exc)[:200]}); run with --debug for the traceback and "
              "please report it", 1, debug, warning)
