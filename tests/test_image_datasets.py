"""CIFAR-10, CelebA and image folders, read from tiny fixtures written in each real format."""

import pickle
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from anytime_bench.errors import DataError
from anytime_bench_plugins.image_datasets import (
    CelebA,
    CelebAConfig,
    Cifar10,
    Cifar10Config,
    ImageFolder,
    ImageFolderConfig,
    read_cifar_batch,
    read_image,
)

from .fixtures import write_cifar, write_image_folder


def test_cifar10_batches(tmp_path):
    write_cifar(tmp_path)
    splits = Cifar10(Cifar10Config(download=False), tmp_path).load()
    assert splits.train.shape == (20, 3, 32, 32) and splits.test.shape == (4, 3, 32, 32)
    assert -1 <= float(splits.train.min()) and float(splits.train.max()) <= 1
    assert splits.num_classes == 10 and len(splits.train_labels) == 20


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cifar10_keeps_the_test_images_past_test_limit_as_validation(tmp_path):
    write_cifar(tmp_path)
    every = Cifar10(Cifar10Config(download=False), tmp_path).load()
    splits = Cifar10(Cifar10Config(download=False, test_limit=3), tmp_path).load()
    assert len(splits.test) == 3 and torch.equal(splits.validation, every.test[3:])
    assert torch.equal(splits.validation_labels, every.test_labels[3:])
    assert every.validation is None


def test_cifar_pickles_cannot_run_code(tmp_path, capsys):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}))
    with pytest.raises(DataError, match=r"data_batch_3: not a CIFAR-10 python batch .*refusing to load global "
                                        r"builtins.print"):
        Cifar10(Cifar10Config(download=False), tmp_path).load()
    assert "must never run" not in capsys.readouterr().out


def test_bad_cifar_batches_are_named(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 python batch"):
        read_cifar_batch(folder / "test_batch")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError, match=r"test_batch: expected uint8 data \[N, 3072\]"):
        read_cifar_batch(folder / "test_batch")
    # Lists that share their rows: 3 KB of pickle that np.asarray would expand to 1.2 billion numbers (10 GB)
    row = [0] * 3072
    block = [row] * 625
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": [block] * 625, b"labels": [0]}, protocol=2))
    assert (folder / "test_batch").stat().st_size < 10_000
    with pytest.raises(DataError, match="test_batch: expected a uint8 array of images and a list of integer labels, "
                                        "got list and list"):
        read_cifar_batch(folder / "test_batch")
    (folder / "data_batch_5").unlink()
    with pytest.raises(DataError, match="data_batch_5 is missing"):
        Cifar10(Cifar10Config(download=False), tmp_path).load()
    with pytest.raises(DataError, match="cifar-10-batches-py not found"):
        Cifar10(Cifar10Config(download=False), tmp_path / "elsewhere").load()


def _jpeg(path, w, h, color):
    Image.new("RGB", (w, h), color).save(path)


def test_celeba_partition_crop_and_resize(tmp_path):
    images = tmp_path / "img_align_celeba"
    images.mkdir()
    lines = []
    for i, split in enumerate([0, 0, 0, 1, 2, 2]):
        _jpeg(images / f"{i:06d}.jpg", 178, 218, (10 * i, 100, 200))
        lines.append(f"{i:06d}.jpg {split}")
    (tmp_path / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    splits = CelebA(CelebAConfig(size=16), tmp_path).load()
    assert splits.train.shape == (3, 3, 16, 16) and splits.test.shape == (2, 3, 16, 16)
    (tmp_path / "list_eval_partition.txt").write_text("000000.jpg 7\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt:1: expected '<file> <0\|1\|2>'"):
        CelebA(CelebAConfig(size=16), tmp_path).load()


def test_image_folder_and_an_unreadable_image(tmp_path):
    for label, color in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / label).mkdir()
        for i in range(5):
            _jpeg(tmp_path / label / f"{i}.png", 40, 30, color)
    splits = ImageFolder(ImageFolderConfig(size=8, test_fraction=0.2), tmp_path).load()
    assert splits.train.shape == (8, 3, 8, 8) and splits.test.shape == (2, 3, 8, 8)
    assert splits.num_classes == 2 and splits.info["classes"] == ["cats", "dogs"]
    (tmp_path / "dogs" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken.png: unreadable image"):
        ImageFolder(ImageFolderConfig(size=8), tmp_path).load()


def _png(path, width, height, idat: bytes, depth=16, colour=6):
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_png_header_is_checked_before_its_data_is_inflated(tmp_path):
    # 1 KB declaring 2^31 - 1 pixels square: the completeness check overflowed ("internal error") before
    huge = _png(tmp_path / "huge.png", 2**31 - 1, 2**31 - 1, zlib.compress(bytes(2**20)))
    with pytest.raises(DataError, match="huge.png: more pixels than the limit"):
        read_image(huge, 32)
    # within the pixel limit but short of rows: counted, not held (it held the 200 MB of rows it inflated)
    short = _png(tmp_path / "short.png", 7000, 7000, zlib.compress(bytes(50 * 2**20), 9))
    with pytest.raises(DataError, match="short.png: truncated or corrupt PNG"):
        read_image(short, 32)


@pytest.mark.parametrize("colour", ["auto", "grey"])
def test_pillows_warning_about_large_images_is_not_a_second_line(tmp_path, colour):
    import warnings

    root = write_image_folder(tmp_path / "images", per_class=2, mode="L")
    _png(root / "cats" / "big.png", 10000, 10000, zlib.compress(b""), depth=8, colour=0)  # 100M pixels: Pillow warns
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DataError, match="big.png: more pixels"):
        warnings.simplefilter("always")
        ImageFolder(ImageFolderConfig(size=8, colour=colour), root).load()
    assert [str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)] == []
