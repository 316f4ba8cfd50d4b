"""Exceptions for bad input. The CLI turns each into one line and exit code 2."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any


class AnytimeBenchError(Exception):
    """Bad input from the user, a data file, a checkpoint or a plugin."""

    exit_code = 2


class ConfigError(AnytimeBenchError):
    """A config key, value or CLI option is wrong."""


class DataError(AnytimeBenchError):
    """A dataset file is missing or malformed."""


class PluginError(AnytimeBenchError):
    """A plugin failed to load, clashes with another one, or is not installed."""


class BrokenPluginError(PluginError):
    """A broken plugin, quarantined when plugins loaded, is selected: the message names it and why it is broken."""


class CheckpointError(AnytimeBenchError):
    """A checkpoint is missing, truncated, unsafe or from another config."""


class CheckpointMismatchError(CheckpointError):
    """A sound checkpoint of the run that its component, as installed, does not take (other keys, shapes or kinds
    in its state): the plugin changed since, or the file was swapped for another."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (sent by schedulers and ``timeout``) or SIGINT (Ctrl-C), raised where the program was: stages stop
    the same way for both, temporary files are removed on the way out, and the record says ``interrupted``."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        self.where = ""
        """Set by the run: the stage and folder it stopped in."""
        super().__init__(signal.Signals(signum).name)

    def __reduce__(self):
        # raised in a worker process, it reaches the run through pickle, which would call __init__ with the name
        return type(self), (self.signum,), self.__dict__

    def __str__(self) -> str:
        # What a caller of the library reads (the CLI words its own line): where a run stopped, and that it resumes.
        if not self.where:
            return super().__str__()
        return f"{super().__str__()}{self.where}: finished stages and checkpoints are kept; run it again to resume"


_HOLD: dict[str, Any] = {"depth": 0, "pending": None}


def interrupt(signum: int) -> None:
    """What the command line's SIGTERM and SIGINT handler does: raise :class:`Interrupted` where the program is, or,
    inside :func:`signals_held`, keep the signal for when the block ends."""
    if _HOLD["depth"]:
        _HOLD["pending"] = _HOLD["pending"] or signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_held(where: str = "") -> Iterator[None]:
    """Hold SIGTERM and SIGINT while a block writes what must be whole (the record of where a stage stopped), then
    raise the first that came, said to have stopped ``where``. A per-thread signal mask would not do: the kernel
    hands a process's signal to any thread not blocking it (gloo's, OpenMP's), and Python runs the handler in the
    main thread at its next instruction."""
    _HOLD["depth"] += 1
    try:
        yield
    finally:
        _HOLD["depth"] -= 1
        if _HOLD["depth"] == 0 and _HOLD["pending"] is not None:
            signum, _HOLD["pending"] = _HOLD["pending"], None
            stopped = Interrupted(signum)
            stopped.where = where
            raise stopped


class PeerLost(KeyboardInterrupt):
    """Under torchrun, a collective failed because another process of the group went away (killed, or stopped by
    its own error, which that process reports): this one cannot go on. Not the fault of the component it was in:
    its stage is interrupted, as by a signal, and the same command resumes it."""

    exit_code = 1

    def __init__(self, detail: str = ""):
        self.detail = detail
        self.where = ""
        """Set by the run: the stage and folder it stopped in."""
        super().__init__(detail)

    def __reduce__(self):
        return type(self), (self.detail,), self.__dict__

    @property
    def said(self) -> str:
        """What happened, without where: the command line words the rest of its line itself."""
        return f"another process of the torchrun group stopped{f' ({self.detail})' if self.detail else ''}"

    def __str__(self) -> str:
        return self.said + (f"{self.where}: finished stages and checkpoints are kept; run it again to resume"
                            if self.where else "")


class StorageError(AnytimeBenchError, OSError):
    """A file cannot be written where the user pointed: a full disk, a read-only folder, a name that is too long.

    Not a plugin's failure, whoever asked for the write; an OSError too, so that code that already gives up on a
    failed write (``except OSError``) still does."""


_CONTROL = {i: f"\\x{i:02x}" for i in [*range(0x20), *range(0x7F, 0xA0)] if i != 0x09} | {
    0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}
"""C0 and C1 control characters (``\\x9b`` is a terminal's escape in one character) and the Unicode line breaks."""


def printable(text: str) -> str:
    """``text`` with its control characters escaped (a newline as ``\\n``, an escape code as ``\\x1b``), and what
    is not valid Unicode (a file name's undecodable byte) as its escape too: text from a run folder, a file name or
    a plugin, on one line that a terminal shows and does not obey, and that any file can hold."""
    text = text.translate(_CONTROL)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def short(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line messages about user input."""
    try:
        text = repr(value)
    except ValueError:  # an integer of more digits than Python writes out (a hexadecimal one reads in)
        text = f"an integer of {value.bit_length()} bits" if isinstance(value, int) else type(value).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (empty when it has none), cut to ``limit`` characters: what a
    one-line error quotes of an exception raised by a library or a plugin."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if limit is None or len(text) <= limit else text[:limit - 3] + "..."


class ComponentError(Exception):
    """A plugin's code raised while working: not bad input, so exit code 1, but named precisely."""

    exit_code = 1


class NonFiniteLossError(ComponentError):
    """Training produced a NaN or infinite loss; the weights are those of the last good step."""

    def __init__(self, stage: str, step: int, value: float):
        self.stage, self.step, self.value = stage, step, value
        super().__init__(f"loss became {value} at step {step} of {stage}")


def check_finite(loss: Any, stage: str, step: int) -> None:
    """Call before applying a step: raise NonFiniteLossError, so that the weights stay the last good ones.

    ``loss`` is a number or a one-element tensor (detached here: converting one that requires grad warns)."""
    value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
    if not math.isfinite(value):
        raise NonFiniteLossError(stage, step, value)
