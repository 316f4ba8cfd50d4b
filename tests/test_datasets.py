import gzip
import struct

import numpy as np
import pytest
import torch

from anytime_bench.errors import DataError
from anytime_bench_plugins.datasets import Digits, DigitsConfig, Mnist, MnistConfig, read_idx

from .fixtures import write_mnist


def test_digits_is_embedded_scaled_and_split_by_class():
    splits = Digits(DigitsConfig()).load()
    assert splits.train.shape[1:] == (1, 8, 8) and len(splits.train) + len(splits.test) == 1797
    assert splits.train.min() == -1 and splits.train.max() == 1
    assert set(splits.test_labels.tolist()) == set(range(10))
    assert abs(len(splits.test) / 1797 - 0.2) < 0.01


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_files_in_the_real_format(tmp_path, compress):
    root = write_mnist(tmp_path, train=30, test=20, compress=compress)
    splits = Mnist(MnistConfig(download=False, train_limit=25), root).load()
    assert splits.train.shape == (25, 1, 28, 28) and splits.test.shape == (20, 1, 28, 28)
    assert splits.train.min() == -1 and splits.train.max() == 1
    assert splits.train_labels.dtype == torch.int64 and set(splits.test_labels.tolist()) <= set(range(10))
    assert splits.num_classes == 10 and splits.modality == "image"


def test_real_mnist_idx_files(mnist_root):
    splits = Mnist(MnistConfig(train_limit=1000, test_limit=500), mnist_root).load()
    assert splits.train.shape == (1000, 1, 28, 28) and splits.test.shape == (500, 1, 28, 28)
    assert splits.train.min() == -1 and splits.train.max() == 1
    assert splits.train_labels[:5].tolist() == [5, 0, 4, 1, 9]  # MNIST's well-known first labels


def test_missing_mnist_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DataError, match=r"MNIST files not found in .* put train-images-idx3-ubyte\[.gz\]"):
        Mnist(MnistConfig(download=False), tmp_path).load()
    with pytest.raises(DataError, match="needs --data-root"):
        Mnist(MnistConfig(download=False), None).load()


def _idx(path, data: np.ndarray, magic=(0, 8), extra=b"", cut=0):
    header = struct.pack(">HBB", magic[0], magic[1], data.ndim) + struct.pack(f">{data.ndim}I", *data.shape)
    body = data.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(header + body[:len(body) - cut] + extra))
    return path


def test_idx_reader_checks_magic_and_length(tmp_path):
    good = _idx(tmp_path / "ok-idx3-ubyte.gz", np.ones((2, 3, 3)))
    assert read_idx(good).shape == (2, 3, 3)
    with pytest.raises(DataError, match="bad-idx3-ubyte.gz: wrong IDX magic"):
        read_idx(_idx(tmp_path / "bad-idx3-ubyte.gz", np.ones((2, 3, 3)), magic=(0, 9)))
    with pytest.raises(DataError, match="long-idx3-ubyte.gz: IDX header announces 18 bytes of data, file has more"):
        read_idx(_idx(tmp_path / "long-idx3-ubyte.gz", np.ones((2, 3, 3)), extra=b"x"))
    with pytest.raises(DataError, match="short-idx3-ubyte.gz: IDX header announces 18 bytes of data, file has 17"):
        read_idx(_idx(tmp_path / "short-idx3-ubyte.gz", np.ones((2, 3, 3)), cut=1))
    # A gzip bomb announcing 18 bytes: refused after 19 decompressed bytes, not its 16 MB
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as fh:
        fh.write(struct.pack(">HBBIII", 0, 8, 3, 2, 3, 3))
        for _ in range(16):
            fh.write(bytes(2**20))
    with pytest.raises(DataError, match="bomb-idx3-ubyte.gz: IDX header announces 18 bytes of data, file has more"):
        read_idx(bomb)
    huge = tmp_path / "huge-idx3-ubyte"
    huge.write_bytes(struct.pack(">HBBIII", 0, 8, 3, 2**32 - 1, 2**32 - 1, 2**32 - 1))  # overflows int64
    with pytest.raises(DataError, match=f"huge-idx3-ubyte: IDX header announces {(2**32 - 1) ** 3} bytes of data, "
                                        "more than the limit"):
        read_idx(huge)
    (tmp_path / "junk.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="junk.gz: cannot be read"):
        read_idx(tmp_path / "junk.gz")
