"""Several processes through torchrun and DistributedDataParallel; one process is the default.

Launched as ``torchrun --nproc_per_node N -m anytime_bench train ...`` (or the
``anytime-bench`` script), every process trains the same components on its own
share of each epoch, ``batch_size`` items a step; DDP averages their gradients so the weights stay equal.
Only rank 0 writes files: the run and the context know which process is the main one.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import torch

from anytime_bench.errors import ConfigError, first_line

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What torchrun sets for every process: all of them, or none (a lone process)."""

JOIN_TIMEOUT_VARIABLE = "ANYTIME_BENCH_JOIN_TIMEOUT"
DEFAULT_JOIN_TIMEOUT = 300.0
"""Seconds a process waits for the others to join the process group: a rank that never starts (a wrong
WORLD_SIZE, a crashed peer) ends the wait in one line instead of torch's 30 minutes. Only the join is bounded
this tightly; collectives afterwards keep torch's default timeout."""

MAX_PROCESSES = 1 << 20


@dataclass(frozen=True)
class Topology:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _bad(name: str, value: str, why: str) -> ConfigError:
    return ConfigError(f"environment variable {name}={value[:40]!r} {why}: torchrun sets {', '.join(TORCHRUN_VARIABLES)} "
                       "together (unset them all for one process)")


def _integer(env: Mapping[str, str], name: str, low: int, high: int) -> int:
    value = env[name]
    if not re.fullmatch(r"[0-9]{1,9}", value.strip(" \t")):  # ASCII digits only: int() also takes '١'
        raise _bad(name, value, "is not a whole number")
    number = int(value)
    if not low <= number <= high:
        raise _bad(name, value, f"is outside {low}..{high}")
    return number


def topology_from_env(env: Mapping[str, str] | None = None) -> Topology:
    """The process layout that torchrun describes in the environment, every variable checked before any process
    group starts: all present or none, whole numbers, ``RANK`` and ``LOCAL_RANK`` below ``WORLD_SIZE``, a port in
    1..65535. A bad value is a one-line :class:`ConfigError` naming the variable; without any, a lone process."""
    env = os.environ if env is None else env
    given = [name for name in TORCHRUN_VARIABLES if name in env]
    if not any(name in env for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK")):
        return Topology()  # MASTER_ADDR or MASTER_PORT alone may be left in a shell: unused without the others
    missing = [name for name in TORCHRUN_VARIABLES if name not in given]
    world = _integer(env, "WORLD_SIZE", 1, MAX_PROCESSES) if "WORLD_SIZE" in env else None
    if missing and (world is None or world > 1 or missing != ["MASTER_ADDR", "MASTER_PORT"]):
        name = missing[0]
        raise ConfigError(f"environment variable {name} is not set, but {', '.join(given)} is: torchrun sets "
                          f"{', '.join(TORCHRUN_VARIABLES)} together (unset them all for one process)")
    assert world is not None
    rank = _integer(env, "RANK", 0, MAX_PROCESSES)
    if rank >= world:
        raise _bad("RANK", env["RANK"], f"is not below WORLD_SIZE={world}")
    local_rank = _integer(env, "LOCAL_RANK", 0, MAX_PROCESSES)
    if local_rank >= world:
        raise _bad("LOCAL_RANK", env["LOCAL_RANK"], f"is not below WORLD_SIZE={world}")
    if "MASTER_PORT" in env:
        _integer(env, "MASTER_PORT", 1, 65535)
    if "MASTER_ADDR" in env:
        addr = env["MASTER_ADDR"]
        if not addr or len(addr) > 253 or not re.fullmatch(r"[A-Za-z0-9._:%\[\]-]+", addr):
            raise _bad("MASTER_ADDR", addr, "is not a host name or address")
    return Topology(rank, world, local_rank)


def join_timeout(env: Mapping[str, str] | None = None) -> float:
    """Seconds to wait for every process to join: :data:`JOIN_TIMEOUT_VARIABLE`, or :data:`DEFAULT_JOIN_TIMEOUT`."""
    env = os.environ if env is None else env
    text = env.get(JOIN_TIMEOUT_VARIABLE, "")
    if not text:
        return DEFAULT_JOIN_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0.1 <= seconds <= 86400:
        raise _bad(JOIN_TIMEOUT_VARIABLE, text, "is not a number of seconds in [0.1, 86400]")
    return seconds


def launched_by_torchrun() -> bool:
    return topology_from_env().world_size > 1


def init_from_env(device: torch.device) -> tuple[Topology, torch.device]:
    """Join the process group torchrun describes in the environment; a lone process stays alone.

    The environment is checked first (:func:`topology_from_env`), and the join waits at most
    :func:`join_timeout` seconds: a process group that cannot be joined is one line, never a hang.
    """
    import torch.distributed as dist

    topo = topology_from_env()
    if topo.world_size == 1:
        return topo, device
    timeout = join_timeout()
    if device.type == "cuda":
        if topo.local_rank >= torch.cuda.device_count():
            raise _bad("LOCAL_RANK", str(topo.local_rank), f"names no GPU of this machine, which has "
                                                           f"{torch.cuda.device_count()}")
        device = torch.device("cuda", topo.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        try:
            with _quiet_stderr() as drop:  # torch's C++ layer logs every retry with a stack: the line below says it
                try:
                    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                            timeout=timedelta(seconds=timeout))
                except Exception:
                    drop()
                    raise
        except Exception as exc:  # torch's DistStoreError, a refused or busy port, an unknown host
            leave_process_group()
            raise ConfigError(f"rank {topo.rank} of {topo.world_size} could not join the process group at {where} "
                              f"within {timeout:g} s: are all {topo.world_size} processes started? "
                              f"({JOIN_TIMEOUT_VARIABLE}=seconds sets the wait; torch says: "
                              f"{first_line(exc, 100) or type(exc).__name__})") from None
        # Left to interpreter shutdown, gloo's worker threads can abort the process (SIGABRT, "terminate called
        # without an active exception": pytorch/pytorch#190489): leave the group while Python is still alive.
        atexit.register(leave_process_group)
        if hasattr(dist, "set_timeout"):  # the short wait was for joining; collectives keep torch's default
            from torch.distributed.constants import default_pg_nccl_timeout, default_pg_timeout

            dist.set_timeout(default_pg_nccl_timeout if device.type == "cuda" else default_pg_timeout)
    return topo, device


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[Callable[[], None]]:
    """Hold what is written to file descriptor 2 (by C++ code too) until the block ends, then write it out, unless
    the block called the function it was given: the failure it logged is then reported in one line instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    held = tempfile.TemporaryFile()
    dropped = False

    def drop() -> None:
        nonlocal dropped
        dropped = True

    os.dup2(held.fileno(), 2)
    try:
        yield drop
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if not dropped:
            held.seek(0)
            text = held.read()
            if text:
                sys.stderr.write(text.decode("utf-8", "replace"))
        held.close()


def leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def in_process_group() -> bool:
    """Whether this process joined a process group (without importing torch where nothing did)."""
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


def end_rank(code: int | str | None) -> NoReturn:
    """End a process of a process group with exit status ``code``: leave the group, flush, and exit without the
    interpreter's finalization.

    Finalization is where gloo aborted a rank (SIGABRT, "terminate called without an active exception", seen once
    in CI on a loaded machine): a gloo worker thread that drops the last reference to a tensor after a collective
    needs the GIL, and a thread that asks for the GIL while the interpreter is finalizing is ended by
    ``pthread_exit``, whose unwinding through C++ aborts the process. The atexit hook of :func:`init_from_env`
    narrows that window; exiting here, once everything is written and flushed, closes it.

    The atexit hooks still run, as they would at any exit, before finalization begins (the interpreter is whole
    then): plugins' clean-ups (a metric's temporary copy of its weights, a third party's files or logger) are not
    skipped under torchrun alone.
    """
    if isinstance(code, str):
        print(code, file=sys.stderr)
    status = 0 if code is None else code if isinstance(code, int) else 1
    try:
        leave_process_group()
        atexit._run_exitfuncs()  # prints and goes on past a hook that fails, as at any exit
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)


PEER_LOST_SIGNS = ("gloo/transport/", "NCCL communicator was aborted", "ncclRemoteError",
                   "remote process exiting prematurely")
"""What torch's collectives say, in a plain RuntimeError, when another process of the group went away: gloo names its
transport's source file, NCCL its aborted communicator. A plugin's own error that mentions a lost connection (a
download, say) does neither. DDP's collectives run in C++ hooks of the backward pass, so where the error is raised
does not tell."""


def peer_lost(exc: BaseException) -> str | None:
    """What ``exc`` says, in a few words, when it is a collective of this process's group failing because another
    process went away; None for any other exception."""
    if not in_process_group():
        return None
    dist = sys.modules["torch.distributed"]
    text = str(exc)
    if isinstance(exc, RuntimeError) and any(sign in text for sign in PEER_LOST_SIGNS):
        return next((said for said in ("Connection reset by peer", "Connection closed by peer") if said in text),
                    "the group's connection failed")
    network = getattr(dist, "DistNetworkError", None)
    if network is not None and isinstance(exc, network):
        return first_line(exc, 120) or type(exc).__name__
    return None


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value of ``obj`` on every rank (run ids, say, that must agree)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def weights_digest(state: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        if torch.is_tensor(value):
            digest.update(key.encode())
            digest.update(value.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class Batches:
    """Mini-batch indices for this process: each epoch one shared permutation, dealt out across ranks.

    Every rank draws the same permutation from the same generator and keeps its
    own stride of it (as torch's DistributedSampler does), so ranks see disjoint
    data, ``batch_size`` items per process and step; ``digest`` hashes the
    indices this rank has drawn in this process, for the record. ``state_dict``
    makes the stream resumable mid-epoch: it holds the epoch's whole permutation
    and the number of processes, the same on every rank, so that the state rank
    0 saves continues every rank's own share.
    """

    def __init__(self, n_items: int, batch_size: int, generator: torch.Generator, topo: Topology):
        if n_items < topo.world_size:
            raise ValueError(f"{n_items} items cannot be shared among {topo.world_size} processes")
        self.n_items, self.batch_size, self.generator, self.topo = n_items, batch_size, generator, topo
        self.permutation = torch.empty(0, dtype=torch.long)
        """The epoch's shared permutation (empty before the first): what every rank's share is dealt from."""
        self.order = self.permutation
        self.cursor = 0
        self.seen = hashlib.sha256()
        self.count = 0

    def _deal(self, permutation: torch.Tensor) -> None:
        # Equal shares: every rank reshuffles at the same step, keeping shared generators in step.
        self.permutation = permutation
        self.order = permutation[self.topo.rank::self.topo.world_size][:self.n_items // self.topo.world_size]

    def _reshuffle(self) -> None:
        self._deal(torch.randperm(self.n_items, generator=self.generator))
        self.cursor = 0

    def next(self) -> torch.Tensor:
        size = min(self.batch_size, self.n_items // self.topo.world_size)
        if self.cursor + size > len(self.order):
            self._reshuffle()
        idx = self.order[self.cursor:self.cursor + size]
        self.cursor += size
        self.seen.update(idx.numpy().tobytes())
        self.count += len(idx)
        return idx

    @property
    def digest(self) -> str:
        return self.seen.hexdigest()[:16]

    def state_dict(self) -> dict[str, Any]:
        # One process's "order" was its share, which is the whole permutation: its checkpoints of before read as ever.
        return {"order": self.permutation.clone(), "cursor": self.cursor, "generator": self.generator.get_state(),
                "count": self.count, "processes": self.topo.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream of ``state_dict``; a state this stream could not have saved (from a checkpoint made
        elsewhere, or by another number of processes) raises ``ValueError`` before anything is set."""
        order, cursor, count = state["order"], state["cursor"], state["count"]
        processes = state.get("processes", 1)
        world = self.topo.world_size
        if "processes" not in state and isinstance(order, torch.Tensor) and len(order) not in (0, self.n_items):
            raise ValueError(f"its order holds {len(order)} items, not {self.n_items}: a checkpoint of other data, "
                             f"or of an earlier version's torchrun run (each held one rank's share, which cannot "
                             f"resume every rank)")
        if not (isinstance(processes, int) and not isinstance(processes, bool) and 1 <= processes <= MAX_PROCESSES):
            raise ValueError("the batch stream's number of processes is not a whole number of at least 1")
        if processes != world:
            # A share and the items of a step are per process: another count cannot continue this epoch's order.
            how = f"`torchrun --nproc_per_node {processes}`" if processes > 1 else "one process, without torchrun"
            raise ValueError(f"it was saved by a run of {processes} process(es) and this one has {world}; resume it "
                             f"with {how}")
        if not (isinstance(order, torch.Tensor) and order.dtype == torch.long and order.dim() == 1
                and len(order) in (0, self.n_items) and bool(((order >= 0) & (order < self.n_items)).all())
                and len(order.unique()) == len(order)):  # a permutation: each item once
            raise ValueError(f"the batch stream's order is not a permutation of {self.n_items} item indices")
        share = self.n_items // world if len(order) else 0
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (cursor, count)) \
                or not 0 <= cursor <= share or not 0 <= count < 2**63:
            raise ValueError("the batch stream's cursor or count is out of its range")
        self.generator.set_state(state["generator"])
        self._deal(order)
        self.cursor, self.count = cursor, count
