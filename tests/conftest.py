from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from anytime_bench.plugin_manager import load_plugins

ROOT = Path(__file__).resolve().parent.parent
TINY = Path(__file__).resolve().parent / "configs" / "tiny.toml"
MNIST_ROOT = Path(os.environ.get("ANYTIME_BENCH_MNIST", ROOT.parent / "shared" / "datasets" / "mnist"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def plugins():
    return load_plugins()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    if not (MNIST_ROOT / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"the real MNIST files are expected in {MNIST_ROOT} (shared/datasets/mnist)")
    return MNIST_ROOT

# The example plugin's own tests run against the installed example (tests/test_third_party_plugin.py).
collect_ignore = ["example_plugin"]
