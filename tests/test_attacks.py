"""Hostile and careless input, one test per case of the second red-team pass: one clean line and exit code 2
(exit 1 naming the plugin for a plugin's own failure), no code run from a file, nothing written outside the
folder the user chose, nothing already written lost."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from anytime_bench import DataError, hookimpl
from anytime_bench.contract.plugin_manager import load_plugins
from anytime_bench.engine.run import PREFLIGHT_ITEMS

from .conftest import TINY, assert_clean_error, rewrite_torch_file, run_cli
from .fixtures import write_celeba, write_cifar, write_image, write_image_folder, write_wav_folder

MARKER = Path("/tmp/anytime-bench-attack-ran")


class Exploit:
    """A pickle that would create MARKER when unpickled."""

    def __reduce__(self):
        return (exec, (f"open({str(MARKER)!r}, 'w').write('pwned')",))


invoke = run_cli


def assert_one_line(result, code: int, *patterns: str) -> None:
    assert_clean_error(result, code, *patterns)


@pytest.fixture(autouse=True)
def _no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists(), "code from a file was executed"


@pytest.fixture
def copied(tiny_run, shared_cache, tmp_path) -> tuple[Path, Path]:
    """A copy of the session's tiny run and of its cache, to change."""
    shutil.copytree(tiny_run, tmp_path / "tiny")
    shutil.copytree(shared_cache, tmp_path / "cache")
    return tmp_path / "tiny", tmp_path / "cache"


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------- critical: code from caches


def test_a_crafted_feature_or_statistics_cache_runs_nothing(copied, tmp_path):
    run, cache = copied
    features = list((cache / "fidelity").glob("*.npz"))
    assert features, "the run cached its reference features"
    for path in features:  # an object array needs pickle to load
        with np.load(path) as real:
            keys = list(real.files)
        with open(path, "wb") as fh:
            np.savez(fh, **{key: np.array([Exploit()], dtype=object) for key in keys})
    # the files torch-fidelity's own cache would read (it unpickles them) are never opened
    for name in ("stat-fid-penultimate.pt", "features.pt"):
        (cache / "fidelity" / name).write_bytes(pickle.dumps(Exploit()))
    result = invoke("evaluate", run, "--cache-dir", cache)
    assert result.code == 0, result.err
    assert "computing reference features" in result.err  # the crafted file was refused and rebuilt
    for path in features:  # features are float32; a real-versus-real floor's values (one per split) float64
        with np.load(path, allow_pickle=False) as rebuilt:
            wanted = np.float64 if "-floor-" in path.name else np.float32
            assert all(rebuilt[key].dtype == wanted for key in rebuilt.files)


def test_a_crafted_classifier_cache_is_refused_not_run(copied, tmp_path):
    run, cache = copied
    for path in (cache / "extractors").glob("*.pt"):
        path.write_bytes(pickle.dumps(Exploit()))
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2,
                    "not a cached feature classifier that loads safely")


@pytest.mark.parametrize("change,message", [
    ({"spec": {"width": 10**6}}, "its spec is not this run's"),  # would build a net as large as it declares
    ({"num_classes": 10**9}, "its num_classes is not this run's"),
    ({"state": "nan"}, "NaN or infinite weights"),
])
def test_a_classifier_cache_of_other_sizes_or_nan_weights_is_refused(copied, change, message):
    import torch

    run, cache = copied
    (path,) = (cache / "extractors").glob("*.pt")

    def crafted(payload):
        if change.get("state") != "nan":
            return {**payload, **change}
        return {**payload, "state": {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                     for k, v in payload["state"].items()}}

    rewrite_torch_file(path, crafted)
    shutil.rmtree(cache / "fidelity")  # so that the classifier is needed
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2, path.name, message)


def test_cached_reference_features_holding_nan_are_computed_again(copied):
    run, cache = copied
    before = pd.read_csv(run / "metrics.csv")
    for path in (cache / "fidelity").glob("*.npz"):
        with np.load(path) as real:
            arrays = {k: np.full_like(real[k], np.nan) for k in real.files}
        np.savez(path, **arrays)
    result = invoke("evaluate", run, "--cache-dir", cache)
    assert result.code == 0 and "computing reference features" in result.err, result.err
    pd.testing.assert_frame_equal(pd.read_csv(run / "metrics.csv"), before)


def test_a_cache_folder_linking_out_of_itself_is_neither_read_nor_written_through(copied, tmp_path):
    run, cache = copied
    elsewhere = tmp_path / "elsewhere"
    (cache / "fidelity").rename(elsewhere)  # a cache from someone else whose feature folder is a link out of it
    (cache / "fidelity").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2, "fidelity", "leads out of",
                    "not followed")
    assert sorted(p.name for p in elsewhere.iterdir()) == before


def test_a_run_folder_pointing_at_its_own_crafted_cache_is_not_followed(copied, tmp_path):
    run, cache = copied
    evil = run / "evil-cache"
    shutil.copytree(cache, evil)
    for path in list(evil.rglob("*.pt")) + list(evil.rglob("*.npz")):
        path.write_bytes(pickle.dumps(Exploit()))
    state = json.loads((run / "run.json").read_text())
    state["config"]["run"]["cache_dir"] = str(evil)
    state["config"]["run"]["data_root"] = str(run)
    (run / "run.json").write_text(json.dumps(state))
    home = tmp_path / "home"
    result = invoke("evaluate", run, "--quiet", env={"HOME": str(home)})
    assert result.code == 0, result.err
    assert any((home / ".cache" / "anytime-bench").rglob("*.npz")), "the default cache was used, not the run's"


def test_a_weights_path_recorded_in_a_run_folder_is_not_followed(copied, tmp_path):
    run, cache = copied
    private = tmp_path / "private.pt"
    private.write_bytes(b"a file of this machine that the run folder names")
    state = json.loads((run / "run.json").read_text())
    state["config"]["metric"]["fid"].update(feature_extractor="inception-v3-compat", feature_weights=str(private))
    (run / "run.json").write_text(json.dumps(state))
    env = {"HOME": str(tmp_path / "home"), "TORCH_HOME": str(tmp_path / "torch")}
    result = invoke("evaluate", run, "--cache-dir", cache, "--quiet", env=env)
    assert_one_line(result, 2, "Inception weights are not available", "--fid-weights")
    assert "private.pt" not in result.err
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"weights given on this machine")
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet", "--fid-weights", mine, env=env), 2,
                    "mine.pt is not a plain Inception state dict")


# ---------------------------------------------------------------------- writes outside --out


def test_report_file_names_from_data_stay_inside_out(copied, tmp_path):
    run, _ = copied
    metrics = pd.read_csv(run / "metrics.csv")
    metrics["dataset"] = "../../../../outside/TRAVERSED"
    metrics["model"] = "../../escape"
    metrics.to_csv(run / "metrics.csv", index=False)
    before = files_under(tmp_path)
    out = tmp_path / "deep" / "report"
    result = invoke("report", run, "--out", out, "--metric", "fid")
    assert result.code == 0, result.err
    written = files_under(tmp_path) - before
    assert written and all(out in p.parents for p in written), sorted(written)
    assert not [p for p in tmp_path.parent.rglob("*TRAVERSED*") if out not in p.parents]


# ---------------------------------------------------------------------- failures reported as failures


def test_a_plugin_that_exits_at_import_is_quarantined_naming_it_not_obeyed(monkeypatch, tmp_path):
    def load():
        raise SystemExit(0)

    broken = SimpleNamespace(name="quitter", value="quitter_module", load=load,
                             dist=SimpleNamespace(metadata={"Name": "quitter-dist"}, version="1.0"))
    real = __import__("anytime_bench.contract.plugin_manager", fromlist=["_entry_points"])._entry_points
    monkeypatch.setattr("anytime_bench.contract.plugin_manager._entry_points", lambda: [*real(), broken])
    reason = "plugin 'quitter' (distribution quitter-dist 1.0): failed to import (quitter_module): SystemExit: 0"
    assert_one_line(invoke("plugins", "--check"), 1, reason)
    result = invoke("config", TINY)  # the command runs (its exit 0 did not end the program) and warns in one line
    assert result.code == 0 and "[run]" in result.out
    assert result.err.splitlines() == ["Warning: plugin 'quitter' (distribution quitter-dist 1.0) is broken and was "
                                       "skipped: failed to import (quitter_module): SystemExit: 0; anytime-bench "
                                       "plugins --check for details"]


@dataclass
class _NoOptions:
    pass


class QuittingMetric:
    """A metric that ends the program with exit code 0."""

    name = "quitter"
    Config = _NoOptions
    requires = "reconstructed"
    higher_is_better = False

    def __init__(self, config):
        pass

    def compute(self, inputs, ctx):
        raise SystemExit(0)

    def provenance(self):
        return {"implementation": "test"}


class LateQuittingMetric(QuittingMetric):
    """Scores the few items of the preflight, then exits when it meets the run's samples."""

    name = "late-quitter"
    requires = "generated"  # preflight scores a few real items as samples; evaluate, the run's samples

    def compute(self, inputs, ctx):
        if len(inputs.candidate) > PREFLIGHT_ITEMS:
            raise SystemExit(0)
        return 0.0


class _QuitterPlugin:
    @hookimpl
    def register_metrics(self):
        return [QuittingMetric, LateQuittingMetric]


def test_a_metric_that_exits_is_a_failure_naming_it(cli_plugins, tmp_path):
    cli_plugins(("quitting-metric", _QuitterPlugin()))
    # Caught at preflight, before anything is trained or written: bad input, exit 2.
    result = invoke("run", TINY, "--encoders", "ovqvae", "--metrics", "quitter", "--out", tmp_path, "--run-id", "q",
                    "--cache-dir", tmp_path / "cache", "--quiet")
    assert_one_line(result, 2, "stage 'preflight' failed in metric 'quitter' from plugin 'quitting-metric'",
                    "SystemExit", "before any training")
    assert not (tmp_path / "q").exists()
    # One that exits only later, at evaluate, is a failure of the run's evaluate stage naming it.
    result = invoke("run", TINY, "--encoders", "ovqvae", "--metrics", "late-quitter", "--out", tmp_path, "--run-id",
                    "late", "--cache-dir", tmp_path / "cache", "--quiet")
    assert_one_line(result, 1, "metric 'late-quitter' from plugin 'quitting-metric'", "SystemExit")
    state = json.loads((tmp_path / "late" / "run.json").read_text())
    assert state["status"] == "failed" and state["stage"] == "evaluate" and "quitting-metric" in state["failure"]


class HugeMetric(QuittingMetric):
    """Returns a finite number too large for the tables' statistics (their squares overflow)."""

    name = "huge"

    def compute(self, inputs, ctx):
        return 1e200


class _HugePlugin:
    @hookimpl
    def register_metrics(self):
        return [HugeMetric]


def test_a_metric_value_that_no_table_could_read_back_is_the_metrics_fault(cli_plugins, tmp_path):
    cli_plugins(("huge-metric", _HugePlugin()))
    result = invoke("run", TINY, "--encoders", "ovqvae", "--metrics", "huge", "--out", tmp_path, "--run-id", "h",
                    "--cache-dir", tmp_path / "cache", "--quiet")
    assert_one_line(result, 2, "metric 'huge' from plugin 'huge-metric'", "returned 1e+200 for huge, beyond +-1e+150")
    assert not (tmp_path / "h").exists()


# ---------------------------------------------------------------------- one line instead of a traceback


def test_config_and_cli_input_get_one_line(tmp_path):
    bad_bytes = tmp_path / "latin1.toml"
    bad_bytes.write_bytes(b"[run]\ndataset = \"caf\xe9\"\n")
    deep = tmp_path / "deep.toml"
    deep.write_text("[run]\nbudgets = " + "[" * 1000 + "]" * 1000 + "\n")
    cases = [
        (["run", bad_bytes], "is not UTF-8 text"),
        (["run", deep], "deeper than"),
        (["run", "--seed", "99999999999999999999"], "run.seed: 99999999999999999999 is outside TOML's 64-bit integer range"),
        (["run", "--seed", str(2**63 - 1)], "run.seed: must be in 0..2147483647"),
        (["run", "--device", "cuda"], "no CUDA GPU is available"),
        (["run", "--device", "cuda:abc"], "run.device: 'cuda:abc' is not auto, cpu"),
        (["run", "--set", "run.temperature=1e-300"], "run.temperature: must be in [0.001, 1000]"),
        (["run", "--cache-dir", bad_bytes], "--cache-dir"),
        (["run", "--run-id", "x" * 300], "must be a plain folder name"),
        (["run", "--seeds", "3"], "--seeds was renamed: use --sample-seeds"),
        (["run", "--set", "encoder.ovqvae.ordered_steps=5"], "was renamed: use encoder.ovqvae.stage2_steps"),
    ]
    for args, pattern in cases:
        assert_one_line(invoke(*args, "--out", tmp_path / "out"), 2, pattern)
    assert not (tmp_path / "out").exists()  # nothing half-made


def test_output_locations_that_cannot_be_written_get_one_line(tmp_path, monkeypatch, copied, tiny_run):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert_one_line(invoke("run", TINY, "--out", a_file), 2, "is a file, not a folder")
    assert_one_line(invoke("run", TINY, "--out", a_file / "below"), 2, "")
    assert_one_line(invoke("report", tiny_run, "--out", a_file), 2, "is a file, not a folder")
    monkeypatch.setattr("anytime_bench.engine.run.writable", lambda folder: False)  # read-only (the tests may run as root)
    assert_one_line(invoke("run", TINY, "--out", tmp_path / "ro", "--run-id", "r"), 2, "permission denied")
    monkeypatch.undo()
    run, cache = copied
    shutil.rmtree(run / "samples")
    (run / "samples").write_text("not a folder")
    assert_one_line(invoke("sample", run, "--cache-dir", cache, "--quiet"), 2, "samples")
    assert_one_line(invoke("sample", run, "--device", "foo"), 2, "device 'foo' is not auto, cpu")


@pytest.mark.parametrize("content", ["42", "[1, 2]", "\xff\xfe", '{"config": {"run": {"encoders": []}}}',
                                     '{"config": {"run": {"budgets": "sixteen"}}}', '{"config": 7}'])
def test_run_json_with_bad_contents_gets_one_line(copied, tmp_path, content):
    run, cache = copied
    (run / "run.json").write_bytes(content.encode("latin-1"))
    for command in ("sample", "evaluate", "bench"):
        assert_one_line(invoke(command, run, "--cache-dir", cache, "--quiet"), 2, "run.json")


def test_a_huge_run_json_is_refused_unread(copied, tmp_path):
    run, cache = copied
    with open(run / "run.json", "r+b") as fh:  # 4 GiB, sparse: parsing it would take minutes and gigabytes
        fh.seek(4 * 2**30)
        fh.write(b" ")
    for command in ("sample", "evaluate", "bench", "config"):
        args = ("--of-run", run) if command == "config" else (run, "--cache-dir", cache, "--quiet")
        assert_one_line(invoke(command, *args), 2, "run.json is larger than 16 MB")
    report = invoke("report", run, "--out", tmp_path / "report", "--metric", "fid")
    assert report.code == 0 and "a readable run.json" in report.out + report.err


def test_run_json_fields_the_core_does_not_use_cannot_break_it(copied, tmp_path):
    run, cache = copied
    state = json.loads((run / "run.json").read_text())
    state.update(models=[], versions="a string", device=None)
    (run / "run.json").write_text(json.dumps(state))
    assert invoke("evaluate", run, "--cache-dir", cache, "--quiet").code == 0
    result = invoke("report", run, "--out", tmp_path / "report")
    assert result.code == 0 and "Traceback" not in result.err


def test_bad_tables_and_archives_are_named(copied, tmp_path):
    run, cache = copied
    metrics = pd.read_csv(run / "metrics.csv").astype(object)
    metrics.loc[0, "value"] = "lots"
    metrics.loc[1, "budget"] = "half"
    metrics.to_csv(run / "metrics.csv", index=False)
    result = invoke("report", run, "--out", tmp_path / "report")
    assert result.code == 0 and "numeric" in result.err and "Traceback" not in result.err
    archive = run / "samples" / "ovqvae" / "train0-sample0.npz"
    with np.load(archive) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(archive, **{k: v for k, v in arrays.items() if not k.startswith("generated")})
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2, "train0-sample0.npz has no array")
    arrays["generated_k4"] = arrays["generated_k4"][:, :, :4]
    np.savez(archive, **arrays)
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2, "train0-sample0.npz",
                    "has shape")
    archive.write_bytes(b"PK\x03\x04 not really a zip")
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2, "is not a readable samples archive")
    # An array header may declare any shape: 8 TiB here, in a 200-byte file
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    with zipfile.ZipFile(archive, "w") as crafted:
        crafted.writestr("generated_k4.npy", header.getvalue() + bytes(64))
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2, "train0-sample0.npz",
                    "larger than this machine's memory")
    archive.unlink()
    os.mkfifo(archive)  # reading it would wait for a writer forever
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2, "train0-sample0.npz is not a "
                    "regular file")


# ---------------------------------------------------------------------- corrupt data files named


def _mnist(root: Path, labels: bytes = bytes(range(10)) * 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    images = struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + bytes(n * 784)
    for split in ("train", "t10k"):
        (root / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (root / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">HBBI", 0, 8, 1, n) + labels))
    return root


def test_corrupt_data_files_are_named(tmp_path):
    def run_on(dataset: str, root: Path, *extra: str):
        return invoke("run", TINY, "--dataset", dataset, "--data-root", root, "--out", tmp_path / "out", *extra)

    root = _mnist(tmp_path / "mnist")
    data = (root / "train-images-idx3-ubyte.gz").read_bytes()
    (root / "train-images-idx3-ubyte.gz").write_bytes(data[:20] + b"\x00" * 30 + data[50:])
    assert_one_line(run_on("mnist", root, "--set", "dataset.mnist.download=false"), 2,
                    "train-images-idx3-ubyte.gz: cannot be read")
    root = _mnist(tmp_path / "mnist-labels", labels=bytes([200]) + bytes(range(9)) + bytes(range(10)))
    assert_one_line(run_on("mnist", root, "--set", "dataset.mnist.download=false"), 2,
                    "labels-idx1-ubyte.gz: label 200", "not a digit")

    folder = tmp_path / "images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            write_image(folder / label / f"{i}.png", 12, 12, 100, "L")
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    (folder / "a" / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                            + chunk(b"IDAT", zlib.compress(b"\x00" * 20001)) + chunk(b"IEND", b""))
    assert_one_line(run_on("image-folder", folder), 2, "bomb.png", "more pixels than the limit")
    (folder / "a" / "bomb.png").unlink()
    short = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)
    (folder / "b" / "short.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", short)
                                             + chunk(b"IDAT", zlib.compress(b"\x00" + b"\xff" * 8)) + chunk(b"IEND", b""))
    assert_one_line(run_on("image-folder", folder), 2, "short.png: truncated or corrupt PNG")

    wavs = tmp_path / "wavs"
    for label in ("yes", "no"):
        (wavs / label).mkdir(parents=True)
        for i in range(2):
            sf.write(wavs / label / f"{i}.wav", np.full(800, 0.1, dtype=np.float32), 8000, subtype="FLOAT")
    sf.write(wavs / "no" / "nan.wav", np.full(800, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    assert_one_line(run_on("wav-folder", wavs), 2, "nan.wav: holds NaN or infinite samples")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- datasets from others


def _load(dataset: str, root: Path):
    plugins = load_plugins()
    component = plugins.get("dataset", dataset)
    return component.cls(component.cls.Config(), root).load()


@pytest.mark.parametrize("dataset, write, member", [
    ("image-folder", write_image_folder, "cats/0.png"),
    ("wav-folder", write_wav_folder, "yes/0.wav"),
    ("celeba", write_celeba, "img_align_celeba/000000.jpg"),
    ("cifar10", write_cifar, "cifar-10-batches-py/data_batch_2"),
    ("mnist", _mnist, "train-labels-idx1-ubyte.gz"),
])
def test_a_link_out_of_a_dataset_is_not_followed(tmp_path, dataset, write, member):
    root = tmp_path / "data"
    write(root)
    (root / member).rename(tmp_path / "private")  # a file of its own kind, outside the data root
    (root / member).symlink_to(tmp_path / "private")
    with pytest.raises(DataError, match=f"{member} leads out of .*data .*not followed"):
        _load(dataset, root)
    (root / member).unlink()
    (root / "store").mkdir()
    (tmp_path / "private").rename(root / "store" / "kept")
    (root / member).symlink_to(root / "store" / "kept")  # a link that stays inside the dataset is read
    _load(dataset, root)


def test_celeba_reads_only_the_plain_file_names_its_partition_lists(tmp_path):
    root = write_celeba(tmp_path / "celeba")
    write_image(tmp_path / "private.jpg", 178, 218, (0, 0, 0))
    with (root / "list_eval_partition.txt").open("a") as fh:
        fh.write("../../private.jpg 0\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt names '../../private.jpg', which is not a plain "
                                        "file name"):
        _load("celeba", root)


def test_only_regular_files_of_a_dataset_are_read(tmp_path):
    root = write_image_folder(tmp_path / "images")
    os.mkfifo(root / "cats" / "pipe.png")  # reading it would wait for a writer forever
    with pytest.raises(DataError, match="pipe.png is not a regular file"):
        _load("image-folder", root)
    (root / "cats" / "pipe.png").unlink()
    (root / "dogs" / "folder.png").mkdir()
    assert_one_line(invoke("run", TINY, "--dataset", "image-folder", "--data-root", root, "--out", tmp_path / "out"),
                    2, "folder.png is not a regular file")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- lower severity


def test_results_get_the_permissions_the_umask_allows(tiny_run):
    for path in tiny_run.rglob("*"):
        if path.is_file() and path.name != ".lock":
            assert path.stat().st_mode & 0o777 == 0o666 & ~_umask(), path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_command_on_a_finished_run_keeps_its_status(copied, tmp_path):
    run, cache = copied
    # an extra command that succeeds leaves it finished too, so that a later failure cannot mark it failed
    assert invoke("evaluate", run, "--cache-dir", cache, "--quiet").code == 0
    assert json.loads((run / "run.json").read_text())["status"] == "done"
    # and so does a stage run again through its config (train marks the run running before its stage begins)
    assert invoke("train", TINY, "--out", run.parent, "--run-id", run.name, "--cache-dir", cache, "--quiet").code == 0
    assert json.loads((run / "run.json").read_text())["status"] == "done"
    shutil.rmtree(run / "checkpoints")
    assert_one_line(invoke("sample", run, "--sample-seeds", "5", "--cache-dir", cache, "--quiet"), 2, "does not exist")
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "done" and state["last_failure"]["stage"] == "sample"


def test_a_nan_number_of_seconds_is_refused_before_anything_runs(tiny_run):
    # every comparison with NaN is false, so a range check alone lets it through to the timing loop
    assert_one_line(invoke("bench", tiny_run, "--min-seconds", "nan", "--quiet"), 2, "--min-seconds", "not a number")


def test_two_processes_cannot_work_on_one_run_at_once(copied, tmp_path):
    import fcntl

    run, cache = copied
    with open(run / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2, "in use by another")
        assert_one_line(invoke("run", TINY, "--out", tmp_path, "--run-id", "tiny", "--cache-dir", cache), 2,
                        "in use by another")
    # A lock file from someone else that is a pipe: named, not waited on ("not seekable" named nothing before)
    (run / ".lock").unlink()
    os.mkfifo(run / ".lock")
    assert_one_line(invoke("evaluate", run, "--cache-dir", cache, "--quiet"), 2, ".lock is not a regular file")


def test_a_run_folder_that_cannot_be_written_says_so_not_remove_the_lock(copied, monkeypatch):
    # a read-only file system (root writes through file modes here, so the refusal is made at the call)
    import errno

    run, cache = copied
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    result = invoke("evaluate", run, "--cache-dir", cache, "--quiet")
    assert_one_line(result, 2, "cannot be written (Read-only file system)", "copy it somewhere writable")
    assert "remove it" not in result.err


@pytest.mark.parametrize("sig, code, how", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_and_sigterm_say_where_the_run_stopped_and_a_rerun_resumes(tmp_path, sig, code, how):
    config = tmp_path / "slow.toml"
    config.write_text(TINY.read_text().replace("steps = 30\nstage2_steps = 30", "steps = 400\nstage2_steps = 30", 1))
    command = [sys.executable, "-m", "anytime_bench", "run", str(config), "--encoders", "ovqvae", "--metrics", "mse",
               "--out", str(tmp_path), "--run-id", "c", "--set", "run.checkpoint_every=50"]
    # a shell started in the background hands its children SIGINT ignored, and Python then keeps it ignored
    proc = subprocess.Popen([*command, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    partial = tmp_path / "c" / "checkpoints" / "partial"
    deadline = time.monotonic() + 120
    while not any(partial.rglob("*.pt")):
        assert time.monotonic() < deadline and proc.poll() is None, "the run ended before it checkpointed"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert f"interrupted by {how} in stage train of {tmp_path / 'c'}: finished stages and checkpoints are kept; run " \
           "the same command again to resume" in lines[0]
    state = json.loads((tmp_path / "c" / "run.json").read_text())
    assert state["status"] == "interrupted" and state["stage"] == "train" and state["interrupted"]
    assert not [p for p in (tmp_path / "c").rglob("*") if p.name.endswith(".tmp")]
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming ovqvae after step" in again.stderr


def test_a_run_whose_log_reader_goes_away_stops_as_interrupted_and_resumes(tmp_path):
    # `anytime-bench run ... 2>&1 | head -1`, or a tee stopped with the run's process group: the next line of the
    # log meets a closed pipe, where rich raised SystemExit(1) and the run was recorded as failed
    command = [sys.executable, "-m", "anytime_bench", "run", str(TINY), "--encoders", "ovqvae", "--metrics", "mse",
               "--out", str(tmp_path), "--run-id", "p", "--cache-dir", str(tmp_path / "cache"), "--set", "run.workers=1"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr.readline().startswith(b"run p on cpu")
    proc.stderr.close()
    assert proc.wait(timeout=300) == 128 + signal.SIGPIPE
    state = json.loads((tmp_path / "p" / "run.json").read_text())
    assert state["status"] == "interrupted" and "failure" not in state
    again = subprocess.run(command + ["--quiet"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]


def _endless_pool_config(tmp_path: Path) -> Path:
    """The tiny config in two worker processes, with a tail-drop tokenizer that would train for hours if nothing
    stopped it."""
    config = tmp_path / "pool.toml"
    config.write_text(TINY.read_text().replace("workers = 1", "workers = 2", 1) + """
[encoder.tail-drop]
code_length = 4
levels = [3, 3]
width = 16
heads = 2
encoder_layers = 1
decoder_layers = 1
steps = 1000000
""")
    return config


def test_a_signal_to_a_run_training_in_worker_processes_stops_its_workers_at_once_in_one_line(tmp_path):
    # ovqvae trains in seconds and leaves its worker idle; tail-drop would train for hours if nothing stopped it
    config = _endless_pool_config(tmp_path)
    command = [sys.executable, "-m", "anytime_bench", "run", str(config), "--encoders", "ovqvae,tail-drop", "--metrics",
               "mse", "--out", str(tmp_path), "--run-id", "p", "--set", "run.checkpoint_every=20", "--set",
               "encoder.ovqvae.steps=5", "--set", "encoder.ovqvae.stage2_steps=5", "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    checkpoints = tmp_path / "p" / "checkpoints"
    deadline = time.monotonic() + 180
    # a checkpoint file, not one still being written (.tmp), which the assertion below looks for
    while not ((checkpoints / "ovqvae" / "train0.prior.pt").is_file() and any(checkpoints.glob("partial/tail-drop*/*.pt"))):
        assert time.monotonic() < deadline and proc.poll() is None, "the run ended before both jobs were under way"
        time.sleep(0.05)
    # to the parent alone (kill PID, a container's stop): it stopped taking jobs but waited for the running ones to
    # finish; Ctrl-C in a terminal reaches the workers too, where an idle one printed a traceback
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()  # its workers die with it
        proc.communicate()
        pytest.fail("the run went on training after SIGTERM")
    assert proc.returncode == 143, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert "interrupted by SIGTERM in stage train" in lines[0]
    assert json.loads((tmp_path / "p" / "run.json").read_text())["status"] == "interrupted"
    assert any(checkpoints.glob("partial/tail-drop*/*.pt")) and not (checkpoints / "tail-drop").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the workers through /proc (Linux)")
def test_a_signal_to_one_worker_stops_the_run_as_that_signal(tmp_path):
    """``kill`` of one worker's PID (a user's, or a tool's that stops the busiest process): its job ended as a plain
    KeyboardInterrupt, which the run reported as Ctrl-C's exit 130 whatever the signal was."""
    config = _endless_pool_config(tmp_path)
    command = [sys.executable, "-m", "anytime_bench", "run", str(config), "--encoders", "tail-drop", "--metrics", "mse",
               "--out", str(tmp_path), "--run-id", "w", "--set", "run.train_seeds=2", "--set",
               "run.checkpoint_every=20", "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        partial = tmp_path / "w" / "checkpoints" / "partial"
        deadline = time.monotonic() + 180
        while len(list(partial.glob("tail-drop*/*.pt"))) < 2:  # both jobs under way, one in each worker
            assert time.monotonic() < deadline and proc.poll() is None, "the run ended before both jobs were under way"
            time.sleep(0.05)
        os.kill(_workers_of(proc.pid)[0], signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the run went on training after one worker was stopped")
    finally:
        if proc.poll() is None:  # never leave a run of a million steps behind: its workers die with it
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert "interrupted by SIGTERM in stage train" in lines[0], err[-2000:]
    assert json.loads((tmp_path / "w" / "run.json").read_text())["status"] == "interrupted"


def _workers_of(pid: int) -> list[int]:
    """The pool's worker processes of ``pid`` (spawned interpreters; not the resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid and \
                    b"pipe_handle" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the workers through /proc (Linux)")
# Ctrl-C in a terminal, with the progress display (whose thread may take the signal), and a scheduler's stop
@pytest.mark.parametrize("sig, code, how, quiet", [(signal.SIGINT, 130, "Ctrl-C", False),
                                                   (signal.SIGTERM, 143, "SIGTERM", True)])
def test_a_signal_to_the_run_and_its_workers_while_they_start_stops_it_in_one_line(tmp_path, sig, code, how, quiet):
    """A job scheduler's stop or Ctrl-C reaches the whole process group. A worker still importing torch died of it;
    the pool, broken, then failed jobs the run had just cancelled, and CPython 3.11 printed that InvalidStateError's
    traceback above the run's one line (more jobs than the pool holds at once leave some to cancel)."""
    config = tmp_path / "pool.toml"
    config.write_text(TINY.read_text().replace("workers = 1", "workers = 2", 1))
    command = [sys.executable, "-m", "anytime_bench", "run", str(config), "--encoders", "ovqvae", "--metrics", "mse",
               "--out", str(tmp_path), "--run-id", "g", "--set", "run.train_seeds=6"] + (["--quiet"] if quiet else [])
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), start_new_session=True)
    deadline = time.monotonic() + 120
    while len(_workers_of(proc.pid)) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, "the run ended before its workers started"
        time.sleep(0.01)
    os.killpg(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the run went on after {how}")
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and "Error" not in err.replace("Error: interrupted", ""), err[-2000:]
    lines = [line for line in err.splitlines() if line.strip().startswith("Error")]
    assert len(lines) == 1 and f"interrupted by {how} in stage train" in lines[0], err[-2000:]
    assert json.loads((tmp_path / "g" / "run.json").read_text())["status"] == "interrupted"
