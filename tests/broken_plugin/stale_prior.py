"""A plugin written against an older contract: its prior has no ``stream``; its metric still conforms."""

from dataclasses import dataclass

from anytime_bench import hookimpl


@dataclass
class _Config:
    pass


class StalePrior:
    """A prior from before ``stream``: it only samples whole sequences."""

    name = "stale"
    Config = _Config

    def __init__(self, config, vocab_size, seq_len):
        self.seq_len = seq_len

    def fit(self, train_codes, ctx):
        return {}

    def sample(self, n, length, *, generator, temperature, top_k):
        raise NotImplementedError

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class ConstantMetric:
    """Always 1 (a conforming component of the same plugin)."""

    name = "stale-constant"
    Config = _Config
    requires = "generated"
    higher_is_better = True

    def __init__(self, config):
        pass

    def compute(self, inputs, ctx):
        return 1.0

    def provenance(self):
        return {"implementation": "stale-constant"}


@hookimpl
def register_priors():
    return [StalePrior]


@hookimpl
def register_metrics():
    return [ConstantMetric]
