"""Natural-image datasets in their standard on-disk formats: CIFAR-10, CelebA and any image folder."""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from anytime_bench import (
    DataError,
    DataSplits,
    data_file,
    from_uint8,
    hookimpl,
    listing,
    named_file,
    read_regular,
    require,
    resolves_within,
)

# The globals a CIFAR-10 python batch needs, and nothing else: loading a batch cannot run other code.
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


CIFAR_BATCH_BYTES = 64 * 2**20
"""Larger files are refused unread: a batch of CIFAR-10's is 31 MB, and a file padded far beyond its pickle (which
the unpickler would never read) could fill memory."""


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``cifar-10-batches-py`` batch: images ``[N, 3, 32, 32]`` uint8 and labels."""
    data = read_regular(path, CIFAR_BATCH_BYTES, "CIFAR-10 batch")
    try:
        batch = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-10 python batch (no data/labels)")
    data, labels = batch[b"data"], batch[b"labels"]
    # Checked before any conversion: a pickle's lists may share rows, so a small file can hold a list that
    # np.asarray would expand to gigabytes.
    if not isinstance(data, np.ndarray) or not isinstance(labels, list) or \
            not all(type(label) is int for label in labels):
        raise DataError(f"{path}: expected a uint8 array of images and a list of integer labels, got "
                        f"{type(data).__name__} and {type(labels).__name__}")
    wrong = next((label for label in labels if not 0 <= label < 10), None)
    if wrong is not None:
        shown = wrong if wrong.bit_length() < 64 else f"{wrong.bit_length()} bits"
        raise DataError(f"{path}: a label of {shown}, outside CIFAR-10's 0..9")
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: expected uint8 data [N, 3072] and N labels, got {data.dtype} {data.shape}, "
                        f"{len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return from_uint8(images)


@dataclass
class Cifar10Config:
    train_limit: int = 0
    """Use only the first N training images (0: all 50000), for quick runs."""
    test_limit: int = 0
    """Use only the first N test images (0: all 10000); the rest are the validation split (``run.reference_split =
    "validation"``), which nothing else reads."""
    download: bool = True
    """Try torchvision's download when the files are absent (needs network)."""

    def validate(self) -> None:
        require(self.train_limit >= 0 and self.test_limit >= 0, "train_limit", "must be >= 0")


class Cifar10:
    """CIFAR-10 32x32 from the cifar-10-batches-py pickles in --data-root (read without running code)."""

    name = "cifar10"
    Config = Cifar10Config

    def __init__(self, config: Cifar10Config, data_root: Path | None):
        self.config = config
        self.root = data_root

    def load(self) -> DataSplits:
        if self.root is None:
            raise DataError("dataset cifar10 needs --data-root pointing to the folder holding cifar-10-batches-py/")
        folder = self.root / "cifar-10-batches-py"
        if not folder.is_dir() and self.config.download:
            for place in (folder, self.root / "cifar-10-python.tar.gz"):
                if not resolves_within(place, self.root):  # torchvision would write where the link points
                    raise DataError(f"{place} leads out of {self.root} (a link?): not downloaded into; remove it or "
                                    "put cifar-10-batches-py/ in the data root")
            try:
                from torchvision.datasets import CIFAR10

                CIFAR10(str(self.root), download=True)
            except Exception:  # offline: the error below says where the files go
                pass
        if not folder.is_dir():
            raise DataError(f"{folder} not found: put the extracted cifar-10-python.tar.gz there")
        train = [read_cifar_batch(data_file(folder / f"data_batch_{i}", self.root)) for i in range(1, 6)]
        x_test, y_test = read_cifar_batch(data_file(folder / "test_batch", self.root))
        x_train = np.concatenate([x for x, _ in train])
        y_train = np.concatenate([y for _, y in train])
        if self.config.train_limit:
            x_train, y_train = x_train[: self.config.train_limit], y_train[: self.config.train_limit]
        # the test images past test_limit would otherwise go unread: held out from training and every test metric,
        # they are where settings can be chosen without tuning on the results
        limit = self.config.test_limit
        held_out = bool(limit) and len(x_test) > limit
        x_valid, y_valid = (x_test[limit:], y_test[limit:]) if held_out else (None, None)
        if limit:
            x_test, y_test = x_test[:limit], y_test[:limit]
        return DataSplits(_to_tensor(x_train), _to_tensor(x_test), torch.from_numpy(y_train),
                          torch.from_numpy(y_test), modality="image", num_classes=10,
                          validation=_to_tensor(x_valid) if held_out else None,
                          validation_labels=torch.from_numpy(y_valid) if held_out else None)


MAX_IMAGE_PIXELS = 50_000_000
"""Larger images are refused before decoding (a small file can declare a huge image: a decompression bomb)."""
MAX_IMAGE_BYTES = 256 * 2**20
"""Larger files are refused unread: 50 million pixels of 8-bit RGB take 150 MB uncompressed."""


def png_data_complete(data: bytes) -> bool:
    """Whether a PNG's compressed image data holds every row its header declares.

    Pillow fills missing rows of a short PNG with zeros without a word; a file
    cut after its header would otherwise be read as a black image.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return True  # not a PNG: Pillow's own checks apply
    pos, header, compressed = 8, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IEND" or not kind.isalpha():  # past the end, or no chunk of any PNG: padding, not walked
            break
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR" and len(body) >= 13:
            header = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            compressed.append(body)
        pos += 12 + length
    if header is None:
        return False
    width, height, depth, colour, _, _, interlace = header
    if width * height > MAX_IMAGE_PIXELS:
        return True  # refused by read_image from the header, before anything is decompressed
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    passes = [(width, height)] if interlace == 0 else [
        (max(0, (width - x0 + dx - 1) // dx), max(0, (height - y0 + dy - 1) // dy))
        for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                               (0, 1, 1, 2))]
    expected = sum(h * (1 + (w * channels * depth + 7) // 8) for w, h in passes if w and h)
    # Counted a megabyte at a time, never held: the rows of a 50-million-pixel image would take 400 MB.
    inflate, pending, total = zlib.decompressobj(), b"".join(compressed), 0
    try:
        while pending and total < expected:
            total += len(inflate.decompress(pending, 2**20))
            pending = inflate.unconsumed_tail
    except zlib.error:
        return False
    return total >= expected


IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF")
"""The formats an image folder's files are read as, whatever their suffix (a TIFF saved as ``.png`` is read): Pillow
would open others too, an EPS among them by running Ghostscript on it."""


def open_image(source: Path | io.BytesIO, path: Path):
    """``Image.open`` of ``source`` (the file ``path`` or its bytes), headers only, in :data:`IMAGE_FORMATS`; a
    DataError naming ``path`` past the pixel limits. Pillow's warning between 89M and 179M pixels is an error too,
    not a second line on stderr."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source, formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path}: more pixels than the limit of {MAX_IMAGE_PIXELS} (a decompression bomb?)") from None


def unreadable(path: Path, exc: Exception) -> DataError:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):  # its message names the buffer the bytes were read into
        return DataError(f"{path}: unreadable image (not a {', '.join(IMAGE_FORMATS[:-1])} or {IMAGE_FORMATS[-1]} "
                         "image)")
    return DataError(f"{path}: unreadable image ({type(exc).__name__}: {exc})")


def eight_bit(img, path: Path):
    """``img`` with 8-bit channels: 16-bit grey scaled down (Pillow's own conversion would clip it, every value above
    255 white); 32-bit and floating-point pixels, whose range no file says, refused."""
    from PIL import Image

    if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG"):  # a PNG holds at most 16 bits
        return Image.fromarray(np.round(np.asarray(img, dtype=np.float64) / 257).astype(np.uint8), "L")
    if img.mode in ("I", "F"):
        kind = "32-bit integer" if img.mode == "I" else "floating-point"
        raise DataError(f"{path}: {kind} pixels (mode {img.mode}), whose range the file does not say: save it as an "
                        "8-bit or 16-bit image")
    return img


def read_image(path: Path, size: int, mode: str = "RGB") -> np.ndarray:
    """An image (``RGB`` or grey ``L``) resized (shorter side) and center-cropped to ``size`` x ``size``, as
    uint8 ``[C, H, W]``; a DataError naming the file if it is unreadable, truncated or too large."""
    from PIL import Image, UnidentifiedImageError

    data = read_regular(path, MAX_IMAGE_BYTES, "image")
    try:
        if not png_data_complete(data):
            raise DataError(f"{path}: truncated or corrupt PNG (its image data is shorter than its header declares)")
        with open_image(io.BytesIO(data), path) as img:
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise DataError(f"{path}: {w}x{h} pixels, more than the limit of {MAX_IMAGE_PIXELS}")
            with warnings.catch_warnings():  # a palette's transparency: Pillow's advice, not the user's concern
                warnings.simplefilter("ignore", UserWarning)
                img.load()
                img = eight_bit(img, path).convert(mode)
            scale = size / min(w, h)
            img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
            w, h = img.size
            left, top = (w - size) // 2, (h - size) // 2
            img = img.crop((left, top, left + size, top + size))
            array = np.asarray(img, dtype=np.uint8)
            return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, zlib.error) as exc:
        raise unreadable(path, exc) from None


@dataclass
class CelebAConfig:
    size: int = 64
    """Images are resized (shorter side) and centre-cropped to size x size (64 in the paper)."""
    limit: int = 0
    """Use only the first N images of each split (0: all)."""

    def validate(self) -> None:
        require(self.size >= 4, "size", "must be >= 4")
        require(self.limit >= 0, "limit", "must be >= 0")


PARTITION_BYTES = 16 * 2**20
"""Larger partition files are refused unread: CelebA's lists 202,599 images in 3.4 MB."""


class CelebA:
    """CelebA from img_align_celeba/ and list_eval_partition.txt, center-cropped and resized (64x64)."""

    name = "celeba"
    Config = CelebAConfig

    def __init__(self, config: CelebAConfig, data_root: Path | None):
        self.config = config
        self.root = data_root

    def load(self) -> DataSplits:
        if self.root is None:
            raise DataError("dataset celeba needs --data-root with img_align_celeba/ and list_eval_partition.txt")
        base = self.root / "celeba" if (self.root / "celeba" / "img_align_celeba").is_dir() else self.root
        partition = base / "list_eval_partition.txt"
        images = base / "img_align_celeba"
        if not (partition.exists() or partition.is_symlink()) or not images.is_dir():
            raise DataError(f"CelebA not found in {base}: put img_align_celeba/ and list_eval_partition.txt there")
        text = read_regular(data_file(partition, self.root), PARTITION_BYTES, "CelebA's partition file")
        try:
            lines = text.decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{partition}: not UTF-8 text (byte {exc.start})") from None
        splits: dict[int, list[str]] = {0: [], 1: [], 2: []}
        listed: dict[str, int] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(f"{partition}:{number}: expected '<file> <0|1|2>', got {line!r}")
            if parts[0] in listed:  # listed twice, one image could train and test
                raise DataError(f"{partition}:{number}: {parts[0][:100]!r} is listed again (first on line "
                                f"{listed[parts[0]]})")
            listed[parts[0]] = number
            splits[int(parts[1])].append(parts[0])

        def read(names: list[str]) -> torch.Tensor:
            names = names[: self.config.limit] if self.config.limit else names
            if not names:
                return torch.zeros(0, 3, self.config.size, self.config.size)
            return _to_tensor(np.stack([read_image(named_file(images, n, self.root, partition), self.config.size)
                                        for n in names]))

        # CelebA's test split (2) is the test set; train (0) trains, as is usual for generative models.
        return DataSplits(read(splits[0]), read(splits[2]), modality="image", info={"source": str(base)})


GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass
class ImageFolderConfig:
    size: int = 32
    """Images are resized (shorter side) and centre-cropped to size x size."""
    colour: Literal["auto", "rgb", "grey"] = "auto"
    """auto: grey (one channel) when every image is grey, else RGB; small grey domains then get the same
    classifier feature space as MNIST instead of being scored as colour photographs."""
    test_fraction: float = 0.1
    """Share of the images held out as the test split."""
    split_seed: int = 0
    """Seed of the train/test split."""

    def validate(self) -> None:
        require(self.size >= 4, "size", "must be >= 4")
        require(0.0 < self.test_fraction < 1.0, "test_fraction", "must be in (0, 1)")
        require(self.split_seed >= 0, "split_seed", "must be >= 0")


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class ImageFolder:
    """Any folder of images with one sub-folder per class (PNG/JPEG; 16-bit grey is scaled to 8 bits), resized to a
    square size; grey stays grey."""

    name = "image-folder"
    Config = ImageFolderConfig

    def __init__(self, config: ImageFolderConfig, data_root: Path | None):
        self.config = config
        self.root = data_root

    def load(self) -> DataSplits:
        if self.root is None or not self.root.is_dir():
            raise DataError("dataset image-folder needs --data-root pointing to a folder of class sub-folders")
        classes = [p for p in listing(self.root, self.root) if p.is_dir()]
        files = [(data_file(f, self.root), label) for label, c in enumerate(classes) for f in listing(c, self.root)
                 if f.suffix.lower() in IMAGE_SUFFIXES]
        if len(files) < 2:
            raise DataError(f"{self.root}: no images found in class sub-folders ({', '.join(sorted(IMAGE_SUFFIXES))})")
        mode = {"rgb": "RGB", "grey": "L"}.get(self.config.colour) or self._mode([f for f, _ in files])
        images = _to_tensor(np.stack([read_image(f, self.config.size, mode) for f, _ in files]))
        labels = torch.tensor([label for _, label in files])
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(self.config.split_seed))
        n_test = max(1, int(round(len(files) * self.config.test_fraction)))
        test, train = order[:n_test], order[n_test:]
        return DataSplits(images[train], images[test], labels[train], labels[test], modality="image",
                          num_classes=len(classes), info={"classes": [c.name for c in classes], "colour": mode})

    @staticmethod
    def _mode(files: list[Path]) -> str:
        """``L`` when every image is stored grey (read from the headers only), else ``RGB``."""
        from PIL import UnidentifiedImageError

        for path in files:
            try:
                with open_image(path, path) as img:
                    if img.mode not in GREY_MODES:
                        return "RGB"
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise unreadable(path, exc) from None
        return "L"


@hookimpl
def register_datasets():
    return [Cifar10, CelebA, ImageFolder]
