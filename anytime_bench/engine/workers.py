"""Training several (model, training seed) jobs at once, in worker processes, on a CPU or one GPU.

The models of this benchmark are small: on a CPU, a second thread speeds one
training loop up by a few percent, while a second process training another
model doubles the throughput. So on a CPU the train stage runs its jobs in a
pool of worker processes (``[run] workers``; 0 picks one per core), each on
one thread (:data:`TRAINING_THREADS`). Every job seeds its own random streams
and trains on one thread, so a job's result does not depend on which worker
ran it, how many there were or what ran before.

A worker is a fresh ``spawn``-ed interpreter: it loads the plugins from their
entry points, rebuilds the run from its config, loads the data and trains one
job at a time, writing checkpoints into the run folder; the parent records the
results. A worker dies with its parent (Linux), so a killed run leaves no
orphan writing into its folder; an interrupted one (Ctrl-C, SIGTERM) stops its
workers' jobs at once, keeping their checkpoints, as a run without workers
stops. On a GPU, workers run only when asked for
(``workers`` > 1): these models' kernels are too small to keep the device
busy, so several processes training at once can share it, but each holds its
own CUDA context.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from anytime_bench.errors import Interrupted


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to rebuild the run: the config and the defaults it is reckoned against, the folder, and
    the device."""

    config: dict[str, Any]
    root: str
    device: str
    baseline: dict[str, Any] | None = None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


TRAINING_THREADS = 1
"""Threads of a training job on a CPU, in a worker or in this process. On two threads the same command trained
other weights on the same machine from one try to the next (one run in four of a one-job tiny config: the threads
sum a convolution's gradients in an order that varies); on one it gives the same weights every time, whichever
worker trains the job and however many workers there are. A second thread gains one training loop a few percent;
a second worker process doubles the throughput."""


@contextlib.contextmanager
def training_threads(device: torch.device) -> Iterator[None]:
    """:data:`TRAINING_THREADS` on a CPU while the block runs (training in this process), then as before."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def worker_count(requested: int, jobs: int, device: torch.device, world_size: int, in_process_plugins: bool) -> int:
    """How many worker processes to train with; 1 means in this process."""
    if jobs <= 1 or world_size > 1 or in_process_plugins or (device.type != "cpu" and requested <= 1):
        return 1
    wanted = requested if requested > 0 else available_cores()
    return max(1, min(wanted, jobs))


def _die_with_parent(parent: int) -> None:
    """Ask for SIGTERM when ``parent`` dies, and leave at once if it died already.

    A worker starts slowly (importing torch takes seconds). A parent killed in
    that time is gone before the request is made, and the request would then
    never fire: the worker would go on training the jobs already queued to it.
    """
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    _leave_if_orphaned(parent)


def _leave_if_orphaned(parent: int) -> None:
    """Exit at once, without clean-up, when ``parent`` is no longer this worker's parent (it died)."""
    if os.getppid() != parent:
        os._exit(1)


_RUN: Any = None
_BUSY = False
_STOPPING = 0
"""The first stop signal this worker got (0: none): its jobs end as :class:`Interrupted` by it, which the parent
raises, so that the run reports the signal that stopped it and exits as it would."""
_PARENT = 0
#: Stop a run; deferred while workers start, so that one reaches a worker only once it handles it.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _stop_signals_deferred() -> Iterator[None]:
    """Defer SIGINT and SIGTERM while workers are spawned, then raise the first one that came.

    A signal to the whole process group (Ctrl-C in a terminal, a scheduler's stop) killed a worker still importing
    torch; the pool, broken, then failed the jobs the run had just cancelled, and CPython 3.11 printed that
    InvalidStateError's traceback above the run's one line. So the signals are held (blocked) in this thread: a
    process inherits the signals its parent holds, across exec, and a worker gets them only once
    :func:`_initialize` has set its handlers. Holding them here is not enough for this process: another thread (a
    progress bar's) takes a signal this one holds, and Python runs its handler in this thread all the same, in the
    middle of a spawn. So the handlers only note the signal until the workers are spawned.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield
        return
    caught: list[int] = []
    previous: dict[int, Any] = {}
    held = None
    try:
        for sig in _STOP_SIGNALS:
            previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
        if hasattr(signal, "pthread_sigmask"):
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        yield
    finally:
        if held is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, which cannot be put back
                signal.signal(sig, handler)
    if caught:
        signal.raise_signal(caught[0])


def _on_interrupt(signum: int, frame: object) -> None:
    """A worker's SIGINT (Ctrl-C in a terminal, or the parent passing on its interrupt), or its SIGTERM from anyone
    but the death signal (:func:`_on_terminate`): the job it trains stops
    (its :class:`Interrupted` goes back to the parent as the job's outcome) and so does any job queued to it. An idle
    worker only takes note: raised in the pool's own wait for work, it printed a traceback. Only the first counts,
    so that a second one (the terminal's, then the parent's) cannot break into the first one's clean-up."""
    global _STOPPING
    if _STOPPING:
        return
    _STOPPING = signum
    if _BUSY:
        raise Interrupted(signum)


def _on_terminate(signum: int, frame: object) -> None:
    """A worker's SIGTERM: its parent died (the death signal :func:`_die_with_parent` asked for), and the worker
    leaves at once; or the run's process group was told to stop, and the worker stops as on SIGINT, so that the
    pool stays whole and the parent records the interrupted jobs."""
    _leave_if_orphaned(_PARENT)
    _on_interrupt(signum, frame)


def _initialize(spec: JobSpec, threads: int, parent: int) -> None:
    global _RUN, _PARENT
    _PARENT = parent
    signal.signal(signal.SIGINT, _on_interrupt)
    signal.signal(signal.SIGTERM, _on_terminate)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # held since the spawn: a pending one runs now
    _die_with_parent(parent)
    torch.set_num_threads(threads)
    from anytime_bench.contract.plugin_manager import load_plugins

    _RUN = worker_run(spec, load_plugins())


def worker_run(spec: JobSpec, plugins: Any) -> Any:
    """The run as a worker rebuilds it from ``spec``: its config reckoned against the identity the parent's is
    (the recorded one of a resumed run), so that every key and digest agrees with the parent's."""
    from anytime_bench.engine.config import build_config
    from anytime_bench.engine.run import Run

    cfg = build_config(spec.config, plugins)
    cfg.run.device = spec.device
    cfg.baseline = spec.baseline
    return Run.for_worker(cfg, plugins, Path(spec.root))


def _job(train: Callable[..., dict[str, Any]], model: str, train_seed: int, tokens: int | None) -> dict[str, Any]:
    global _BUSY
    _BUSY = True  # before looking at _STOPPING: an interrupt in between raises rather than being missed
    try:
        if _STOPPING:
            raise Interrupted(_STOPPING)
        return train(_RUN, model, train_seed, tokens)
    finally:
        _BUSY = False


def _interrupt(workers: set[multiprocessing.process.BaseProcess]) -> None:
    """Pass an interrupt on to the workers: the parent alone gets one from ``kill PID`` or a container's stop, and
    would otherwise wait for every job already handed out (they cannot be cancelled) to train to its end."""
    for worker in workers:
        if worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGINT)


def run_jobs(spec: JobSpec, jobs: list[tuple[str, int, int | None]], workers: int,
             train: Callable[..., dict[str, Any]], done: Callable[..., None]) -> None:
    """Train every ``(model, train_seed, tokens)`` job with ``train(run, model, seed, tokens)`` in ``workers``
    processes; call ``done(model, seed, tokens, info)`` in this process as each finishes. The first failure is
    raised once the jobs already running have stopped; those of them that finished are recorded (``done``) all the
    same."""
    threads = TRAINING_THREADS if torch.device(spec.device).type == "cpu" else max(1, available_cores() // workers)
    context = multiprocessing.get_context("spawn")
    others = set(multiprocessing.active_children())
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_initialize,
                             initargs=(spec, threads, os.getpid())) as pool:
        pending: dict[Any, tuple[str, int, int | None]] = {}
        failure: BaseException | None = None
        try:
            # every worker is spawned by the first submits; a signal deferred meanwhile is raised on leaving, in here
            with _stop_signals_deferred():
                for job in jobs:
                    pending[pool.submit(_job, train, *job)] = job
            while pending:
                finished, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    job = pending.pop(future)
                    if future.cancelled():
                        continue
                    error = future.exception()
                    if error is None:
                        # also once a job has failed: the jobs running then are recorded as they finish, as
                        # training in this process records every job before the one that failed
                        done(*job, future.result())
                    elif isinstance(error, KeyboardInterrupt):
                        # the worker's traceback is of no use to whoever stopped the run: one traceback, not two
                        raise error.with_traceback(None) from None
                    elif failure is None:
                        failure = error
                        for other in pending:
                            other.cancel()
        except BaseException as exc:
            for future in pending:
                future.cancel()
            if isinstance(exc, KeyboardInterrupt):  # a failed job leaves the others running to their end
                _interrupt(set(multiprocessing.active_children()) - others)
            raise
        if failure is not None:
            raise failure
