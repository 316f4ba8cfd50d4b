"""What the core hands to every component while it works: device, seed, cache, progress."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Task:
    """A handle on one progress bar; ``advance`` it once per step."""

    def __init__(self, progress: Progress | None, task_id: int | None):
        self._progress = progress
        self._task_id = task_id

    def advance(self, steps: int = 1, **info: float | str) -> None:
        if self._progress is None or self._task_id is None:
            return
        text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
        self._progress.update(self._task_id, advance=steps, info=text)


@dataclass
class RunContext:
    """Shared state for one run's stages.

    ``seed`` is the stage's seed; components derive their own generators from
    it so that the same seed gives the same result whatever ran before.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "anytime-bench")
    console: Console = field(default_factory=lambda: Console(stderr=True))
    quiet: bool = False

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False)

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Task]:
        """A rich progress bar for a loop of ``total`` steps."""
        if self.quiet:
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
            task_id = progress.add_task(description, total=total, info="")
            yield Task(progress, task_id)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run seed; ``offset`` separates independent streams."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed the global streams that libraries (torch-fidelity's loaders, numpy) consume."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
