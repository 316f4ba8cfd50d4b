"""Bad input: one line naming what is wrong, exit code 2, no traceback."""

import json
import subprocess
import sys

import pytest

from .conftest import TINY, run_cli
from .conftest import assert_clean_error as assert_one_line


def cli(*args):
    return run_cli(*args)


def assert_clean_error(result, pattern):
    assert_one_line(result, 2, pattern)


def test_the_console_script_gives_one_line_and_exit_2():
    result = subprocess.run([sys.executable, "-m", "anytime_bench", "run", "--budgets", "0.5,1.5"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "Error: run.budgets: 1.5 is outside (0, 1]"


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["run", "--encoders", "ovqvae,nope"], "unknown encoder 'nope'"),
        (["run", "--prior", "transfromer"], "unknown prior 'transfromer': did you mean 'transformer'? (available: "),
        (["run", "--dataset", "cifar-100"], "unknown dataset 'cifar-100'"),
        (["run", "--budgets", "0.5,1.5"], "run.budgets: 1.5 is outside (0, 1]"),
        (["run", "--budgets", "0,1"], "run.budgets: 0.0 is outside (0, 1]"),
        (["run", "--budgets", "half"], "--budgets: 'half' is not a number"),
        # an exact power of ten with a billion digits took hours: refused at once, as too large a float
        (["run", "--budgets", "1e999999999"], "--budgets: '1e999999999' is not a number"),
        (["run", "--train-seeds", "\u00b2"], "--train-seeds: '\u00b2' is not an integer"),  # a digit int() refuses
        (["run", "--set", "run.seed=" + "9" * 5000], "--set: run.seed: a number too long to read"),
        (["run", "--set", "run.seed=0x" + "f" * 5000], "run.seed: an integer of 20000 bits is outside TOML's"),
        (["run", "--dataset", "mnist", "--data-root", "/no/such/folder"], "--data-root /no/such/folder is not a folder"),
        (["run", "--device", "tpu"], "run.device: 'tpu' is not auto, cpu"),
        (["run", "no-such-config.toml"], "config file no-such-config.toml does not exist"),
        (["sample", "/no/such/run"], "/no/such/run is not a run folder"),
        (["run", "--seed", "x"], "'x' is not a valid integer"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(tmp_path, args, pattern):
    assert_clean_error(cli(*args, "--out", str(tmp_path)) if args[0] == "run" else cli(*args), pattern)


def test_unknown_config_key_is_named(tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text(TINY.read_text().replace("num_samples = 64", "num_sample = 64"))
    assert_clean_error(cli("run", str(config), "--out", str(tmp_path)), "run: unknown key 'num_sample'")
    config.write_text(TINY.read_text().replace("codebook_size = 32", "codebook_sise = 32", 1))
    assert_clean_error(cli("run", str(config), "--out", str(tmp_path)), "encoder.ovqvae: unknown key 'codebook_sise'")


def test_missing_mnist_files_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tmp_path / "mnist.toml"
    config.write_text(TINY.read_text() + "\n[dataset.mnist]\ndownload = false\n")
    result = cli("run", str(config), "--dataset", "mnist", "--data-root", str(empty), "--out", str(tmp_path / "r"))
    assert_clean_error(result, f"MNIST files not found in {empty}")


def test_plugins_json_lists_every_component_with_its_distribution():
    result = cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    kinds = {(r["kind"], r["name"]) for r in rows}
    assert {("dataset", "digits"), ("encoder", "ovqvae"), ("prior", "transformer"), ("metric", "fid")} <= kinds
    assert all(r["distribution"] == "anytime-bench" and r["version"] for r in rows if r["plugin"].startswith("builtin"))


def test_plugins_table():
    result = cli("plugins")
    assert result.returncode == 0 and "ovqvae" in result.stdout and "anytime-bench" in result.stdout


def test_a_config_file_with_an_integer_too_long_to_read_is_named(tmp_path):
    config = tmp_path / "long.toml"
    config.write_text("[run]\nseed = " + "9" * 5000 + "\n")
    assert_clean_error(cli("run", str(config), "--out", str(tmp_path)), f"config file {config} holds a number too long")


def test_a_gpu_out_of_memory_is_the_machines_in_one_line_not_the_plugins_nor_an_internal_error(
        plugins, monkeypatch, tmp_path):
    import torch

    from anytime_bench.contract import components
    from anytime_bench.engine import pipeline

    component = plugins.get("prior", "transformer")
    with pytest.raises(torch.OutOfMemoryError):  # not a ComponentError, which would set the model aside
        with components.blame(component, "sample"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 27.50 GiB")

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 27.50 GiB")

    monkeypatch.setattr(pipeline, "prepare", out_of_memory)
    result = run_cli("run", "--out", tmp_path, "--run-id", "r", "--quiet")
    assert result.code == 1
    assert result.err.strip().splitlines() == ["Error: out of GPU memory; use smaller batch sizes (a prior's "
                                               "sample_batch_size among them) or fewer samples"]


def test_under_torchrun_another_rank_leaves_rank_0_to_say_a_shared_error_and_names_itself_otherwise(
        monkeypatch, capsys):
    from anytime_bench import cli

    class Stopped(BaseException):
        """torchrun's SIGTERM, once rank 0 has said the line and ended."""

    def stopped_by_torchrun():
        raise Stopped

    monkeypatch.setattr(cli, "_leave_to_rank_0", stopped_by_torchrun)
    torchrun = {"TORCHELASTIC_RUN_ID": "x", "RANK": "1", "WORLD_SIZE": "2"}
    with pytest.raises(Stopped):  # refused as one process first, by every rank: it waits for rank 0 to say it
        run_cli("report", "--no-such-option", env=torchrun)
    assert run_cli("report", "--no-such-option", env={**torchrun, "RANK": "0"}).err.startswith(
        "Error: `report` runs as one process: start it without torchrun")
    for name, value in torchrun.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        cli._fail("its own", 1, False)  # a failure of this rank's own: it names the rank
    assert capsys.readouterr().err == "Error: rank 1: its own\n"
    with pytest.raises(SystemExit):  # a signal that torchrun passed to every rank: no wait, rank 0 says it
        cli._fail("interrupted by SIGTERM", 143, False, shared=True)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(cli, "_joined", lambda: True)
    with pytest.raises(SystemExit):  # bad input found after joining: its data, say, missing on its node alone
        cli._fail("no data here", 2, False)
    assert capsys.readouterr().err == "Error: rank 1: no data here\n"
    with pytest.raises(Stopped):  # what rank 0 refused and passed on: rank 0 says it
        cli._fail("a run of another config", 2, False, shared=True)
    assert capsys.readouterr().err == ""


def test_under_torchrun_another_rank_says_bad_input_itself_when_rank_0_does_not_end(monkeypatch, capsys):
    """Rank 0 read the command line otherwise (on another machine): the group does not end without a word."""
    import signal

    from anytime_bench import cli

    waited, handlers = [], {}
    monkeypatch.setattr(cli.time, "sleep", waited.append)
    monkeypatch.setattr(signal, "signal", lambda sig, handler: handlers.setdefault(sig, handler))
    for name, value in {"TORCHELASTIC_RUN_ID": "x", "RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stop:
        cli._fail("no such file: data.toml", 2, False)
    assert stop.value.code == 2 and waited == [cli.RANK_0_ENDS_WITHIN_S]
    assert handlers == {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.SIG_DFL}  # torchrun's SIGTERM ends it
    assert capsys.readouterr().err == "Error: rank 1: no such file: data.toml\n"
