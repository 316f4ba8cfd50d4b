"""Several processes through torchrun and DistributedDataParallel; one process is the default.

Launched as ``torchrun --nproc_per_node N -m anytime_bench train ...`` (or the
``anytime-bench`` script), every process trains the same components on its own
share of each batch; DDP averages their gradients so the weights stay equal.
Only rank 0 writes files: the run and the context know which process is the main one.
"""

from __future__ import annotations

import atexit
import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Topology:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> tuple[Topology, torch.device]:
    """Join the process group torchrun describes in the environment; a lone process stays alone."""
    import torch.distributed as dist

    if not launched_by_torchrun():
        return Topology(), device
    topo = Topology(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        device = torch.device("cuda", topo.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        # Left to interpreter shutdown, gloo's worker threads can abort the process (SIGABRT, "terminate called
        # without an active exception": pytorch/pytorch#190489): leave the group while Python is still alive.
        atexit.register(leave_process_group)
    return topo, device


def leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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
    data; ``digest`` hashes the indices this rank has used, for the record.
    ``state_dict`` makes the stream resumable mid-epoch.
    """

    def __init__(self, n_items: int, batch_size: int, generator: torch.Generator, topo: Topology):
        if n_items < topo.world_size:
            raise ValueError(f"{n_items} items cannot be shared among {topo.world_size} processes")
        self.n_items, self.batch_size, self.generator, self.topo = n_items, batch_size, generator, topo
        self.order = torch.empty(0, dtype=torch.long)
        self.cursor = 0
        self.seen = hashlib.sha256()
        self.count = 0

    def _reshuffle(self) -> None:
        shared = torch.randperm(self.n_items, generator=self.generator)
        # Equal shares: every rank reshuffles at the same step, keeping shared generators in step.
        self.order = shared[self.topo.rank::self.topo.world_size][:self.n_items // self.topo.world_size]
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
        return {"order": self.order.clone(), "cursor": self.cursor, "generator": self.generator.get_state(),
                "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order, self.cursor, self.count = state["order"], int(state["cursor"]), int(state["count"])
        self.generator.set_state(state["generator"])
