"""Datasets from others, read as the review of the data files found them read: deep pixels clipped to white, a padded
file filling memory, a linked label folder walking the whole disk, another folder's data scored under a run's name.
Each is now read right or refused in one line naming the file."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from anytime_bench import DataError
from anytime_bench_plugins import image_datasets
from anytime_bench_plugins.audio_datasets import WavFolder, WavFolderConfig, read_audio
from anytime_bench_plugins.classifier import read_payload
from anytime_bench_plugins.datasets import Mnist, MnistConfig
from anytime_bench_plugins.image_datasets import (
    CelebA,
    CelebAConfig,
    ImageFolder,
    ImageFolderConfig,
    read_cifar_batch,
    read_image,
)

from .conftest import assert_clean_error, run_cli
from .fixtures import write_celeba, write_cifar, write_image_folder, write_mnist, write_wav_folder

# ---------------------------------------------------------------------- images


def test_a_16_bit_image_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 128 * 257], [255 * 257, 65535]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    assert read_image(path, 2, "L")[0].tolist() == [[0, 128], [255, 255]]


def test_a_16_bit_png_that_pillow_opens_as_32_bit_is_scaled_as_16_bit(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 128 * 257]], dtype=np.uint16)).save(path)
    with Image.open(path) as img:
        img.load()
        wide = img.convert("I")  # how older Pillow opens a 16-bit grey PNG
        wide.format = "PNG"
        assert np.asarray(image_datasets.eight_bit(wide, path)).tolist() == [[0, 128]]


@pytest.mark.parametrize("array,mode", [(np.full((4, 4), 0.5, dtype=np.float32), "F"),
                                        (np.full((4, 4), 70000, dtype=np.int32), "I")])
def test_pixels_whose_range_no_file_says_are_refused_naming_the_file(tmp_path, array, mode):
    path = tmp_path / "odd.png"  # Pillow reads a file by its content: a TIFF under an image suffix is read
    Image.fromarray(array).save(path, format="TIFF")
    with pytest.raises(DataError, match=rf"odd.png: .* pixels \(mode {mode}\), whose range the file does not say"):
        read_image(path, 4, "L")


def _png(tmp_path, tail: bytes = b"", before_end: bytes = b""):
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 77).save(buffer, "PNG")
    data = buffer.getvalue()
    end = data.rindex(b"IEND") - 4
    path = tmp_path / "padded.png"
    path.write_bytes(data[:end] + before_end + data[end:] + tail)
    return path


def test_a_png_padded_after_its_end_is_read_without_walking_the_padding(tmp_path):
    assert read_image(_png(tmp_path, tail=bytes(4 * 2**20)), 8, "L").mean() == 77


def test_a_png_whose_end_is_padding_is_read_and_one_cut_short_is_refused(tmp_path):
    path = _png(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:data.rindex(b"IEND") - 4] + bytes(64))  # its end chunk lost to a block's padding
    assert read_image(path, 8, "L").mean() == 77
    idat = data.index(b"IDAT") - 4
    path.write_bytes(data[:idat] + bytes(64))  # its image data lost too
    with pytest.raises(DataError, match="truncated or corrupt PNG"):
        read_image(path, 8, "L")


def test_an_image_larger_than_the_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(image_datasets, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(DataError, match=r"image .*padded.png is larger than 1000 bytes \(\d+\)"):
        read_image(_png(tmp_path, tail=bytes(2000)), 8, "L")


def test_hidden_folders_and_files_of_an_image_folder_are_no_classes_or_images(tmp_path):
    root = write_image_folder(tmp_path / "images", per_class=3)
    (root / ".git").mkdir()
    shutil.copy(root / "cats" / "0.png", root / ".git" / "0.png")
    (root / "cats" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # what macOS leaves on a USB stick
    splits = ImageFolder(ImageFolderConfig(size=8), root).load()
    assert splits.num_classes == 2 and len(splits.train) + len(splits.test) == 6
    assert splits.info["classes"] == ["cats", "dogs"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder whatever its permissions")
def test_an_unreadable_class_folder_is_named(tmp_path):
    root = write_image_folder(tmp_path / "images", per_class=3)
    (root / "dogs").chmod(0)
    try:
        with pytest.raises(DataError, match=r"dogs cannot be read: Permission denied"):
            ImageFolder(ImageFolderConfig(size=8), root).load()
    finally:
        (root / "dogs").chmod(0o755)


def test_a_celeba_partition_file_that_is_not_text_is_named(tmp_path):
    root = write_celeba(tmp_path / "celeba")
    (root / "list_eval_partition.txt").write_bytes(b"000000.jpg 0\n\xff\xfe 2\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt: not UTF-8 text \(byte 13\)"):
        CelebA(CelebAConfig(size=8), root).load()


def test_a_celeba_image_listed_twice_is_refused(tmp_path):
    root = write_celeba(tmp_path / "celeba")
    with open(root / "list_eval_partition.txt", "a") as fh:
        fh.write("000000.jpg 2\n")  # in the train split too: one image would train and test
    with pytest.raises(DataError, match=r"list_eval_partition.txt:7: '000000.jpg' is listed again \(first on line 1\)"):
        CelebA(CelebAConfig(size=8), root).load()


def test_mnist_labels_of_more_dimensions_are_named_as_such(tmp_path):
    root = write_mnist(tmp_path / "mnist", train=20, test=10, compress=False)
    labels = np.zeros((20, 2, 1), np.uint8)
    (root / "train-labels-idx1-ubyte").write_bytes(struct.pack(">HBB3I", 0, 8, 3, 20, 2, 1) + labels.tobytes())
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: 3 dimensions, where MNIST's labels have 1"):
        Mnist(MnistConfig(download=False), root).load()


# ---------------------------------------------------------------------- CIFAR-10


def test_a_cifar_batch_larger_than_any_is_refused_unread(tmp_path, monkeypatch):
    folder = write_cifar(tmp_path)
    monkeypatch.setattr(image_datasets, "CIFAR_BATCH_BYTES", 2000)
    with open(folder / "test_batch", "ab") as fh:  # what the unpickler would never read, and read_bytes would
        fh.write(bytes(4000))
    with pytest.raises(DataError, match=r"CIFAR-10 batch .*test_batch is larger than 2000 bytes"):
        read_cifar_batch(folder / "test_batch")


def test_a_cifar_label_beyond_any_integer_type_is_named(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [2**70]}, protocol=2))
    with pytest.raises(DataError, match=r"batch: a label of 71 bits, outside CIFAR-10's 0..9"):
        read_cifar_batch(path)


# ---------------------------------------------------------------------- audio


def test_a_label_folder_linked_out_of_the_data_root_is_not_walked(tmp_path):
    root = write_wav_folder(tmp_path / "wavs")
    (root / "zz").symlink_to("/")
    with pytest.raises(DataError, match=r"zz leads out of .*wavs \(a link\?\): not followed"):
        WavFolder(WavFolderConfig(), root).labelled_files(root)


def test_a_link_back_inside_the_data_root_is_read_once(tmp_path):
    root = write_wav_folder(tmp_path / "wavs")
    (root / "yes" / "again").symlink_to(root / "yes")
    files = WavFolder(WavFolderConfig(), root).labelled_files(root)
    assert [f.name for f in files["yes"]] == ["0.wav", "1.wav", "2.wav"]


@pytest.mark.parametrize("scale", [1e20, 1e-40])
def test_a_float_wav_of_extreme_but_finite_samples_is_read(tmp_path, scale):
    t = np.arange(16000) / 16000
    wave = (np.sin(2 * np.pi * 440 * t) * np.hanning(len(t)) * scale).astype(np.float32)
    root = tmp_path / "wavs"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            sf.write(root / label / f"{i}.wav", wave, 16000, subtype="FLOAT")
    splits = WavFolder(WavFolderConfig(sample_rate=8000, length=4000), root).load()
    assert torch.isfinite(splits.train).all() and 0.9 < float(splits.train.abs().max()) <= 0.95 + 1e-6


def test_an_audio_file_swapped_for_a_pipe_is_refused_not_waited_on(tmp_path):
    path = tmp_path / "clip.wav"
    os.mkfifo(path)
    with pytest.raises(DataError, match=r"audio file .*clip.wav is a pipe, not a regular file"):
        read_audio(path, 16000)


# ---------------------------------------------------------------------- downloads, caches


def test_mnist_is_not_downloaded_through_a_link_out_of_the_data_root(tmp_path):
    victim, root = tmp_path / "victim", tmp_path / "root"
    victim.mkdir()
    root.mkdir()
    (root / "MNIST").symlink_to(victim)
    with pytest.raises(DataError, match=r"MNIST/raw leads out of .*root \(a link\?\): not downloaded into"):
        Mnist(MnistConfig(download=True), root).load()
    assert list(victim.iterdir()) == []


@pytest.mark.parametrize("accuracy", ["0.99", float("nan"), 2.0, True])
def test_a_cached_classifier_whose_accuracy_is_no_fraction_is_refused_naming_it(tmp_path, accuracy):
    path = tmp_path / "classifier.pt"
    torch.save({"state": {}, "test_accuracy": accuracy}, path)
    with pytest.raises(DataError, match=r"classifier.pt: not a cached feature classifier that loads safely"):
        read_payload(path)


# ---------------------------------------------------------------------- a run's data


def test_a_run_is_not_scored_on_another_folders_data(tmp_path):
    first = write_image_folder(tmp_path / "first", per_class=5, mode="L")
    other = write_image_folder(tmp_path / "other", per_class=6, mode="L")
    cheap = ["--dataset", "image-folder", "--encoders", "ovqvae", "--prior", "ngram", "--metrics", "mse",
             "--budgets", "1", "--num-samples", "8", "--set", "encoder.ovqvae.steps=3",
             "--set", "encoder.ovqvae.stage2_steps=3", "--set", "dataset.image-folder.size=8", "--quiet",
             "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache"]
    assert run_cli("run", *cheap, "--data-root", first, "--run-id", "r").code == 0
    run = tmp_path / "out" / "r"
    assert json.loads((run / "run.json").read_text())["data"]["items"] == [9, 1]
    before = (run / "metrics.csv").read_bytes()
    for command in ("evaluate", "sample"):
        result = run_cli(command, run, "--data-root", other, "--cache-dir", tmp_path / "cache")
        assert_clean_error(result, 2, "dataset 'image-folder' now loads 11 train and 1 test items, where the run was "
                                      "trained on 9 and 1: it is not this run's data")
    assert (run / "metrics.csv").read_bytes() == before
    assert run_cli("evaluate", run, "--data-root", first, "--cache-dir", tmp_path / "cache").code == 0
    # nor redone or resumed on it by run, which would record the other data's counts as the run's
    result = run_cli("run", *cheap, "--data-root", other, "--run-id", "r", "--redo")
    assert_clean_error(result, 2, "now loads 11 train and 1 test items, where the run was trained on 9 and 1")
    assert json.loads((run / "run.json").read_text())["data"]["items"] == [9, 1]
    assert (run / "metrics.csv").read_bytes() == before
    assert run_cli("train", *cheap, "--data-root", first, "--run-id", "half").code == 0
    result = run_cli("run", *cheap, "--data-root", other, "--run-id", "half")
    assert_clean_error(result, 2, "now loads 11 train and 1 test items, where the run was trained on 9 and 1")
    assert json.loads((tmp_path / "out" / "half" / "run.json").read_text())["data"]["items"] == [9, 1]


def test_a_record_of_data_items_that_are_no_counts_is_refused(tmp_path):
    from anytime_bench.engine.run import _data_facts

    plugins = SimpleNamespace(names=lambda kind: ["image"])
    data = {"modality": "image", "data_shape": [1, 8, 8], "sample_rate": None}
    assert _data_facts(data, tmp_path, plugins).items is None  # recorded before the counts were
    assert _data_facts(data | {"items": [9, 1]}, tmp_path, plugins).items == (9, 1)
    from anytime_bench import ConfigError

    with pytest.raises(ConfigError, match="data.items must be the numbers of train and test items"):
        _data_facts(data | {"items": [9, "1"]}, tmp_path, plugins)


@pytest.mark.parametrize("candidates,references", [(1, 5), (5, 1)])
def test_a_frechet_distance_of_one_item_is_refused_not_a_linear_algebra_error(candidates, references):
    from anytime_bench import MetricInputs
    from anytime_bench_plugins.metrics import Fid

    inputs = MetricInputs(torch.zeros(candidates, 1, 8, 8), torch.zeros(references, 1, 8, 8), "tiny", "test", None, 0)
    with pytest.raises(DataError, match=rf"fid needs at least 2 items on each side .*got {candidates} scored against "
                                        rf"{references} of the test split"):
        Fid(Fid.Config()).compute(inputs, None)
