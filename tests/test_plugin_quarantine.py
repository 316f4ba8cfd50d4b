"""A broken plugin fails alone: it is quarantined, listed by ``plugins``, warned about by every other command in one
line, and refused with its reason only where something selects it.

The stale distribution (``tests/broken_plugin``: a prior without ``stream`` beside a conforming metric, and a plugin
whose module no longer imports) is installed with pip into a folder of its own, and put on ``sys.path`` only for the
tests that ask for it: the other tests of the session never see it, nor its warning line.
"""

import subprocess
import sys
from dataclasses import dataclass, field, make_dataclass
from types import SimpleNamespace

import click
import pandas as pd
import pytest

from anytime_bench import ConfigError, hookimpl, require
from anytime_bench.contract.checks import NAME_PATTERN, check_class, is_component_name
from anytime_bench.contract.plugin_manager import load_plugins
from anytime_bench.errors import BrokenPluginError
from anytime_bench.testing import ConformanceError, check_component

from .conftest import ROOT, TINY, assert_clean_error, run_cli
from .test_plugin_manager import _Cfg, _dataset

STALE = ROOT / "tests" / "broken_plugin"
STALE_ORIGIN = "(distribution anytime-bench-stale 1.0)"
# the cheapest run there is: one encoder, one prior, one cheap metric, few steps and samples
CHEAP = ["--encoders", "ovqvae", "--budgets", "0.5,1", "--quiet"] + [
    arg for key in ["run.num_samples=16", "encoder.ovqvae.steps=2", "encoder.ovqvae.stage2_steps=2",
                    "encoder.ovqvae.batch_size=16", "prior.transformer.steps=2", "prior.transformer.batch_size=16"]
    for arg in ("--set", key)]


@pytest.fixture(scope="module")
def stale_site(tmp_path_factory):
    target = tmp_path_factory.mktemp("stale-site")
    # --no-build-isolation/--no-index: nothing is downloaded; setuptools comes from the test environment
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(STALE)], check=True, capture_output=True)
    assert (target / "anytime_bench_stale-1.0.dist-info").is_dir()
    return target


@pytest.fixture
def stale(stale_site, monkeypatch):
    """The stale distribution installed, for this test only (importlib.metadata finds it on sys.path)."""
    monkeypatch.syspath_prepend(str(stale_site))
    yield
    sys.modules.pop("stale_prior", None)


def test_plugins_lists_the_broken_ones_and_exits_0(stale):
    result = run_cli("plugins", env={"COLUMNS": "300"})
    assert result.code == 0 and result.err == ""  # plugins lists them itself: no warning line
    listed = [" ".join(line.split()) for line in result.out[result.out.index("broken, skipped"):].splitlines()]
    assert "stale-import anytime-bench-stale 1.0 whole plugin failed to import (stale_import): ModuleNotFoundError: " \
           "No module named 'anytime_bench_stale_dependency'" in listed
    assert any(line.startswith("stale-prior anytime-bench-stale 1.0 prior stale it breaks the prior contract: "
                               "required member 'stream' is missing") for line in listed), listed
    assert "stale-constant" in result.out[:result.out.index("broken, skipped")]  # its conforming metric is usable


def test_plugins_json_gives_plugin_distribution_version_and_reason_of_each_broken_one(stale):
    import json

    result = run_cli("plugins", "--json")
    assert result.code == 0 and result.err == ""
    rows = json.loads(result.out)
    broken = {(r["plugin"], r["kind"], r["name"]): r for r in rows if r["broken"] is not None}
    assert set(broken) == {("stale-prior", "prior", "stale"), ("stale-import", None, None)}
    for row in broken.values():
        assert (row["distribution"], row["version"]) == ("anytime-bench-stale", "1.0")
        assert "\n" not in row["broken"]
    assert broken["stale-prior", "prior", "stale"]["broken"].startswith("it breaks the prior contract: required "
                                                                          "member 'stream' is missing")
    assert broken["stale-import", None, None]["broken"] == ("failed to import (stale_import): ModuleNotFoundError: "
                                                            "No module named 'anytime_bench_stale_dependency'")
    usable = {(r["kind"], r["name"]) for r in rows if r["broken"] is None}
    assert ("metric", "stale-constant") in usable and ("prior", "transformer") in usable


def test_plugins_check_exits_1_when_something_is_broken(stale):
    result = run_cli("plugins", "--check", "--json")
    assert result.code == 1
    assert_clean_error(result, 1, "2 broken plugin(s) or component(s)", "prior 'stale' of plugin 'stale-prior' "
                       f"{STALE_ORIGIN}", f"plugin 'stale-import' {STALE_ORIGIN}")


def test_plugins_check_exits_0_when_nothing_is_broken():
    result = run_cli("plugins", "--check")
    assert result.code == 0 and result.err == ""


def test_a_run_that_does_not_use_it_completes_with_one_warning_line(stale, tmp_path):
    """The stale plugin's conforming metric is even used: only its broken prior is quarantined."""
    result = run_cli("run", TINY, *CHEAP, "--metrics", "mse,stale-constant", "--out", tmp_path, "--run-id", "r",
                     "--cache-dir", tmp_path / "cache")
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Warning: 2 broken plugins or components were skipped: "), lines
    assert f"prior 'stale' of plugin 'stale-prior' {STALE_ORIGIN}" in lines[0]
    assert f"plugin 'stale-import' {STALE_ORIGIN}" in lines[0]
    assert lines[0].endswith("; anytime-bench plugins --check for details")
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    assert set(metrics.metric) == {"mse", "stale-constant"} and (metrics[metrics.metric == "stale-constant"].value
                                                                 == 1.0).all()


@pytest.mark.parametrize("args", [["--prior", "stale"], ["--set", "run.prior=stale"]])
def test_a_run_that_selects_it_exits_2_before_any_work(stale, tmp_path, args):
    result = run_cli("run", TINY, *args, "--out", tmp_path, "--run-id", "r")
    assert_clean_error(result, 2, f"prior 'stale' of plugin 'stale-prior' {STALE_ORIGIN} is broken and was skipped",
                       "required member 'stream' is missing")
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written


def test_a_config_naming_it_and_plugins_name_exit_2_with_the_reason(stale, tmp_path):
    config = tmp_path / "stale.toml"
    config.write_text(TINY.read_text() + "\n[prior.stale]\n")
    assert_clean_error(run_cli("config", config), 2, "prior 'stale' of plugin 'stale-prior'", "'stream' is missing")
    assert_clean_error(run_cli("plugins", "stale"), 2, "prior 'stale' of plugin 'stale-prior'", "'stream' is missing")
    # a name that the plugin which failed to import might have provided is not merely "unknown"
    assert_clean_error(run_cli("run", "--dataset", "gone", "--out", tmp_path / "out"), 2, "unknown dataset 'gone'",
                       f"broken plugins, which might have provided it, were skipped: plugin 'stale-import' "
                       f"{STALE_ORIGIN}: failed to import")  # and why
    assert_clean_error(run_cli("plugins", "gone"), 2, "no installed component is named 'gone': broken plugins, "
                       f"which might have provided it, were skipped: plugin 'stale-import' {STALE_ORIGIN}")


def test_a_help_page_works_and_warns(stale):
    result = run_cli("sample", "--help")
    assert result.code == 0 and "Usage:" in result.out
    assert len(result.err.splitlines()) == 1 and result.err.startswith("Warning: ")
    # report and runs read run folders only: they load no plugin, so none can stop them
    for command in ("report", "runs"):
        result = run_cli(command, "--help")
        assert result.code == 0 and "Usage:" in result.out and result.err == ""


# ---------------------------------------------------------------------- in-process plugins


@dataclass
class _FlaggedCfg:
    size: int = field(default=3, metadata={"flag": "--quitter-size"})


class _QuitsWhileAddingCommands:
    @hookimpl
    def register_datasets(self):
        data = _dataset("quitter-data")
        data.Config = _FlaggedCfg
        return [data]

    @hookimpl
    def register_commands(self, cli):
        @cli.command("hello")
        def hello():
            """Greets."""

        raise SystemExit(0)


def test_a_plugin_whose_register_commands_exits_0_is_quarantined_not_obeyed(cli_plugins):
    cli_plugins(("quitter", _QuitsWhileAddingCommands()))
    origin = "plugin 'quitter' (distribution (in-process) -)"
    help_page = run_cli("run", "--help")  # first: quarantined while the command line is built
    assert help_page.code == 0 and "Usage:" in help_page.out
    assert "--quitter-size" not in help_page.out  # its components' flags went with it
    assert_clean_error(run_cli("plugins", "--check"), 1, f"{origin}: failed in register_commands: SystemExit: 0")
    result = run_cli("plugins", "--json")  # every other command works: it once exited 0 silently, doing nothing
    assert result.code == 0 and '"broken": "failed in register_commands: SystemExit: 0"' in result.out
    # the command it added before exiting is taken back; asking for it names the plugin, with a non-zero exit
    assert_clean_error(run_cli("hello"), 2, "no command 'hello'", f"{origin} failed in register_commands")
    assert_clean_error(run_cli("run", "--dataset", "quitter-data"), 2, f"dataset 'quitter-data' of {origin} is "
                       "broken and was skipped when plugins loaded: failed in register_commands: SystemExit: 0")


class _Commands:
    @hookimpl
    def register_commands(self, cli):
        @cli.command("explode")
        def explode():
            raise RuntimeError("boom\nsecond line")

        @cli.command("quit")
        @click.option("--code", type=int, default=3)
        def quit_(code):
            sys.exit(code)

        @cli.command("refuse")
        def refuse():
            raise ConfigError("--thing: must be given")

        @cli.command("fine")
        def fine():
            click.echo("fine")


@pytest.mark.parametrize("command, code, message", [
    (["explode"], 1, "plugin 'cmds' (distribution (in-process) -): its command 'explode' failed: RuntimeError: boom"),
    (["quit"], 3, "plugin 'cmds' (distribution (in-process) -): its command 'quit' exited with status 3"),
    (["quit", "--code", "0"], 0, None),
    (["refuse"], 2, "Error: --thing: must be given"),  # bad input, as the hook specification asks for it
    (["fine"], 0, None),
])
def test_what_a_plugins_command_raises_names_the_plugin(cli_plugins, command, code, message):
    cli_plugins(("cmds", _Commands()))
    result = run_cli(*command)
    if message is None:
        assert result.code == 0 and result.err == ""
    else:
        assert_clean_error(result, code, message)


def test_two_plugins_with_one_entry_point_name_are_both_quarantined(monkeypatch):
    def entry(value, dist):
        return SimpleNamespace(name="twin", value=value, load=lambda: SimpleNamespace(),
                               dist=SimpleNamespace(metadata={"Name": dist}, version="1"))

    monkeypatch.setattr("anytime_bench.contract.plugin_manager._entry_points", lambda: [entry("a", "one"), entry("b", "two")])
    plugins = load_plugins()
    assert [(b.origin.distribution, b.reason) for b in plugins.broken] == [
        ("one", "plugin 'twin' (distribution two 1) has the same plugin name, so neither is used"),
        ("two", "plugin 'twin' (distribution one 1) has the same plugin name, so neither is used")]
    assert plugins.manager.get_plugin("twin") is None


@pytest.mark.parametrize("returned, reason", [
    ("transformer", "register_priors must return a list of classes, got str"),
    (None, "register_priors returned None, not a list of classes (a `return` missing? `return []` contributes none)"),
    (Exception, "register_priors must return a list of classes, got the class Exception itself: return [Exception]"),
])
def test_a_hook_that_returns_no_list_quarantines_its_plugin(returned, reason):
    class Plugin:
        @hookimpl
        def register_priors(self):
            return returned

    plugins = load_plugins(extra=[("odd", Plugin())])
    assert [b.reason for b in plugins.broken] == [reason]
    assert plugins.get("prior", "transformer").origin.plugin == "builtin-transformer"


# ---------------------------------------------------------------------- options: flags and defaults


def _with_option(name: str, tp: type = int, default=0, flag: str | None = None, **members):
    """A conforming dataset whose Config has one option ``size`` (with ``flag``), and ``members`` on the Config."""
    return _dataset(name, make_dataclass(
        "Cfg", [("size", tp, field(default=default, metadata={"flag": flag} if flag else {}))], namespace=members))


def test_a_flag_that_would_take_over_the_cores_or_another_components_is_refused_and_the_cores_stays():
    from anytime_bench.cli import build_cli

    takes_out, takes_weights = _with_option("takes-out", flag="--out"), _with_option("takes-weights", flag="--fid-weights")
    own = _with_option("own-flag", flag="--own-size")
    plugins = load_plugins(extra=[("flags", SimpleNamespace(register_datasets=hookimpl(
        lambda: [takes_out, takes_weights, own])))])
    cli = build_cli(plugins)
    assert [(b.name, b.reason) for b in plugins.broken] == [
        ("takes-out", "its option 'size' declares the flag --out, which anytime-bench's commands take: choose another "
                      "flag in (in-process)"),
        ("takes-weights", "its option 'size' declares the flag --fid-weights, which sets the option 'feature_weights' "
                          "of metric 'accuracy', of another type: choose another flag in (in-process)")]
    with pytest.raises(BrokenPluginError, match="declares the flag --out"):
        plugins.get("dataset", "takes-out")

    def flag(command: str, name: str):
        return next(p for p in cli.commands[command].params if name in p.opts)

    # every command reads --out and --fid-weights as before; a flag of its own is added
    assert type(flag("run", "--out").type).__name__ == "PathParam" and flag("config", "--fid-weights").type == click.STRING
    assert flag("run", "--own-size").type == click.INT


@pytest.mark.parametrize("member, why", [
    (dict(default=0, validate=lambda self: require(self.size > 0, "size", "must be > 0")), "size: must be > 0"),
    (dict(default="16"), "Config.size: expected an integer"),
    (dict(default=1, __post_init__=lambda self: int("x")), "ValueError: invalid literal for int()"),
    (dict(default=1, RENAMED=["size"]), "'Config.RENAMED' must be a dict of old option names"),
    (dict(default=1, RENAMED={"bins": "nbins"}), "'Config.RENAMED' maps 'bins' to 'nbins', which is not an option "
                                                 "of the Config"),
    (dict(default=1, RENAMED={"size": "size"}), "'Config.RENAMED' maps 'size', which is still an option of the "
                                                "Config"),
])
def test_a_config_that_fails_with_its_own_defaults_is_refused_when_plugins_load(member, why):
    default = member.pop("default")
    cls = _with_option("odd", int, default, **member)
    assert any(why in problem for problem in check_class("dataset", cls)), check_class("dataset", cls)
    plugins = load_plugins(extra=[("odd", SimpleNamespace(register_datasets=hookimpl(lambda: [cls])))])
    with pytest.raises(BrokenPluginError, match="fails with its own defaults|RENAMED"):
        plugins.get("dataset", "odd")


def test_a_config_value_that_its_validate_refuses_with_another_exception_names_the_table_not_the_core():
    from anytime_bench.contract.schema import from_dict
    from anytime_bench.errors import ComponentError

    def validate(self):
        if self.size > 3:
            raise ValueError("too big")

    cls = _with_option("picky", int, 1, validate=validate)
    assert check_class("dataset", cls) == []
    with pytest.raises(ComponentError, match=r"dataset.picky: its Config raised ValueError: too big \(a bug in the "
                                             r"component"):
        from_dict(cls.Config, {"size": 5}, "dataset.picky")


# ---------------------------------------------------------------------- one name pattern, the kit's arguments


def test_a_component_name_with_a_trailing_newline_is_refused():
    assert NAME_PATTERN.match("ovqvae\n") is None and not is_component_name("ovqvae\n")
    assert is_component_name("ovqvae") and is_component_name("vqvae-channel-1d") and not is_component_name("A")
    assert not is_component_name(None) and not is_component_name("x" * 65)
    bad = _dataset("ovqvae\n")
    assert any("member 'name' 'ovqvae\\n' must be 1-64 lower-case" in p for p in check_class("dataset", bad))
    plugins = load_plugins(extra=[("newline", SimpleNamespace(register_datasets=hookimpl(lambda: [bad])))])
    assert [(b.kind, b.name) for b in plugins.broken] == [("dataset", "ovqvae\n")]
    with pytest.raises(BrokenPluginError, match="must be 1-64 lower-case"):
        plugins.get("dataset", "ovqvae\n")


def test_the_kit_answers_a_wrong_argument_with_what_it_expected():
    with pytest.raises(TypeError, match=r"cls must be a component class \(of kind encoder\), got 42"):
        check_component("encoder", 42)
    with pytest.raises(TypeError, match=r"got an instance of Squares: pass the class itself"):
        check_component("dataset", _dataset("squares")(_Cfg()))
    with pytest.raises(ValueError, match=r"kind must be one of dataset, encoder, prior, metric, modality, got 'enc'"):
        check_component("enc", _dataset("squares"))
    with pytest.raises(ConformanceError, match=r"encoder 'bare' fails 'contract': .*member 'Config' must be a "
                                               "dataclass"):
        check_component("encoder", type("Bare", (), {"name": "bare"}))


def test_an_encoder_without_code_length_once_built_is_named_with_the_member():
    import torch

    from anytime_bench.contract.components import BoundEncoder
    from anytime_bench.contract.plugin_manager import Component, Origin
    from anytime_bench.errors import ComponentError

    class Lengthless:
        def __init__(self, config, data_shape):
            self.codebook_size = 8

    component = Component("encoder", "lengthless", Lengthless, Origin("p", "d", "1"))
    with pytest.raises(ComponentError, match=r"encoder 'lengthless' from plugin 'p' \(distribution d 1\) has no "
                                             r"code_length once built \(a required member of the encoder contract\)"):
        BoundEncoder.build(component, None, (1, 8, 8), torch.device("cpu"))
