"""Periodic checkpoints inside a training loop, so that an interrupted stage resumes instead of restarting.

A component's ``fit`` runs its steps through ``ctx.training_loop(...)``, a
:class:`TrainingLoop` that restores, skips finished stages, saves at the run's
cadence and discards at the end, so that the fit keeps only its own math.
Underneath, ``ctx.loop_checkpoint(name)`` gives the bare
:class:`LoopCheckpoint`: ``restore()`` once before the loop, ``save(step,
state)`` when ``due(step)``. The state saved (weights, optimizer, generators,
loop variables) must be enough to continue exactly: the global torch random
state is saved and restored here, so dropout masks continue where they
stopped. Writes are atomic: ``kill -9`` leaves the previous file.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from anytime_bench.errors import CheckpointError, first_line
from anytime_bench.files import storage


class LoopCheckpoint:
    def __init__(self, path: Path | None, digest: str, every: int, log=lambda message: None, writes: bool = True,
                 warn=None):
        self.path, self.digest, self.every, self.log = path, digest, every, log
        self.warn = warn or log
        """For a file not resumed from: heard even with ``--quiet``, since its steps are trained again."""
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
            self.warn(f"not resuming from {self.path}: {exc}")
            return None
        extra = payload["extra"]
        rng, cuda_rng, step = extra.get("torch_rng"), extra.get("cuda_rng"), extra.get("step")
        # Checked before any is set: a refused file must leave the random state of a fresh start.
        if not (_rng_state(rng, torch.get_rng_state()) and isinstance(step, int) and not isinstance(step, bool)
                and step >= 0 and (cuda_rng is None or isinstance(cuda_rng, list))):
            self.warn(f"not resuming from {self.path}: it holds no valid step and random state")
            return None
        torch.set_rng_state(rng)
        if torch.cuda.is_available() and cuda_rng is not None:
            current = torch.cuda.get_rng_state_all()
            if len(cuda_rng) == 1 and _rng_state(cuda_rng[0], torch.cuda.get_rng_state()):
                torch.cuda.set_rng_state(cuda_rng[0])  # this process's device (under torchrun, each rank's own)
            elif len(cuda_rng) == len(current) and all(map(_rng_state, cuda_rng, current)):
                torch.cuda.set_rng_state_all(cuda_rng)  # a checkpoint that saved every device's state
            else:  # another number of GPUs: the loop continues, its dropout masks no longer those of one run
                self.warn(f"{self.path}: the CUDA random state is for {len(cuda_rng)} devices; not restored")
        self.restored_step = step
        self.log(f"resuming {self.path.stem} after step {self.restored_step} from {self.path}")
        return payload["state"]

    def due(self, step: int) -> bool:
        return self.enabled and (step + 1) % self.every == 0

    def save(self, step: int, state: dict[str, Any]) -> None:
        """Record the loop after ``step`` (0-based) has finished."""
        if not self.enabled or not self.writes:
            return
        # At every save (the check saves the state's skeleton, not its weights): a state that could not be read
        # back would restart the loop from its first step, in silence.
        problem = storage.weights_only_problem(state)
        if problem:
            raise ValueError(f"the training loop's state holds what a checkpoint cannot (tensors and plain values "
                             f"only): {problem}")
        # The current device's state alone: under torchrun rank 0 saves for every rank, whose devices draw alike,
        # and the state of a device rank 0 does not use (another rank's) was never advanced.
        extra = {"step": step, "torch_rng": torch.get_rng_state(),
                 "cuda_rng": [torch.cuda.get_rng_state()] if torch.cuda.is_available() else None}
        storage.save_checkpoint(self.path, kind="loop", name=self.path.stem, config_digest=self.digest, state=state,
                                extra=extra)

    def discard(self) -> None:
        """The loop finished: its final weights are saved elsewhere."""
        if self.enabled and self.writes and self.path.is_file():
            self.path.unlink()


class TrainingLoop:
    """The steps of one resumable training loop, in one or more stages; ``ctx.training_loop(...)`` makes one.

    Used as a context manager around the stages. On entry it restores the last
    checkpoint of the same config, if any: the model's weights, the batch
    stream (with its generator, which the fit may share for its own draws), the
    global random state, and the values ``state()`` returned, which the fit
    reads back from :attr:`restored`. Each call of :meth:`steps` is the next
    stage: a finished one yields nothing, the interrupted one continues after
    its last saved step with its optimizer and scheduler restored, and after
    each step the loop advances the progress bar and saves when the run's
    cadence says so. Leaving the block normally discards the checkpoint (the
    fit's final weights are saved elsewhere); an exception keeps it for the
    next attempt. A fit may ``break`` out of a stage (early stopping): that
    step is not saved.
    """

    RESERVED = ("model", "batches", "stage", "step", "opt", "sched")
    """Keys of a saved state that the loop fills itself (the names the per-model loops used, so their files resume)."""

    def __init__(self, ctx: Any, checkpoint: LoopCheckpoint, model: torch.nn.Module, batches: Any,
                 state: Callable[[], dict[str, Any]] = dict):
        self.ctx, self.checkpoint, self.model, self.batches, self.state = ctx, checkpoint, model, batches, state
        self.restored: dict[str, Any] = {}
        """The values ``state()`` returned at the checkpoint resumed from; empty on a fresh start."""
        self.step = -1
        """The step last handed out by :meth:`steps` (0-based, within its stage), or restored; -1 before any."""
        self._saved: dict[str, Any] | None = None
        self._stage = 0
        self._open = contextlib.ExitStack()

    @property
    def resumed(self) -> bool:
        return self._saved is not None

    def __enter__(self) -> TrainingLoop:
        saved = self.checkpoint.restore()
        if saved is not None:
            stage, step = saved.get("stage", 0), saved.get("step")
            with self._fitting():
                if not (isinstance(saved.get("model"), dict) and isinstance(saved.get("batches"), dict)
                        and _count(stage) and _count(step)):
                    raise ValueError("it holds no model, batches, stage and step of a loop")
                if step != self.checkpoint.restored_step:
                    raise ValueError(f"its state is of step {step}, its envelope of step "
                                     f"{self.checkpoint.restored_step}")
                self.model.load_state_dict(saved["model"])
                self.batches.load_state_dict(saved["batches"])
            self.restored = {k: v for k, v in saved.items() if k not in self.RESERVED}
            self.step = step
            self._saved = saved
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self._open.close()
        if kind is None:
            if self._saved is not None and self._saved.get("stage", 0) >= self._stage:
                # a checkpoint of a stage that this loop never reached: the fit skipped every step after it
                raise self._refused(f"it is of stage {self._saved.get('stage', 0)}, and the loop has "
                                    f"{self._stage} stage(s)")
            self.checkpoint.discard()

    @contextlib.contextmanager
    def _fitting(self) -> Iterator[None]:
        """What a checkpoint from elsewhere holds is untrusted: a state that does not fit the loop's model, data
        stream, optimizer or scheduler is the file's fault (one line naming it), never half-loaded and trained on."""
        try:
            yield
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise self._refused(first_line(exc) or type(exc).__name__) from None

    def _refused(self, why: str) -> CheckpointError:
        return CheckpointError(f"{self.checkpoint.path}: the training loop's checkpoint does not fit it ({why[:300]}): "
                               f"remove it to train this loop from its start")

    def steps(self, label: str, total: int, optimizer: torch.optim.Optimizer | None = None,
              scheduler: Any = None) -> Iterator[int]:
        """The steps of the next stage, ``range(first, total)`` under a progress bar named ``label``.

        ``optimizer`` and ``scheduler`` are this stage's (made afresh by the fit
        for each stage): their states are restored when this is the stage the
        checkpoint was saved in, and saved with every checkpoint. Set what the
        bar shows with :meth:`show`.
        """
        stage, self._stage = self._stage, self._stage + 1
        saved, first = self._saved, 0
        if saved is not None:
            if stage < saved.get("stage", 0):
                return
            if stage == saved.get("stage", 0):
                with self._fitting():
                    if saved["step"] >= total:
                        raise ValueError(f"it is of step {saved['step']} of a stage of {total} steps")
                    if optimizer is not None:
                        optimizer.load_state_dict(saved["opt"])
                        _check_optimizer(optimizer)
                    if scheduler is not None:
                        scheduler.load_state_dict(saved["sched"])
                        if not _count(getattr(scheduler, "last_epoch", 0)):
                            raise ValueError(f"the scheduler's last epoch is {_shown(scheduler.last_epoch)}")
                first = saved["step"] + 1
        with contextlib.ExitStack() as bar:
            self._open.callback(bar.close)  # a stage left by ``break`` closes its bar with the loop
            self._task, self._info = bar.enter_context(self.ctx.progress(label, total)), {}
            self._task.advance(first)
            for step in range(first, total):
                self.step = step
                yield step
                self._task.advance(**self._info)
                if self.checkpoint.due(step):
                    self.checkpoint.save(step, self._state(stage, step, optimizer, scheduler))

    def show(self, **info: float | str) -> None:
        """What the progress bar shows after this step (``loss=...``)."""
        self._info = info

    def _state(self, stage: int, step: int, optimizer, scheduler) -> dict[str, Any]:
        extra = self.state()
        clash = sorted(set(extra) & set(self.RESERVED))
        if clash:
            raise ValueError(f"training loop state keys {clash} are the loop's own")
        state = {"model": self.model.state_dict(), "batches": self.batches.state_dict(), "stage": stage,
                 "step": step, **extra}
        if optimizer is not None:
            state["opt"] = optimizer.state_dict()
        if scheduler is not None:
            state["sched"] = scheduler.state_dict()
        return state


_PER_ELEMENT = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "exp_inf", "momentum_buffer", "square_avg", "grad_avg",
                "sum", "acc_delta", "prev", "step_size", "ax"}
"""Statistics of torch's optimizers shaped as their parameter (a factored one, Adafactor's, is not)."""
_SQUARES = {"exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum", "acc_delta"}
"""Of those, the means of squares: never negative."""


def _check_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """What ``load_state_dict`` takes on trust from a file: settings of the kinds the optimizer was made with, finite,
    the learning rate not negative; each parameter's running statistics of its own shape and finite, the second
    moments not negative; else ``ValueError``."""
    for group in optimizer.param_groups:
        for key, default in optimizer.defaults.items():
            value = group.get(key)
            if _number(default) and not _number(value):
                raise ValueError(f"the optimizer's {key} is {_shown(value)}")
            if isinstance(default, tuple) and not (isinstance(value, tuple | list) and len(value) == len(default)
                                                   and all(_number(v) for v in value)):
                raise ValueError(f"the optimizer's {key} is {_shown(value)}")
        if _number(group.get("lr")) and float(group["lr"]) < 0:
            raise ValueError(f"the optimizer's learning rate is {float(group['lr'])}")
    for parameter, state in optimizer.state.items():
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                continue
            if key in _PER_ELEMENT and value.shape != parameter.shape:
                raise ValueError(f"the optimizer's {key} of a parameter of shape {tuple(parameter.shape)} has shape "
                                 f"{tuple(value.shape)}")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(f"the optimizer's {key} holds a value that is not finite")
            if key in _SQUARES and bool((value < 0).any()):
                raise ValueError(f"the optimizer's {key}, a mean of squares, holds a negative value")


def _number(value: object) -> bool:
    """A finite real number (a one-element tensor too, as torch keeps a learning rate that is one)."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.is_complex() and bool(torch.isfinite(value).all())
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: object) -> str:
    return repr(value)[:40] if isinstance(value, str | int | float | tuple | list) else type(value).__name__


def _count(value: object) -> bool:
    """A stage or step number as the loop saves them: an int (not a bool), -1 or more."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= -1


def _rng_state(value: object, like: torch.Tensor) -> bool:
    """A generator state that can replace ``like``: a CPU uint8 vector of its length."""
    return (isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.device.type == "cpu"
            and value.shape == like.shape)
