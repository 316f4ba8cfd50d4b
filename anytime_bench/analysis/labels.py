"""How tables, plots and reports name a model and group models into families, written once."""

from __future__ import annotations


def model_label(model: str, ordered: bool, per_budget: bool = False) -> str:
    """How tables and plots name a model: unordered baselines and per-budget oracles are marked."""
    if per_budget:
        return f"{model} (per-budget oracle)"
    return model if ordered else f"{model} (unordered)"


ORACLES = "per-budget oracles"
"""The family of every per-budget oracle (:func:`model_family`)."""


def model_family(model: str, ordered: bool, per_budget: bool = False, encoder: str | None = None) -> str:
    """The family a model belongs to: models of one kind, which a report draws together and compares among
    themselves (one panel each, and the best of each in its overview).

    Every per-budget oracle, of whichever encoder, is in one family (:data:`ORACLES`): the bound each anytime model
    is measured against. Any other model is in its encoder's family, named as :func:`model_label` names it (an
    unordered baseline is marked): ``encoder`` where the run records it, else the model's own name, which is its
    encoder's in runs that name models by encoder. Ablations of one encoder are thus one family.
    """
    if per_budget:
        return ORACLES
    return model_label(encoder or model, ordered)
