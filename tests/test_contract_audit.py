"""What an audit of the contract found the core calling on a component without checking it first: each is now
refused where it enters, naming the plugin, rather than crashing the program or changing the results."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Literal  # noqa: F401  (a hint below names it)

import numpy as np
import pandas as pd
import pytest
import torch

from anytime_bench import ConfigError, hookimpl
from anytime_bench.contract.checks import check_class
from anytime_bench.contract.components import BoundEncoder, BoundMetric, BoundModality, BoundPrior, splits_problem
from anytime_bench.contract.interfaces import DataSplits
from anytime_bench.contract.plugin_manager import Component, Origin, load_plugins
from anytime_bench.errors import BrokenPluginError, ComponentError
from anytime_bench.testing import ConformanceError, check_component

from .conftest import TINY, assert_clean_error, run_cli
from .test_plugin_manager import _dataset

ORIGIN = Origin("audit", "audit-dist", "1.0")


@dataclasses.dataclass
class _Options:
    size: int = 1


def _prior_class(**members):
    def __init__(self, config, vocab_size, seq_len):
        self.vocab_size = vocab_size

    def stream(self, n, length, *, generator, temperature=1.0, top_k=None):
        for _ in range(length):
            yield torch.zeros(n, dtype=torch.long)

    base = {"name": "audited", "Config": _Options, "__doc__": "A prior.", "__init__": __init__, "stream": stream,
            "fit": lambda self, codes, ctx: None, "state_dict": lambda self: {},
            "load_state_dict": lambda self, state: None}
    return type("Audited", (), base | members)


# ---------------------------------------------------------------------- a check that raised took every plugin down


@pytest.mark.parametrize("members,reason", [
    ({"sampling_options": (["top_p"],)}, "member 'sampling_options' must be a tuple of sampling setting names"),
    ({"Config": dataclasses.make_dataclass("Renamed", [("size", int, 1)], namespace={"RENAMED": {"old": " "}})},
     "member 'Config.RENAMED' must be a dict of old option names"),
])
def test_a_class_whose_members_made_the_check_raise_is_quarantined_and_the_others_load(members, reason):
    cls = _prior_class(**members)
    assert any(reason in problem for problem in check_class("prior", cls)), check_class("prior", cls)
    plugins = load_plugins(extra=[("audit", SimpleNamespace(register_priors=hookimpl(lambda: [cls])))])
    assert [(b.kind, b.name) for b in plugins.broken] == [("prior", "audited")]
    with pytest.raises(BrokenPluginError, match=reason):
        plugins.get("prior", "audited")
    assert plugins.get("prior", "transformer").name == "transformer"  # the built-ins are untouched
    with pytest.raises(ConformanceError, match="fails 'contract'"):
        check_component("prior", cls)


def test_a_member_that_raises_when_read_is_a_broken_contract_not_an_internal_error():
    class Raising(type):
        @property
        def kv_cache(cls):
            raise RuntimeError("boom")

    cls = Raising("Raising", (_prior_class(),), {})
    assert check_class("prior", cls) == ["checking it raised RuntimeError: boom"]


# ---------------------------------------------------------------------- load-time checks of values the core uses


@pytest.mark.parametrize("size", [(), (4,), (4, -1), (4, float("nan")), (True, 2), (4, 2, 1)])
def test_a_preview_size_that_is_no_width_and_height_is_refused_when_plugins_load(size):
    modality = type("Odd", (), {"name": "odd", "Config": _Options, "__doc__": "Odd.", "preview_size": size})
    assert any("member 'preview_size' must be a (width, height) tuple of two positive numbers" in problem
               for problem in check_class("modality", modality))


@pytest.mark.parametrize("flag", ["--", "-w", "---x", "--a b", 5])
def test_a_flag_that_is_not_a_long_option_is_refused_when_plugins_load(flag):
    options = dataclasses.make_dataclass("Flagged", [("size", int, dataclasses.field(default=1,
                                                                                     metadata={"flag": flag}))])
    assert any("declares a flag for size that is not '--' and a name" in problem
               for problem in check_class("dataset", _dataset("flagged", options)))
    fine = dataclasses.make_dataclass("Flagged", [("size", int, dataclasses.field(default=1,
                                                                                  metadata={"flag": "--a_b-2"}))])
    assert check_class("dataset", _dataset("flagged", fine)) == []


@pytest.mark.parametrize("hint", [list[int], "list[str] | None", dict[str, int], tuple[int, int]])
def test_a_flag_on_an_option_no_single_value_sets_is_refused_when_plugins_load(hint):
    options = dataclasses.make_dataclass("Listed", [("sizes", hint, dataclasses.field(
        default=None, metadata={"flag": "--sizes"}))])
    assert any("declares a flag for sizes, whose type no flag sets" in problem
               for problem in check_class("dataset", _dataset("listed", options)))
    for fine in (int, "str | None", "Literal['a', 'b']"):
        settable = dataclasses.make_dataclass("Settable", [("size", fine, dataclasses.field(
            default=None, metadata={"flag": "--size"}))], namespace={"__module__": __name__})
        assert not any("no flag sets" in problem for problem in check_class("dataset", _dataset("ok", settable)))


# ---------------------------------------------------------------------- what a component returns, checked on use


def _bound_encoder(scale):
    class Loud:
        code_length, codebook_size = 2, 4

        def __init__(self, config, data_shape):
            pass

        def decode(self, codes):
            return torch.tanh(torch.randn(len(codes), 1, 4, 4, generator=torch.Generator().manual_seed(0))) * scale

    return BoundEncoder.build(Component("encoder", "loud", Loud, ORIGIN), None, (1, 4, 4), torch.device("cpu"))


def test_decoded_data_outside_the_range_is_refused_rather_than_clipped_and_scored():
    codes = torch.zeros(3, 2, dtype=torch.long)
    assert _bound_encoder(1.0).decode(codes).abs().max() <= 1
    with pytest.raises(ComponentError, match=r"encoder 'loud' .*decode\(\) of 2 codes returned values up to 2\.\d+ "
                                             r"in magnitude, outside \[-1, 1\]"):
        _bound_encoder(3.0).decode(codes)


def _bound_prior(sampled):
    cls = _prior_class(sample=lambda self, n, length, *, generator, temperature=1.0, top_k=None: sampled)
    bound = BoundPrior(Component("prior", "audited", cls, ORIGIN), cls(None, 8, 4))
    bound.vocab_size, bound.seq_len = 8, 4
    return bound


@pytest.mark.parametrize("sampled,message", [
    (torch.full((2, 4), 13), r"sample\(\) returned codes outside \[0, 8\)"),
    (torch.full((2, 4), -1), r"sample\(\) returned codes outside \[0, 8\)"),
    (torch.ones(2, 4, dtype=torch.bool), r"sample\(\) returned \(2, 4\) of torch.bool, expected integer codes"),
])
def test_a_priors_own_sample_is_held_to_what_its_stream_is(sampled, message):
    with pytest.raises(ComponentError, match=message):
        _bound_prior(sampled).sample(2, 4, generator=torch.Generator())
    assert _bound_prior(torch.full((2, 4), 7, dtype=torch.int32)).sample(2, 4, generator=torch.Generator()).dtype \
        == torch.long


def _bound_metric(result):
    class Metric:
        name, higher_is_better, requires = "dictok", False, "samples"

        def compute(self, inputs, ctx):
            return result

        def floor(self, inputs, ctx, n, splits):
            return result

    return BoundMetric(Component("metric", "dictok", Metric, ORIGIN), Metric())


@pytest.mark.parametrize("result,message", [
    ({"a/b\nc": 1.0}, r"compute\(\) returned a dict with the key 'a/b\\nc': keys must be 1-64 lower-case"),
    ({3: 1.0}, r"compute\(\) returned a dict with the key 3"),
    ({"ok": 1e200}, r"compute\(\) returned 1e\+200 for dictok_ok, beyond \+-1e\+150"),
])
def test_a_metrics_keys_and_values_are_checked(result, message):
    with pytest.raises(ComponentError, match=message):
        _bound_metric(result).compute(None, None, "evaluate")
    assert _bound_metric({"precision": 0.5}).compute(None, None, "evaluate") == {"dictok_precision": 0.5}


def test_a_floor_is_held_to_the_limit_of_a_score():
    with pytest.raises(ComponentError, match=r"floor\(\) returned 1e\+200 for dictok, beyond \+-1e\+150"):
        _bound_metric([1e200, 1.0]).floor(None, None, 8, 2, "floors")
    assert _bound_metric([0.5, 1.0]).floor(None, None, 8, 2, "floors") == {"dictok": [0.5, 1.0]}


@pytest.mark.parametrize("info", [{1: "a"}, ["a"]])
def test_a_datasets_info_is_checked_with_its_splits(info):
    x = torch.zeros(4, 1, 2, 2)
    # any values: a path or a numpy number, as datasets that worked before give them (nothing records info)
    assert splits_problem(DataSplits(x, x, info={"source": Path("/x"), "count": np.int64(3)}), ["image"]) == ""
    assert "info must be a dict with string keys" in splits_problem(DataSplits(x, x, info=info), ["image"])


@pytest.mark.parametrize("suffix", ["/../../x", "", ".a/b", ".toolongsuffix"])
def test_an_export_suffix_that_could_not_name_a_file_is_the_plugins_fault(suffix):
    class Exporting:
        def __init__(self, config):
            pass

        def export(self, item, info):
            return suffix, "audio/wav", b""

    modality = BoundModality.build(Component("modality", "exporting", Exporting, ORIGIN), None)
    with pytest.raises(ComponentError, match=r"modality 'exporting' .*export\(\) returned the suffix .* is not a file "
                                             r"suffix like '\.wav'"):
        modality.export(None, {})


# ---------------------------------------------------------------------- names and keys the results are read by


def test_a_dict_metric_named_as_the_headline_heads_with_its_first_measurement():
    from anytime_bench.analysis.results import headline
    from anytime_bench.store.tables import headline_measurement

    frame = pd.DataFrame({"metric": ["prc_precision", "prc_recall", "mse"], "source": ["prc", "prc", "mse"],
                          "model": ["m"] * 3, "budget": [1.0] * 3, "value": [0.5, 0.25, 0.1]})
    assert headline_measurement(frame, "prc") == "prc_precision"
    assert headline_measurement(frame, "mse") == "mse"
    assert headline_measurement(frame, "fid") == "fid"  # a metric the table lacks is reported as missing, by name
    assert headline(frame, "prc") == "prc_precision at budgets 1: m 0.5"


def test_runs_whose_reference_sets_differ_only_at_the_end_of_their_names_are_not_ranked_together():
    from anytime_bench.analysis.report.gather import comparability
    from anytime_bench.analysis.report.leaderboard import incomparable

    def frame(reference):
        prov = {"implementation": "x", "feature_space": "f", "reference_set": reference, "samples": 1000}
        return pd.DataFrame({"metric": ["fid"], "provenance": [json.dumps(prov)]})

    long = "speech-commands-v2-12cls-validation-10000-"
    one, other = comparability(frame(long + "d8f99"), "fid"), comparability(frame(long + "01234"), "fid")
    assert one != other
    assert incomparable(one, [one, other]) == "reference set speech-c...d8f99, other groups speech-c...01234"


# ---------------------------------------------------------------------- a dataset's defaults are its own


@pytest.mark.parametrize("defaults,message", [
    ({"run": {"num_samples": -3}}, "dataset 'defaulted': its defaults are refused: run.num_samples: must be in"),
    ({"encoder": 5}, "dataset 'defaulted': its defaults' encoder must be a table of per-encoder tables"),
    ({"encoder": {"ovqvae": {"stepz": 5}}}, "dataset 'defaulted': its defaults are refused: encoder.ovqvae: unknown"),
])
def test_a_datasets_defaults_that_fail_name_the_dataset_not_the_users_config(defaults, message):
    from anytime_bench.engine.config import dataset_defaults

    cls = _dataset("defaulted")
    cls.defaults = defaults
    plugins = load_plugins(extra=[("defaulted", SimpleNamespace(register_datasets=hookimpl(lambda: [cls])))])
    with pytest.raises(ConfigError, match=message):
        dataset_defaults({"run": {"dataset": "defaulted"}}, plugins)


def test_the_console_still_names_a_bad_config_as_before():
    assert_clean_error(run_cli("config", TINY, "--set", "run.num_samples=-3"), 2, "run.num_samples: must be in")
