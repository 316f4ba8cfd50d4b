"""The shipped configs stay valid against the plugins' options."""

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from anytime_bench.engine.config import build_config, load_config, without_local_options

from .conftest import ROOT, run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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


def _commands(path: Path) -> list[list[str]]:
    """The ``anytime-bench run`` commands a config's comments show, as argument lists (continuations joined)."""
    text = "\n".join(line[1:] for line in path.read_text().splitlines() if line.startswith("#"))
    text = text.replace("\\\n", " ")
    return [shlex.split(m) for m in re.findall(r"anytime-bench run ([^`\n]*)", text)]


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT / "configs")) for p in CONFIGS])
def test_the_command_a_config_shows_runs_that_config(path: Path):
    """A config's comment shows how to run it, and that command names this file (not another it was copied from)."""
    for args in _commands(path):
        assert (ROOT / args[0]).resolve() == path.resolve(), f"{path.name} shows a command for {args[0]}"


COMMITTED = [(path, args) for path in CONFIGS for args in _commands(path) if "--run-id" in args
             and (ROOT / "results" / args[args.index("--run-id") + 1] / "run.json").is_file()]


@pytest.mark.parametrize("path,args", COMMITTED, ids=[a[a.index("--run-id") + 1] for _, a in COMMITTED])
def test_a_committed_run_is_the_one_its_configs_command_makes(plugins, path: Path, args: list[str]):
    """The results a config's comment points at were made by that config and those flags (same digest): a config
    edited after its run, or a base it extends that changed, would no longer make the committed run."""
    run_id = args[args.index("--run-id") + 1]
    flags, rest = [], iter(args[1:])
    for arg in rest:  # where the run goes and where the data is are not part of what it is
        if arg in ("--run-id", "--data-root"):
            next(rest)
        else:
            flags.append(arg)
    result = run_cli("config", ROOT / args[0], *flags)
    assert result.code == 0, result.err
    record = json.loads((ROOT / "results" / run_id / "run.json").read_text())
    assert build_config(without_local_options(tomllib.loads(result.out), plugins), plugins).digest() \
        == record["config_digest"], f"{path.name} with {flags} no longer makes results/{run_id}"
