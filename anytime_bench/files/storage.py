"""Atomic file writes and safe checkpoints.

Every file of a results folder is written to a temporary file in the same
folder, fsynced and renamed over the target, so that a crash leaves either the
old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from anytime_bench.errors import CheckpointError, StorageError, first_line

CHECKPOINT_FORMAT = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


MAX_NAME_BYTES = 255
"""The longest file name (one path component, in bytes) that common file systems take."""

RESOURCE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
                   errno.EFBIG, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EEXIST}
"""Why a write in a chosen output folder fails for reasons of the machine, not of the code asking for it."""

_HINTS = {errno.ENOSPC: "free some space and run the command again", errno.EDQUOT: "free some space and run the "
          "command again", errno.EROFS: "choose a writable folder", errno.ENAMETOOLONG: "choose a shorter name"}


def staging_name(name: str, suffix: str = ".tmp", random_part: int = 8) -> str:
    """The prefix of a staging (temporary) file for ``name``: ``.<name>.``, cut so that the whole staging name
    (prefix, ``random_part`` random characters, ``suffix``) stays within :data:`MAX_NAME_BYTES` however long the
    target's name is (a long ``--out`` or run id made it longer than the file system allows)."""
    room = MAX_NAME_BYTES - 2 - random_part - len(os.fsencode(suffix))
    return "." + os.fsdecode(os.fsencode(name)[:room]) + "."


def cannot_write(path: Path, exc: OSError) -> StorageError:
    """A one-line error for a write that failed because of the machine (:data:`RESOURCE_ERRORS`), naming the file
    (cut to 200 characters, which is enough to recognise it)."""
    shown = str(path) if len(str(path)) <= 200 else str(path)[:120] + "..." + str(path)[-77:]
    hint = _HINTS.get(exc.errno or 0)
    return StorageError(f"cannot write {shown}: {exc.strerror or type(exc).__name__}"
                        + (f" ({hint}; nothing was half-written)" if hint else " (nothing was half-written)"))


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, fsynced and renamed over it.

    The file gets the permissions a plain ``open`` would give (``0666`` less the
    umask), not the private mode of temporary files, so shared results stay readable.
    A write that fails for a reason of the machine (a full disk, a read-only
    folder, a name that is too long) is a one-line :class:`StorageError` naming
    the file; either way no staging file is left behind and an older file stays.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=staging_name(path.name), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in RESOURCE_ERRORS:
            raise cannot_write(path, exc) from None
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        # an OSError about another file (one that ``write`` reads) is not this write's: it passes unchanged
        if isinstance(exc, OSError) and not isinstance(exc, StorageError) and exc.errno in RESOURCE_ERRORS \
                and exc.filename in (None, tmp, str(path), path):
            raise cannot_write(path, exc) from None
        raise


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def save_checkpoint(path: Path, *, kind: str, name: str, config_digest: str, state: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> None:
    """Save a component's ``state_dict`` with what is needed to refuse a mismatched load."""
    import torch

    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": kind,
        "name": name,
        "config_digest": config_digest,
        "state": state,
        "extra": extra or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def weights_only_problem(state: Any) -> str | None:
    """What a weights-only load (:func:`load_untrusted`, as every checkpoint is read back) would refuse in
    ``state`` once saved, or what ``torch.save`` cannot write at all, or None: an object of a plugin's own class,
    say, which ``torch.save`` writes without a word and no run can then read. Tried on the state's skeleton (each
    plain tensor emptied), so that a large state costs no second copy."""
    import torch

    buffer = io.BytesIO()
    try:
        torch.save(_skeleton(state, {}), buffer)
    except Exception as exc:  # noqa: BLE001 - a lock, a lambda, an open file: pickle's own refusal, named
        return f"torch.save cannot write it: {type(exc).__name__}: {first_line(exc, 200)}"
    buffer.seek(0)
    try:
        load_untrusted(buffer)
    except pickle.UnpicklingError as exc:  # what it refused, not what a file is not: there is no file yet
        text = str(exc)
        return "a weights-only load refuses it" + text.removeprefix(NOT_WEIGHTS).removesuffix(")")
    return None


def _skeleton(tree: Any, seen: dict[int, Any]) -> Any:
    """``tree`` with every plain tensor (or parameter) replaced by an empty one of its dtype, in containers of the
    same types; anything else (a tensor subclass, an object) kept as it is, to be refused as it would be."""
    import torch

    if type(tree) in (torch.Tensor, torch.nn.Parameter):  # a sparse or quantized one is saved as it is
        plain = tree.layout == torch.strided and not tree.is_quantized
        return torch.empty(0, dtype=tree.dtype) if plain else tree
    if id(tree) in seen:  # a container met again (shared, or holding itself) stays one object
        return seen[id(tree)]
    if type(tree) in (dict, OrderedDict):
        out = seen[id(tree)] = type(tree)()
        out.update((key, _skeleton(value, seen)) for key, value in tree.items())
        return out
    if type(tree) is list:
        out = seen[id(tree)] = []
        out.extend(_skeleton(value, seen) for value in tree)
        return out
    if type(tree) is tuple:
        return tuple(_skeleton(value, seen) for value in tree)
    return tree


def load_untrusted(source: str | Path | IO[bytes]) -> Any:
    """``torch.load`` of a file or buffer that someone else may have written, on the CPU.

    ``weights_only=True`` refuses a pickle that would run code instead of
    executing it. On a crafted file torch also prints a warning about its pickle
    protocol to stderr; that warning is silenced here, so that the caller's
    one-line error naming the file is all a user sees.
    """
    import torch

    _refuse_compressed_records(source)
    with warnings.catch_warnings():
        # its pickle protocol, sparse invariants, typed storages: torch's words on a crafted file, not the user's
        warnings.filterwarnings("ignore", category=UserWarning)
        try:
            loaded = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise pickle.UnpicklingError(_refusal(str(exc))) from None
    for where, tensor in _tensors(loaded):
        if tensor.is_nested or tensor.layout != torch.strided or tensor.is_quantized or tensor.device.type != "cpu":
            kind = ("nested" if tensor.is_nested else "quantized" if tensor.is_quantized
                    else f"{tensor.device.type}" if tensor.device.type != "cpu" else str(tensor.layout).split(".")[-1])
            raise ValueError(f"it holds a {kind} tensor (at {where!r}), which no file of weights written here holds")
    return loaded


def _tensors(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every tensor in a loaded tree (nested dicts, lists and tuples) with its key path (``'head.weight'``). The walk
    keeps its own stack and visits each container once: a crafted file may nest deeper than Python recurses, or
    hold a list that contains itself."""
    import torch

    stack: list[tuple[str, Any]] = [("", tree)]
    seen: set[int] = set()
    while stack:
        where, node = stack.pop()
        if isinstance(node, torch.Tensor):
            yield where or "(the state itself)", node
            continue
        if not isinstance(node, (dict, list, tuple)) or id(node) in seen:
            continue
        seen.add(id(node))
        items = list(node.items() if isinstance(node, dict) else enumerate(node))
        stack.extend((f"{where}.{key}" if where else str(key), value) for key, value in reversed(items))


def _refusal(text: str) -> str:
    """What torch's weights-only refusal says of the file, without its advice: a page of text, in terminal colours,
    that suggests loading the file with ``weights_only=False`` or allowing the very global (``exec``) it refused,
    neither of which anyone should do with a file from elsewhere."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1]
    else:  # its advice, then what it refused, then a link: paragraphs apart
        detail = " ".join(part for part in text.split("\n\n")
                          if not part.startswith(("Weights only load failed", "Check the documentation")))
    detail = " ".join(detail.split())
    detail = detail.split(". Please use", 1)[0].split(" Check the documentation", 1)[0].rstrip(".")
    return NOT_WEIGHTS + (f": {detail[:160]})" if detail else ")")


NOT_WEIGHTS = "not a file of weights alone (a weights-only load refuses it"


def nonfinite_entry(tree: Any, *, infinite: bool = True) -> str | None:
    """Where a loaded state (nested dicts, lists and tuples of tensors and plain values) holds NaN, or with
    ``infinite`` an infinite value too: its key path, such as ``'head.weight'``, or None.

    A trained state never holds NaN (training stops at a non-finite loss), so a file that does is corrupt or
    crafted; an infinity may be a valid mask, hence the option. A tensor without values to look at (a meta or
    nested one, which :func:`load_untrusted` refuses) counts as one that holds NaN.
    """
    import torch

    for where, node in _tensors(tree):
        if node.is_nested or node.layout != torch.strided or node.device.type == "meta":
            return where
        if node.is_floating_point() or node.is_complex():
            bad = torch.isnan(node)
            if infinite:
                bad = bad | torch.isinf(node)
            if bool(bad.any()):
                return where
    return None


def _refuse_compressed_records(source: str | Path | IO[bytes]) -> None:
    """torch.save stores its zip records uncompressed, but torch.load also inflates compressed ones: a small
    crafted file could unpack to gigabytes. Refused here, so that memory stays bounded by the file's size."""
    start = source.tell() if hasattr(source, "tell") else None
    try:
        with zipfile.ZipFile(source) as archive:  # type: ignore[arg-type]
            packed = [i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
    except zipfile.BadZipFile:  # torch's legacy format, or not a torch file at all: torch.load says which
        packed = []
    finally:
        if start is not None:
            source.seek(start)  # type: ignore[union-attr]
    if packed:
        raise ValueError(f"compressed record {packed[0]!r}, which torch.save never writes (a zip bomb?)")


def load_checkpoint(path: Path, *, kind: str, name: str, config_digest: str | None) -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint`, refusing anything else.

    It is read with :func:`load_untrusted`: a pickle that would run code is
    refused, not executed.
    """

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} " + ("is not a regular file" if path.exists() else "does not exist"))
    try:
        payload = load_untrusted(path)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely: "
                              f"{first_line(exc) or type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an anytime-bench checkpoint of format {CHECKPOINT_FORMAT}")
    if payload.get("kind") != kind or payload.get("name") != name:
        raise CheckpointError(
            f"checkpoint {path} holds {payload.get('kind')} {payload.get('name')!r}, expected {kind} {name!r}"
        )
    if config_digest is not None and payload.get("config_digest") != config_digest:
        raise CheckpointError(
            f"checkpoint {path} was trained with another config (digest {payload.get('config_digest')}, "
            f"expected {config_digest})"
        )
    if not isinstance(payload.get("state"), dict) or not isinstance(payload.get("extra", {}), dict):
        raise CheckpointError(f"checkpoint {path} holds no state dict")
    nan = nonfinite_entry(payload["state"], infinite=False)
    if nan is not None:
        raise CheckpointError(f"checkpoint {path} holds NaN values (in {nan!r})")
    return payload
