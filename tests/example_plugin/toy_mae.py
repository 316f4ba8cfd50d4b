"""A metric plugin: the mean absolute error of reconstructions."""

from dataclasses import dataclass

from anytime_bench import hookimpl, to_unit


@dataclass
class NoOptions:
    pass


class MeanAbsoluteError:
    """Mean absolute error of test reconstructions from the first k codes (data mapped to [0, 1])."""

    name = "mae"
    Config = NoOptions
    requires = "reconstructed"
    higher_is_better = False

    def __init__(self, config):
        self.samples = 0

    def compute(self, inputs, ctx):
        self.samples = len(inputs.candidate)
        return float((to_unit(inputs.candidate) - to_unit(inputs.reference)).abs().mean())

    def provenance(self):
        return {"implementation": "toy-mae", "version": "0.1.0", "feature_space": "data", "samples": self.samples}


@hookimpl
def register_metrics():
    return [MeanAbsoluteError]
