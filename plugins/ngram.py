"""A per-position n-gram prior over code sequences: the baseline that says how much the Transformer adds.

``order = 1`` draws each position's code from that position's own frequencies,
``P(c_i | i)``; ``order = 2`` also conditions on the code just drawn,
``P(c_i | c_{i-1}, i)`` (the first position has only its unigram). Fitting is
counting: one ``bincount`` over the training codes, seconds even for 60000
sequences of 64 codes, deterministic, with nothing to tune but the add-alpha
smoothing that keeps every code possible. Its ``val_loss`` is the held-out
cross-entropy in nats per code on the same held-out share of the training
codes as the transformer's (same generator, same permutation), so the two
figures compare directly.

The counts ``[D, C, K]`` are the whole state (``C = 1`` for a unigram,
``K + 1`` for a bigram: one row per previous code, and a start row for the
first position): a bigram over K = 512 codes at D = 64 positions keeps 67 MB.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from anytime_bench import RunContext, draw_codes, hookimpl, require


@dataclass
class NGramConfig:
    order: int = 2
    """1: a unigram per position, P(c_i | i); 2: a bigram per position, P(c_i | c_{i-1}, i), the first position
    drawn from its unigram."""
    smoothing: float = 0.5
    """Add-alpha smoothing: alpha is added to every count, so that no code is impossible (0.5: Jeffreys' prior)."""
    val_fraction: float = 0.1
    """Training codes held out, not counted, to measure val_loss (never the test set); the transformer's default
    share and split, so that the two val_loss figures compare."""

    def validate(self) -> None:
        require(self.order in (1, 2), "order", "must be 1 (unigram) or 2 (bigram)")
        require(math.isfinite(self.smoothing) and self.smoothing > 0, "smoothing", "must be a finite number > 0")
        require(0.0 <= self.val_fraction < 1.0, "val_fraction", "must be in [0, 1)")


class NGramPrior:
    """Per-position unigram or bigram of the codes, counted and add-alpha smoothed: a baseline for the Transformer."""

    name = "ngram"
    Config = NGramConfig
    kv_cache = False  # one table look-up per step: there is nothing to cache
    sampling_options = ("temperature", "top_k", "top_p")

    def __init__(self, config: NGramConfig, vocab_size: int, seq_len: int):
        self.config = config
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.contexts = vocab_size + 1 if config.order == 2 else 1
        self.start = self.contexts - 1  # the context of the first position (a unigram's only one)
        self.counts = torch.zeros(seq_len, self.contexts, vocab_size)  # untrained: every code equally likely

    def _rows(self, codes: torch.Tensor) -> torch.Tensor:
        """The row of ``counts`` (flattened over position and context) that each code of ``[N, D]`` was drawn from."""
        context = torch.full_like(codes, self.start)
        if self.config.order == 2:
            context[:, 1:] = codes[:, :-1]
        return torch.arange(codes.shape[1]) * self.contexts + context

    def distribution(self) -> torch.Tensor:
        """The smoothed next-code probabilities ``[D, C, K]``: row ``[i, c]`` is P(code at position i | context c),
        the context being the previous code for a bigram (``K``: the start, at position 0) and ``0`` for a unigram."""
        alpha = self.config.smoothing
        return (self.counts + alpha) / (self.counts.sum(-1, keepdim=True) + alpha * self.vocab_size)

    def nll(self, codes: torch.Tensor) -> float:
        """Mean negative log-likelihood of code sequences ``[N, D]`` in nats per code (the transformer's loss)."""
        return float(-self.log_prob(codes).mean())

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """Log-probability of each code of ``[N, L]`` given the one before it (the contract's ``log_prob``)."""
        codes = codes.long().cpu()
        rows = self._rows(codes)
        alpha = self.config.smoothing
        counts = self.counts.view(-1, self.vocab_size)
        return (counts[rows, codes] + alpha).log() - (counts.sum(-1)[rows] + alpha * self.vocab_size).log()

    def fit(self, train_codes: torch.Tensor, ctx: RunContext) -> dict[str, float]:
        codes = train_codes.long().cpu()
        # The transformer's held-out split (same generator offset, same permutation): the val_loss figures compare.
        perm = torch.randperm(len(codes), generator=ctx.generator(offset=23))
        n_val = int(len(codes) * self.config.val_fraction)
        val, train = codes[perm[:n_val]], codes[perm[n_val:]]
        flat = self._rows(train) * self.vocab_size + train
        size = self.seq_len * self.contexts * self.vocab_size
        self.counts = torch.bincount(flat.reshape(-1), minlength=size).view(self.counts.shape).float()
        stats = {"train_loss": self.nll(train), "codes_counted": train.numel()}
        if n_val:
            stats["val_loss"] = self.nll(val)
        return stats

    def stream(self, n: int, length: int, *, generator: torch.Generator, temperature: float = 1.0,
               top_k: int | None = None, top_p: float = 1.0) -> Iterator[torch.Tensor]:
        """Yield the ``n`` codes of each position in turn (``[n]`` int64 on the CPU); stop iterating to stop sampling."""
        if not 1 <= length <= self.seq_len:
            raise ValueError(f"length must be in 1..{self.seq_len}, got {length}")
        alpha = self.config.smoothing
        context = torch.full((n,), self.start, dtype=torch.long)
        for t in range(length):
            table = (self.counts[t] + alpha).log()  # unnormalised log-probabilities: softmax normalises each row
            codes = draw_codes(table[context], generator, temperature, top_k, top_p)[:, 0]
            if self.config.order == 2:
                context = codes
            yield codes

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != {"counts"}:
            raise KeyError(f"expected the key 'counts', got {sorted(map(str, state))[:5]}")
        counts = state["counts"]
        if not isinstance(counts, torch.Tensor) or counts.shape != self.counts.shape:
            raise ValueError(f"counts of shape {tuple(getattr(counts, 'shape', ()))}, expected "
                             f"{tuple(self.counts.shape)} (positions, contexts, codes)")
        if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
            raise ValueError("counts must be finite and >= 0")
        self.counts = counts.detach().float().cpu().clone()


@hookimpl
def register_priors():
    return [NGramPrior]
