import sys

import pytest

from anytime_bench.engine.config import DEFAULT_BUDGETS, build_config, config_from_record, load_config
from anytime_bench.errors import AnytimeBenchError, ConfigError

from .conftest import TINY, run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


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
        # a range check alone lets nan through, and inf failed only at the first training step, the run folder made
        ({"encoder": {"ovqvae": {"beta": float("inf")}}}, r"encoder.ovqvae.beta: expected a finite number, got inf"),
        ({"prior": {"transformer": {"lr": float("nan")}}}, r"prior.transformer.lr: expected a finite number"),
        ({"dataset": {"digits": {"split_seed": -1}}}, r"dataset.digits.split_seed: must be >= 0"),
        # TOML's integers are 64-bit: a larger one could not be saved with the run and read back
        ({"run": {"encoders": ["rvq"]}, "encoder": {"rvq": {"depths_per_example": 10**30}}},
         r"encoder.rvq.depths_per_example: 1000000000000000000000000000000 is outside TOML's 64-bit integer range"),
        ({"run": {"seed": -2**63 - 1}}, r"run.seed: -9223372036854775809 is outside TOML's 64-bit integer range"),
        # each depth is a decoder pass a step: a count beyond the stages would only cost
        ({"run": {"encoders": ["rvq"]}, "encoder": {"rvq": {"depths_per_example": 17}}},
         r"encoder.rvq.depths_per_example: must be between 1 and code_length \(16\)"),
        ({"run": {"encoders": ["rvq"]}, "encoder": {"rvq": {"depths_per_example": 2, "quantizer_dropout": 0.0}}},
         r"encoder.rvq.depths_per_example: above 1 needs quantizer_dropout > 0"),
        ({"run": {"encoders": ["rvq-oracle"]}, "encoder": {"rvq-oracle": {"depth_distribution": "log-uniform"}}},
         r"encoder.rvq-oracle.depth_distribution: needs quantizer_dropout > 0"),
        ({"run": {"encoders": ["rvq"]}, "encoder": {"rvq": {"beta": -1.0}}}, r"encoder.rvq.beta: must be >= 0"),
        ({"run": {"encoders": ["rvq"]}, "encoder": {"rvq": {"lr": -1e-3}}}, r"encoder.rvq.lr: must be > 0"),
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
    bom = tmp_path / "bom.toml"  # a byte-order mark first, as some Windows editors write: read, not refused
    bom.write_bytes(b"\xef\xbb\xbf[run]\nseed = 3\n")
    assert load_config(bom, {}, plugins).run.seed == 3


def test_a_config_extends_another_and_changes_only_what_it_sets(tmp_path, plugins):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "base.toml").write_text(
        '[run]\ndataset = "digits"\nbudgets = [0.25, 0.5, 1.0]\nmetrics = ["mse"]\n'
        '[encoder.ovqvae]\ncode_length = 8\nsteps = 5\n')
    child = tmp_path / "child.toml"
    child.write_text('extends = "base/base.toml"\n[run]\nbudgets = [0.5, 1.0]\n[encoder.ovqvae]\nsteps = 7\n')
    grandchild = tmp_path / "grandchild.toml"
    grandchild.write_text('extends = "child.toml"\n[run]\nseed = 4\n')
    cfg = load_config(grandchild, {}, plugins)
    assert cfg.run.budgets == [0.5, 1.0] and cfg.run.seed == 4 and cfg.run.metrics == ["mse"]  # arrays replace
    options = cfg.component_config("encoder", "ovqvae")
    assert (options.code_length, options.steps) == (8, 7)  # tables merge key by key
    flat = tmp_path / "flat.toml"
    flat.write_text('[run]\ndataset = "digits"\nbudgets = [0.5, 1.0]\nmetrics = ["mse"]\nseed = 4\n'
                    '[encoder.ovqvae]\ncode_length = 8\nsteps = 7\n')
    assert cfg.digest() == load_config(flat, {}, plugins).digest()  # the merged config is the run's identity
    assert "extends" not in cfg.to_toml()  # what a run folder records names no file


@pytest.mark.parametrize("content,message", [
    ('extends = "missing.toml"\n', r"missing.toml does not exist \(the base that .*loop.toml extends\)"),
    ('extends = "."\n', r"is a folder \(the base that .*loop.toml extends\)"),
    ('extends = 3\n', r"extends must be the path of a config file .* got 3"),
    ('extends = "loop.toml"\n', r"extends .*loop.toml, which is already in its chain \(a loop\)"),
])
def test_a_bad_extends_is_one_line_naming_it(tmp_path, plugins, content, message):
    path = tmp_path / "loop.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path, {}, plugins)


def test_a_chain_of_extends_is_bounded(tmp_path, plugins):
    for i in range(12):
        (tmp_path / f"c{i}.toml").write_text(f'extends = "c{i + 1}.toml"\n' if i < 11 else "[run]\nseed = 1\n")
    with pytest.raises(ConfigError, match=r"extends a chain of more than 8 files"):
        load_config(tmp_path / "c0.toml", {}, plugins)
    assert load_config(tmp_path / "c5.toml", {}, plugins).run.seed == 1  # 7 files: within the bound


def test_extends_belongs_in_a_file(plugins):
    with pytest.raises(ConfigError, match=r"extends names a base config file"):
        build_config({"extends": "base.toml"}, plugins)


def test_the_cli_prints_an_extended_config_whole_and_refuses_a_bad_base_in_one_line(tmp_path):
    (tmp_path / "base.toml").write_text('[run]\nmetrics = ["mse"]\n[encoder.ovqvae]\ncode_length = 8\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\n[encoder.ovqvae]\nsteps = 7\n')
    result = run_cli("config", tmp_path / "child.toml")
    assert result.code == 0, result.err
    printed = tomllib.loads(result.out)
    assert printed["run"]["metrics"] == ["mse"] and "extends" not in result.out
    assert (printed["encoder"]["ovqvae"]["code_length"], printed["encoder"]["ovqvae"]["steps"]) == (8, 7)
    (tmp_path / "child.toml").write_text('extends = "../nowhere/base.toml"\n')
    result = run_cli("run", tmp_path / "child.toml", "--out", tmp_path / "runs", "--quiet")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result.err
    assert "nowhere/base.toml does not exist (the base that" in result.err and not (tmp_path / "runs").exists()
