"""Files under a folder that may come from someone else: a dataset under ``--data-root``, a cache folder.

Such a folder is untrusted like a run folder: a link inside it that leads out
of it is not followed (it could read a private file into the training data,
or have a cache file written elsewhere), a name read from one of its files is
a plain file name (CelebA's partition file could name
``../../home/me/photo.jpg``), and only regular files of a dataset are read (a
link to ``/dev/zero`` would be read forever, a pipe would hang).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from anytime_bench.errors import DataError


def resolved(path: Path) -> Path:
    """``path`` with its links followed; a link that leads back to itself (a loop, or a chain longer than the
    system follows) is a DataError naming it rather than Python's RuntimeError."""
    loop = DataError(f"{path} is a link loop (a link that leads back to itself): not followed; remove it")
    try:
        target = Path(path).resolve()
        present = target.exists()
    except (RuntimeError, OSError) as exc:  # RuntimeError: "Symlink loop from ..." (Python before 3.13)
        if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
            raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None  # a folder's permissions
        raise loop from None
    if not present:  # Python 3.13 resolves a loop without raising: the system still says ELOOP
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise loop from None
    return target


def resolves_within(path: Path, root: Path) -> bool:
    """Whether ``path``, its links followed, is ``root`` or lies under it (a link loop: a DataError)."""
    inner, base = resolved(path), resolved(root)
    return inner == base or base in inner.parents


def read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, once it is open and checked to be a regular file of at most ``limit`` bytes (a larger
    one is refused unread, and so is one that grows past it meanwhile): a pipe (which would
    wait for a writer forever), a device (``/dev/zero`` would be read forever), a folder or a link loop is refused
    in one line naming ``what`` and the path, and so is a file that cannot be opened. The file is opened without
    waiting (a pipe's open would block) and checked on the open file, so it cannot be swapped in between."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except OSError as exc:
        why = "is a link loop (a link that leads back to itself)" if exc.errno == errno.ELOOP else \
            f"cannot be read: {exc.strerror or exc}"
        raise DataError(f"{what} {path} {why}") from None
    status = os.fstat(fd)
    mode = status.st_mode
    too_large = DataError(f"{what} {path} is larger than {limit} bytes ({status.st_size})")
    if stat.S_ISREG(mode) and status.st_size > limit:  # refused unread: a padded file must not fill memory
        os.close(fd)
        raise too_large
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "a device" \
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file"
        raise DataError(f"{what} {path} is {kind}" + ("" if kind == "a folder" else ", not a regular file"))
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise DataError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:  # it grew after it was checked
        raise too_large
    return data


def listing(folder: Path, root: Path) -> list[Path]:
    """The entries of ``folder``, a folder of a dataset under ``root``, in order of their names, hidden ones left out
    (``.git``, macOS's ``._photo.png``: no data of the set); a DataError naming the folder when it leads out of
    ``root`` (a link, which would have the dataset read whatever it points at) or cannot be read."""
    folder = Path(folder)
    if not resolves_within(folder, root):
        raise DataError(f"{folder} leads out of {root} (a link?): not followed; copy the folder into the dataset "
                        "folder or point --data-root at the folder that holds it")
    try:
        return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))
    except OSError as exc:
        raise DataError(f"{folder} cannot be read: {exc.strerror or exc}") from None


def _plain(name: str) -> bool:
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def data_file(path: Path, root: Path) -> Path:
    """``path`` once checked to be a regular file that resolves inside ``root``; a DataError naming it otherwise."""
    path = Path(path)
    target = resolved(path)
    if not target.exists() and not path.is_symlink():
        raise DataError(f"{path} is missing")
    if not resolves_within(path, root):
        raise DataError(f"{path} leads out of {root} (a link?): not followed; copy the file into the dataset "
                        "folder or point --data-root at the folder that holds it")
    if not target.is_file():
        raise DataError(f"{path} is not a regular file")
    return path


def named_file(folder: Path, name: str, root: Path, listed_in: Path) -> Path:
    """The file ``name`` of ``folder``, where ``name`` was read from the dataset file ``listed_in``: a plain file
    name (no folder, no ``..``), then checked as :func:`data_file`."""
    if not _plain(name):
        raise DataError(f"{listed_in} names {name[:100]!r}, which is not a plain file name")
    return data_file(Path(folder) / name, root)


def contained(root: Path, *parts: str) -> Path:
    """``root/parts...`` for reading or writing a file there (a cache entry), its folders created, once checked to
    resolve inside ``root``: a folder or file on the way that is a link out of it is not followed. A DataError
    naming it otherwise."""
    root = Path(root)
    path = root.joinpath(*parts)
    if not all(_plain(part) for part in parts):
        raise DataError(f"{path}: not a plain path inside {root}")
    if not resolves_within(path, root):  # checked before creating anything: a link on the way leads elsewhere
        raise DataError(f"{path} leads out of {root} (a link?): not followed; remove it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {path.parent}: {exc.strerror}") from None
    return path
