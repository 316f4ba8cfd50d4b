"""What the core hands to every component while it works: device, seed, cache, progress."""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from anytime_bench.contract.checkpoints import LoopCheckpoint, TrainingLoop
from anytime_bench.contract.distributed import Batches, Topology
from anytime_bench.errors import ConfigError, Interrupted, printable


class Task:
    """A handle on one progress bar; ``advance`` it once per step."""

    def __init__(self, progress: Progress | None, task_id: int | None):
        self._progress = progress
        self._task_id = task_id

    def advance(self, steps: int = 1, **info: float | str) -> None:
        if self._progress is None or self._task_id is None:
            return
        text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
        self._progress.update(self._task_id, advance=steps, info=escape(printable(text)))


class Ledger:
    """What one ``fit`` drew from the data: the core gives one to each fit's context and reads it afterwards."""

    def __init__(self) -> None:
        self.streams: list[Batches] = []
        self.loops: list[LoopCheckpoint] = []
        """The fit's loop checkpoints (:meth:`RunContext.loop_checkpoint`): which of them it resumed from."""

    @property
    def resumed_loops(self) -> list[LoopCheckpoint]:
        """The loop checkpoints the fit continued from."""
        return [loop for loop in self.loops if loop.path is not None and loop.restored_step is not None]

    @property
    def resumed(self) -> dict[str, int]:
        """Each training loop that continued from its checkpoint: its name, and the step it continued after."""
        return {loop.path.stem: loop.restored_step for loop in self.resumed_loops}

    @property
    def items_seen(self) -> int:
        return sum(b.count for b in self.streams)

    @property
    def digest(self) -> str:
        return "-".join(b.digest for b in self.streams)


@dataclass(frozen=True)
class LoopCheckpoints:
    """Where the training loops of one fit keep their mid-stage checkpoints."""

    folder: Path | None = None
    digest: str = ""
    every: int = 0
    writes: bool = True


class RunConsole(Console):
    """The run's log on stderr. When the pipe it writes to closes (its reader, ``tee`` or ``tail``, stopped with the
    run's process group by a scheduler), the run stops as interrupted by SIGPIPE, resumable and recorded so, where
    rich would raise ``SystemExit(1)`` and the run would be recorded as failed."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more can be shown, the error line included
        raise Interrupted(signal.SIGPIPE)


@dataclass(frozen=True)
class RunContext:
    """The services the core offers a component while it works: device, seeds, cache, progress, DDP, checkpoints.

    ``seed`` is the training seed of the component being fitted; components
    derive their own generators from it (:meth:`generator`) so that the same
    seed gives the same result whatever ran before. The context is read-only:
    it carries nothing back to the core.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "anytime-bench")
    console: Console = field(default_factory=lambda: RunConsole(stderr=True))
    quiet: bool = False
    topology: Topology = field(default_factory=Topology)
    """This process's rank among those torchrun started (one process: rank 0 of 1)."""
    precision: str = "auto"
    """``auto``: bf16 autocast for the prior on CUDA, fp32 elsewhere; ``fp32`` always fp32."""
    checkpoints: LoopCheckpoints = field(default_factory=LoopCheckpoints)
    """Set by the core for each fit: where :meth:`loop_checkpoint` saves."""
    ledger: Ledger | None = None
    """Set by the core for each fit: records the mini-batch streams handed out by :meth:`batches`."""

    @property
    def is_main(self) -> bool:
        return self.topology.is_main

    def log(self, message: str) -> None:
        """A line of progress (hidden by ``--quiet``), shown as written: it quotes paths and names, which may hold
        what a console would read as markup (``[link=...]``) or a terminal as an escape code."""
        if not self.quiet and self.is_main:
            self.console.print(escape(printable(message)), highlight=False)

    def warn(self, message: str) -> None:
        """A line the user must see even with ``--quiet``: work thrown away or done otherwise than asked (a
        checkpoint that cannot be resumed from, and so training again), as ``warning: ...`` on stderr."""
        if self.is_main:  # one line, never folded at the console's width nor split by what it quotes
            self.console.print(f"[yellow]warning: {escape(printable(message))}[/]", highlight=False, soft_wrap=True)

    def distribute(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` wrapped in DistributedDataParallel under torchrun (call the wrapper to train), else itself."""
        if self.topology.world_size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Overwrite ``tensor`` with rank 0's copy: for weights changed outside autograd (codebook restarts)."""
        if self.topology.world_size > 1:
            import torch.distributed as dist

            dist.broadcast(tensor, src=0)
        return tensor

    def all_reduce_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Overwrite ``tensor`` with its sum over all ranks: for statistics gathered outside autograd (EMA codebooks)."""
        if self.topology.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def batches(self, n_items: int, batch_size: int, generator: torch.Generator) -> Batches:
        """Mini-batch indices over ``n_items``: ``batch_size`` per step (per process under torchrun), from this
        process's share of each shuffled epoch."""
        stream = Batches(n_items, batch_size, generator, self.topology)
        if self.ledger is not None:
            self.ledger.streams.append(stream)
        return stream

    def loop_checkpoint(self, name: str) -> LoopCheckpoint:
        """Periodic checkpoints for one training loop of the component being fitted (see :mod:`checkpoints`).

        ``name`` tells several loops of one fit apart (letters, digits, '.', '_', '-').
        """
        c = self.checkpoints
        if c.folder is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
            raise ValueError(f"loop checkpoint name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        path = c.folder / f"{name}.pt" if c.folder is not None else None
        loop = LoopCheckpoint(path, c.digest, c.every, self.log, writes=c.writes and self.is_main, warn=self.warn)
        if self.ledger is not None:
            self.ledger.loops.append(loop)
        return loop

    def training_loop(self, name: str, model: torch.nn.Module, batches: Batches,
                      state: Callable[[], dict[str, Any]] = dict) -> TrainingLoop:
        """The resumable steps of one training loop of ``model`` (see
        :class:`~anytime_bench.contract.checkpoints.TrainingLoop`).

        ``name`` as for :meth:`loop_checkpoint`; ``batches`` the stream from
        :meth:`batches` the loop draws from; ``state`` returns the fit's own
        loop variables to save with each checkpoint (running losses, best
        weights), read back from ``loop.restored``.
        """
        return TrainingLoop(self, self.loop_checkpoint(name), model, batches, state)

    def autocast(self):
        """bf16 autocast on CUDA (precision ``auto``); a no-op on CPU or with ``fp32``."""
        # A GPU before Ampere emulates bf16, slower than fp32: autocast only where it is native.
        enabled = self.device.type == "cuda" and self.precision == "auto" and _native_bf16(self.device)
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Task]:
        """A rich progress bar for a loop of ``total`` steps."""
        if self.quiet or not self.is_main:
            yield Task(None, None)
            return
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        with Progress(*columns, console=self.console, transient=True) as progress:
            task_id = progress.add_task(escape(printable(description)), total=total, info="")
            yield Task(progress, task_id)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run seed; ``offset`` separates independent streams."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)


def _native_bf16(device: torch.device) -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the argument: compute capability 8 (Ampere) and later
        return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; an explicit device must exist on this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    match = re.fullmatch(r"(cpu|cuda|mps)(?::(\d{1,3}))?", name)
    if not match or (match.group(1) != "cuda" and match.group(2) is not None):
        raise ConfigError(f"device {name[:40]!r} is not auto, cpu, cuda, cuda:N or mps")
    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {name!r}: no CUDA GPU is available on this machine (use cpu or auto)")
        if index is not None and int(index) >= count:
            raise ConfigError(f"device {name!r}: this machine has {count} CUDA GPU(s), numbered 0..{count - 1}")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name!r}: MPS is not available on this machine (use cpu or auto)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed the global streams that libraries (torch-fidelity's loaders, numpy) consume."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
