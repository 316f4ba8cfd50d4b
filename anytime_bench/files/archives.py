"""Array archives (``.npz``): the one way arrays are written to and read from disk.

Reading never unpickles (``allow_pickle=False``): an archive from someone else
can hold only plain arrays. Every failure is a :class:`DataError` naming the
file, and a reader may state the keys, dtypes and ranks it expects.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np

from anytime_bench.errors import DataError
from anytime_bench.files import storage

MAX_ARCHIVE_BYTES = 8 * 2**30
"""Larger archives are refused before reading (a zip bomb would otherwise fill memory)."""


def to_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A compressed ``.npz`` of ``arrays``, in memory."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def write(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically."""
    storage.write_bytes(path, to_bytes(arrays))


def read(path: Path, what: str = "array archive", keys: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` at ``path`` (with ``keys``, those of them it holds, and nothing else is unpacked:
    a member nobody asked for may be a small file that inflates to gigabytes); a :class:`DataError` naming the file
    if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is not a regular file" if path.exists() else f"{path} is missing")
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(info.file_size for info in archive.infolist()
                       if keys is None or info.filename.removesuffix(".npy") in keys)
        if size > MAX_ARCHIVE_BYTES:
            raise DataError(f"{path}: {what} would unpack to {size} bytes, more than the limit of {MAX_ARCHIVE_BYTES}")
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files if keys is None or key in keys}
        # numpy hands a member not stored as .npy back as its raw bytes: never written here, so not read as an array
        odd = next((key for key, value in arrays.items() if not isinstance(value, np.ndarray)), None)
        if odd is not None:
            raise DataError(f"{path}: member {odd[:80]!r} of the {what} is not an array")
        return arrays
    except DataError:
        raise
    except MemoryError:  # an array's header may declare any shape, whatever the file holds
        raise DataError(f"{path}: {what} declares arrays larger than this machine's memory") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError) as exc:
        raise DataError(f"{path} is not a readable {what}: {type(exc).__name__}: {exc}") from None


def require_array(arrays: Mapping[str, np.ndarray], key: str, path: Path, *, dtypes: tuple[str, ...] = (),
                  ndim: int | None = None, shape: tuple[int | None, ...] | None = None,
                  finite: bool = False) -> np.ndarray:
    """``arrays[key]``, checked: present, of one of ``dtypes``, of rank ``ndim`` and of ``shape`` (None: any),
    and with ``finite`` free of NaN and infinities."""
    if key not in arrays:
        raise DataError(f"{path} has no array {key!r} (it has {', '.join(sorted(arrays)) or 'none'})")
    a = arrays[key]
    if dtypes and a.dtype.name not in dtypes:
        raise DataError(f"{path}: array {key!r} is {a.dtype.name}, expected {' or '.join(dtypes)}")
    if ndim is not None and a.ndim != ndim:
        raise DataError(f"{path}: array {key!r} has {a.ndim} dimensions, expected {ndim}")
    if shape is not None and (len(shape) != a.ndim or any(s is not None and s != n for s, n in zip(shape, a.shape,
                                                                                                  strict=True))):
        expected = "x".join("?" if s is None else str(s) for s in shape)
        raise DataError(f"{path}: array {key!r} has shape {'x'.join(map(str, a.shape))}, expected {expected}")
    if finite and a.dtype.kind in "fc" and not np.isfinite(a).all():
        raise DataError(f"{path}: array {key!r} holds NaN or infinite values")
    return a
