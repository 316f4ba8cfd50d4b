"""Run identity (:mod:`anytime_bench.store.identity`) and the record's formats (:mod:`anytime_bench.store.record`): every
committed run folder, a run folder of the first format with its checkpoints, and a plugin that grows an option."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from anytime_bench import hookimpl
from anytime_bench.analysis.report.gather import load_run
from anytime_bench.contract.plugin_manager import load_plugins
from anytime_bench.engine.config import build_config, config_from_record
from anytime_bench.engine.run import Run, recorded
from anytime_bench.errors import ConfigError
from anytime_bench.store import identity
from anytime_bench.store.record import SCHEMA, read_record
from anytime_bench.store.rundir import RunPaths
from anytime_bench_plugins.vqvae import ChannelVQVAE, VQConfig

from .conftest import ROOT, run_cli

RECORDS = Path(__file__).resolve().parent / "records"
COMMITTED = sorted(p.parent for p in (ROOT / "results").glob("*/run.json"))


def test_the_committed_results_are_all_here():
    assert len(COMMITTED) >= 25


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_every_committed_run_folder_is_recognised_reopens_reports_and_resumes(folder, plugins, tmp_path):
    record = read_record(folder / "run.json")
    assert record.recognised, (record.digest, record.state.get("config_digest"))
    state, cfg = recorded(RunPaths(folder), plugins, {})
    assert cfg.digest() == state["config_digest"]
    with Run.open(folder, plugins, quiet=True, device="cpu") as run:
        assert run.data_facts().modality in ("image", "audio")
    assert load_run(folder).missing == []
    # Resume: the same config, rebuilt as a user's file would give it today (every option added since at its
    # default), is accepted into a copy of the folder.
    copy = tmp_path / folder.name
    copy.mkdir()
    shutil.copy(folder / "run.json", copy / "run.json")
    fresh = config_from_record(state["config"], plugins, {})
    run = Run.prepare(fresh, plugins, tmp_path, folder.name, quiet=True)
    run.resume_identity(read_record(copy / "run.json"))
    assert run.cfg.digest() == state["config_digest"]


def test_a_first_format_run_folder_resumes_without_retraining(tmp_path, shared_cache):
    """tests/records/v1-tiny was written by 0.2.0 before records had a schema; its checkpoints carry that
    version's digests."""
    shutil.copytree(RECORDS / "v1-tiny", tmp_path / "v1-tiny")
    before = json.loads((tmp_path / "v1-tiny" / "run.json").read_text())
    assert "schema" not in before
    args = ("run", RECORDS / "v1-tiny.toml", "--out", tmp_path, "--run-id", "v1-tiny", "--cache-dir", shared_cache,
            "--quiet")
    result = run_cli(*args)  # recognised as this run, finished: left as it is
    assert result.code == 0 and result.out.startswith("v1-tiny is done"), result.err
    assert json.loads((tmp_path / "v1-tiny" / "run.json").read_text()) == before
    result = run_cli(*args, "--redo")
    assert result.code == 0, result.err
    after = json.loads((tmp_path / "v1-tiny" / "run.json").read_text())
    trained = after["models"]["ovqvae"]["train_seeds"]["0"]
    assert trained["encoder_resumed"] and trained["prior_resumed"]
    # what training took stays recorded; loading the checkpoints is timed apart
    assert (trained["encoder_seconds"], trained["prior_seconds"]) == (1.488, 0.106)
    assert trained["encoder_load_seconds"] >= 0 and trained["prior_load_seconds"] >= 0
    assert after["schema"] == SCHEMA and after["config_digest"] == before["config_digest"]
    assert after["status"] == "done"
    assert read_record(tmp_path / "v1-tiny" / "run.json").recognised


def test_a_changed_config_is_refused_naming_the_option(tmp_path, shared_cache):
    shutil.copytree(RECORDS / "v1-tiny", tmp_path / "v1-tiny")
    result = run_cli("run", RECORDS / "v1-tiny.toml", "--out", tmp_path, "--run-id", "v1-tiny", "--cache-dir",
                     shared_cache, "--set", "encoder.ovqvae.steps=31", "--quiet")
    assert result.code == 2 and "encoder.ovqvae.steps: 30 in the run, 31 now" in result.err, result.err


def _grower(extra_option: bool, sharpen: float = 0.0):
    """An encoder plugin in releases; the second adds an option whose default keeps the old behaviour (a third
    changes that default)."""
    config = VQConfig
    if extra_option:
        config = dataclasses.make_dataclass("GrownConfig", [("sharpen", float, dataclasses.field(default=sharpen))],
                                            bases=(VQConfig,))

    class Grower(ChannelVQVAE):
        """An ordered VQ-VAE under another name."""

        name = "grower"
        Config = config

    class Plugin:
        @hookimpl
        def register_encoders(self):
            return [Grower]

    return load_plugins(extra=[("grower", Plugin())])


GROWER = {"run": {"encoders": ["grower"], "metrics": ["mse"], "budgets": [0.5, 1.0], "num_samples": 8,
                  "device": "cpu", "workers": 1},
          "encoder": {"grower": {"widths": [8, 16], "codebook_size": 32, "steps": 10, "stage2_steps": 10}},
          "prior": {"transformer": {"n_layer": 1, "n_head": 2, "d_model": 32, "d_ff": 64, "steps": 5,
                                    "eval_every": 5}}}


def test_a_plugin_that_grows_an_option_leaves_its_runs_resumable(tmp_path, shared_cache):
    from anytime_bench.engine.pipeline import run_benchmark

    config = {**GROWER, "run": {**GROWER["run"], "cache_dir": str(shared_cache)}}
    first = run_benchmark(config, out=tmp_path, run_id="r", plugins=_grower(False))
    assert set(first.metrics.model) == {"grower"}
    grown = _grower(True)
    recorded = (tmp_path / "r" / "run.json").read_bytes()
    assert run_benchmark(config, out=tmp_path, run_id="r", plugins=grown).metrics.equals(first.metrics)
    assert (tmp_path / "r" / "run.json").read_bytes() == recorded  # finished: left as it is
    run_benchmark(config, out=tmp_path, run_id="r", plugins=grown, redo=True)
    state = json.loads((tmp_path / "r" / "run.json").read_text())
    trained = state["models"]["grower"]["train_seeds"]["0"]
    assert trained["encoder_resumed"] and trained["prior_resumed"]
    assert state["config"]["encoder"]["grower"]["sharpen"] == 0.0
    # The new option set to another value is another run.
    changed = {**config, "encoder": {"grower": {**GROWER["encoder"]["grower"], "sharpen": 0.5}}}
    with pytest.raises(ConfigError, match=r"encoder\.grower\.sharpen: 0\.0 in the run, 0\.5 now\)"):
        run_benchmark(changed, out=tmp_path, run_id="r", plugins=grown)
    # A later release changes that default: the refusal says so, and what to set to resume the run.
    sharper = _grower(True, sharpen=0.5)
    with pytest.raises(ConfigError, match=r"encoder\.grower\.sharpen: 0\.0 in the run, 0\.5 now; the default "
                                          r"changed since the run was made, \(in-process\) - now: ask for the old "
                                          r"value to resume it, --set encoder\.grower\.sharpen=0\.0 \(or sharpen = "
                                          r"0\.0 in the config's \[encoder\.grower\]\)\)"):
        run_benchmark(config, out=tmp_path, run_id="r", plugins=sharper)
    pinned = {**config, "encoder": {"grower": {**GROWER["encoder"]["grower"], "sharpen": 0.0}}}
    assert run_benchmark(pinned, out=tmp_path, run_id="r", plugins=sharper).metrics.equals(first.metrics)


def test_an_option_added_later_stays_out_of_the_identity_at_its_default(plugins):
    base = build_config({}, plugins)
    form = base.canonical()
    assert form["set"]["run"] == {} and form["set"]["encoder"]["ovqvae"] == {}
    # A record written before `top_p` existed: its identity ignores the key at today's default.
    older = json.loads(json.dumps(form))
    del older["defaults"]["run"]["top_p"]
    assert identity.canonical(base.to_dict() | {"run": {k: v for k, v in base.to_dict()["run"].items()
                                                        if k not in identity.LOCAL_KEYS}},
                              base.defaults(), older)["set"] == form["set"]


def test_a_default_changed_since_the_run_counts_as_set():
    values = {"run": {"budgets": [1.0]}, "encoder": {"e": {"steps": 10}}}
    recorded_form = identity.canonical(values, {"run": {"budgets": [1.0]}, "encoder": {"e": {"steps": 10}}})
    assert recorded_form["set"] == {"run": {}, "encoder": {"e": {}}}
    # Today the default is 20: a config asking for 20 is another run; one asking for 10 is the same run.
    today = {"run": {"budgets": [1.0]}, "encoder": {"e": {"steps": 20}}}
    assert identity.run_digest(identity.canonical(today, today, recorded_form)) != identity.run_digest(recorded_form)
    assert identity.run_digest(identity.canonical(values, today, recorded_form)) == identity.run_digest(recorded_form)
    assert identity.first_difference(recorded_form, identity.canonical(today, today, recorded_form)) == \
        "encoder.e.steps: 10 in the run, 20 now"


@pytest.mark.parametrize("text, message", [
    ('{"config": {"run": {}}, "processes": 1' + "0" * 5000 + "}", "an integer of 5001 digits"),
    ('{"config": {"run": 5}}', "'config' must be a table of tables"),
    ('{"config": {"run": {}, "encoder": 3}}', "'config' must be a table of tables"),
    ('{"schema": 99, "config": {"run": {}}}', "written by a newer anytime-bench (record schema 99"),
    ('{"schema": 2, "config": {"run": {}}}', "'identity' must be"),
    ('[1, 2]', "must hold a JSON object"),
    ('{"config": {"run": {}}, "data": 5}', "'data' must be a table"),
])
def test_a_record_is_parsed_not_trusted(tmp_path, text, message):
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_record(tmp_path / "run.json")


def test_a_malformed_field_of_history_is_dropped_with_a_note_not_trusted(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"config": {"run": {}}, "config_digest": "x",
                                                   "status": "x" * 400, "versions": "a string"}))
    record = read_record(tmp_path / "run.json")
    assert "status" not in record.state and "versions" not in record.state
    assert record.notes[:2] == ["ignored 'status': it must be a status",
                                "ignored 'versions': it must be a table of version strings"]
