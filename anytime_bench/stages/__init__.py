"""The benchmark's stages, in data-flow order: train (encoders, codes, priors), sample, evaluate."""

from .evaluate import evaluate_stage
from .sample import deadline_stage, sample_stage
from .train import train_stage

__all__ = ["train_stage", "sample_stage", "deadline_stage", "evaluate_stage"]
