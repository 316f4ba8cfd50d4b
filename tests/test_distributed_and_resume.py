"""Several processes through torchrun (gloo, CPU), and resuming a training stage killed with SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import TINY

RESUMABLE = """
[run]
encoders = ["ovqvae"]
metrics = ["mse", "psnr"]
budgets = [0.25, 1.0]
num_samples = 32
device = "cpu"
checkpoint_every = 10

[encoder.ovqvae]
widths = [8, 16]
codebook_size = 32
steps = 60
stage2_steps = 120
restart_every = 25

[prior.transformer]
n_layer = 1
n_head = 2
d_model = 32
d_ff = 64
steps = 40
eval_every = 10
patience = 0
"""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "anytime_bench", *args]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}


def test_torchrun_with_two_gloo_processes_shares_out_data_and_keeps_weights_equal(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "anytime_bench", "train", str(TINY), "--encoders", "ovqvae,rvq", "--out", str(tmp_path), "--run-id", "ddp",
               "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env=env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert state["processes"] == 2 and state["status"] == "trained"
    for model in ("ovqvae", "rvq"):  # rvq: codebooks updated outside autograd, from statistics of both ranks
        for kind in ("encoder", "prior"):
            ranks = state["models"][model]["train_seeds"]["0"][f"{kind}_ranks"]
            assert [r["rank"] for r in ranks] == [0, 1]
            assert ranks[0]["data_digest"] != ranks[1]["data_digest"], f"{model} {kind}: both ranks saw the same batches"
            assert ranks[0]["items_seen"] == ranks[1]["items_seen"] > 0
            assert ranks[0]["weights_digest"] == ranks[1]["weights_digest"], f"{model} {kind}: weights differ by rank"
    assert (tmp_path / "ddp" / "checkpoints" / "ovqvae" / "train0.prior.pt").is_file()
    assert not list(tmp_path.glob("ddp/**/.*.tmp"))




def test_under_torchrun_rank_0_alone_says_what_stops_every_rank(tmp_path):
    """A run folder that rank 0 alone checks, and a command that runs as one process: one line for the group (the
    other rank said it had been interrupted, or that its connection closed, "internal error")."""
    (tmp_path / "taken" / "a-file").mkdir(parents=True)
    # rank 0 starts late, as on a loaded machine: the other rank's end must not get it stopped before it says it
    (tmp_path / "late").mkdir()
    (tmp_path / "late" / "sitecustomize.py").write_text(
        "import os, time\nif os.environ.get('RANK') == '0' and 'TORCHELASTIC_RUN_ID' in os.environ:\n"
        "    time.sleep(3)\n")
    late = {**env(), "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "late"),
                                                                 os.environ.get("PYTHONPATH")]))}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "anytime_bench"]
    for args, says in [
        (["train", str(TINY), "--out", str(tmp_path), "--run-id", "taken", "--cache-dir", str(tmp_path / "cache")],
         f"Error: {tmp_path / 'taken'} exists and is not a run folder; choose another --run-id"),
        (["sample", str(tmp_path / "taken")], "Error: `sample` runs as one process: start it without torchrun"),
    ]:
        done = subprocess.run(torchrun + args, capture_output=True, text=True, env=late, timeout=300)
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and errors[0].startswith(says), done.stderr[-3000:]
        assert "exitcode: 2" in done.stderr  # torchrun's summary of its failed processes: the one-line error's code


def test_a_collective_failing_on_a_lost_process_interrupts_the_stage_without_blaming_the_plugin(plugins,
                                                                                                 monkeypatch):
    from anytime_bench.contract import components, distributed
    from anytime_bench.errors import PeerLost

    lost = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:29338: "
                        "Connection reset by peer. This is typically caused by a remote worker hanging")
    assert distributed.peer_lost(lost) is None  # no process group here: an error of the plugin's own
    monkeypatch.setattr(distributed, "in_process_group", lambda: True)
    assert distributed.peer_lost(lost) == "Connection reset by peer"
    # a plugin's own failure that mentions a connection (a download, say) is the plugin's
    assert distributed.peer_lost(RuntimeError("fetching https://example.org/w.pt failed: Connection reset by peer")) \
        is None
    assert distributed.peer_lost(RuntimeError("shapes do not match")) is None
    component = plugins.get("encoder", "ovqvae")
    with pytest.raises(PeerLost, match="another process of the torchrun group stopped .Connection reset by peer."):
        with components.blame(component, "train"):
            raise lost


def test_a_loop_checkpoint_saved_under_torchrun_by_an_earlier_version_is_refused_for_what_it_is():
    stream = _streams(2)[0]
    stream.next()
    old = {**stream.state_dict(), "order": stream.order.clone()}  # one rank's share, as the earlier code saved
    del old["processes"]
    for world in (1, 2):
        with pytest.raises(ValueError, match="or of an earlier version's torchrun run"):
            _streams(world)[0].load_state_dict(old)


RANK_EXIT = """
import atexit, sys
import torch.distributed as dist
dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
atexit.register(print, "exit hooks ran", file=sys.stderr)  # a plugin's clean-up (temporary files, a logger's run)
class Finalized:
    def __del__(self):
        print("finalized", file=sys.stderr)
probe = Finalized()  # collected when finalization clears this module
from anytime_bench.cli import main
main(sys.argv[1:])
print("returned", file=sys.stderr)
"""


@pytest.mark.parametrize(("args", "code", "says"), [
    (["plugins"], 0, "transformer"),
    (["plugins", "--no-such-option"], 2, "Error: No such option '--no-such-option'."),
    (["--debug", "plugins", "--no-such-option"], 2, "Traceback (most recent call last)"),
])
def test_a_rank_of_a_process_group_leaves_it_and_exits_without_finalization_keeping_its_exit_status(
        args, code, says):
    # gloo's worker threads can abort a rank during interpreter finalization (see distributed.end_rank)
    done = subprocess.run([sys.executable, "-c", RANK_EXIT, *args], capture_output=True, text=True, env=env(),
                          timeout=120)
    assert done.returncode == code, done.stderr[-2000:]
    assert says in done.stdout + done.stderr  # flushed before the exit
    assert "finalized" not in done.stderr and "returned" not in done.stderr
    assert done.stderr.count("exit hooks ran") == 1  # atexit's hooks still run, once, before the exit


def test_a_rank_ending_without_finalization_leaves_its_run_folder_whole(tmp_path):
    done = subprocess.run([sys.executable, "-c", RANK_EXIT, "run", str(TINY), "--encoders", "ovqvae", "--metrics",
                           "mse,psnr", "--out", str(tmp_path), "--run-id", "r", "--cache-dir", str(tmp_path / "cache"),
                           "--quiet"], capture_output=True, text=True, env=env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finalized" not in done.stderr and "done in" in done.stdout
    run = tmp_path / "r"
    assert json.loads((run / "run.json").read_text())["status"] == "done"
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 3 * 2 and set(metrics.metric) == {"mse", "psnr"}  # 3 budgets, 2 metrics: every row
    assert (run / "summary.md").read_text().endswith("\n") and (run / "samples.png").stat().st_size > 0
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


def wait_for(path_glob: str, root: Path, proc: subprocess.Popen, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(path_glob))
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the run ended (code {proc.returncode}) before writing {path_glob}")
        time.sleep(0.05)
    pytest.fail(f"no {path_glob} within {timeout}s")


def test_a_run_killed_mid_stage_resumes_from_its_last_checkpoint_with_the_same_results(tmp_path):
    config = tmp_path / "resumable.toml"
    config.write_text(RESUMABLE)
    common = ["--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache"), "--quiet"]

    reference = subprocess.run(cli("run", str(config), "--run-id", "whole", *common), capture_output=True,
                               text=True, env=env(), timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]

    proc = subprocess.Popen(cli("run", str(config), "--run-id", "killed", *common), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env())
    # Kill once stage 2 of the encoder (nested dropout) has checkpointed at least once: mid-stage.
    partial = tmp_path / "killed" / "checkpoints" / "partial" / "ovqvae-train0.encoder" / "ovqvae.pt"
    import torch

    deadline = time.monotonic() + 240
    while True:
        assert time.monotonic() < deadline and proc.poll() is None, "the run ended before stage 2 checkpointed"
        if partial.is_file():
            try:
                extra = torch.load(partial, weights_only=True)["extra"]
            except Exception:  # caught between the rename and the read: look again
                extra = {}
            if extra and torch.load(partial, weights_only=True)["state"]["stage"] == 1:
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "checkpoints" / "ovqvae" / "train0.encoder.pt").exists(), \
        "killed after the stage ended"

    resumed = subprocess.run(cli("run", str(config), "--run-id", "killed", "--out", str(tmp_path), "--cache-dir",
                                 str(tmp_path / "cache")), capture_output=True, text=True, env=env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming ovqvae after step" in resumed.stderr  # resumed, not restarted
    trained = json.loads((tmp_path / "killed" / "run.json").read_text())["models"]["ovqvae"]["train_seeds"]["0"]
    assert trained["encoder_resumed_after"]["ovqvae"] >= 9  # recorded, also where a worker's log is not shown
    assert not partial.exists() and not partial.parent.parent.exists()  # the finished loops left no partial/ folder

    columns = ["model", "budget", "metric", "value"]
    whole = pd.read_csv(tmp_path / "whole" / "metrics.csv")[columns]
    again = pd.read_csv(tmp_path / "killed" / "metrics.csv")[columns]
    pd.testing.assert_frame_equal(whole, again, rtol=1e-4)


def _streams(world: int, seed: int = 5, n: int = 23, batch: int = 4):
    import torch

    from anytime_bench.contract.distributed import Batches, Topology

    return [Batches(n, batch, torch.Generator().manual_seed(seed), Topology(rank, world)) for rank in range(world)]


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 7])
def test_the_batch_stream_rank_0_saves_continues_every_ranks_own_share(steps):
    """Under torchrun rank 0 alone saves a loop's checkpoint and every rank restores it: each rank must go on
    drawing its own share (it drew rank 0's before, and so trained on the same items twice in silence)."""
    import torch

    uninterrupted = _streams(2)
    for _ in range(steps):
        for stream in uninterrupted:
            stream.next()
    saved = uninterrupted[0].state_dict()
    resumed = _streams(2, seed=99)
    for stream in resumed:
        stream.load_state_dict(saved)
    for _ in range(8):  # past the end of the epoch, into the next
        drawn = [(a.next(), b.next()) for a, b in zip(uninterrupted, resumed, strict=True)]
        assert all(torch.equal(a, b) for a, b in drawn)
        assert not set(drawn[0][1].tolist()) & set(drawn[1][1].tolist())  # the ranks' items stay disjoint


@pytest.mark.parametrize("saved_by, resumed_by", [(2, 1), (1, 2), (2, 3)])
def test_a_batch_stream_saved_by_another_number_of_processes_is_refused_naming_both(saved_by, resumed_by):
    stream = _streams(saved_by)[0]
    stream.next()
    with pytest.raises(ValueError, match=f"saved by a run of {saved_by} process.*this one has {resumed_by}; "
                                         f"resume it with"):
        _streams(resumed_by)[0].load_state_dict(stream.state_dict())


def test_a_signal_while_a_stage_records_its_stop_waits_for_the_record_even_with_other_threads():
    """torchrun sends SIGTERM to the processes left when one is lost; arriving while a stage recorded its failure, it
    stopped the write half way and left the run "running". A signal mask is per thread, and gloo's threads took it."""
    import signal
    import threading

    from anytime_bench.errors import Interrupted, interrupt, signals_held

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: interrupt(signum))
    busy = threading.Event()
    other = threading.Thread(target=busy.wait, daemon=True)  # a thread that blocks no signal, as gloo's
    other.start()
    steps = []
    try:
        with pytest.raises(Interrupted) as stopped:
            with signals_held(" in stage train of r"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # the handler has run by now
                steps.append("written")
        assert steps == ["written"] and stopped.value.signum == signal.SIGTERM
        assert stopped.value.where == " in stage train of r"
    finally:
        busy.set()
        signal.signal(signal.SIGTERM, previous)
    with pytest.raises(Interrupted):  # outside the hold, at once
        interrupt(signal.SIGINT)
