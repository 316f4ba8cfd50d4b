from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from anytime_bench import hookimpl
from anytime_bench.contract.plugin_manager import load_plugins
from anytime_bench.errors import BrokenPluginError, PluginError


@dataclass
class _Cfg:
    pass


def _dataset(name, config=_Cfg):
    def __init__(self, config, data_root=None):
        pass

    def load(self):
        raise NotImplementedError

    return type(name.title(), (), {"name": name, "Config": config, "__doc__": f"{name} data.", "__init__": __init__,
                                   "load": load})


def _plugin(*classes):
    class Plugin:
        @hookimpl
        def register_datasets(self):
            return list(classes)

    return Plugin()


def test_builtins_are_registered_through_entry_points(plugins):
    names = {(c.kind, c.name): c for c in plugins.all()}
    for key in [("dataset", "digits"), ("dataset", "mnist"), ("encoder", "ovqvae"), ("encoder", "vqvae-channel"),
                ("encoder", "vqvae-spatial"), ("prior", "transformer"), ("metric", "fid"), ("metric", "mse"),
                ("metric", "psnr")]:
        assert key in names
        assert names[key].origin.distribution == "anytime-bench"
        assert names[key].origin.plugin.startswith("builtin-")


def test_in_process_plugin_adds_a_component():
    plugins = load_plugins(extra=[("mine", _plugin(_dataset("squares")))])
    assert plugins.get("dataset", "squares").origin.plugin == "mine"


def test_a_summary_wrapped_over_lines_is_described_whole_without_the_paragraphs_after_it():
    squares = _dataset("squares")
    squares.__doc__ = """Squares of every size, drawn on a grid,
    then centred.

    Details that only ``help()`` shows."""
    plugins = load_plugins(extra=[("mine", _plugin(squares))])
    assert plugins.get("dataset", "squares").description == "Squares of every size, drawn on a grid, then centred."


def test_duplicate_names_name_both_plugins_and_neither_is_used():
    plugins = load_plugins(extra=[("mine", _plugin(_dataset("squares"))), ("yours", _plugin(_dataset("squares")))])
    with pytest.raises(BrokenPluginError, match=r"dataset 'squares' is registered twice: by plugin 'mine'"
                                                r".* and by plugin 'yours'.*none is used"):
        plugins.get("dataset", "squares")
    assert {(b.origin.plugin, b.name) for b in plugins.broken} == {("mine", "squares"), ("yours", "squares")}


def test_a_built_in_keeps_its_name_and_the_package_that_takes_it_is_quarantined():
    # otherwise one package's clash would stop every run of the built-in, which does not use that package
    plugins = load_plugins(extra=[("mine", _plugin(_dataset("digits"), _dataset("squares")))])
    assert plugins.get("dataset", "digits").origin.plugin == "builtin-datasets"
    assert [(b.origin.plugin, b.name) for b in plugins.broken] == [("mine", "digits")]
    assert "is the built-in dataset's" in plugins.broken[0].reason and "rename it" in plugins.broken[0].reason
    assert plugins.get("dataset", "squares").origin.plugin == "mine"  # the rest of the plugin stays usable


def test_a_plugin_that_implements_no_hook_says_why():
    from anytime_bench import hookimpl

    class Unmarked:  # register_metrics without @hookimpl
        def register_metrics(self):
            return []

    class Misspelt:
        @hookimpl
        def register_metric(self):
            return []

    plugins = load_plugins(extra=[("unmarked", Unmarked()), ("misspelt", Misspelt()), ("a-class", _dataset("x"))])
    reasons = {b.origin.plugin: b.reason for b in plugins.broken}
    assert reasons["unmarked"].startswith("implements no hook") and "@anytime_bench.hookimpl" in reasons["unmarked"]
    assert reasons["a-class"].startswith("implements no hook")  # an entry point naming a class
    assert reasons["misspelt"].startswith("marks register_metric with @hookimpl, but no hook is named so")


def test_a_stand_in_takes_the_recorded_options_in_a_copy_and_refuses_what_no_config_holds(plugins):
    """What stands in for a dataset that cannot be loaded (commands that read no data): its Config takes what the
    run recorded; names no config has (dunders, keywords, names Python reads as another, too many) get none."""
    stood = plugins.standing_in("dataset", "gone", {"size": 8, "classes": [1, 2]}, "unknown dataset 'gone'")
    config = stood.get("dataset", "gone").cls.Config()
    assert (config.size, config.classes) == (8, [1, 2])
    assert "gone" not in plugins.names("dataset")  # the registry itself is left as it was
    for options in ({"__init__": 1}, {"class": 1}, {"x y": 1}, {1: 2}, {"\ufb01": 1, "fi": 2},
                    {f"k{i}": i for i in range(300)}):
        assert plugins.standing_in("dataset", "gone", options, "gone") is None, options


def test_unknown_name_lists_the_available_ones_and_the_closest_to_a_typo(plugins):
    with pytest.raises(PluginError, match=r"unknown encoder 'nope' \(available: oracle, ovqvae, ovqvae-1d, "):
        plugins.get("encoder", "nope")
    with pytest.raises(PluginError, match=r"unknown prior 'transfromer': did you mean 'transformer'\? \(available: "):
        plugins.get("prior", "transfromer", suggest=True)
    with pytest.raises(PluginError, match=r"unknown prior 'transfromer' \(available: "):  # a name a run recorded
        plugins.get("prior", "transfromer")
    with pytest.raises(PluginError, match=r"unknown dataset 'my-digits' \(available: "):  # another name, no typo
        plugins.get("dataset", "my-digits", suggest=True)


def test_plugin_that_fails_to_import_is_named(monkeypatch):
    broken = SimpleNamespace(
        name="broken", value="broken_module", dist=SimpleNamespace(metadata={"Name": "broken-dist"}, version="9.9"),
        load=lambda: (_ for _ in ()).throw(ImportError("No module named 'broken_module'")),
    )
    monkeypatch.setattr("anytime_bench.contract.plugin_manager._entry_points", lambda: [broken])
    plugins = load_plugins()
    assert [(b.subject, b.reason) for b in plugins.broken] == [
        ("plugin 'broken' (distribution broken-dist 9.9)",
         "failed to import (broken_module): ImportError: No module named 'broken_module'")]
    with pytest.raises(BrokenPluginError, match=r"unknown dataset 'digits': broken plugins, which might have "
                                                r"provided it, were skipped: plugin 'broken'.*; datasets installed: "
                                                r"none$"):
        plugins.get("dataset", "digits")


def test_component_without_config_is_refused():
    bad = type("Bad", (), {"name": "bad"})
    plugins = load_plugins(extra=[("mine", _plugin(bad, _dataset("squares")))])
    with pytest.raises(BrokenPluginError, match=r"dataset 'bad' of plugin 'mine' \(distribution \(in-process\) -\) is "
                                                r"broken and was skipped when plugins loaded: it breaks the dataset "
                                                r"contract: member 'Config' must be a dataclass"):
        plugins.get("dataset", "bad")
    assert plugins.get("dataset", "squares").origin.plugin == "mine"  # only the component is quarantined


def test_a_machine_local_option_without_a_flag_is_refused():
    @dataclass
    class Cfg:
        weights: str = field(default="", metadata={"local": True})

    bad = _dataset("weighted")
    bad.Config = Cfg
    with pytest.raises(BrokenPluginError, match="marks weights local without a flag"):
        load_plugins(extra=[("mine", _plugin(bad))]).get("dataset", "weighted")


def test_an_option_whose_default_is_not_a_finite_number_is_refused():
    @dataclass
    class Cfg:
        max_norm: float = float("inf")  # the usual "no clipping", which a config could not set back

    bad = _dataset("endless")
    bad.Config = Cfg
    with pytest.raises(BrokenPluginError, match="gives max_norm a default that is not a finite number"):
        load_plugins(extra=[("mine", _plugin(bad))]).get("dataset", "endless")


def test_a_recorded_config_reopens_with_a_number_an_earlier_version_took(tiny_run, tmp_path, plugins):
    # what a run was made with reopens as it was: earlier versions took inf for a number option
    import json
    import shutil

    from anytime_bench.engine.run import Run

    run = tmp_path / "inf"
    shutil.copytree(tiny_run, run)
    record = json.loads((run / "run.json").read_text())
    record["config"]["prior"]["transformer"]["weight_decay"] = float("inf")
    (run / "run.json").write_text(json.dumps(record))
    assert Run.open(run, plugins, quiet=True).cfg.prior_configs["ovqvae"].weight_decay == float("inf")


def test_hook_that_raises_is_attributed():
    class Plugin:
        @hookimpl
        def register_datasets(self):
            return [_dataset("squares")]

        @hookimpl
        def register_metrics(self):
            raise RuntimeError("boom")

    plugins = load_plugins(extra=[("mine", Plugin())])
    assert [(b.subject, b.kind, b.reason) for b in plugins.broken] == [
        ("plugin 'mine' (distribution (in-process) -)", None, "failed in register_metrics: RuntimeError: boom")]
    # a plugin whose code failed is quarantined whole: its other components are not used either
    with pytest.raises(BrokenPluginError, match=r"dataset 'squares' of plugin 'mine' .* failed in register_metrics"):
        plugins.get("dataset", "squares")
    assert "mine" not in plugins.origins and plugins.manager.get_plugin("mine") is None


def test_a_prior_without_stream_is_refused_when_plugins_load_before_any_work(monkeypatch, tmp_path):
    from .conftest import TINY, assert_clean_error, run_cli
    from .test_conformance import MissingStream

    class Plugin:
        @hookimpl
        def register_priors(self):
            return [MissingStream]

    entry = SimpleNamespace(name="forgetful", value="forgetful_module", load=lambda: Plugin(),
                            dist=SimpleNamespace(metadata={"Name": "forgetful-dist"}, version="0.3"))
    real = __import__("anytime_bench.contract.plugin_manager", fromlist=["_entry_points"])._entry_points
    monkeypatch.setattr("anytime_bench.contract.plugin_manager._entry_points", lambda: [*real(), entry])
    result = run_cli("run", TINY, "--prior", "no-stream", "--out", tmp_path)
    assert_clean_error(result, 2, "plugin 'forgetful' (distribution forgetful-dist 0.3)", "prior 'no-stream'",
                       "required member 'stream' is missing")
    assert not list(tmp_path.iterdir())  # refused before any work
