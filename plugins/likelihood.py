"""A metric of the prior itself: how well it predicts the test split's codes (``requires = "likelihood"``).

The other metrics judge data (samples, reconstructions); this one judges the
prior's model of the codes, so that a gap in sample quality can be split into
what the codes lose (reconstructions) and what the prior misses (likelihood).
"""

from __future__ import annotations

import math
from typing import Any

from anytime_bench import MetricInputs, RunContext, hookimpl

from .metrics import NoOptions


class Nll:
    """Negative log-likelihood of the test split's first k codes under the prior, in bits per code."""

    name = "nll"
    Config = NoOptions
    requires = "likelihood"
    higher_is_better = False

    def __init__(self, config: NoOptions):
        self.config = config
        self._items = 0

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        # Per code rather than per sequence, so that budgets (and a per-budget oracle's members) read on one scale.
        self._items = len(inputs.candidate)
        return float(-inputs.candidate.double().mean() / math.log(2))

    def provenance(self) -> dict[str, Any]:
        # The feature space is each model's own code space: values of two encoders measure different codes.
        return {"implementation": "anytime-bench", "unit": "bits per code", "data": "the test split's codes",
                "feature_space": "codes", "samples": self._items}


@hookimpl
def register_metrics():
    return [Nll]
