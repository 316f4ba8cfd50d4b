"""Built-in image datasets: scikit-learn's 8x8 digits (embedded) and MNIST (IDX files)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from anytime_bench import DataError, DataSplits, data_file, from_uint8, hookimpl, require, resolves_within


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@dataclass
class DigitsConfig:
    test_fraction: float = 0.2
    """Share of each digit's images held out as the test split."""
    split_seed: int = 0
    """Seed of the stratified train/test split."""

    def validate(self) -> None:
        require(0.0 < self.test_fraction < 1.0, "test_fraction", "must be in (0, 1)")
        require(self.split_seed >= 0, "split_seed", "must be >= 0")


class Digits:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, no download)."""

    name = "digits"
    Config = DigitsConfig

    def __init__(self, config: DigitsConfig, data_root: Path | None = None):
        self.config = config

    def load(self) -> DataSplits:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = bunch.images.astype(np.float32) / 16.0 * 2.0 - 1.0  # pixel values are 0..16
        labels = bunch.target.astype(np.int64)
        train, test = stratified_split(labels, self.config.test_fraction, self.config.split_seed)
        x = torch.from_numpy(images).unsqueeze(1)
        y = torch.from_numpy(labels)
        return DataSplits(x[train], x[test], y[train], y[test], modality="image", num_classes=10,
                          info={"source": "sklearn.datasets.load_digits"})


MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


MAX_IDX_BYTES = 2**31
"""The most data an IDX header may announce (EMNIST's largest file holds 547 MB): a larger one is refused unread."""


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes, checking its header against its length.

    Decompresses no more than the header announces plus one byte, so that a
    small ``.gz`` cannot fill memory.
    """
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: too short to be an IDX file")
            zero, dtype, ndim = struct.unpack(">HBB", head)
            if zero != 0 or dtype != 0x08 or ndim not in (1, 3):
                raise DataError(f"{path}: wrong IDX magic number (expected unsigned-byte data of 1 or 3 dimensions)")
            sizes = fh.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", sizes)
            expected = math.prod(dims)  # Python ints: three 32-bit sizes overflow int64
            if expected > MAX_IDX_BYTES:
                raise DataError(f"{path}: IDX header announces {expected} bytes of data, more than the limit of "
                                f"{MAX_IDX_BYTES}")
            raw = fh.read(expected + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read: corrupt or truncated ({type(exc).__name__}: {exc})") from None
    if len(raw) != expected:
        found = "more" if len(raw) > expected else len(raw)
        raise DataError(f"{path}: IDX header announces {expected} bytes of data, file has {found}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


@dataclass
class MnistConfig:
    train_limit: int = 0
    """Use only the first N training images (0: all 60000), for quick runs."""
    test_limit: int = 0
    """Use only the first N test images (0: all 10000); the rest are the validation split (``run.reference_split =
    "validation"``), which nothing else reads."""
    download: bool = True
    """Try torchvision's download when the files are absent."""

    def validate(self) -> None:
        require(self.train_limit >= 0, "train_limit", "must be >= 0")
        require(self.test_limit >= 0, "test_limit", "must be >= 0")


class Mnist:
    """MNIST 28x28 from the standard IDX files in --data-root (.gz or not)."""

    name = "mnist"
    Config = MnistConfig

    def __init__(self, config: MnistConfig, data_root: Path | None):
        self.config = config
        self.root = data_root

    def _find(self, root: Path, stem: str) -> Path | None:
        for folder in (root, root / "MNIST" / "raw"):
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.is_file():
                    return candidate
        return None

    def _paths(self) -> dict[str, Path]:
        if self.root is None:
            raise DataError("dataset mnist needs --data-root pointing to a folder with the MNIST IDX files")
        found = {key: self._find(self.root, stem) for key, stem in MNIST_FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
        if self.config.download:
            escape = self.root / "MNIST" / "raw"
            if not resolves_within(escape, self.root):  # torchvision would write where the link points
                raise DataError(f"{escape} leads out of {self.root} (a link?): not downloaded into; remove it or put "
                                "the MNIST files in the data root")
            try:
                from torchvision.datasets import MNIST

                MNIST(str(self.root), train=True, download=True)
                MNIST(str(self.root), train=False, download=True)
            except Exception:  # offline: fall through to the error that says where the files go
                pass
            found = {key: self._find(self.root, stem) for key, stem in MNIST_FILES.items()}
            if all(found.values()):
                return found  # type: ignore[return-value]
        missing = [MNIST_FILES[k] + "[.gz]" for k, v in found.items() if v is None]
        raise DataError(f"MNIST files not found in {self.root} and could not be downloaded: put "
                        f"{', '.join(missing)} there")

    def load(self) -> DataSplits:
        paths = {key: data_file(path, self.root) for key, path in self._paths().items()}  # type: ignore[arg-type]
        arrays = {key: read_idx(path) for key, path in paths.items()}
        for split in ("train", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            for key, array, dims in ((f"{split}_images", images, 3), (f"{split}_labels", labels, 1)):
                if array.ndim != dims:
                    raise DataError(f"{paths[key]}: {array.ndim} dimensions, where MNIST's {key.split('_')[1]} have "
                                    f"{dims}")
            if len(images) != len(labels):
                raise DataError(f"{paths[f'{split}_images']}: {len(images)} images but "
                                f"{paths[f'{split}_labels']} has {len(labels)} labels")
            if images.shape[1:] != (28, 28):
                raise DataError(f"{paths[f'{split}_images']}: images of {images.shape[1:]} pixels, not 28x28")
            if len(labels) and labels.max() > 9:
                raise DataError(f"{paths[f'{split}_labels']}: label {int(labels.max())} at index "
                                f"{int(labels.argmax())} is not a digit 0-9")
        def take(key: str, limit: int) -> np.ndarray:
            return arrays[key][:limit] if limit else arrays[key]
        def scale(a: np.ndarray) -> torch.Tensor:
            return from_uint8(a).unsqueeze(1)
        def labels(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.astype(np.int64))
        # the test images past test_limit: held out from training and from every test metric, so settings chosen
        # on them are not chosen on the results (the split is implied, not an option, so that choosing on it
        # leaves the encoders' and priors' identities, and their checkpoints, as they are)
        held_out = self.config.test_limit and len(arrays["test_images"]) > self.config.test_limit
        return DataSplits(
            scale(take("train_images", self.config.train_limit)),
            scale(take("test_images", self.config.test_limit)),
            labels(take("train_labels", self.config.train_limit)),
            labels(take("test_labels", self.config.test_limit)),
            modality="image", num_classes=10, info={"files": {k: str(v) for k, v in paths.items()}},
            validation=scale(arrays["test_images"][self.config.test_limit:]) if held_out else None,
            validation_labels=labels(arrays["test_labels"][self.config.test_limit:]) if held_out else None,
        )


@hookimpl
def register_datasets():
    return [Digits, Mnist]
