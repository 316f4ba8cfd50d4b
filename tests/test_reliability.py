"""Protections against bad input and crashes; each test fails if its protection is removed."""

import dataclasses
import json
import os
import string
from dataclasses import dataclass

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anytime_bench import DataSplits, hookimpl
from anytime_bench.contract.plugin_manager import load_plugins
from anytime_bench.engine.config import RunConfig, build_config
from anytime_bench.engine.run import Run
from anytime_bench.engine.stages import train_stage
from anytime_bench.errors import AnytimeBenchError, CheckpointError, ComponentError
from anytime_bench.files import storage
from anytime_bench_plugins.transformer import TransformerConfig
from anytime_bench_plugins.vqvae import ChannelVQVAE, VQConfig

# ---------------------------------------------------------------- malformed configs

SECTIONS = {("run", None): RunConfig, ("encoder", "ovqvae"): VQConfig, ("prior", "transformer"): TransformerConfig}
WRONG_TYPE = {
    int: st.one_of(st.text(max_size=5), st.booleans(), st.floats(allow_nan=False),
                   st.lists(st.integers(), max_size=2)),
    float: st.one_of(st.text(max_size=5), st.booleans(), st.lists(st.floats(), max_size=2)),
    str: st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.text(), max_size=2)),
    bool: st.one_of(st.integers(), st.text(max_size=5), st.floats(allow_nan=False)),
    list: st.one_of(st.integers(), st.text(max_size=5), st.booleans()),
}
OUT_OF_RANGE = [
    ("run", None, "budgets", st.lists(st.one_of(st.floats(max_value=0.0, allow_nan=False),
                                                st.floats(min_value=1.0, exclude_min=True, allow_nan=False)),
                                      min_size=1, max_size=3)),
    ("run", None, "num_samples", st.integers(max_value=0)),
    ("run", None, "seed", st.integers(max_value=-1)),
    ("run", None, "encoders", st.just([])),
    ("encoder", "ovqvae", "code_length", st.integers(max_value=0)),
    ("encoder", "ovqvae", "codebook_size", st.integers(max_value=1)),
    ("encoder", "ovqvae", "steps", st.integers(max_value=-1)),
    ("encoder", "ovqvae", "lr", st.floats(max_value=0.0, allow_nan=False)),
    ("prior", "transformer", "dropout", st.floats(min_value=1.0, allow_nan=False, allow_infinity=False)),
    ("prior", "transformer", "n_layer", st.integers(max_value=0)),
]


def _field_kind(cls, name):
    hint = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    if "|" in str(hint):
        return None  # unions: any of their types is right
    for kind, word in ((list, "list"), (bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if str(hint).startswith(word) or str(hint) == kind.__name__:
            return kind
    return None  # Literal and unions: covered by the other strategies


def _place(section, name, key, value):
    kind, component = section
    if kind == "run":
        return {"run": {key: value}}
    return {kind: {component: {key: value}}}


@st.composite
def malformed_configs(draw):
    how = draw(st.sampled_from(["unknown key", "wrong type", "out of range", "unknown name", "unknown table"]))
    if how == "unknown key":
        section = draw(st.sampled_from(list(SECTIONS)))
        known = {f.name for f in dataclasses.fields(SECTIONS[section])}
        key = draw(st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(lambda k: k not in known))
        return _place(section, None, key, draw(st.integers()))
    if how == "wrong type":
        section = draw(st.sampled_from(list(SECTIONS)))
        fields = [f.name for f in dataclasses.fields(SECTIONS[section]) if _field_kind(SECTIONS[section], f.name)]
        key = draw(st.sampled_from(fields))
        return _place(section, None, key, draw(WRONG_TYPE[_field_kind(SECTIONS[section], key)]))
    if how == "out of range":
        kind, component, key, values = draw(st.sampled_from(OUT_OF_RANGE))
        return _place((kind, component), None, key, draw(values))
    if how == "unknown name":
        kind = draw(st.sampled_from(["dataset", "prior"]))
        name = draw(st.text(string.ascii_lowercase, min_size=1, max_size=8).filter(
            lambda n: n not in ("digits", "mnist", "transformer")))
        return {"run": {kind: name}}
    return {draw(st.text(string.ascii_lowercase, min_size=1, max_size=8).filter(
        lambda t: t not in ("run", "dataset", "encoder", "prior", "metric", "modality"))): {}}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=malformed_configs())
def test_malformed_configs_always_get_one_clean_line(plugins, raw):
    with pytest.raises(AnytimeBenchError) as info:
        build_config(raw, plugins)
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message


# ---------------------------------------------------------------- atomic files


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "metrics.csv"
    storage.write_text(target, "old\n")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        storage.write_text(target, "new and half-written\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary left behind


def test_checkpoints_carry_format_and_config_digest(tmp_path):
    path = tmp_path / "m.encoder.pt"
    storage.save_checkpoint(path, kind="encoder", name="m", config_digest="abc", state={"w": torch.ones(2)})
    assert storage.load_checkpoint(path, kind="encoder", name="m", config_digest="abc")["state"]["w"].sum() == 2
    with pytest.raises(CheckpointError, match="trained with another config"):
        storage.load_checkpoint(path, kind="encoder", name="m", config_digest="xyz")
    with pytest.raises(CheckpointError, match="holds encoder 'm', expected prior 'm'"):
        storage.load_checkpoint(path, kind="prior", name="m", config_digest="abc")
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="not an anytime-bench checkpoint"):
        storage.load_checkpoint(path, kind="encoder", name="m", config_digest="abc")


def test_checkpoints_holding_nan_or_no_state_are_refused(tmp_path):
    path = tmp_path / "m.encoder.pt"
    storage.save_checkpoint(path, kind="encoder", name="m", config_digest="abc",
                            state={"net": {"w": torch.ones(2), "mask": torch.tensor([0.0, -float("inf")])}})
    storage.load_checkpoint(path, kind="encoder", name="m", config_digest="abc")  # an infinite mask is fine
    storage.save_checkpoint(path, kind="encoder", name="m", config_digest="abc",
                            state={"net": {"w": torch.tensor([1.0, float("nan")])}})
    with pytest.raises(CheckpointError, match=r"m.encoder.pt holds NaN values \(in 'net.w'\)"):
        storage.load_checkpoint(path, kind="encoder", name="m", config_digest="abc")
    storage.save_checkpoint(path, kind="encoder", name="m", config_digest="abc", state=[torch.ones(1)])
    with pytest.raises(CheckpointError, match="holds no state dict"):
        storage.load_checkpoint(path, kind="encoder", name="m", config_digest="abc")


def test_the_nan_search_survives_deep_and_cyclic_states():
    from anytime_bench import nonfinite_entry

    deep: list = [torch.tensor([float("nan")])]
    for _ in range(5000):  # deeper than Python recurses
        deep = [deep]
    assert nonfinite_entry(deep) == "0." * 5000 + "0"
    cyclic: list = [torch.ones(1)]
    cyclic.append(cyclic)
    assert nonfinite_entry({"a": cyclic, "b": (torch.tensor([float("inf")]),)}) == "b.0"
    assert nonfinite_entry({"b": (torch.tensor([float("inf")]),)}, infinite=False) is None


@pytest.mark.parametrize("extra", [{"step": 3}, {"step": 3, "torch_rng": torch.zeros(5, dtype=torch.uint8)},
                                   {"step": "3", "torch_rng": torch.get_rng_state()},
                                   {"step": -1, "torch_rng": torch.get_rng_state()},
                                   {"step": 3, "torch_rng": torch.get_rng_state().float()}])
def test_a_loop_checkpoint_without_a_valid_step_and_random_state_starts_afresh(tmp_path, extra):
    from anytime_bench.contract.checkpoints import LoopCheckpoint

    path = tmp_path / "loop.pt"
    storage.save_checkpoint(path, kind="loop", name="loop", config_digest="d", state={"w": torch.ones(1)}, extra=extra)
    said: list[str] = []
    torch.manual_seed(7)
    before = torch.get_rng_state()
    assert LoopCheckpoint(path, "d", every=1, log=said.append).restore() is None
    assert torch.equal(torch.get_rng_state(), before), "a refused file changed the random state of a fresh start"
    assert "holds no valid step and random state" in said[0]


def test_a_decoder_that_returns_nan_is_named_rather_than_stored_as_pixels():
    from anytime_bench.contract.components import BoundEncoder
    from anytime_bench.contract.plugin_manager import Component, Origin

    class NanDecoder:
        name, Config, ordered = "nan-decoder", _NoOptions, True
        code_length, codebook_size = 2, 4

        def __init__(self, config, data_shape):
            self.shape = data_shape

        def decode(self, codes):
            return torch.full((len(codes), *self.shape), float("nan"))

    component = Component("encoder", "nan-decoder", NanDecoder, Origin("p", "d", "1"))
    encoder = BoundEncoder.build(component, _NoOptions(), (1, 2, 2), torch.device("cpu"))
    with pytest.raises(ComponentError, match=r"decode\(\) of 1 codes returned NaN or infinite values"):
        encoder.decode(torch.zeros(3, 1, dtype=torch.long))


# ---------------------------------------------------------------- crashes during training


@dataclass
class _NoOptions:
    pass


def _dataset_plugin(values: float):
    class Flat:
        """Constant images (NaN ones make every loss NaN)."""

        name = "flat"
        Config = _NoOptions

        def __init__(self, config, data_root=None):
            pass

        def load(self):
            x = torch.full((40, 1, 8, 8), values)
            y = torch.zeros(40, dtype=torch.long)
            return DataSplits(x, x[:8], y, y[:8], num_classes=1)

    class Plugin:
        @hookimpl
        def register_datasets(self):
            return [Flat]

    return Plugin()


def _tiny_cfg(plugins, encoders=("ovqvae",)):
    small = {"widths": [4, 8], "codebook_size": 8, "steps": 5, "stage2_steps": 5}
    return build_config({"run": {"dataset": "flat", "encoders": list(encoders), "metrics": ["mse"], "device": "cpu"},
                         "encoder": {e: small for e in encoders if e != "broken"}}, plugins)


def _begin(cfg, plugins, tmp_path, run_id):
    run = Run.prepare(cfg, plugins, tmp_path, run_id, quiet=True)
    run.begin()
    return run


class NanVQVAE(ChannelVQVAE):
    """The built-in ordered VQ-VAE with a loss that is NaN from the first step."""

    name = "nan-ovqvae"

    def extra_recon_loss(self, x_hat, x):
        return float("nan")


class _NanPlugin:
    @hookimpl
    def register_encoders(self):
        return [NanVQVAE]


def test_nan_loss_stops_with_stage_and_step_and_keeps_the_last_good_weights(tmp_path):
    plugins = load_plugins(extra=[("flat-data", _dataset_plugin(0.0)), ("nan-encoder", _NanPlugin())])
    cfg = build_config({"run": {"dataset": "flat", "encoders": ["nan-ovqvae"], "metrics": ["mse"], "device": "cpu"},
                        "encoder": {"nan-ovqvae": {"widths": [4, 8], "codebook_size": 8, "steps": 5,
                                                   "stage2_steps": 5}}}, plugins)
    run = _begin(cfg, plugins, tmp_path, "nan")
    with pytest.raises(ComponentError, match=r"loss became nan at step 0 of nan-ovqvae stage 1.*last good weights"):
        run.stage("train", lambda: train_stage(run))
    assert run.paths.last_good("nan-ovqvae", 0, "encoder").is_file()
    assert not run.paths.checkpoint("nan-ovqvae", 0, "encoder").exists()
    state = json.loads(run.paths.run_json.read_text())
    assert state["status"] == "failed" and state["stage"] == "train" and "loss became nan" in state["failure"]


def test_nan_data_are_refused_when_loaded_naming_the_dataset(tmp_path):
    plugins = load_plugins(extra=[("nan-data", _dataset_plugin(float("nan")))])
    run = Run.prepare(_tiny_cfg(plugins), plugins, tmp_path, "nan", quiet=True)
    with pytest.raises(AnytimeBenchError, match=r"dataset 'flat' from plugin 'nan-data'.*NaN or infinite"):
        run.data()
    assert not (tmp_path / "nan").exists()


def test_an_exception_inside_a_component_names_plugin_distribution_and_stage(tmp_path):
    class Broken:
        """An encoder whose training raises."""

        name = "broken"
        Config = _NoOptions
        ordered = False
        code_length, codebook_size = 4, 8

        def __init__(self, config, data_shape):
            pass

        def fit(self, data, ctx):
            raise RuntimeError("CUDA out of memory (pretend)")

        def encode(self, x):
            raise NotImplementedError

        def decode(self, codes):
            raise NotImplementedError

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    class Plugin:
        @hookimpl
        def register_encoders(self):
            return [Broken]

    plugins = load_plugins(extra=[("flat-data", _dataset_plugin(0.0)), ("third-party", Plugin())])
    cfg = _tiny_cfg(plugins, encoders=("broken",))
    run = _begin(cfg, plugins, tmp_path, "broken")
    with pytest.raises(ComponentError, match=r"stage 'train encoder broken \(training seed 0\)' failed in encoder "
                                             r"'broken' from plugin 'third-party' \(distribution \(in-process\) -\): "
                                             r"RuntimeError: CUDA"):
        run.stage("train", lambda: train_stage(run))
    assert json.loads(run.paths.run_json.read_text())["stage"] == "train"


@pytest.mark.parametrize("parent_alive", [True, False])
def test_a_training_worker_whose_run_died_while_it_started_leaves_at_once(parent_alive):
    """A run killed while its workers import torch must not leave them training the jobs queued to them."""
    import subprocess
    import sys

    parent = "os.getppid()" if parent_alive else "os.getppid() + 1_000_000"
    code = f"import os; from anytime_bench.engine.workers import _die_with_parent; _die_with_parent({parent}); print('alive')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, "alive" in done.stdout) == ((0, True) if parent_alive else (1, False)), done.stderr


def test_check_finite_takes_the_loss_tensor_itself_without_a_warning():
    import warnings

    from anytime_bench import NonFiniteLossError, check_finite

    weight = torch.ones(2, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converting a tensor that requires grad warns, once per step, unasked
        check_finite((weight * 2).sum(), "fit", 1)
        check_finite(1.5, "fit", 1)
        with pytest.raises(NonFiniteLossError, match="loss became nan at step 3 of fit"):
            check_finite((weight * float("nan")).sum(), "fit", 3)


def test_a_state_no_checkpoint_can_hold_is_the_components_fault_and_one_built_in_fit_is_checked_when_saved():
    import threading

    import numpy as np

    from anytime_bench.contract.components import Bound
    from anytime_bench.contract.plugin_manager import Component, Origin

    class Lazy:
        """Builds its model in fit: no state before it."""

        def __init__(self, extra):
            self.table, self.extra = None, extra

        def state_dict(self):
            return {"table": self.table.clone(), **self.extra}

    def bound(extra):
        return Bound(Component("prior", "lazy", Lazy, Origin("lazy", "lazy-dist", "1.0")), Lazy(extra))

    untrained = bound({"lock": threading.Lock()})
    untrained.check_untrained_state("preflight")  # state_dict() raises before fit: nothing to check yet
    for extra, why in [({"lock": threading.Lock()}, "torch.save cannot write it: TypeError: cannot pickle"),
                       ({"best": np.float64(0.5)}, "a weights-only load refuses it: Unsupported global"),
                       ({"config": RunConfig()}, "a weights-only load refuses it: .*RunConfig")]:
        fitted = bound(extra)
        fitted.obj.table = torch.ones(3)
        for check in (fitted.check_untrained_state, fitted.saved_state):
            with pytest.raises(ComponentError, match="prior 'lazy' from plugin 'lazy' .*state_dict\\(\\) holds what a "
                                                     f"checkpoint cannot .*: {why}"):
                check("save prior checkpoint")
    fitted = bound({"steps": [1, 2], "nested": {"w": torch.zeros(2)}})
    fitted.obj.table = torch.ones(1000, 1000)
    assert fitted.saved_state("save prior checkpoint")["table"].shape == (1000, 1000)


def test_a_loop_state_no_checkpoint_can_hold_stops_the_loop_rather_than_restarting_it_later(tmp_path):
    import numpy as np

    from anytime_bench.contract.checkpoints import LoopCheckpoint

    loop = LoopCheckpoint(tmp_path / "loop.pt", "d", every=1)
    with pytest.raises(ValueError, match="the training loop's state holds what a checkpoint cannot .*numpy"):
        loop.save(0, {"w": torch.ones(2), "best": np.float64(0.5)})
    assert not (tmp_path / "loop.pt").exists()
    loop.save(0, {"w": torch.ones(2), "best": 0.5})
    restored = loop.restore()
    assert loop.restored_step == 0 and restored["best"] == 0.5 and torch.equal(restored["w"], torch.ones(2))


def test_a_lazy_layer_is_checked_when_saved_not_before_fit():
    from anytime_bench.contract.components import Bound
    from anytime_bench.contract.plugin_manager import Component, Origin

    module = torch.nn.Sequential(torch.nn.LazyLinear(4))  # its weights are sized by the first batch, in fit
    bound = Bound(Component("prior", "lazy", type(module), Origin("lazy", "lazy-dist", "1.0")), module)
    bound.check_untrained_state("preflight")
    module(torch.ones(2, 3))
    assert bound.saved_state("save prior checkpoint")["0.weight"].shape == (4, 3)


def test_a_loop_checkpoint_not_resumed_from_is_heard_even_with_quiet(tmp_path):
    """Steps trained again cost time: the line saying so is a warning, which ``--quiet`` does not hide."""
    import io

    from rich.console import Console

    from anytime_bench.contract.context import LoopCheckpoints, RunContext

    (tmp_path / "loop.pt").write_bytes(b"not a checkpoint")
    out = io.StringIO()
    ctx = RunContext(console=Console(file=out, width=500), quiet=True,
                     checkpoints=LoopCheckpoints(folder=tmp_path, digest="d", every=1))
    ctx.log("a log line")
    assert ctx.loop_checkpoint("loop").restore() is None
    assert "a log line" not in out.getvalue()
    assert f"warning: not resuming from {tmp_path / 'loop.pt'}" in out.getvalue()


def test_the_loops_a_fit_continued_are_what_the_train_stage_reports_and_records():
    """A worker's log lines are not shown: the parent says from its record what each job resumed."""
    import tempfile
    from pathlib import Path

    from anytime_bench.contract.context import Ledger, LoopCheckpoints, RunContext
    from anytime_bench.engine.stages.train import _resumed_note

    with tempfile.TemporaryDirectory() as folder:
        ctx = RunContext(quiet=True, checkpoints=LoopCheckpoints(folder=Path(folder), digest="d", every=1))
        ctx.loop_checkpoint("stage1").save(41, {"w": torch.ones(1)})
        ledger = Ledger()
        ctx = dataclasses.replace(ctx, ledger=ledger)
        assert ctx.loop_checkpoint("stage1").restore() is not None and ctx.loop_checkpoint("stage2").restore() is None
        assert ledger.resumed == {"stage1": 41}
    assert _resumed_note([{"encoder_resumed_after": {"stage1": 41}, "prior_resumed": True}]) == \
        " (encoder loop stage1 resumed after step 41; prior loaded from its checkpoint)"
    assert _resumed_note([{"encoder_seconds": 3.0}]) == ""


def test_an_interrupted_run_tells_a_library_caller_where_it_stopped_and_that_it_resumes():
    import pickle
    import signal

    from anytime_bench import Interrupted

    exc = Interrupted(signal.SIGINT)
    assert str(exc) == "SIGINT" and isinstance(exc, KeyboardInterrupt)
    exc.where = " in stage train of results/r"
    again = pickle.loads(pickle.dumps(exc))  # as it comes back from a training worker
    assert str(again) == ("SIGINT in stage train of results/r: finished stages and checkpoints are kept; run it "
                          "again to resume")


def test_a_fit_that_fails_after_resuming_names_the_checkpoint_it_resumed_from(tmp_path):
    """What a plugin keeps of its own loop (a best loss, say) is only checked by the plugin: a failure after
    resuming may be the file's, which no one can tell, so the message names it and how to start afresh."""
    from anytime_bench.contract.checkpoints import LoopCheckpoint
    from anytime_bench.contract.context import Ledger
    from anytime_bench.engine.stages.train import _after_resuming

    ledger, loop = Ledger(), LoopCheckpoint(tmp_path / "transformer.pt", "d", every=1)
    loop.restored_step = 6
    ledger.loops.append(loop)
    failed = ComponentError("stage 'train prior' failed in prior 'transformer': TypeError: '<' not supported")
    failed.component = ("prior", "transformer")
    said = _after_resuming(failed, ledger)
    assert str(said) == (f"{failed}; it had resumed from {tmp_path / 'transformer.pt'} (after step 6): if that file "
                         f"came from elsewhere, remove it to train that loop from its start")
    assert said.component == ("prior", "transformer")


def test_a_warning_is_one_line_whatever_its_length_or_what_it_quotes():
    """A console that is not a terminal folds at 80 columns: a warning (a checkpoint's path and why it is not
    resumed) came out over four lines, and a newline from a file split it."""
    import io

    from rich.console import Console

    from anytime_bench.contract.context import RunContext

    out = io.StringIO()
    RunContext(console=Console(file=out, width=80), quiet=True).warn("not resuming " + "x" * 200 + " [bold]\n\x1b[31m")
    assert out.getvalue() == "warning: not resuming " + "x" * 200 + " [bold]\\n\\x1b[31m\n"
