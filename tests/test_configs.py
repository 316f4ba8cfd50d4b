"""The shipped configs stay valid against the plugins' options."""

from pathlib import Path

import pytest

from anytime_bench.engine.config import build_config, load_config

from .conftest import ROOT

CONFIGS = sorted((ROOT / "configs").rglob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT / "configs")) for p in CONFIGS])
def test_shipped_config_is_valid(plugins, path: Path):
    cfg = load_config(path, {}, plugins)
    assert cfg.run.budgets and cfg.run.encoders


def test_digits_config_is_the_default(plugins):
    assert load_config(ROOT / "configs" / "digits.toml", {}, plugins).digest() == build_config({}, plugins).digest()


def test_paper_configs_use_the_reference_sizes(plugins):
    cifar = load_config(ROOT / "configs" / "cifar10.toml", {}, plugins)
    ovq = cifar.component_config("encoder", "ovqvae")
    assert (ovq.code_length, ovq.codebook_size, ovq.downsample) == (100, 500, 3)
    prior = cifar.component_config("prior", "transformer")
    assert (prior.n_layer, prior.d_model, prior.n_head, prior.d_ff) == (6, 512, 8, 2048)
    assert cifar.run.budgets == [0.2, 0.4, 0.6, 0.8, 1.0]
