"""A run folder outlives the plugins it was made with: after a plugin renames an option (``Config.RENAMED``) or
removes one (``Config.REMOVED``), the folder reopens, resumes without training again, and keeps the identity, and so
the digests, it was made with; a model whose recorded options its plugin can no longer reproduce is set aside."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import pytest

from anytime_bench.errors import ConfigError

from .conftest import ROOT, TINY, assert_clean_error, plugin_of, run_cli


def _counted(renamed: bool = False, removed: float | None = None, changed: str = ""):
    """The example plugin's unigram prior as ``counted``, its pseudo-count option named ``pseudo`` (the first
    version), or ``smoothing`` with ``RENAMED = {"pseudo": "smoothing"}`` (the next), or gone, the prior running at
    ``removed`` (``REMOVED = {"pseudo": removed}``; 0: gone without a word). ``changed``: a later version whose
    constructor raises (``"init"``) or whose state has another key (``"state"``)."""
    from anytime_bench import hookimpl

    spec = importlib.util.spec_from_file_location("toy_unigram", ROOT / "tests" / "example_plugin" / "toy_unigram.py")
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)

    if removed is not None:
        @dataclass
        class CountedConfig:
            REMOVED: ClassVar[dict[str, float]] = {"pseudo": removed} if removed else {}

            @property
            def smoothing(self) -> float:
                return removed or 0.5
    elif renamed:
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

        if changed == "init":
            def __init__(self, config, vocab_size, seq_len):
                raise RuntimeError("needs a vocabulary file now")
        elif changed == "state":
            def state_dict(self):
                return {"table": self.counts}

            def load_state_dict(self, state):
                self.counts = state["table"]

    class Plugin:
        @hookimpl
        def register_priors(self):
            return [Counted]

    return Plugin()


@pytest.fixture(scope="module")
def made(tmp_path_factory, shared_cache):
    """A finished run of two models on one encoder, one with the first version of ``counted`` (``pseudo = 0.7``),
    the other with the Transformer: its config as a table, and its folder (tests work on copies)."""
    import tomli_w
    import tomllib

    from anytime_bench.contract.plugin_manager import load_plugins

    raw = tomllib.loads(TINY.read_text())
    raw["run"].update(metrics=["mse"], budgets=[0.5, 1.0], num_samples=8)
    raw["model"] = [{"encoder": "ovqvae", "prior": "counted"}, {"encoder": "ovqvae", "label": "plain"},
                    {"encoder": "ovqvae", "prior": "counted", "prior_options": {"pseudo": 0.6}, "label": "own"}]
    raw["prior"]["counted"] = {"pseudo": 0.7}  # set, not a default: its name is in the run's identity
    out = tmp_path_factory.mktemp("made")
    (out / "run.toml").write_text(tomli_w.dumps(raw))
    with pytest.MonkeyPatch.context() as patch:
        loaded = load_plugins(extra=[("counted", _counted())])
        patch.setattr("anytime_bench.contract.plugin_manager.load_plugins", lambda: loaded)
        result = run_cli("run", out / "run.toml", "--out", out, "--run-id", "r", "--cache-dir", shared_cache,
                         "--quiet")
    assert result.code == 0, result.err
    return raw, out / "r"


def _copy(made, tmp_path, shared_cache):
    """A copy of the made run, its config file beside it, and the arguments that resume it (with --redo: it is
    finished)."""
    import tomli_w

    raw, folder = made
    shutil.copytree(folder, tmp_path / "r")
    config = tmp_path / "run.toml"
    config.write_text(tomli_w.dumps(raw))
    return tmp_path / "r", config, ("run", config, "--out", tmp_path, "--run-id", "r", "--cache-dir", shared_cache,
                                    "--quiet", "--redo")


def test_a_run_folder_reopens_and_resumes_after_its_plugin_renames_an_option(cli_plugins, made, tmp_path,
                                                                            shared_cache):
    run, config, args = _copy(made, tmp_path, shared_cache)
    before = json.loads((run / "run.json").read_text())
    measured = (run / "metrics.csv").read_text()
    cli_plugins(("counted", _counted(renamed=True)))
    for command in ("sample", "evaluate"):
        result = run_cli(command, run, "--quiet")
        assert result.code == 0 and "set aside" not in result.err, result.err
    assert (run / "metrics.csv").read_text() == measured  # the same prior, samples and scores
    assert "smoothing = 0.7" in run_cli("config", "--of-run", run).out
    # A config file gives the new name; the run resumes from its checkpoints, its identity as it was made.
    config.write_text(config.read_text().replace("pseudo", "smoothing"))
    result = run_cli(*args)
    assert result.code == 0, result.err
    record = json.loads((run / "run.json").read_text())
    assert record["identity"] == before["identity"] and record["config_digest"] == before["config_digest"]
    assert record["config"]["prior"]["counted"] == {"smoothing": 0.7}  # the config as it reads now, whole
    assert all(record["models"][m]["train_seeds"]["0"].get("prior_resumed") for m in ("ovqvae-counted", "own"))
    assert run_cli("sample", run, "--quiet").code == 0  # and it reopens again as recorded now
    # Training workers rebuild the run from what the parent hands them: the same keys and digests.
    from anytime_bench.contract.plugin_manager import load_plugins
    from anytime_bench.engine.run import Run
    from anytime_bench.engine.workers import JobSpec, worker_run

    plugins = load_plugins()  # the renamed version, as cli_plugins installed it
    parent = Run.open(run, plugins, quiet=True)
    worker = worker_run(JobSpec(parent.cfg.to_dict(), str(run), "cpu", parent.cfg.baseline), plugins)
    for entry in parent.cfg.models:
        assert worker.cfg.instance(entry.label) == parent.cfg.instance(entry) and worker.slot(
            worker.cfg.model(entry.label)) == parent.slot(entry)
        assert worker.prior_digest(worker.cfg.model(entry.label), 0) == parent.prior_digest(entry, 0)
    # Another value is another run, named as the config names the option now.
    assert_clean_error(run_cli(*args, "--set", "prior.counted.smoothing=0.8"), 2,
                       "holds a run of another config (prior.counted.smoothing: 0.7 in the run, 0.8 now)")
    # The old name in a config file is the user's to change.
    config.write_text(config.read_text().replace("smoothing", "pseudo"))
    assert_clean_error(run_cli(*args), 2, "prior.counted.pseudo was renamed: use prior.counted.smoothing")


def test_a_run_folder_reopens_after_its_plugin_removes_an_option_at_the_value_it_ran_with(cli_plugins, made, tmp_path,
                                                                                        shared_cache):
    import tomli_w

    run, config, args = _copy(made, tmp_path, shared_cache)
    raw = made[0]
    measured = (run / "metrics.csv").read_text()
    own = ("model 'own' set aside, the others go on (what the run folder holds of it is kept): its own options "
           "cannot be reproduced: model.own.prior_options.pseudo: prior 'counted' no longer has this option (it runs "
           "as pseudo = 0.7 now), and an entry's own options make its identity")
    # The option is gone and the prior runs as pseudo = 0.7 did: the model made at 0.7 samples from its checkpoint
    # (its digest keeps the option); the entry made at 0.6 cannot be reproduced and is set aside.
    cli_plugins(("counted", _counted(removed=0.7)))
    for command in ("sample", "evaluate"):
        result = run_cli(command, run, "--quiet")
        assert result.code == 0 and result.err.splitlines() == [own], result.err
    assert (run / "metrics.csv").read_text() == measured  # rescored alike, and own's rows kept
    # A config file giving the removed option is refused saying what the prior runs as now; so is resuming a run
    # that holds a model the plugin can no longer make.
    assert_clean_error(run_cli(*args), 2, "prior.counted.pseudo was removed: it runs as pseudo = 0.7 now")
    config.write_text(tomli_w.dumps({**raw, "prior": {**raw["prior"], "counted": {}}, "model": raw["model"][:2]}))
    assert run_cli(*args).code == 2

    # A plugin that runs otherwise now, or dropped the option without a word: its models are set aside.
    for plugin, why in ((_counted(removed=0.5), "prior.counted.pseudo = 0.7: prior 'counted' no longer has this "
                                                "option and runs as pseudo = 0.5 now"),
                        (_counted(removed=0), "prior.counted: the run recorded option 'pseudo', which prior "
                                              "'counted' no longer has")):
        cli_plugins(("counted", plugin))
        result = run_cli("evaluate", run, "--quiet")
        assert result.code == 0, result.err
        assert result.err.startswith("model 'ovqvae-counted' set aside") and why in result.err, result.err
        assert "model 'own' set aside" in result.err
        assert (run / "metrics.csv").read_text() == measured  # their rows kept, the other model's scored again
        assert_clean_error(run_cli("config", "--of-run", run), 2, why)


@pytest.mark.parametrize("changed, why", [
    ("state", ["checkpoint ", "does not fit prior 'counted'", "KeyError: 'table' (the run was made with toy 1.0)"]),
    ("init", ["it cannot be built here: stage 'build prior' failed in prior 'counted'",
              "RuntimeError: needs a vocabulary file now (the run was made with toy 1.0)"]),
])
def test_a_model_whose_plugin_no_longer_builds_it_or_loads_its_checkpoints_is_set_aside(changed, why, cli_plugins, made,
                                                                                         tmp_path, shared_cache):
    """An upgrade that a record cannot show (a constructor that raises now, a state with other keys) sets aside the
    models that use the plugin in the commands that build or load them; the others go on."""
    run, _, args = _copy(made, tmp_path, shared_cache)
    record = json.loads((run / "run.json").read_text())
    record["components"]["prior"]["counted"] = "toy 1.0"  # made with an earlier version than the one installed now
    (run / "run.json").write_text(json.dumps(record))
    bench = ("bench", run, "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0", "--synthetic-length", "0",
             "--quiet")
    assert run_cli(*bench).code == 0
    before = pd.read_csv(run / "cost.csv")
    measured = (run / "metrics.csv").read_text()
    samples = {path: path.read_bytes() for path in (run / "samples").rglob("*") if path.is_file()}
    cli_plugins(("counted", _counted(changed=changed)))
    for command in (("sample", run, "--quiet"), bench):
        result = run_cli(*command)
        assert result.code == 0, result.err
        lines = result.err.splitlines()
        assert [line.split(":")[0] for line in lines] == [
            f"model {label!r} set aside, the others go on (what the run folder holds of it is kept)"
            for label in ("ovqvae-counted", "own")], result.err
        assert all(part in line for part in why for line in lines), lines
    for path, held in samples.items():  # those set aside keep their samples; the other model draws the same ones
        assert path.read_bytes() == held, path
    cost = pd.read_csv(run / "cost.csv")
    assert list(dict.fromkeys(cost.model)) == list(dict.fromkeys(before.model))  # rows kept, in the run's order
    kept = [frame[frame.model != "plain"].reset_index(drop=True) for frame in (cost, before)]
    pd.testing.assert_frame_equal(*kept)
    # evaluate scores what was sampled and builds no prior: every model is scored again, alike
    result = run_cli("evaluate", run, "--quiet")
    assert result.code == 0 and not result.err, result.err
    assert (run / "metrics.csv").read_text() == measured
    # resuming the run needs every model: refused in one line
    result = run_cli(*args)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    # the version the run was made with: not an upgrade's failure but the file's (refused) or the plugin's or the
    # machine's (a failure of the stage, exit 1), as before
    record["components"]["prior"]["counted"] = "(in-process) -"
    (run / "run.json").write_text(json.dumps(record))
    assert_clean_error(run_cli("sample", run, "--quiet"), *((1, "RuntimeError: needs a vocabulary file now")
                                                            if changed == "init" else (2, "does not fit prior")))
    # unless an earlier pass over the run (the one that trained it) recorded another version: a resume that failed
    # on the model has recorded today's
    record["passes"] = [{"components": {"prior": {"counted": "toy 1.0"}}}]
    (run / "run.json").write_text(json.dumps(record))
    result = run_cli("sample", run, "--quiet")
    assert result.code == 0 and len(result.err.splitlines()) == 2, result.err
    assert all(part in result.err for part in why), result.err


def test_a_record_of_the_day_the_transformer_had_a_schedule_option_reopens(plugins):
    from anytime_bench.engine.config import config_from_record

    recorded = {"run": {"encoders": ["ovqvae"]}, "prior": {"transformer": {"schedule": "inverse-sqrt"}}}
    assert config_from_record(recorded, plugins, {}).prior_configs["ovqvae"].steps == 600
    recorded["prior"]["transformer"]["schedule"] = "cosine"
    with pytest.raises(ConfigError, match="prior.transformer.schedule = 'cosine': prior 'transformer' no longer"):
        config_from_record(recorded, plugins, {})


def test_a_metric_whose_plugin_is_gone_stops_only_the_command_that_scores(cli_plugins, tmp_path, shared_cache):
    from anytime_bench_plugins.metrics import Mse

    class Again(Mse):
        name = "mse-again"

    cli_plugins(("again", plugin_of("metric", Again)))
    assert run_cli("run", TINY, "--encoders", "ovqvae", "--metrics", "mse-again,mse", "--budgets", "0.5,1",
                   "--num-samples", "8", "--out", tmp_path, "--run-id", "r", "--cache-dir", shared_cache,
                   "--quiet").code == 0
    run = tmp_path / "r"
    cli_plugins()  # uninstalled
    bench = ("bench", run, "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0", "--synthetic-length", "0")
    for args in (("sample", run), bench):
        result = run_cli(*args, "--quiet")
        assert result.code == 0, result.err
        assert result.err.startswith("metric 'mse-again' set aside (this command scores nothing): unknown metric "
                                     "'mse-again'"), result.err
    assert_clean_error(run_cli("evaluate", run, "--quiet"), 2, "unknown metric 'mse-again'")
    # the summary is written anew from the table, the gone metric's rows summarised from what the record holds of it
    written = re.compile(r" Written [^ ]+\.$", re.M)
    summary = (run / "summary.md").read_text()
    (run / "summary.md").write_text("stale\n")
    result = run_cli("evaluate", run, "--floors-only", "--quiet", "--cache-dir", shared_cache)
    assert result.code == 0, result.err
    assert result.err.startswith("metric 'mse-again' set aside (this command scores nothing)"), result.err
    assert written.sub("", (run / "summary.md").read_text()) == written.sub("", summary)
    state = json.loads((run / "run.json").read_text())
    assert state["metric_directions"]["mse-again"] is False and state["metric_requires"]["mse-again"] == "reconstructed"
    # a record that lacks what the summary needs of it: refused in one line, nothing lost
    del state["metric_directions"]["mse-again"]
    (run / "run.json").write_text(json.dumps(state))
    refused = run_cli("evaluate", run, "--floors-only", "--quiet", "--cache-dir", shared_cache)
    lines = refused.err.splitlines()  # the set-aside line, then why the command cannot go on
    assert refused.code == 2 and len(lines) == 2 and lines[0].startswith("metric 'mse-again' set aside"), refused.err
    assert lines[1].startswith("Error: metric 'mse-again' cannot be loaded here (unknown metric 'mse-again'")
    assert lines[1].endswith("holds no metric_directions of its measurement 'mse-again' to summarise it without it")
    assert written.sub("", (run / "summary.md").read_text()) == written.sub("", summary)
