"""Files under a folder that may come from someone else: a dataset under ``--data-root``, a cache folder.

Such a folder is untrusted like a run folder: a link inside it that leads out
of it is not followed (it could read a private file into the training data,
or have a cache file written elsewhere), a name read from one of its files is
a plain file name (CelebA's partition file could name
``../../home/me/photo.jpg``), and only regular files of a dataset are read (a
link to ``/dev/zero`` would be read forever, a pipe would hang).
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataError


def resolves_within(path: Path, root: Path) -> bool:
    """Whether ``path``, its links followed, is ``root`` or lies under it."""
    resolved, base = Path(path).resolve(), Path(root).resolve()
    return resolved == base or base in resolved.parents


def _plain(name: str) -> bool:
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def data_file(path: Path, root: Path) -> Path:
    """``path`` once checked to be a regular file that resolves inside ``root``; a DataError naming it otherwise."""
    path = Path(path)
    resolved = path.resolve()
    if not resolved.exists() and not path.is_symlink():
        raise DataError(f"{path} is missing")
    if not resolves_within(path, root):
        raise DataError(f"{path} leads out of {root} (a link?): not followed; copy the file into the dataset "
                        "folder or point --data-root at the folder that holds it")
    if not resolved.is_file():
        raise DataError(f"{path} is not a regular file")
    return path


def named_file(folder: Path, name: str, root: Path, listed_in: Path) -> Path:
    """The file ``name`` of ``folder``, where ``name`` was read from the dataset file ``listed_in``: a plain file
    name (no folder, no ``..``), then checked as :func:`data_file`."""
    if not _plain(name):
        raise DataError(f"{listed_in} names {name!r}, which is not a plain file name")
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
