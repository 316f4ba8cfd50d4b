"""Periodic checkpoints inside a training loop, so that an interrupted stage resumes instead of restarting.

A component's ``fit`` asks ``ctx.loop_checkpoint(name)`` for a
:class:`LoopCheckpoint`, calls ``restore()`` once before its loop and
``save(step, state)`` when ``due(step)``. The state it saves (weights,
optimizer, generators, loop variables) must be enough to continue exactly: the
global torch random state is saved and restored here, so dropout masks continue
where they stopped. Writes are atomic: ``kill -9`` leaves the previous file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import storage
from .errors import CheckpointError


class LoopCheckpoint:
    def __init__(self, path: Path | None, digest: str, every: int, log=lambda message: None, writes: bool = True):
        self.path, self.digest, self.every, self.log = path, digest, every, log
        self.writes = writes
        """Under torchrun only rank 0 saves; every rank restores the same file."""
        self.restored_step: int | None = None

    @property
    def enabled(self) -> bool:
        return self.path is not None and self.every > 0

    def restore(self) -> dict[str, Any] | None:
        """The state saved by the last ``save`` of a loop of the same config, or None to start afresh."""
        if not self.enabled or not self.path.is_file():
            return None
        try:
            payload = storage.load_checkpoint(self.path, kind="loop", name=self.path.stem, config_digest=self.digest)
        except CheckpointError as exc:
            self.log(f"[yellow]not resuming from {self.path}: {exc}[/]")
            return None
        extra = payload["extra"]
        rng, cuda_rng, step = extra.get("torch_rng"), extra.get("cuda_rng"), extra.get("step")
        # Checked before any is set: a refused file must leave the random state of a fresh start.
        if not (_rng_state(rng, torch.get_rng_state()) and isinstance(step, int) and not isinstance(step, bool)
                and step >= 0 and (cuda_rng is None or isinstance(cuda_rng, list))):
            self.log(f"[yellow]not resuming from {self.path}: it holds no valid step and random state[/]")
            return None
        torch.set_rng_state(rng)
        if torch.cuda.is_available() and cuda_rng is not None:
            current = torch.cuda.get_rng_state_all()
            if len(cuda_rng) == len(current) and all(map(_rng_state, cuda_rng, current)):
                torch.cuda.set_rng_state_all(cuda_rng)
            else:  # another number of GPUs: the loop continues, its dropout masks no longer those of one run
                self.log(f"[yellow]{self.path}: the CUDA random state is for {len(cuda_rng)} devices; not restored[/]")
        self.restored_step = step
        self.log(f"resuming {self.path.stem} after step {self.restored_step} from {self.path}")
        return payload["state"]

    def due(self, step: int) -> bool:
        return self.enabled and (step + 1) % self.every == 0

    def save(self, step: int, state: dict[str, Any]) -> None:
        """Record the loop after ``step`` (0-based) has finished."""
        if not self.enabled or not self.writes:
            return
        extra = {"step": step, "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        storage.save_checkpoint(self.path, kind="loop", name=self.path.stem, config_digest=self.digest, state=state,
                                extra=extra)

    def discard(self) -> None:
        """The loop finished: its final weights are saved elsewhere."""
        if self.enabled and self.writes and self.path.is_file():
            self.path.unlink()


def _rng_state(value: object, like: torch.Tensor) -> bool:
    """A generator state that can replace ``like``: a CPU uint8 vector of its length."""
    return (isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.device.type == "cpu"
            and value.shape == like.shape)
