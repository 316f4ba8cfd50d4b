"""A prior plugin: an independent categorical distribution per position (no context, no key/value cache)."""

from dataclasses import dataclass

import torch

from anytime_bench import hookimpl, require


@dataclass
class UnigramConfig:
    smoothing: float = 0.5
    """Pseudo-count added to every code at every position."""

    def validate(self):
        require(self.smoothing > 0, "smoothing", "must be > 0")


class UnigramPrior:
    """Each position's codes drawn from their training frequencies at that position."""

    name = "unigram"
    Config = UnigramConfig

    def __init__(self, config, vocab_size, seq_len):
        self.config = config
        self.counts = torch.zeros(seq_len, vocab_size)

    def fit(self, train_codes, ctx):
        self.counts = torch.zeros_like(self.counts)
        self.counts.scatter_add_(1, train_codes.T, torch.ones(train_codes.T.shape))
        return {"positions": self.counts.shape[0]}

    def stream(self, n, length, *, generator, temperature=1.0, top_k=None):
        for position in range(length):  # one step per code: stopping early costs nothing more
            logits = torch.log(self.counts[position] + self.config.smoothing) / temperature
            if top_k:
                logits[logits < torch.topk(logits, top_k).values[-1]] = float("-inf")
            yield torch.multinomial(torch.softmax(logits, 0), n, replacement=True, generator=generator)

    def log_prob(self, codes):  # optional: what metrics of likelihoods (nll) score; stream's law at temperature 1
        table = torch.log_softmax(torch.log(self.counts + self.config.smoothing), -1)
        return table[torch.arange(codes.shape[1]), codes]

    def state_dict(self):
        return {"counts": self.counts}

    def load_state_dict(self, state):
        self.counts = state["counts"]


@hookimpl
def register_priors():
    return [UnigramPrior]
