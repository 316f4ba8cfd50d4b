"""Fuzzing the dataset readers with Hypothesis: one file of a small valid dataset is crafted, then loaded.

A dataset may come from someone else. Whatever one of its files holds (a header's fields set to anything with a
valid checksum, its data cut short or padded, random bytes), loading it either works or ends in a DataError
naming the file: never another exception, never a long wait or a large allocation (a small file may declare a
huge image, clip or array), and no warning beside the one-line error. Derandomized like the command-line fuzz, and
scaled by ``ANYTIME_BENCH_FUZZ_SCALE``.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from anytime_bench import DataError
from anytime_bench_plugins.datasets import Mnist, MnistConfig
from anytime_bench_plugins.image_datasets import CelebA, CelebAConfig, Cifar10, Cifar10Config, ImageFolder, ImageFolderConfig

from .fixtures import write_celeba, write_cifar, write_image_folder, write_wav_folder
from .test_attacks import _mnist
from .test_fuzz_cli import FUZZ, SCALE

SECONDS = 20.0
"""Far more than any of these tiny datasets takes to load: a crafted file that makes it slower hangs a user."""
GROWTH = 1500 * 2**20
"""Peak memory a load may add: a small crafted file must not be inflated into gigabytes."""

UINT32 = st.one_of(st.sampled_from([0, 2**15, 2**16 - 1, 2**31 - 1, 2**32 - 1]), st.integers(0, 2**32 - 1))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _mutations(draw, fields: list[str]) -> set[str]:
    """Which of a valid file's fields to set to anything: none in a third of the draws, so that the readers' later
    checks are reached, not only their first."""
    return set(draw(st.lists(st.sampled_from(fields), max_size=2))) if draw(st.integers(0, 2)) else set()


def _rows(draw, expected: int, mutate: bool) -> bytes:
    """Data of the expected length, or (mutated) cut, padded or junk."""
    how = draw(st.sampled_from(["short", "long", "junk"])) if mutate else "exact"
    if how == "junk" or expected > 2**22:  # a header declaring a huge image or clip gets a few bytes
        return draw(st.binary(max_size=64))
    if how == "exact":
        return bytes(expected)
    return bytes(max(0, expected - draw(st.integers(1, 64))) if how == "short" else expected + draw(st.integers(1, 64)))


PNG_MODES = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 8), (4, 8), (4, 16), (6, 8),
             (6, 16)]


@st.composite
def pngs(draw) -> bytes:
    """A valid PNG, or one whose header fields (with a valid CRC), palette or rows are set to anything."""
    bad = _mutations(draw, ["width", "height", "mode", "interlace", "rows", "palette", "chunks", "raw"])
    width = draw(UINT32) if "width" in bad else draw(st.integers(1, 40))
    height = draw(UINT32) if "height" in bad else draw(st.integers(1, 40))
    colour, depth = draw(st.tuples(st.integers(0, 7), st.integers(0, 17)) if "mode" in bad
                         else st.sampled_from(PNG_MODES))
    interlace = draw(st.integers(0, 2)) if "interlace" in bad else 0
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    rows = _rows(draw, height * (1 + (width * channels * depth + 7) // 8), "rows" in bad or interlace != 0)
    idat = rows if "raw" in bad else zlib.compress(rows)
    parts = [_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))]
    if colour == 3:
        entries = draw(st.integers(0, 300)) if "palette" in bad else 2 ** min(depth, 8)
        parts.append(_chunk(b"PLTE", bytes(3 * entries)))
    parts += [_chunk(b"IDAT", idat)] * (draw(st.integers(0, 3)) if "chunks" in bad else 1) + [_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(parts)


WAV_FORMATS = [(1, 16), (1, 8), (1, 24), (1, 32), (3, 32), (3, 64)]


@st.composite
def wavs(draw) -> bytes:
    """A valid WAV file, or one whose format fields, sizes or data are set to anything."""
    bad = _mutations(draw, ["channels", "rate", "format", "data", "declared", "riff"])
    channels = draw(st.integers(0, 2**16 - 1)) if "channels" in bad else draw(st.integers(1, 2))
    rate = draw(st.one_of(st.integers(1, 200000), UINT32)) if "rate" in bad else draw(
        st.sampled_from([8000, 16000, 22050, 44100, 48000]))
    fmt, bits = draw(st.tuples(st.sampled_from([0, 1, 2, 3, 0xFFFE]), st.sampled_from([0, 7, 8, 16, 33]))
                     if "format" in bad else st.sampled_from(WAV_FORMATS))
    block = max(1, channels * bits // 8)
    data = _rows(draw, block * draw(st.integers(1, 4000)), "data" in bad)
    declared = draw(UINT32) if "declared" in bad else len(data)
    body = (b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, fmt, channels, rate, rate * block % 2**32, block % 2**16,
                                            bits) + b"data" + struct.pack("<I", declared) + data)
    return b"RIFF" + struct.pack("<I", draw(UINT32) if "riff" in bad else len(body)) + body


@st.composite
def idx_files(draw, labels: bool) -> bytes:
    """A valid IDX file (gzipped or not), or one whose magic, sizes, data or values are set to anything."""
    bad = _mutations(draw, ["magic", "ndim", "sizes", "data", "values"])
    ndim = draw(st.sampled_from([0, 1, 2, 3, 255])) if "ndim" in bad else (1 if labels else 3)
    magic = struct.pack(">HBB", *(draw(st.tuples(st.integers(0, 2), st.integers(7, 14))) if "magic" in bad
                                  else (0, 8)), ndim)
    dims = [draw(UINT32) if "sizes" in bad else (20 if i == 0 else 28) for i in range(min(ndim, 4))]
    count = 1
    for n in dims:
        count *= n
    data = _rows(draw, count, "data" in bad)
    if labels and "values" in bad and data:
        data = bytes([draw(st.integers(0, 255))]) + data[1:]
    raw = magic + b"".join(struct.pack(">I", n) for n in dims) + data
    return gzip.compress(raw) if draw(st.integers(0, 3)) else raw


PICKLABLE = st.recursive(st.one_of(st.none(), st.integers(-5, 300), st.binary(max_size=8), st.text(max_size=4),
                                   st.builds(lambda n, k: np.zeros((n, k), np.uint8), st.integers(0, 3),
                                             st.sampled_from([3072, 10]))),
                         lambda children: st.one_of(st.lists(children, max_size=4),
                                                    st.dictionaries(st.sampled_from([b"data", b"labels", b"x"]),
                                                                    children, max_size=3)),
                         max_leaves=8)


def _load(kind: str, root: Path) -> None:
    if kind == "image-folder":
        ImageFolder(ImageFolderConfig(size=8, colour="rgb"), root).load()
    elif kind == "image-folder-auto":
        ImageFolder(ImageFolderConfig(size=8), root).load()
    elif kind == "wav-folder":
        from anytime_bench_plugins.audio_datasets import WavFolder, WavFolderConfig

        WavFolder(WavFolderConfig(sample_rate=8000, length=800), root).load()
    elif kind == "mnist":
        Mnist(MnistConfig(download=False), root).load()
    elif kind == "cifar10":
        Cifar10(Cifar10Config(download=False), root).load()
    else:
        CelebA(CelebAConfig(size=8), root).load()


@st.composite
def crafted(draw, tmp: Path) -> tuple[str, Path]:
    """A small valid dataset of one kind, with one file crafted."""
    kind = draw(st.sampled_from(["image-folder", "image-folder-auto", "wav-folder", "mnist", "cifar10", "celeba"]))
    root = tmp / "data"
    if kind.startswith("image-folder"):
        write_image_folder(root, per_class=2)
        (root / "cats" / "0.png").write_bytes(draw(st.one_of(pngs(), st.binary(max_size=40))))
    elif kind == "wav-folder":
        write_wav_folder(root, per_label=2)
        (root / "yes" / "0.wav").write_bytes(draw(st.one_of(wavs(), st.binary(max_size=40))))
    elif kind == "mnist":
        _mnist(root)
        name = draw(st.sampled_from(["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]))
        (root / name).write_bytes(draw(st.one_of(idx_files("labels" in name), st.binary(max_size=40))))
    elif kind == "cifar10":
        write_cifar(root, n=2)
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
        key = draw(st.sampled_from([None, b"data", b"labels", "all"]))
        value = batch if key is None else draw(PICKLABLE) if key == "all" else {**batch, key: draw(PICKLABLE)}
        buffer = io.BytesIO()
        pickle.dump(value, buffer, protocol=draw(st.sampled_from([2, 4])))
        content = draw(st.one_of(st.just(buffer.getvalue()), st.binary(max_size=40)))
        (root / "cifar-10-batches-py" / "test_batch").write_bytes(content)
    else:
        write_celeba(root)
        lines = draw(st.lists(st.one_of(st.sampled_from(["000000.jpg 0", "000001.jpg 2", "../x.jpg 0", "/etc 1",
                                                          ".. 0", "000003.jpg 7", "", "a b c"]),
                                        st.text(max_size=12)), max_size=5))
        target = draw(st.sampled_from(["partition", "image"]))
        if target == "partition":
            (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n", errors="surrogateescape")
        else:
            (root / "img_align_celeba" / "000002.jpg").write_bytes(draw(st.one_of(pngs(), st.binary(max_size=40))))
    return kind, root


def _resident() -> tuple[int, int] | None:
    """This process's resident and peak resident memory in bytes (Linux), or None."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _reset_peak() -> bool:
    """Make the peak resident memory the current one (Linux 4.0+), so that each load's own peak is measured."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _resident() is not None


def test_crafted_dataset_files_load_or_are_named_quickly_and_within_memory(tmp_path):
    measures_memory = _reset_peak()

    @settings(FUZZ, max_examples=150 * SCALE)
    @given(data=st.data())
    def fuzz(data):
        import shutil

        shutil.rmtree(tmp_path / "data", ignore_errors=True)
        kind, root = data.draw(crafted(tmp_path))
        if measures_memory:
            _reset_peak()
            before = _resident()[0]
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                _load(kind, root)
            except DataError as exc:
                assert str(root) in str(exc), f"{kind}: the error names no file of the dataset: {exc}"
        took = time.perf_counter() - started
        # a warning is a second line beside the command's one-line error (Pillow's about large images was)
        assert [str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)] == [], kind
        assert took < SECONDS, f"{kind}: loading took {took:.1f} s"
        if measures_memory:
            grew = _resident()[1] - before
            assert grew < GROWTH, f"{kind}: loading took {grew / 2**20:.0f} MB more memory at its peak"

    fuzz()
