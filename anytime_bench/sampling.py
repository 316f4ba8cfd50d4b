"""Anytime sampling: stop at a budget, a wall-clock deadline or a stop signal, and still decode.

The prior streams one code per step (KV-cached); whatever prefix has been
reached when sampling stops is decoded into complete samples. Progressive
decoding decodes several prefixes of one sampling pass, so that quality at every
budget is measured from the same token sequence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch


@dataclass
class AnytimeSample:
    codes: torch.Tensor
    """``[n, tokens]`` codes reached."""
    data: torch.Tensor
    """Decoded samples."""
    tokens: int
    stopped_by: Literal["budget", "deadline", "stop"]
    sampling_seconds: float
    decode_seconds: float


def _stream(prior: Any, n: int, length: int, generator: torch.Generator, temperature: float,
            top_k: int | None) -> Iterator[torch.Tensor]:
    stream = getattr(prior, "stream", None)
    if stream is None:
        raise TypeError(f"prior {getattr(prior, 'name', prior)!r} has no stream(); anytime sampling needs one")
    return stream(n, length, generator=generator, temperature=temperature, top_k=top_k)


def sample(prior: Any, encoder: Any, n: int, *, generator: torch.Generator, budget: int | None = None,
           deadline: float | None = None, stop: Callable[[], bool] | None = None, temperature: float = 1.0,
           top_k: int | None = None) -> AnytimeSample:
    """Sample ``n`` data points, generating codes until ``budget`` tokens, ``deadline`` seconds or ``stop()``.

    ``stop`` is checked after every token, so a signal interrupts within one
    token step. At least one token is always generated, so the result always
    decodes. The deadline bounds generation; decoding runs after it.
    """
    D = int(encoder.code_length)
    length = D if budget is None else budget
    if not 1 <= length <= D:
        raise ValueError(f"budget must be in 1..{D}, got {budget}")
    started = time.perf_counter()
    columns: list[torch.Tensor] = []
    reason: Literal["budget", "deadline", "stop"] = "budget"
    for column in _stream(prior, n, length, generator, temperature, top_k):
        columns.append(column)
        if len(columns) == length:
            break
        if stop is not None and stop():
            reason = "stop"
            break
        if deadline is not None and time.perf_counter() - started >= deadline:
            reason = "deadline"
            break
    codes = torch.stack(columns, dim=1).cpu()
    sampled = time.perf_counter() - started
    device = next(iter(encoder.parameters())).device if hasattr(encoder, "parameters") else torch.device("cpu")
    data = encoder.decode(codes.to(device)).cpu()
    return AnytimeSample(codes, data, len(columns), reason, sampled, time.perf_counter() - started - sampled)


def progressive(prior: Any, n: int, checkpoints: list[int], *, generator: torch.Generator,
                temperature: float = 1.0, top_k: int | None = None) -> dict[int, torch.Tensor]:
    """One sampling pass, returning the code prefix at every checkpoint ``k1 < k2 < ...``."""
    wanted = sorted(set(checkpoints))
    if not wanted or wanted[0] < 1:
        raise ValueError(f"checkpoints must be positive token counts, got {checkpoints}")
    columns: list[torch.Tensor] = []
    out: dict[int, torch.Tensor] = {}
    for column in _stream(prior, n, wanted[-1], generator, temperature, top_k):
        columns.append(column)
        if len(columns) in wanted:
            out[len(columns)] = torch.stack(columns, dim=1).cpu()
    return out
