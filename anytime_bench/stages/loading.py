"""Loading a trained encoder and prior from a run folder's checkpoints."""

from __future__ import annotations

from typing import Any

from .. import storage
from ..config import BenchConfig
from ..context import RunContext
from ..plugin_manager import Plugins
from ..rundir import RunDir
from .common import blame, build_encoder, build_prior, encoder_digest, prior_digest


def load_trained(cfg: BenchConfig, plugins: Plugins, run_dir: RunDir, model: str, ctx: RunContext,
                 data_shape: tuple[int, ...] | None = None) -> tuple[Any, Any]:
    state = run_dir.read_state()
    shape = data_shape or tuple(state.get("models", {}).get(model, {}).get("data_shape", ()))
    component, encoder = build_encoder(cfg, plugins, model, shape, ctx.device)
    payload = storage.load_checkpoint(run_dir.encoder_checkpoint(model), kind="encoder", name=model,
                                      config_digest=encoder_digest(cfg, model))
    with blame(component, "load encoder checkpoint"):
        encoder.load_state_dict(payload["state"])
    prior_component, prior = build_prior(cfg, plugins, int(encoder.codebook_size), int(encoder.code_length), ctx.device)
    payload = storage.load_checkpoint(run_dir.prior_checkpoint(model), kind="prior", name=model,
                                      config_digest=prior_digest(cfg, model))
    with blame(prior_component, "load prior checkpoint"):
        prior.load_state_dict(payload["state"])
    return encoder, prior
