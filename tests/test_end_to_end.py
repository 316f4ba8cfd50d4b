"""One reduced run of every stage through the CLI, and the results contract it writes."""

import json
import warnings

import pandas as pd
import pytest

from anytime_bench.cli import main
from anytime_bench.engine import pipeline
from anytime_bench.store.rundir import COST_COLUMNS, METRICS_COLUMNS

from .conftest import TINY, assert_clean_error, run_cli


def invoke(*args):
    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), f"exit code {exc.code}"


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    """The session's tiny run: these tests sample, evaluate, bench and resume it in place."""
    return tiny_run


def test_run_writes_the_results_contract(run_dir):
    for name in ("metrics.csv", "summary.md", "quality_vs_budget.png", "samples.png", "run.json"):
        assert (run_dir / name).is_file(), name
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert list(frame.columns) == METRICS_COLUMNS
    assert set(frame.model) == {"ovqvae", "vqvae-channel", "vqvae-spatial"}
    assert set(frame.metric) == {"fid", "fid-random", "rfid", "mse", "psnr"}
    assert sorted(frame.budget.unique()) == [0.25, 0.5, 1.0]
    # 3 models x 3 budgets x 5 metrics, one seed
    assert len(frame) == 45 and frame.value.notna().all()
    ovq = frame[(frame.model == "ovqvae") & (frame.metric == "mse")].sort_values("budget")
    assert ovq.tokens.tolist() == [4, 8, 16]
    spatial = frame[frame.model == "vqvae-spatial"]
    assert spatial.ordered.eq(False).all() and frame[frame.model == "ovqvae"].ordered.all()


def test_run_json_records_config_versions_and_stage_times(run_dir):
    state = json.loads((run_dir / "run.json").read_text())
    assert state["status"] == "done"
    assert state["config"]["run"]["budgets"] == [0.25, 0.5, 1.0]
    assert state["config"]["encoder"]["ovqvae"]["steps"] == 30
    assert {"torch", "torch-fidelity", "anytime-bench"} <= set(state["versions"])
    assert state["git_commit"] and state["device"]["device"] == "cpu"
    assert set(state["stage_seconds"]) == {"preflight", "train", "sample", "evaluate"}
    assert state["models"]["ovqvae"]["code_length"] == 16
    assert state["metrics_provenance"]["fid"]["implementation"] == "torch-fidelity"


def test_summary_has_a_model_by_budget_table(run_dir):
    text = (run_dir / "summary.md").read_text()
    assert "## headline: fid by budget" in text
    assert "| model | 0.25 | 0.5 | 1 |" in text
    assert "| vqvae-spatial (unordered) |" in text


def test_stages_run_separately_from_checkpoints(run_dir, shared_cache):
    before = pd.read_csv(run_dir / "metrics.csv")
    invoke("sample", str(run_dir), "--quiet", "--cache-dir", str(shared_cache))
    # The run's own cache: another cache's feature classifier would be another feature space.
    invoke("evaluate", str(run_dir), "--quiet", "--cache-dir", str(shared_cache))
    after = pd.read_csv(run_dir / "metrics.csv")
    pd.testing.assert_frame_equal(before.drop(columns="provenance"), after.drop(columns="provenance"))


def test_rerunning_a_finished_run_leaves_it_as_it_is_and_redo_resumes_it_from_checkpoints(run_dir, shared_cache,
                                                                                          capsys, monkeypatch, tmp_path):
    args = ("run", str(TINY), "--out", str(run_dir.parent), "--run-id", "tiny", "--cache-dir", str(shared_cache))
    written = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    invoke(*args, "--quiet")
    out = capsys.readouterr().out
    assert out.startswith(f"tiny is done: results in {run_dir}/ (fid at budgets ") and "--redo" in out, out
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"} == written
    # another config is still refused, finished or not
    with pytest.raises(SystemExit) as exc:
        main([*args, "--seed", "5", "--quiet"])
    assert exc.value.code == 2 and "holds a run of another config" in capsys.readouterr().err

    before = json.loads((run_dir / "run.json").read_text())
    # --redo stopped part way (Ctrl-C as sampling begins) leaves the run to resume, not called done with the scores
    # of the samples it was replacing
    def stop(run):
        raise KeyboardInterrupt
    monkeypatch.setitem(pipeline.STAGES, "sample", stop)
    with pytest.raises(SystemExit) as exc:
        main([*args, "--redo", "--quiet"])
    monkeypatch.undo()
    assert exc.value.code == 130 and "interrupted" in capsys.readouterr().err
    state = json.loads((run_dir / "run.json").read_text())
    assert state["status"] == "interrupted" and state["stage"] == "sample" and "last_failure" not in state
    # the report says its table may be the earlier pass's; a stage that leaves the run as it was keeps where it stopped
    invoke("report", str(run_dir), "--out", str(tmp_path / "report"), "--format", "md")
    page = (tmp_path / "report" / "report.md").read_text().replace("\\", "")
    assert "the end of its last pass (run.json says interrupted in stage sample: metrics.csv may be an earlier" in page
    invoke("evaluate", str(run_dir), "--floors-only", "--quiet", "--cache-dir", str(shared_cache))
    state = json.loads((run_dir / "run.json").read_text())
    assert state["status"] == "interrupted" and state["stage"] == "sample"
    with pytest.raises(SystemExit) as failed:  # and so does one that fails: seeds never sampled
        main(["evaluate", str(run_dir), "--sample-seeds", "7", "--quiet", "--cache-dir", str(shared_cache)])
    state = json.loads((run_dir / "run.json").read_text())
    assert failed.value.code == 2 and state["status"] == "interrupted" and state["stage"] == "sample"
    assert state["last_failure"]["stage"] == "evaluate"
    capsys.readouterr()
    invoke(*args)  # a plain run resumes it
    out, err = capsys.readouterr()
    assert out.startswith("done in") and err.count("resumed encoder") == 3 and err.count("resumed prior") == 3
    # what the first pass recorded of itself is kept, not written over by the later passes' shorter times
    state = json.loads((run_dir / "run.json").read_text())
    earlier = state["passes"][-2]
    assert state["passes"][-1]["status"] == "interrupted"
    for key in ("stage_seconds", "wall_seconds", "versions", "git_commit", "device", "status", "updated"):
        assert earlier[key] == before[key], key
    assert state["created"] == before["created"] and state["status"] == "done"
    assert set(state["stage_seconds"]) == {"preflight", "train", "sample", "evaluate"}


def test_a_finished_run_whose_results_do_not_read_resumes_and_a_missing_checkpoint_says_how_to_train_it(
        run_dir, shared_cache, tmp_path):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    measured = pd.read_csv(copy / "metrics.csv")
    (copy / "metrics.csv").write_text(",".join(measured.columns) + "\n")  # no results: not left as it is
    result = run_cli("run", TINY, "--out", tmp_path, "--run-id", "tiny", "--cache-dir", shared_cache, "--quiet")
    assert result.code == 0 and result.out.startswith("done in"), result.err
    pd.testing.assert_frame_equal(pd.read_csv(copy / "metrics.csv"), measured)
    (copy / "checkpoints" / "ovqvae" / "train0.prior.pt").unlink()
    assert_clean_error(run_cli("sample", copy, "--quiet"), 2, "train0.prior.pt does not exist: `anytime-bench run "
                       "--redo` on the run's config")


def test_a_different_config_cannot_reuse_the_run_folder(run_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", str(TINY), "--seed", "5", "--out", str(run_dir.parent), "--run-id", "tiny", "--quiet"])
    assert exc.value.code == 2
    assert "holds a run of another config" in capsys.readouterr().err


def test_some_of_a_runs_models_are_pointed_to_the_commands_that_work_on_some(run_dir, capsys):
    before = (run_dir / "run.json").read_bytes()
    with pytest.raises(SystemExit) as exc:
        main(["run", str(TINY), "--models", "ovqvae", "--out", str(run_dir.parent), "--run-id", "tiny", "--quiet"])
    assert exc.value.code == 2
    assert f"`anytime-bench sample|evaluate|bench {run_dir} --models ovqvae`" in capsys.readouterr().err
    assert (run_dir / "run.json").read_bytes() == before
    # where something else differs, those commands would not do what was asked: no such hint
    with pytest.raises(SystemExit):
        main(["run", str(TINY), "--models", "ovqvae", "--set", "encoder.ovqvae.steps=7", "--out", str(run_dir.parent),
              "--run-id", "tiny", "--quiet"])
    err = capsys.readouterr().err
    assert "encoder.ovqvae.steps: 30 in the run, 7 now" in err and "--models" not in err, err


def test_unsafe_or_broken_checkpoints_are_refused_through_the_cli(run_dir, tmp_path, capsys):
    import pickle
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    checkpoint = broken / "checkpoints" / "ovqvae" / "train0.encoder.pt"

    class Exploit:
        def __reduce__(self):
            return (exec, ("open('/tmp/anytime-bench-pwned', 'w').write('x')",))

    checkpoint.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(SystemExit) as exc, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["sample", str(broken), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "cannot be loaded safely: not a file of weights alone" in err
    # torch's advice (load it with weights_only=False, or allow exec) is not repeated, nor its terminal colours
    assert "weights_only" not in err and "add_safe_globals" not in err and "\x1b" not in err
    assert [str(w.message) for w in caught] == []  # no torch warning about the pickle printed beside the one line
    import os
    assert not os.path.exists("/tmp/anytime-bench-pwned")

    data = (run_dir / "checkpoints" / "ovqvae" / "train0.encoder.pt").read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(SystemExit) as exc:
        main(["sample", str(broken), "--quiet"])
    assert exc.value.code == 2 and "train0.encoder.pt cannot be loaded safely" in capsys.readouterr().err

    # The same checkpoint with its records deflated: torch.load would inflate them (a zip bomb's way in)
    import zipfile

    with zipfile.ZipFile(run_dir / "checkpoints" / "ovqvae" / "train0.encoder.pt") as src, \
            zipfile.ZipFile(checkpoint, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(SystemExit) as exc:
        main(["sample", str(broken), "--quiet"])
    assert exc.value.code == 2 and "train0.encoder.pt cannot be loaded safely: compressed record" in \
        capsys.readouterr().err

    shutil.rmtree(broken / "samples")
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(broken), "--quiet"])
    assert exc.value.code == 2 and "run `anytime-bench sample" in capsys.readouterr().err


def test_bench_writes_cost_tables_and_plots(run_dir, capsys):
    invoke("bench", str(run_dir), "--batch-sizes", "2,8", "--repeats", "2", "--min-seconds", "0",
           "--synthetic-length", "16", "--synthetic-batch", "4", "--quiet")
    cost = pd.read_csv(run_dir / "cost.csv")
    assert list(cost.columns) == COST_COLUMNS
    assert set(cost.stage) == {"prior", "decode"} and set(cost.batch) == {2, 8} and set(cost.cache) == {True, False}
    assert (cost.seconds > 0).all()
    for name in ("cost_vs_budget.png", "quality_vs_time.png"):
        assert (run_dir / name).is_file()
    state = json.loads((run_dir / "run.json").read_text())
    synthetic = state["bench"]["synthetic_cache"]
    assert synthetic["tokens"] == 16 and synthetic["speedup"] > 0 and synthetic["ideal_speedup"] == 8.5
    out = capsys.readouterr().out
    assert f"KV cache {synthetic['speedup']:.1f}x faster" in out and "ideal 8.5x at equal cost per token" in out


def test_sample_with_a_deadline_from_the_cli(run_dir, capsys):
    import numpy as np

    invoke("sample", str(run_dir), "--deadline", "30", "-n", "3", "--quiet")
    out = capsys.readouterr().out
    assert "ovqvae: 16/16 tokens" in out and "stopped by budget" in out  # 30 s is ample for 16 tokens
    with np.load(run_dir / "samples" / "ovqvae" / "deadline-30s-train0-sample0.npz") as data:
        assert data["data"].shape == (3, 1, 8, 8) and int(data["tokens"]) == 16


def _mutated_states():
    import torch

    def first_matrix(state):
        return next(k for k, v in state.items() if isinstance(v, torch.Tensor) and v.ndim >= 2)

    def set_first(state, value):
        return {**state, first_matrix(state): value(state[first_matrix(state)])}

    return {
        "wrong shape": (lambda s: set_first(s, lambda t: torch.zeros(3, 3)), "does not fit encoder 'ovqvae'"),
        "extra key": (lambda s: {**s, "surplus": torch.zeros(1)}, "does not fit encoder 'ovqvae'"),
        "complex": (lambda s: set_first(s, lambda t: t.to(torch.complex64)), "does not fit encoder 'ovqvae'"),
        "integer": (lambda s: set_first(s, lambda t: t.round().to(torch.int64)), "holds integer values (torch.int64)"),
        "infinite": (lambda s: set_first(s, lambda t: torch.full_like(t, float("inf"))), "holds infinite values"),
        "NaN": (lambda s: set_first(s, lambda t: torch.full_like(t, float("nan"))), "holds NaN values (in '"),
        "not a dict": (lambda s: [1, 2], "holds no state dict"),
    }


def _with_state(run_dir, tmp_path, name: str, change):
    """A copy of the tiny run whose ovqvae checkpoint ``name`` holds ``change(state)`` in its right envelope."""
    import shutil

    from .conftest import rewrite_torch_file

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    rewrite_torch_file(other / "checkpoints" / "ovqvae" / name,
                       lambda payload: {**payload, "state": change(payload["state"])})
    return other


@pytest.mark.parametrize("mutation", sorted(_mutated_states()))
def test_checkpoints_whose_state_does_not_fit_are_refused_naming_the_file(run_dir, shared_cache, tmp_path,
                                                                          mutation):
    """A checkpoint from elsewhere in the right envelope is still untrusted: a state the encoder cannot take, or
    one holding NaN, is the file's fault (exit 2, one line naming it), not the plugin's, and never half-loaded."""
    change, message = _mutated_states()[mutation]
    other = _with_state(run_dir, tmp_path, "train0.encoder.pt", change)
    for command in (["sample", other], ["bench", other, "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0",
                                        "--synthetic-length", "0"]):
        assert_clean_error(run_cli(*command, "--quiet"), 2, "train0.encoder.pt", message)
    rerun = ("run", TINY, "--out", tmp_path, "--run-id", "other", "--cache-dir", shared_cache, "--redo")
    if mutation not in ("NaN", "not a dict"):  # refused: load_state_dict may have copied part of it in before it failed
        assert_clean_error(run_cli(*rerun, "--quiet"), 2, "train0.encoder.pt", message, "remove it to train it again")
    elif mutation == "NaN":  # refused before anything was loaded: trained again, as any checkpoint that does not load
        resumed = run_cli(*rerun, "--quiet")  # training again costs time: heard even with --quiet
        assert resumed.code == 0 and "warning: not resuming encoder ovqvae" in resumed.err and message in resumed.err


@pytest.mark.parametrize("scale", [float("inf"), 1e30])
def test_prior_weights_that_are_infinite_are_refused_and_those_that_overflow_name_their_file(run_dir, tmp_path,
                                                                                              scale):
    """An infinite weight passes the NaN check, and a finite but huge one passes every check on loading: both
    used to fail deep inside sampling, blamed on the plugin alone. The first is refused as the file's fault; the
    second still fails in the plugin (exit 1: the core cannot tell it from a plugin's overflow), naming the file."""
    import torch

    other = _with_state(run_dir, tmp_path, "train0.prior.pt", lambda state: {
        k: v * scale if isinstance(v, torch.Tensor) and v.ndim == 2 else v for k, v in state.items()})
    result = run_cli("sample", other, "--quiet")
    if scale == float("inf"):
        assert_clean_error(result, 2, "train0.prior.pt", "does not fit prior 'transformer'", "holds infinite values")
    else:
        assert_clean_error(result, 1, "failed in prior 'transformer'", "its weights were loaded from", "train0.prior.pt")


def test_checkpoints_of_another_config_are_refused_through_the_cli(run_dir, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    state = json.loads((other / "run.json").read_text())
    state["config"]["encoder"]["ovqvae"]["steps"] = 31  # as if the checkpoints came from another config
    (other / "run.json").write_text(json.dumps(state))
    with pytest.raises(SystemExit) as exc:
        main(["sample", str(other), "--quiet"])
    assert exc.value.code == 2
    assert "train0.encoder.pt was trained with another config" in capsys.readouterr().err


def test_several_seeds_give_per_seed_rows_intervals_and_anytime_scores(tmp_path, shared_cache):
    invoke("run", str(TINY), "--encoders", "ovqvae,vqvae-channel", "--sample-seeds", "3", "--metrics",
           "fid,rfid,kid,isc,prc,mse", "--out", str(tmp_path), "--run-id", "seeds", "--cache-dir",
           str(shared_cache), "--quiet")
    run = tmp_path / "seeds"
    frame = pd.read_csv(run / "metrics.csv")
    assert sorted(frame.sample_seed.unique()) == [0, 1, 2] and set(frame.train_seed) == {0}
    assert set(frame.metric) == {"fid", "rfid", "kid", "isc", "prc_precision", "prc_recall", "mse"}
    per_cell = frame.groupby(["model", "budget", "metric"]).size()
    assert (per_cell == 3).all()
    # sampling seeds differ, reconstructions do not depend on them
    fid = frame[(frame.metric == "fid") & (frame.model == "ovqvae") & (frame.budget == 1.0)].value
    assert fid.nunique() == 3
    mse = frame[(frame.metric == "mse") & (frame.model == "ovqvae") & (frame.budget == 1.0)].value
    assert mse.nunique() == 1
    summary = (run / "summary.md").read_text()
    assert "sampling noise only: 1 training seed" in summary
    assert "## headline: fid by budget (lower is better)" in summary and "## rfid by budget" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| ovqvae |"))
    assert row.count("[") == 3  # mean [lo, hi] at each of the three budgets
    assert "## Anytime scores" in summary and "| fid | ovqvae |" in summary
    provenance = json.loads(frame[frame.metric == "fid"].provenance.iloc[0])
    assert {"feature_space", "extractor_sha256", "reference_set", "reference_size", "samples", "seed", "version"} <= set(
        provenance)
    assert (run / "quality_vs_budget.png").stat().st_size > 10_000
    state = json.loads((run / "run.json").read_text())
    assert state["seeds"] == {"train": [0], "sample": [0, 1, 2]}


def test_reference_statistics_and_classifier_are_reused_on_a_second_run(tmp_path, capsys):
    args = ["run", str(TINY), "--encoders", "ovqvae", "--metrics", "fid", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path)]
    invoke(*args, "--run-id", "first")
    first = capsys.readouterr().err
    assert "training the feature classifier" in first and "computing reference features" in first
    invoke(*args, "--run-id", "second")
    second = capsys.readouterr().err
    assert "using cached feature classifier" in second and "using cached reference features" in second
    assert "training the feature classifier" not in second and "computing reference features" not in second


def test_training_in_worker_processes_gives_the_weights_of_training_in_this_one(tmp_path, shared_cache):
    import torch

    from anytime_bench.files import storage

    common = ["train", str(TINY), "--encoders", "ovqvae", "--train-seeds", "2", "--out", str(tmp_path),
              "--cache-dir", str(shared_cache), "--quiet"]
    threads = torch.get_num_threads()
    # whatever threads this process has, a job trains on one, as in a worker: two sum gradients in another order
    torch.set_num_threads(2)
    try:
        invoke(*common, "--set", "run.workers=1", "--run-id", "alone")
        assert torch.get_num_threads() == 2  # and the process gets its threads back
    finally:
        torch.set_num_threads(threads)
    invoke(*common, "--set", "run.workers=2", "--run-id", "pool")
    assert json.loads((tmp_path / "pool" / "run.json").read_text())["train_workers"] == 2
    for seed in (0, 1):
        for kind in ("encoder", "prior"):
            name = f"checkpoints/ovqvae/train{seed}.{kind}.pt"
            pool, alone = (storage.load_checkpoint(tmp_path / run / name, kind=kind, name="ovqvae",
                                                   config_digest=None)["state"] for run in ("pool", "alone"))
            assert pool.keys() == alone.keys()
            assert all(torch.equal(pool[key], alone[key]) for key in pool), f"seed {seed} {kind}"


def test_a_job_failing_in_a_worker_keeps_the_record_of_the_jobs_that_finished(tmp_path, shared_cache):
    # tail-drop's loss turns NaN at its second step, while ovqvae, in the other worker, trains on to its end
    tail_drop = dict(code_length=4, levels="[3,3]", width=16, heads=2, encoder_layers=1, decoder_layers=1, warmup=0,
                     lr=1e30)
    options = [a for key, value in tail_drop.items() for a in ("--set", f"encoder.tail-drop.{key}={value}")]
    result = run_cli("train", TINY, "--encoders", "ovqvae,tail-drop", "--set", "run.workers=2", *options,
                     "--out", tmp_path, "--run-id", "f", "--cache-dir", shared_cache, "--quiet")
    assert_clean_error(result, 1, "training encoder 'tail-drop' (training seed 0) stopped: loss became nan")
    state = json.loads((tmp_path / "f" / "run.json").read_text())
    assert state["status"] == "failed"
    # as when training in this process: what its training reported is not lost for the resumed run to come
    assert "encoder_fit" in state["models"]["ovqvae"]["train_seeds"]["0"], state.get("models")
    assert (tmp_path / "f" / "checkpoints" / "ovqvae" / "train0.prior.pt").is_file()


def test_a_gpu_trains_in_worker_processes_only_when_asked():
    import torch

    from anytime_bench.engine.workers import worker_count

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert worker_count(0, 6, cuda, 1, False) == 1  # the default: one after another on the device
    assert worker_count(4, 6, cuda, 1, False) == 4
    assert worker_count(8, 3, cuda, 1, False) == 3  # never more workers than jobs
    assert worker_count(4, 6, cuda, 2, False) == 1  # torchrun ranks train every job together
    assert worker_count(4, 6, cpu, 1, True) == 1  # plugins registered in this process stay in it
    assert worker_count(2, 6, cpu, 1, False) == 2
