"""Anytime sampling: stop at a budget, a wall-clock deadline or a stop signal, and still decode.

The prior streams one code per step (KV-cached where it has a cache); whatever
prefix has been reached when sampling stops is decoded into complete samples.
Progressive decoding decodes several prefixes of one sampling pass, so that
quality at every budget is measured from the same token sequence.

Both functions take components built by the core (``Run.load_trained``) or
plain plugin objects (a prior and an encoder constructed by hand).
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from anytime_bench.contract.components import BoundEncoder, BoundPrior
from anytime_bench.contract.conventions import tokens_for
from anytime_bench.contract.plugin_manager import Component, Origin

_DIRECT = Origin("(called directly)", "-", "-")


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


def as_prior(prior: Any) -> BoundPrior:
    if isinstance(prior, BoundPrior):
        return prior
    bound = BoundPrior(Component("prior", str(getattr(prior, "name", type(prior).__name__)), type(prior), _DIRECT),
                       prior)
    bound.vocab_size = getattr(prior, "vocab_size", None)
    bound.seq_len = getattr(prior, "seq_len", None)
    return bound


def as_encoder(encoder: Any, device: torch.device | None = None) -> BoundEncoder:
    if isinstance(encoder, BoundEncoder):
        return encoder
    bound = BoundEncoder(Component("encoder", str(getattr(encoder, "name", type(encoder).__name__)), type(encoder),
                                   _DIRECT), encoder, device)
    bound.code_length, bound.codebook_size = int(encoder.code_length), int(encoder.codebook_size)
    bound.data_shape = None
    return bound


def sample(prior: Any, encoder: Any, n: int, *, generator: torch.Generator, budget: float | None = None,
           tokens: int | None = None, deadline: float | None = None, stop: Callable[[], bool] | None = None,
           temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
           device: torch.device | None = None) -> AnytimeSample:
    """Sample ``n`` data points, generating codes until a ``budget`` (a fraction k/D of the code length, as a run's
    budgets are), ``tokens`` codes, ``deadline`` seconds or ``stop()``; without either, the whole length.

    ``stop`` is checked after every token, so a signal interrupts within one
    token step. At least one token is always generated, so the result always
    decodes. The deadline bounds generation; decoding runs after it.
    ``device`` is where a hand-built encoder decodes (default: the CPU);
    components built by the core know their device.
    """
    prior, encoder = as_prior(prior), as_encoder(encoder, device)
    D = encoder.code_length
    if budget is not None and tokens is not None:
        raise ValueError("give a budget (a fraction of the code length) or a number of tokens, not both")
    if budget is not None:
        # An integer is refused rather than read as a fraction: budget=1 once meant one token.
        if isinstance(budget, numbers.Integral) or not isinstance(budget, numbers.Real) or not 0 < budget <= 1:
            raise ValueError(f"budget is a fraction k/D of the code length, a float in (0, 1], got {budget!r} "
                             f"(tokens=k samples k of the {D} codes)")
        length = tokens_for(float(budget), D)
    else:
        length = D if tokens is None else tokens
        if isinstance(length, bool) or not isinstance(length, numbers.Integral) or not 1 <= length <= D:
            raise ValueError(f"tokens must be an integer in 1..{D}, got {tokens!r}")
        length = int(length)
    started = time.perf_counter()
    columns: list[torch.Tensor] = []
    reason: Literal["budget", "deadline", "stop"] = "budget"
    stream = prior.stream(n, length, generator=generator, temperature=temperature, top_k=top_k, top_p=top_p,
                          stage=f"anytime sampling of {encoder.name}")
    try:
        for column in stream:
            columns.append(column)
            if len(columns) == length:
                break
            if stop is not None and stop():
                reason = "stop"
                break
            if deadline is not None and time.perf_counter() - started >= deadline:
                reason = "deadline"
                break
    finally:
        stream.close()
    codes = torch.stack(columns, dim=1)
    sampled = time.perf_counter() - started
    data = encoder.decode(codes, f"decode {len(columns)} codes")
    return AnytimeSample(codes, data, len(columns), reason, sampled, time.perf_counter() - started - sampled)


def progressive(prior: Any, n: int, checkpoints: list[int], *, generator: torch.Generator,
                temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
                stage: str = "sample") -> dict[int, torch.Tensor]:
    """One sampling pass, returning the code prefix at every checkpoint ``k1 < k2 < ...``."""
    prior = as_prior(prior)
    wanted = sorted(set(checkpoints))
    if not wanted or wanted[0] < 1:
        raise ValueError(f"checkpoints must be positive token counts, got {checkpoints}")
    columns: list[torch.Tensor] = []
    out: dict[int, torch.Tensor] = {}
    for column in prior.stream(n, wanted[-1], generator=generator, temperature=temperature, top_k=top_k, top_p=top_p,
                               stage=stage):
        columns.append(column)
        if len(columns) in wanted:
            out[len(columns)] = torch.stack(columns, dim=1)
    return out
