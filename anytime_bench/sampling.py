"""Anytime sampling of a trained model, importable by the name the API gives it (``from anytime_bench.sampling import
sample``): :func:`sample` to a budget, a deadline or a stop signal, :func:`progressive` for every budget from one
pass. The code is :mod:`anytime_bench.engine.sampling`'s; this module only names it."""

from anytime_bench.engine.sampling import AnytimeSample, as_encoder, as_prior, progressive, sample

__all__ = ["AnytimeSample", "as_encoder", "as_prior", "progressive", "sample"]
