"""Config files: a TOML file read within limits, and its ``extends`` chain merged.

The run reads the configs a user gives it this way, and the index of run folders the project's own; nothing here
reads a run folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from anytime_bench.errors import ConfigError, DataError, first_line, short
from anytime_bench.files.datafiles import read_regular

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

MAX_CONFIG_BYTES = 1_000_000
MAX_DEPTH = 12
"""Config tables nest at most this deep; deeper ones are refused before parsing can recurse."""
MAX_EXTENDS = 8
"""Config files one config may stand on through ``extends``, itself included: a longer chain is a mistake."""


def _depth(value: Any, limit: int) -> int:
    if limit < 0:
        return 0
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's tables; every way it can be unreadable is a one-line :class:`ConfigError`."""
    try:  # a regular file only: a named pipe given as the config would wait for a writer forever
        raw = read_regular(Path(path), MAX_CONFIG_BYTES, "config file")
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    try:
        # utf-8-sig: a byte-order mark, which some Windows editors write first, is not part of the text
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    # Brackets nested deeper than any config needs would make the parser recurse: refuse before parsing.
    if _bracket_depth(text) > MAX_DEPTH:
        raise ConfigError(f"config file {path} nests arrays or tables deeper than {MAX_DEPTH} levels")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests values too deeply") from None
    except ValueError as exc:  # what the parser lets through: an integer of more digits than Python converts
        raise ConfigError(f"config file {path} holds a number too long to read ({first_line(exc, 60)})") from None
    if _depth(data, MAX_DEPTH + 1) > MAX_DEPTH:
        raise ConfigError(f"config file {path} nests tables deeper than {MAX_DEPTH} levels")
    return data


def read_config(path: Path) -> dict[str, Any]:
    """A config file's tables over those of the file its top-level ``extends`` names, if any: :func:`read_layers`,
    then :func:`merge_layers`."""
    return merge_layers(read_layers(path))


def merge_layers(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`read_layers`' tables as one config: each file's over its base's, key by key (:func:`merge`); a key's
    value, an array such as ``budgets`` or the ``[[model]]`` entries included, replaces the base's."""
    out: dict[str, Any] = {}
    for layer in reversed(layers):
        out = merge(out, layer)
    return entries_over_encoders(out)


def entries_over_encoders(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` without ``run.encoders = []`` where ``[[model]]`` entries list the models: how a config that
    extends one listing ``run.encoders`` lists its models as entries instead (a base's list cannot be deleted by
    merging, only replaced)."""
    run = raw.get("run")
    if raw.get("model") is not None and isinstance(run, dict) and run.get("encoders") == []:
        return {**raw, "run": {k: v for k, v in run.items() if k != "encoders"}}
    return raw


def read_layers(path: Path) -> list[dict[str, Any]]:
    """The tables of a config file, then those of the file its top-level ``extends`` names, and so on.

    ``extends`` is a path relative to the file that names it, and that file may extend another (at most
    :data:`MAX_EXTENDS` files, no loops). Only config files given by the user are read this way: a run folder
    records the merged config, so nothing read from a run folder names a file.
    """
    layers: list[dict[str, Any]] = []
    seen: list[str] = []
    current, named_by = Path(path), None
    while True:
        try:
            data = read_toml(current)  # a missing file, a folder, a pipe or a link loop: its own one line
        except ConfigError as exc:
            if named_by is None:
                raise
            raise ConfigError(f"{exc} (the base that {named_by} extends)") from None
        here = os.path.realpath(current)  # never raises, even on a loop: read_toml has refused those
        if here in seen:
            raise ConfigError(f"config file {named_by}: extends {current}, which is already in its chain (a loop)")
        if len(seen) == MAX_EXTENDS:
            raise ConfigError(f"config file {path}: extends a chain of more than {MAX_EXTENDS} files")
        seen.append(here)
        base = data.pop("extends", None)
        layers.append(data)
        if base is None:
            break
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"config file {current}: extends must be the path of a config file (relative to "
                              f"this one), got {short(base)}")
        current, named_by = current.parent / base, current
    return layers


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    in_string: str | None = None
    escaped = comment = False
    for ch in text:
        if comment:
            comment = ch != "\n"
            continue
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\" and in_string == '"':
                escaped = True
            elif ch == in_string:
                in_string = None
            continue
        if ch == "#":
            comment = True
        elif ch in "\"'":
            in_string = ch
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "\n":
            in_string = None
    return deepest


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """base with override laid over it, table by table (nested dicts merge; anything else is replaced)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
