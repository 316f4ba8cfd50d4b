"""Models as entries: an encoder, a prior and its sampling settings per ``[[model]]``, several priors in one run.

The old form (``run.encoders`` with one ``run.prior``) means one entry per
encoder and keeps every identity, file name and result it had.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from anytime_bench.contract.plugin_manager import load_plugins
from anytime_bench.engine.config import build_config, load_config
from anytime_bench.engine.pipeline import load_model
from anytime_bench.errors import ConfigError, PluginError

from .conftest import TINY, assert_clean_error, plugin_of, run_cli

ROOT = Path(__file__).resolve().parents[1]

ENTRIES = [
    {"encoder": "ovqvae"},
    {"encoder": "ovqvae", "top_p": 0.9},
    {"encoder": "ovqvae", "prior": "plain"},
    {"encoder": "vqvae-channel", "prior": "plain", "label": "channel-plain"},
]


def _plain_plugin():
    """A plugin with a second prior, ``plain``: the Transformer without nucleus sampling (it declares only
    temperature and top_k), to be registered in this process as a third party's would be."""
    import torch

    from anytime_bench import hookimpl
    from anytime_bench_plugins.transformer import TransformerPrior

    class Plain(TransformerPrior):
        name = "plain"
        sampling_options = ("temperature", "top_k")

        def stream(self, n, length, *, generator, temperature=1.0, top_k=None, use_cache=True):
            yield from super().stream(n, length, generator=generator, temperature=temperature, top_k=top_k,
                                      use_cache=use_cache)

        def sample(self, n, length, *, generator, temperature=1.0, top_k=None):
            # the Transformer's own sample() passes top_p on to stream(), which this one no longer takes
            return torch.stack(list(self.stream(n, length, generator=generator, temperature=temperature,
                                                top_k=top_k)), dim=1)

    class Plugin:
        @hookimpl
        def register_priors(self):
            return [Plain]

    return Plugin()


@pytest.fixture(scope="module")
def with_plain():
    from anytime_bench.contract.plugin_manager import load_plugins

    return load_plugins(extra=[("mine", _plain_plugin())])


def _config(plugins, entries, run=None, **kw):
    return build_config({"run": {"dataset": "digits", **(run or {})}, "model": entries}, plugins, **kw)


def test_entries_resolve_with_run_defaults_and_readable_unique_labels(with_plain):
    cfg = _config(with_plain, ENTRIES + [{"encoder": "ovqvae", "top_p": 0.9}], run={"temperature": 0.9})
    assert [m.label for m in cfg.models] == ["ovqvae", "ovqvae-p9", "ovqvae-plain", "channel-plain", "ovqvae-p9-2"]
    assert [m.prior for m in cfg.models] == ["transformer", "transformer", "plain", "plain", "transformer"]
    assert {m.temperature for m in cfg.models} == {0.9}  # run-wide settings are every entry's default
    assert cfg.options["prior"].keys() == {"transformer", "plain"}
    assert cfg.run.encoders == ["ovqvae", "vqvae-channel"]


def test_the_old_form_is_one_entry_per_encoder_and_keeps_its_identity(plugins):
    cfg = build_config({"run": {"encoders": ["ovqvae", "rvq"], "top_p": 0.95}}, plugins)
    assert [(m.label, m.encoder, m.prior, m.top_p) for m in cfg.models] == [
        ("ovqvae", "ovqvae", "transformer", 0.95), ("rvq", "rvq", "transformer", 0.95)]
    assert not cfg.explicit_models and "model" not in cfg.to_dict()


def test_every_shipped_config_keeps_the_identity_it_had_before_entries(plugins):
    recorded = json.loads((ROOT / "tests" / "records" / "config-digests.json").read_text())["digests"]
    configs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.toml"))
    old = [c for c in configs if c in recorded]
    assert len(old) >= 24
    for name in old:
        assert load_config(ROOT / name, {}, plugins).digest() == recorded[name], name


def test_the_resolved_config_round_trips_and_entry_identity_ignores_entry_defaults(with_plain, tmp_path):
    cfg = _config(with_plain, ENTRIES + [{"encoder": "vqvae-channel", "prior_options": {"n_layer": 1}}])
    again = build_config(cfg.to_dict(), with_plain)
    assert again.to_dict() == cfg.to_dict() and again.digest() == cfg.digest()
    assert again.prior_configs["vqvae-channel-" + again.models[-1].label.split("-")[-1]].n_layer == 1
    # Settings left at ModelEntry's defaults are recorded as defaults, not as set: an entry field added later with
    # its default leaves this identity alone.
    form = cfg.canonical()
    assert "top_p" not in form["set"]["model"]["ovqvae"] and form["set"]["model"]["ovqvae-p9"]["top_p"] == 0.9
    assert _config(with_plain, ENTRIES[:1]).digest() != _config(with_plain, ENTRIES[1:2]).digest()


@pytest.mark.parametrize(("raw", "message"), [
    ({"run": {"encoders": ["ovqvae"]}, "model": [{"encoder": "rvq"}]}, "run.encoders and [[model]] entries both"),
    ({"model": 5}, "model: expected [[model]] entries"),
    ({"model": []}, "model: expected [[model]] entries"),
    ({"model": [5]}, "model[1]: expected a table"),
    ({"model": [{"prior": "transformer"}]}, "model[1].encoder: is required"),
    ({"model": [{"encoder": "ovqvae", "top_q": 0.9}]}, "model[1]: unknown key 'top_q'"),
    ({"model": [{"encoder": "ovqvae", "label": "a"}, {"encoder": "rvq", "label": "a"}]}, "two entries are labelled"),
    ({"model": [{"encoder": "ovqvae", "label": "A b"}]}, "a label names folders"),
    ({"model": [{"encoder": "nope"}]}, "nope"),
    ({"model": [{"encoder": "ovqvae", "top_p": 0}]}, "model[1].top_p: must be in (0, 1]"),
    ({"model": [{"encoder": "ovqvae", "prior_options": {"n_layer": "x"}}]}, "model.ovqvae-"),
    ({"model": [{"encoder": "ovqvae"}] * 65}, "at most 64"),
])
def test_bad_entries_are_refused_naming_what_is_wrong(plugins, raw, message):
    with pytest.raises((ConfigError, PluginError)) as info:
        build_config(raw, plugins)
    assert message in str(info.value)


def test_a_setting_the_entrys_prior_does_not_declare_is_refused_at_config_time(cli_plugins, tmp_path):
    cli_plugins(("mine", _plain_plugin()))
    config = tmp_path / "c.toml"
    config.write_text('[[model]]\nencoder = "ovqvae"\n\n[[model]]\nencoder = "rvq"\nprior = "plain"\ntop_p = 0.9\n')
    result = run_cli("run", config, "--out", tmp_path / "out", "--run-id", "r")
    assert_clean_error(result, 2, "model.rvq-plain-p9.top_p: prior 'plain' of model 'rvq-plain-p9' does not accept "
                                  "top_p")
    assert not (tmp_path / "out").exists()


def test_set_and_models_reach_entries_from_the_cli(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[[model]]\nencoder = "ovqvae"\n\n[[model]]\nlabel = "rvq-v1.2"\nencoder = "rvq"\n')
    result = run_cli("config", config, "--set", "model.rvq-v1.2.top_p=0.8", "--models", "rvq-v1.2")
    assert result.returncode == 0, result.stderr
    printed = result.stdout
    assert printed.count("[[model]]") == 1 and 'label = "rvq-v1.2"' in printed and "top_p = 0.8" in printed
    assert_clean_error(run_cli("config", config, "--set", "model.nope.top_p=0.8"), 2, "no model is labelled 'nope'")
    assert_clean_error(run_cli("config", config, "--models", "nope"), 2, "--models: no model labelled 'nope'")
    assert_clean_error(run_cli("config", config, "--set", "model.rvq-v1.2.encoder_options.steps=5"), 2,
                       "--set model.rvq-v1.2.encoder_options.KEY: give the whole table, "
                       "--set 'model.rvq-v1.2.encoder_options={KEY = VALUE}'")
    whole = run_cli("config", config, "--set", "model.rvq-v1.2.encoder_options={steps = 5}")
    assert whole.returncode == 0 and "[model.encoder_options]\nsteps = 5" in whole.stdout
    old = run_cli("config", "--encoders", "ovqvae,rvq", "--models", "rvq")
    assert old.returncode == 0 and "#   rvq: encoder rvq, prior transformer" in old.stdout
    toml = old.stdout.split("[run]")[1]
    assert "[[model]]" not in toml and '"ovqvae"' not in toml.split("prior")[0]  # the old form, listing rvq alone


def _run_entries(tmp_path, cache, entries, priors=None):
    """A reduced run of the tiny config's components with these model entries (``priors``: more prior tables, over
    the Transformer's); the CLI's arguments, to run it again, and its folder."""
    import tomli_w
    import tomllib

    raw = tomllib.loads(TINY.read_text())
    raw["run"].update(metrics=["mse"], budgets=[0.5, 1.0], num_samples=8)
    for name, options in (priors or {}).items():
        raw["prior"][name] = dict(raw["prior"]["transformer"], **options)
    raw["model"] = entries
    config = tmp_path / "entries.toml"
    config.write_text(tomli_w.dumps(raw))
    args = ("run", config, "--out", tmp_path / "out", "--run-id", "r", "--cache-dir", cache, "--quiet")
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return args, tmp_path / "out" / "r"


def test_one_run_compares_entries_mixing_two_priors_and_per_entry_top_p(cli_plugins, tmp_path, shared_cache):
    cli_plugins(("mine", _plain_plugin()))
    args, run = _run_entries(tmp_path, shared_cache, ENTRIES, {"plain": {"steps": 10}})
    frame = pd.read_csv(run / "metrics.csv")
    labels = ["ovqvae", "ovqvae-p9", "ovqvae-plain", "channel-plain"]
    assert list(dict.fromkeys(frame.model)) == labels
    described = frame.drop_duplicates("model").set_index("model")
    assert described.loc[labels, "prior"].tolist() == ["transformer", "transformer", "plain", "plain"]
    assert described.loc[labels, "top_p"].tolist() == [1.0, 0.9, 1.0, 1.0]
    assert described.loc[labels, "encoder"].tolist() == ["ovqvae"] * 3 + ["vqvae-channel"]
    # One encoder per encoder name, one prior per (encoder, prior): ovqvae and ovqvae-p9 share theirs.
    assert sorted(p.name for p in (run / "checkpoints" / "ovqvae").iterdir()) == [
        "train0.encoder.pt", "train0.prior-plain.pt", "train0.prior.pt"]
    assert {p.name for p in (run / "samples").iterdir()} == set(labels)
    # Samples differ where the sampling settings do, from the same prior and seed.
    import numpy as np
    a, b = (np.load(run / "samples" / m / "train0-sample0.npz")["codes_k8"] for m in ("ovqvae", "ovqvae-p9"))
    assert a.shape == b.shape and (a != b).any()
    summary = (run / "summary.md").read_text().replace("\\", "")
    assert "## Models" in summary
    between = summary.split("between model entries")[1].split("## ")[0]
    for pair in ("ovqvae - ovqvae-p9", "ovqvae - ovqvae-plain", "ovqvae-p9 - ovqvae-plain",
                 "ovqvae-plain - channel-plain"):
        assert f"| {pair} |" in between
    assert between.count(" - ") == 4  # ovqvae - channel-plain differ in encoder and prior: not a pair
    state = json.loads((run / "run.json").read_text())
    assert state["models"]["ovqvae-plain"]["prior"] == "plain"
    report = run_cli("report", run, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    assert "ovqvae-plain" in (tmp_path / "report" / "report.md").read_text()
    # Redone, it trains nothing again: every entry's encoder and prior come from their checkpoints.
    again = run_cli(*args, "--redo")
    assert again.returncode == 0, again.stderr
    seeds = json.loads((run / "run.json").read_text())["models"]
    assert all(seeds[m]["train_seeds"]["0"].get("encoder_resumed") and seeds[m]["train_seeds"]["0"].get(
        "prior_resumed") for m in labels)


@pytest.mark.parametrize("gone", ["uninstalled", "broken"])
def test_a_run_folder_whose_plugin_is_gone_samples_evaluates_and_benches_its_other_models(cli_plugins, tmp_path,
                                                                                         shared_cache, gone):
    """One broken plugin never stops what does not use it: the models that use it are set aside, said once on
    stderr, and what the folder holds of them is kept."""
    cli_plugins(("mine", _plain_plugin()))
    _, run = _run_entries(tmp_path, shared_cache, ENTRIES[:1] + ENTRIES[2:3], {"plain": {"steps": 10}})
    bench = ("bench", run, "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0", "--synthetic-length", "0",
             "--quiet")
    assert run_cli(*bench).returncode == 0
    before = {name: pd.read_csv(run / name) for name in ("metrics.csv", "cost.csv")}
    made = json.loads((run / "run.json").read_text())["components"]  # what provided each component
    if gone == "broken":  # the plugin loads, but its prior no longer keeps the contract
        broken = _plain_plugin()
        broken.register_priors()[0].stream = None
        cli_plugins(("mine", broken))
    else:
        cli_plugins()
    for args in (("sample", run, "--quiet"), ("evaluate", run, "--quiet"), bench):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if "set aside" in line]
        assert len(lines) == 1 and lines[0].startswith("model 'ovqvae-plain' set aside, the others go on"), lines
        assert "its prior 'plain' cannot be loaded: " in lines[0]
        assert lines[0].endswith(f"(the run was made with {made['prior']['plain']})"), lines[0]
        assert ("unknown prior 'plain'" if gone == "uninstalled" else "member 'stream' must be a method") in lines[0]
    for name, earlier in before.items():  # the set-aside model's rows as they were, in the run's order
        now = pd.read_csv(run / name)
        assert list(dict.fromkeys(now.model)) == ["ovqvae", "ovqvae-plain"], name
        kept = [frame[frame.model == "ovqvae-plain"].reset_index(drop=True) for frame in (now, earlier)]
        pd.testing.assert_frame_equal(*kept)
    measured = pd.read_csv(run / "metrics.csv")
    pd.testing.assert_frame_equal(measured[measured.model == "ovqvae"], before["metrics.csv"].iloc[:len(
        measured[measured.model == "ovqvae"])])  # the healthy model scored anew from the same samples
    assert "ovqvae-plain" in (run / "summary.md").read_text()
    # What prints the whole recorded config cannot leave a model out; a model set aside is named with why.
    shown = run_cli("config", "--of-run", run)  # printed as recorded, unchecked: it says what to install
    said = [line for line in shown.err.splitlines() if not line.startswith("Warning: ")]  # a broken plugin's warning
    assert shown.code == 0 and "[prior.plain]" in shown.out and len(said) == 1, shown.err
    assert "printed as recorded, not checked: " in said[0] and "prior 'plain'" in said[0]
    with pytest.raises(PluginError, match="model 'ovqvae-plain' cannot be loaded here: its prior 'plain'"):
        load_model(run, "ovqvae-plain", plugins=load_plugins())
    with pytest.raises(ConfigError, match=r"its models: ovqvae \(and ovqvae-plain, which cannot be loaded here\)"):
        load_model(run, "nope", plugins=load_plugins())
    # New sampling seeds: the table holds them for every model, and says the model set aside has none.
    assert run_cli("sample", run, "--sample-seeds", "1", "--quiet").code == 0
    result = run_cli("evaluate", run, "--sample-seeds", "1", "--quiet")
    assert result.code == 0 and "ovqvae-plain, not scored now, had no earlier scores at sampling seeds 1: metrics.csv " \
        "now leaves them out" in result.stderr, result.stderr
    assert set(pd.read_csv(run / "metrics.csv").model) == {"ovqvae"}
    assert load_model(run, "ovqvae", plugins=load_plugins()).sampling["top_p"] == 1.0


def test_a_run_folder_whose_dataset_is_gone_is_benched_and_what_reads_data_is_refused(cli_plugins, tmp_path,
                                                                                        shared_cache):
    """bench reads no data: it times the run's models with the dataset as the run recorded it; sample, which reads
    it, is refused in one line naming why, nothing written."""
    from anytime_bench_plugins.datasets import Digits

    class Mine(Digits):
        """The digits under another name, from a third party's plugin."""

        name = "my-digits"

    cli_plugins(("mine", plugin_of("dataset", Mine)))
    made = run_cli("run", TINY, "--dataset", "my-digits", "--encoders", "ovqvae,vqvae-spatial", "--metrics", "mse",
                   "--out", tmp_path, "--run-id", "r", "--cache-dir", shared_cache, "--quiet")
    assert made.code == 0, made.err
    run = tmp_path / "r"
    cli_plugins()  # uninstalled
    record = (run / "run.json").read_bytes()
    assert_clean_error(run_cli("sample", run, "--quiet"), 2, "unknown dataset 'my-digits'")
    assert (run / "run.json").read_bytes() == record
    result = run_cli("bench", run, "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0", "--synthetic-length",
                     "8", "--synthetic-batch", "4", "--quiet")
    assert result.code == 0, result.err
    assert result.err.splitlines() == ["dataset 'my-digits' set aside (this command reads no data): unknown dataset "
                                       f"'my-digits' (available: {', '.join(load_plugins().names('dataset'))}) "
                                       "(the run was made with (in-process) -)"], result.err
    assert set(pd.read_csv(run / "cost.csv").model) == {"ovqvae", "vqvae-spatial"}
    state = json.loads((run / "run.json").read_text())
    assert state["bench"]["synthetic_cache"]["tokens"] == 8 and state["config"]["run"]["dataset"] == "my-digits"
    assert run_cli("report", run, "--out", tmp_path / "report").code == 0
    # what the run was made with says what to install: its config is printed as recorded, unchecked, saying so
    shown = run_cli("config", "--of-run", run)
    assert shown.code == 0 and shown.out.startswith(f"# The config recorded in {run}, as it is") and \
        'dataset = "my-digits"' in shown.out, shown.err
    assert shown.err.strip().splitlines() == [f"config of {run} printed as recorded, not checked: unknown dataset "
                                              f"'my-digits' (available: {', '.join(load_plugins().names('dataset'))})"]
    # a record that holds no data facts says nothing of what those commands need: refused as before
    import shutil

    shutil.copytree(run, tmp_path / "no-data", ignore=shutil.ignore_patterns(".lock"))
    state = json.loads((tmp_path / "no-data" / "run.json").read_text())
    del state["data"]
    (tmp_path / "no-data" / "run.json").write_text(json.dumps(state))
    assert_clean_error(run_cli("bench", tmp_path / "no-data", "--quiet"), 2, "unknown dataset 'my-digits'")
    assert json.loads((tmp_path / "no-data" / "run.json").read_text()) == state
    # sampling against a deadline reads no data either, nor does loading a model
    result = run_cli("sample", run, "--deadline", "5", "-n", "2", "--quiet")
    assert result.code == 0 and "ovqvae: 16/16 tokens" in result.out, result.err
    assert load_model(run, "ovqvae", plugins=load_plugins()).encoder.code_length == 16


def test_a_run_folder_whose_every_model_is_gone_is_refused_as_before(tmp_path, plugins):
    """Nothing is set aside when nothing would be left, nor when the dataset is gone: every model uses it."""
    from anytime_bench.engine.config import config_from_record

    recorded = {"run": {"dataset": "digits", "encoders": ["ovqvae", "gone"]}}
    cfg = config_from_record(recorded, plugins, {}, set_aside=True)
    assert [m.label for m in cfg.models] == ["ovqvae"] and cfg.run.encoders == ["ovqvae"]
    assert cfg.set_aside == {"gone": "its encoder 'gone' cannot be loaded: unknown encoder 'gone' (available: "
                                     + ", ".join(plugins.names("encoder")) + ")"}
    for raw in ({"run": {"dataset": "digits", "encoders": ["gone"]}},
                {"run": {"dataset": "digits", "encoders": ["ovqvae"], "prior": "gone"}},
                {"run": {"dataset": "gone", "encoders": ["ovqvae", "gone"]}}):
        with pytest.raises(PluginError, match="unknown (encoder|prior|dataset) 'gone'"):
            config_from_record(raw, plugins, {}, set_aside=True)
    with pytest.raises(PluginError, match="unknown encoder 'gone'"):  # only commands that can do without ask
        config_from_record(recorded, plugins, {})


def test_a_config_extending_one_with_run_encoders_lists_entries_after_encoders_empty(tmp_path, plugins):
    (tmp_path / "base.toml").write_text('[run]\nencoders = ["rvq", "ovqvae"]\n')
    (tmp_path / "entries.toml").write_text('extends = "base.toml"\n[run]\nencoders = []\n\n'
                                           '[[model]]\nencoder = "rvq"\ntop_p = 0.95\n')
    cfg = load_config(tmp_path / "entries.toml", {}, plugins)
    assert [m.label for m in cfg.models] == ["rvq-p95"] and cfg.run.encoders == ["rvq"]
    # the merged file, as the results index compares it with a run's record, says the same: no run.encoders
    from anytime_bench.files.configfiles import read_config
    assert "encoders" not in read_config(tmp_path / "entries.toml")["run"]
    (tmp_path / "both.toml").write_text('extends = "base.toml"\n\n[[model]]\nencoder = "rvq"\n')
    with pytest.raises(ConfigError, match=r"run.encoders and \[\[model\]\] entries both list the models"):
        load_config(tmp_path / "both.toml", {}, plugins)
    (tmp_path / "none.toml").write_text('[run]\nencoders = []\n')
    with pytest.raises(ConfigError, match="encoders"):  # without entries, an empty list is still no models
        load_config(tmp_path / "none.toml", {}, plugins)


def _local_option_plugin():
    """A prior with a machine-local option (a path on this machine, given again by its flag)."""
    from dataclasses import dataclass, field

    from anytime_bench import hookimpl
    from anytime_bench_plugins.transformer import TransformerConfig, TransformerPrior

    @dataclass
    class LocalConfig(TransformerConfig):
        warm_start: str = field(default="", metadata={"flag": "--warm-start", "local": True})
        """Weights to start from (a path on this machine)."""

    class Local(TransformerPrior):
        name = "local-prior"
        Config = LocalConfig

    class Plugin:
        @hookimpl
        def register_priors(self):
            return [Local]

    return Plugin()


def test_encoder_options_make_their_own_instance_of_the_encoder(plugins):
    from anytime_bench.store import identity

    cfg = build_config({"run": {"dataset": "digits"}, "encoder": {"rvq": {"steps": 60}}, "model": [
        {"encoder": "rvq"}, {"encoder": "rvq", "encoder_options": {"code_length": 4}},
        {"encoder": "rvq", "encoder_options": {"code_length": 4}, "top_p": 0.9},
        {"encoder": "rvq", "encoder_options": {"code_length": 4, "steps": 7}},
        {"encoder": "rvq", "label": "as-table", "encoder_options": {"steps": 60}},
        {"encoder": "rvq", "label": "int", "encoder_options": {"beta": 2}},
        {"encoder": "rvq", "label": "float", "encoder_options": {"beta": 2.0}},
        {"encoder": "rvq", "encoder_options": {"beta": 3}}, {"encoder": "rvq", "encoder_options": {"beta": 3.0}}]},
        plugins)
    plain, short, short_p9, other, as_table, whole, real, three, three_again = (cfg.instance(m) for m in cfg.models)
    assert plain == "rvq" and short.startswith("rvq+") and short == short_p9
    assert other not in (plain, short)
    # an option at its table's value changes nothing: the same encoder, trained once, and the entry says so
    assert as_table == plain and cfg.model("as-table").encoder_options == {}
    assert whole == real != plain and cfg.model("int").encoder_options == {"beta": 2.0}  # as the Config reads it
    # one spelling in made labels too: the second of two equal entries is told apart by a count, as ever
    made = f"rvq-{identity.digest({'beta': 3.0})[:6]}"
    assert three == three_again and [m.label for m in cfg.models[7:]] == [made, f"{made}-2"]
    assert cfg.models[1].label == f"rvq-{identity.digest({'code_length': 4})[:6]}"
    assert cfg.models[2].label == cfg.models[1].label + "-p9"
    table = cfg.component_config("encoder", "rvq")
    found = cfg.encoder_of(short)
    assert found.name == "rvq" and found.config.code_length == 4 and table.code_length != 4
    assert found.changes == {"code_length": 4} and found.config.steps == 60  # the table's options hold beneath
    assert cfg.encoder_of(plain).config is table and cfg.encoder_of(plain).changes == {}
    assert cfg.encoder_of(other).changes == {"code_length": 4, "steps": 7}
    form = cfg.canonical()
    plain_digest = identity.encoder_digest(form, "digits", "rvq", 0)
    assert identity.encoder_digest(form, "digits", "rvq", 0, None, {}) == plain_digest
    assert identity.encoder_digest(form, "digits", "rvq", 0, None, {"code_length": 4}) != plain_digest
    # entries without encoder options keep the identity they had: the field at its default is not in it
    assert "encoder_options" not in json.dumps(_config(plugins, [{"encoder": "rvq"}, {"encoder": "ovqvae"}])
                                               .canonical()["set"])


@pytest.mark.parametrize(("options", "message"), [
    (5, "model[1].encoder_options: expected dict"),
    ({"nope": 1}, "encoder_options: unknown key 'nope'"),
    ({"code_length": 0}, "encoder_options.code_length: must be >= 1"),
])
def test_bad_encoder_options_are_refused_naming_the_entry(plugins, options, message):
    with pytest.raises(ConfigError) as info:
        _config(plugins, [{"encoder": "rvq", "encoder_options": options}])
    assert message in str(info.value)


def test_a_machine_local_option_is_refused_in_an_entry(cli_plugins, tmp_path):
    cli_plugins(("mine", _local_option_plugin()))
    config = tmp_path / "c.toml"
    config.write_text('[[model]]\nencoder = "ovqvae"\nprior = "local-prior"\nlabel = "warm"\n'
                      'prior_options = { warm_start = "/somewhere/weights.pt" }\n')
    result = run_cli("config", config)
    assert_clean_error(result, 2, "model.warm.prior_options.warm_start: a machine-local option of prior "
                                  "'local-prior'; set it in [prior.local-prior] or with its flag")


def test_one_run_compares_two_variants_of_one_encoder(tmp_path, shared_cache):
    args, run = _run_entries(tmp_path, shared_cache, [
        {"encoder": "rvq"}, {"encoder": "rvq", "label": "short", "encoder_options": {"code_length": 4}},
        {"encoder": "rvq", "label": "short-p9", "encoder_options": {"code_length": 4}, "top_p": 0.9}])
    state = json.loads((run / "run.json").read_text())
    assert {m: (state["models"][m]["encoder"], state["models"][m]["code_length"]) for m in state["models"]} == {
        "rvq": ("rvq", 8), "short": ("rvq", 4), "short-p9": ("rvq", 4)}
    # two encoders trained, each with its prior; short and short-p9 share theirs
    from anytime_bench.store import identity
    folder = "options-" + identity.digest({"code_length": 4})[:8]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["rvq"]  # no partial/ left behind
    assert sorted(p.name for p in (run / "checkpoints" / "rvq").iterdir()) == [
        folder, "train0.encoder.pt", "train0.prior.pt"]
    assert sorted(p.name for p in (run / "checkpoints" / "rvq" / folder).iterdir()) == ["train0.encoder.pt",
                                                                                      "train0.prior.pt"]
    assert (run / "codes" / "rvq" / "train0.npz").is_file() and (run / "codes" / "rvq" / folder / "train0.npz").is_file()
    frame = pd.read_csv(run / "metrics.csv", keep_default_na=False)
    described = frame.drop_duplicates("model").set_index("model")
    assert described.encoder.tolist() == ["rvq"] * 3
    assert described.encoder_options.tolist() == ["", '{"code_length": 4}', '{"code_length": 4}']
    summary = (run / "summary.md").read_text().replace("\\", "")
    between = summary.split("between model entries")[1].split("## ")[0]
    assert "| rvq - short |" in between and "| short - short-p9 |" in between  # one thing differs in each
    assert "| rvq - short-p9 |" not in between  # the encoder's options and the sampling: two things
    assert '{"code_length": 4}' in summary.split("## Models")[1].split("## ")[0]  # says what each model is
    # the recorded config reopens as it was: redone, it trains nothing again, sampling reads the same checkpoints
    again = run_cli(*args, "--redo")
    assert again.returncode == 0, again.stderr
    models = json.loads((run / "run.json").read_text())["models"]
    assert all(models[m]["train_seeds"]["0"].get("encoder_resumed") for m in models)
    from anytime_bench import load_model
    assert load_model(run, "short").encoder.code_length == 4 and load_model(run, "rvq").encoder.code_length == 8


def test_variants_of_one_encoder_alone_are_listed_and_paired():
    from anytime_bench.analysis.results import compares_priors, entry_pairs

    rows = [dict(model=m, encoder="rvq", encoder_options=o, prior="transformer", prior_options="", temperature=1.0,
                 top_k=0, top_p=1.0) for m, o in (("rvq", ""), ("rvq-l1", '{"recon_loss": "l1"}'))]
    frame = pd.DataFrame(rows + [dict(rows[0], model="ovqvae", encoder="ovqvae")])
    assert compares_priors(frame)
    assert entry_pairs(frame) == [("rvq", "rvq-l1"), ("rvq", "ovqvae"), ("rvq-l1", "ovqvae")]


def test_a_machine_local_option_an_older_record_holds_in_an_entry_is_kept_and_not_used(plugins):
    from anytime_bench.contract.plugin_manager import load_plugins
    from anytime_bench.engine.config import config_from_record

    with_local = load_plugins(extra=[("mine", _local_option_plugin())])
    entry = {"encoder": "ovqvae", "prior": "local-prior", "label": "warm",
             "prior_options": {"warm_start": "/elsewhere/w.pt", "n_layer": 1}}
    cfg = config_from_record({"run": {"dataset": "digits"}, "model": [entry]}, with_local, {})
    # it stays in the entry, whose identity (and prior's file name) it is part of, as when the run was made ...
    assert cfg.model("warm").prior_options == {"warm_start": "/elsewhere/w.pt", "n_layer": 1}
    # ... and the path is not followed: the prior gets its table's value (or its flag's)
    assert cfg.prior_configs["warm"].warm_start == "" and cfg.prior_configs["warm"].n_layer == 1
    with pytest.raises(ConfigError, match="a machine-local option"):  # a config of today may not say it
        build_config({"run": {"dataset": "digits"}, "model": [entry]}, with_local)


def test_a_per_budget_oracle_is_sampled_per_budget_as_one_entry_per_member(tmp_path, shared_cache):
    _, run = _run_entries(tmp_path, shared_cache, [
        {"encoder": "oracle", "label": "half", "encoder_options": {"budgets": [0.5]}, "top_p": 0.9},
        {"encoder": "oracle", "label": "whole", "encoder_options": {"budgets": [1.0]}}])
    frame = pd.read_csv(run / "metrics.csv", keep_default_na=False)
    assert frame.groupby("model").budget.unique().map(list).to_dict() == {"half": [0.5], "whole": [1.0]}
    assert frame.groupby("model").top_p.first().to_dict() == {"half": 0.9, "whole": 1.0}
    from anytime_bench.store import identity
    assert {p.name for p in (run / "checkpoints" / "oracle").iterdir()} == {
        "options-" + identity.digest({"budgets": b})[:8] for b in ([0.5], [1.0])}  # each member trained once


def test_sample_evaluate_and_bench_work_on_the_models_they_are_given_and_keep_the_others(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    bench = ("bench", run, "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0", "--synthetic-length", "0",
             "--quiet")
    assert run_cli(*bench).code == 0
    before = {name: pd.read_csv(run / name) for name in ("metrics.csv", "cost.csv")}
    ratios = json.loads((run / "run.json").read_text())["bench"]
    whole = json.loads((run / "run.json").read_text())["stage_seconds"]
    grid = (run / "samples.png").read_bytes()
    models = list(dict.fromkeys(before["metrics.csv"].model))
    chosen, others = models[1], models[:1] + models[2:]
    held = {path: path.read_bytes() for path in run.rglob("*") if path.is_file() and "samples" in path.parts}
    # a new sampling seed for one model: only its samples are drawn; the table holds one set of seeds for every
    # model, so the next command says to sample the others at that seed too
    result = run_cli("sample", run, "--models", chosen, "--sample-seeds", "7", "--quiet")
    assert result.code == 0 and not result.err, result.err
    assert f"--sample-seeds 7 --models {','.join(others)}), then anytime-bench evaluate {run} --sample-seeds 7" \
        in result.out, result.out
    drawn = {path for path in run.rglob("*") if path.is_file() and "samples" in path.parts} - set(held)
    assert drawn and all(chosen in str(path.relative_to(run)) for path in drawn), drawn
    assert all(path.read_bytes() == data for path, data in held.items())
    # scoring that model alone at that seed would drop the others' scores: refused, nothing written
    assert_clean_error(run_cli("evaluate", run, "--models", chosen, "--sample-seeds", "7", "--quiet"), 2,
                       f"holds no scores of {', '.join(others)} at those seeds")
    pd.testing.assert_frame_equal(pd.read_csv(run / "metrics.csv"), before["metrics.csv"])
    # a table that cannot be read would be replaced by that model's rows alone: refused, nothing written
    broken = before["metrics.csv"].astype({"value": object})
    broken.loc[len(broken) - 1, "value"] = "abc"
    broken.to_csv(run / "metrics.csv", index=False)
    damaged = (run / "metrics.csv").read_bytes()
    assert_clean_error(run_cli("evaluate", run, "--models", chosen, "--quiet"), 2, "metrics.csv cannot be read",
                       f"would replace it and lose the rows of {', '.join(others)}")
    assert (run / "metrics.csv").read_bytes() == damaged
    before["metrics.csv"].to_csv(run / "metrics.csv", index=False)
    broken = before["cost.csv"].astype({"seconds": object})  # and the cost table, for bench
    broken.loc[len(broken) - 1, "seconds"] = "abc"
    broken.to_csv(run / "cost.csv", index=False)
    damaged = (run / "cost.csv").read_bytes()
    assert_clean_error(run_cli(*bench[:-1], "--models", chosen, "--quiet"), 2, "cost.csv cannot be read",
                       f"would replace it and lose the rows of {', '.join(others)}")
    assert (run / "cost.csv").read_bytes() == damaged
    before["cost.csv"].to_csv(run / "cost.csv", index=False)
    # scored again alike at the run's seeds, the others' rows kept as they were, in the run's order
    for args in (("evaluate", run, "--models", chosen, "--quiet"), bench[:-1] + ("--models", chosen, "--quiet")):
        result = run_cli(*args)
        assert result.code == 0 and not result.err, result.err
        assert args[0] != "evaluate" or result.out.rstrip().endswith(
            f"; the earlier scores of {', '.join(others)} are kept"), result.out
    for name, earlier in before.items():
        now = pd.read_csv(run / name)
        assert list(dict.fromkeys(now.model)) == models, name
        kept = [frame[frame.model.isin(others)].reset_index(drop=True) for frame in (now, earlier)]
        pd.testing.assert_frame_equal(*kept)
    pd.testing.assert_frame_equal(pd.read_csv(run / "metrics.csv"), before["metrics.csv"])
    assert (run / "samples.png").read_bytes() == grid  # every model's row, from the samples each has
    # the whole stages' times stay; the stages on one model record theirs beside them
    seconds = json.loads((run / "run.json").read_text())["stage_seconds"]
    assert {k: seconds[k] for k in whole} == whole and {"sample (some models)", "evaluate (some models)"} <= set(seconds)
    # the recorded ratios: every model's, in the run's order, the largest excess over all of them
    after = json.loads((run / "run.json").read_text())["bench"]
    assert [r["model"] for r in after["time_ratio"]] == [r["model"] for r in ratios["time_ratio"]]
    assert after["max_time_ratio_excess"] == max(r["excess"] for r in after["time_ratio"])
    assert_clean_error(run_cli(*bench[:2], "--batch-sizes", "3", "--models", chosen, "--quiet"), 2,
                       "cost.csv holds the other models at batch sizes 2")
    for command in ("sample", "evaluate", "bench"):
        assert_clean_error(run_cli(command, run, "--models", f"{chosen},nope", "--quiet"), 2,
                           "--models: no model labelled 'nope' (models: " + ", ".join(models))
