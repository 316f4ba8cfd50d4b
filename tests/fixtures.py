"""Tiny datasets written in each real on-disk format, for dataset tests and the conformance kit."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image


def write_cifar(root: Path, n: int = 4) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def write_image(path: Path, w: int, h: int, color, mode: str = "RGB") -> None:
    Image.new(mode, (w, h), color).save(path)


def write_celeba(root: Path) -> Path:
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for i, split in enumerate([0, 0, 0, 1, 2, 2]):
        write_image(images / f"{i:06d}.jpg", 178, 218, (10 * i, 100, 200))
        lines.append(f"{i:06d}.jpg {split}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def write_image_folder(root: Path, per_class: int = 5, mode: str = "RGB") -> Path:
    colors = {"RGB": ((255, 0, 0), (0, 0, 255)), "L": (40, 220)}[mode]
    for label, color in zip(("cats", "dogs"), colors, strict=False):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            write_image(root / label / f"{i}.png", 40, 30, color, mode)
    return root


def word(rate: int, seconds: float, freq: float, pad: float = 0.3) -> np.ndarray:
    """A tone burst with silence either side, like a trimmable utterance."""
    t = np.arange(int(rate * seconds)) / rate
    burst = 0.5 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))
    silence = np.zeros(int(rate * pad))
    return np.concatenate([silence, burst, silence]).astype(np.float32)


def write_wav_folder(root: Path, per_label: int = 3) -> Path:
    for s, label in enumerate(("yes", "no")):
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            sf.write(root / label / f"{i}.wav", word(16000, 0.3 + 0.05 * i, 300 + 200 * s), 16000)
    return root


def write_vctk(root: Path, mics: tuple[str, ...] = ("mic1",)) -> Path:
    """VCTK 0.92's layout: each utterance recorded by every microphone of ``mics`` (the same sound here)."""
    base = root / "wav48_silence_trimmed"
    for s, speaker in enumerate(("p225", "p226")):
        (base / speaker).mkdir(parents=True)
        for i in range(3):
            fmt = "FLAC" if i % 2 else "WAV"
            for mic in mics:
                path = base / speaker / f"{speaker}_{i:03d}_{mic}.{fmt.lower()}"
                sf.write(path, word(48000, 0.4 + 0.1 * i, 200 + 150 * s), 48000, format=fmt)
    return root


def write_mnist(root: Path, train: int = 300, test: int = 100, compress: bool = True) -> Path:
    """MNIST's four IDX files in the real format (magic, dimensions, unsigned bytes), made from scikit-learn's
    embedded 8x8 digits scaled to 28x28: digit-shaped, labelled, and no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))[:train + test]
    images = np.stack([np.asarray(Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).resize(
        (20, 20), Image.BILINEAR)) for i in order])
    images = np.pad(images, ((0, 0), (4, 4), (4, 4)))  # MNIST's digits sit in a 20x20 box in the centre
    labels = digits.target[order].astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", slice(0, train)), ("t10k", slice(train, train + test))):
        for kind, array in (("images-idx3", images[part]), ("labels-idx1", labels[part])):
            data = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
                + array.tobytes()
            name = f"{split}-{kind}-ubyte"
            if compress:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
    return root
