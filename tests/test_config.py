
import pytest

from anytime_bench.engine.config import DEFAULT_BUDGETS, build_config, config_from_record, load_config
from anytime_bench.errors import AnytimeBenchError, ConfigError

from .conftest import TINY


def test_defaults_are_the_digits_benchmark(plugins):
    cfg = build_config({}, plugins)
    assert cfg.run.dataset == "digits"
    assert cfg.run.encoders == ["ovqvae", "vqvae-channel", "vqvae-spatial"]
    assert cfg.run.budgets == DEFAULT_BUDGETS
    assert cfg.component_config("encoder", "ovqvae").code_length == 16


def test_file_and_overrides_merge(plugins):
    cfg = load_config(TINY, {"run": {"seed": 3}}, plugins)
    assert cfg.run.seed == 3 and cfg.run.budgets == [0.25, 0.5, 1.0]
    assert cfg.component_config("prior", "transformer").n_layer == 1


def test_digest_follows_the_config(plugins):
    a = build_config({}, plugins)
    b = build_config({"encoder": {"ovqvae": {"steps": 7}}}, plugins)
    assert a.digest() == build_config({}, plugins).digest() != b.digest()


def test_a_machine_local_option_is_never_read_back_from_a_run_folder(plugins):
    recorded = build_config({"run": {"metrics": ["fid"]}, "metric": {"fid": {"feature_weights": "/home/me/x.pt"}}},
                            plugins)
    assert recorded.component_config("metric", "fid").feature_weights == "/home/me/x.pt"
    reopened = config_from_record(recorded.to_dict(), plugins, {})
    assert reopened.component_config("metric", "fid").feature_weights == ""
    given = config_from_record(recorded.to_dict(), plugins, {}, {"--fid-weights": "/here/w.pt"})
    assert given.component_config("metric", "fid").feature_weights == "/here/w.pt"


def test_the_commands_that_reopen_a_run_take_the_machine_local_flags_only(plugins):
    from anytime_bench.cli import build_cli

    cli = build_cli(plugins)
    for name in ("sample", "evaluate", "bench"):
        flags = {opt for p in cli.commands[name].params for opt in p.opts}
        assert "--fid-weights" in flags and "--feature-extractor" not in flags, name
    assert "--feature-extractor" in {opt for p in cli.commands["run"].params for opt in p.opts}


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"run": {"budgetz": [0.5]}}, r"run: unknown key 'budgetz'"),
        ({"run": {"budgets": [0.0, 0.5]}}, r"run.budgets: 0.0 is outside \(0, 1\]"),
        ({"run": {"budgets": [1.5]}}, r"run.budgets: 1.5 is outside \(0, 1\]"),
        ({"run": {"budgets": "half"}}, r"run.budgets: expected a list"),
        ({"run": {"seed": "one"}}, r"run.seed: expected an integer"),
        ({"run": {"top_p": 0.0}}, r"run.top_p: must be in \(0, 1\], at least 1e-06"),
        ({"run": {"top_p": 1.5}}, r"run.top_p: must be in \(0, 1\]"),
        ({"run": {"seed": True}}, r"run.seed: expected an integer"),
        ({"run": {"dataset": "nope"}}, r"unknown dataset 'nope'"),
        ({"run": {"metrics": ["mse"], "headline_metric": "fid"}}, r"run.headline_metric: 'fid' is not in metrics"),
        ({"encoder": {"ovqvae": {"code_length": 0}}}, r"encoder.ovqvae.code_length: must be >= 1"),
        ({"encoder": {"ovqvae": {"codebooksize": 3}}}, r"encoder.ovqvae: unknown key 'codebooksize'"),
        ({"encoder": {"ovqvae": {"norm": "layer"}}}, r"encoder.ovqvae.norm: expected one of"),
        ({"encoder": {"nope": {}}}, r"unknown encoder 'nope'"),
        ({"prior": {"transformer": {"n_head": 3}}}, r"prior.transformer.n_head: must divide d_model"),
        ({"extra": {}}, r"unknown config table 'extra'"),
    ],
)
def test_bad_configs_name_the_key(plugins, raw, message):
    with pytest.raises(AnytimeBenchError, match=message):
        build_config(raw, plugins)


def test_bad_toml_names_the_file(tmp_path, plugins):
    path = tmp_path / "bad.toml"
    path.write_text("[run\nseed = 1")
    with pytest.raises(ConfigError, match=r"bad.toml is not valid TOML"):
        load_config(path, {}, plugins)
    with pytest.raises(ConfigError, match=r"missing.toml does not exist"):
        load_config(tmp_path / "missing.toml", {}, plugins)
