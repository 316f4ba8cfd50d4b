"""The example in plugins/README.md, installed with pip as a third party would, then used by name."""

import json
import os
import re
import subprocess
import sys

import pytest

from .conftest import ROOT, TINY

EXAMPLE = ROOT / "tests" / "example_plugin"


def test_the_guide_shows_the_tested_files_verbatim():
    guide = (ROOT / "plugins" / "README.md").read_text()
    blocks = re.findall(r"```(?:toml|python)\n(.*?)```", guide, flags=re.S)
    for name in ("pyproject.toml", "anytime_bench_bars.py"):
        assert (EXAMPLE / name).read_text() in blocks, f"plugins/README.md does not show {name} as tested"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    # --no-build-isolation/--no-index: nothing is downloaded; setuptools comes from the test environment
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(EXAMPLE)], check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]))
    return env


def test_installed_plugin_is_listed(installed):
    out = subprocess.run([sys.executable, "-m", "anytime_bench", "plugins", "--json"], env=installed,
                         capture_output=True, text=True, check=True).stdout
    rows = {(r["kind"], r["name"]): r for r in json.loads(out)}
    assert rows[("dataset", "bars")]["distribution"] == "anytime-bench-bars"
    assert rows[("dataset", "bars")]["version"] == "0.1.0"


def test_installed_plugin_runs_by_name(installed, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "anytime_bench", "run", str(TINY), "--dataset", "bars", "--encoders", "ovqvae",
         "--metrics", "mse", "--out", str(tmp_path), "--run-id", "bars", "--quiet"],
        env={**installed, "ANYTIME_BENCH_TEST": "1"}, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "results in" in result.stdout
    metrics = (tmp_path / "bars" / "metrics.csv").read_text()
    assert ",bars,ovqvae," in metrics
