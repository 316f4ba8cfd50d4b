"""The benchmark's stages, in data-flow order: train (encoders, codes, priors), sample, evaluate."""

from anytime_bench.engine.stages.evaluate import evaluate_stage, floors_stage
from anytime_bench.engine.stages.sample import deadline_stage, sample_stage
from anytime_bench.engine.stages.train import train_stage

__all__ = ["train_stage", "sample_stage", "deadline_stage", "evaluate_stage", "floors_stage"]
