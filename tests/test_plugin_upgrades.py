"""A run folder outlives the plugins it was made with: after a plugin renames an option (``Config.RENAMED``), the
folder reopens, resumes without training again, and keeps the identity, and so the digests, it was made with."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from typing import ClassVar

from .conftest import ROOT, TINY, assert_clean_error, run_cli


def _counted(renamed: bool):
    """The example plugin's unigram prior as ``counted``, its pseudo-count option named ``pseudo`` (the first
    version) or ``smoothing`` with ``RENAMED = {"pseudo": "smoothing"}`` (the next)."""
    from anytime_bench import hookimpl

    spec = importlib.util.spec_from_file_location("toy_unigram", ROOT / "tests" / "example_plugin" / "toy_unigram.py")
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)

    if renamed:
        @dataclass
        class CountedConfig:
            RENAMED: ClassVar[dict[str, str]] = {"pseudo": "smoothing"}
            smoothing: float = 0.5
    else:
        @dataclass
        class CountedConfig:
            pseudo: float = 0.5

            @property
            def smoothing(self) -> float:
                return self.pseudo

    class Counted(toy.UnigramPrior):
        name = "counted"
        Config = CountedConfig

    class Plugin:
        @hookimpl
        def register_priors(self):
            return [Counted]

    return Plugin()


def test_a_run_folder_reopens_and_resumes_after_its_plugin_renames_an_option(cli_plugins, tmp_path, shared_cache):
    import tomli_w
    import tomllib

    raw = tomllib.loads(TINY.read_text())
    raw["run"].update(encoders=["ovqvae"], prior="counted", metrics=["mse"], budgets=[0.5, 1.0], num_samples=8)
    raw["prior"]["counted"] = {"pseudo": 0.7}  # set, not a default: its name is in the run's identity
    config = tmp_path / "run.toml"
    config.write_text(tomli_w.dumps(raw))
    args = ("run", config, "--out", tmp_path, "--run-id", "r", "--cache-dir", shared_cache, "--quiet")
    cli_plugins(("counted", _counted(renamed=False)))
    assert run_cli(*args).code == 0
    run = tmp_path / "r"
    made = json.loads((run / "run.json").read_text())
    measured = (run / "metrics.csv").read_text()

    cli_plugins(("counted", _counted(renamed=True)))
    for command in ("sample", "evaluate"):
        result = run_cli(command, run, "--quiet")
        assert result.code == 0, result.err
    assert (run / "metrics.csv").read_text() == measured  # the same prior, samples and scores
    assert "smoothing = 0.7" in run_cli("config", "--of-run", run).out
    # A config file gives the new name; the run resumes from its checkpoints, its identity as it was made.
    config.write_text(config.read_text().replace("pseudo", "smoothing"))
    result = run_cli(*args)
    assert result.code == 0, result.err
    record = json.loads((run / "run.json").read_text())
    assert record["identity"] == made["identity"] and record["config_digest"] == made["config_digest"]
    assert record["config"]["prior"]["counted"] == {"smoothing": 0.7}  # the config as it reads now, whole
    assert record["models"]["ovqvae"]["train_seeds"]["0"].get("prior_resumed")
    assert run_cli("sample", run, "--quiet").code == 0  # and it reopens again as recorded now
    # The old name in a config file is the user's to change.
    config.write_text(config.read_text().replace("smoothing", "pseudo"))
    assert_clean_error(run_cli(*args), 2, "prior.counted.pseudo was renamed: use prior.counted.smoothing")
