"""Validation of plain dicts (from TOML or the CLI) against dataclasses.

Configs are checked before any work starts, so that a typo in a key fails in a
second, not after an hour of training.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import dataclasses
import inspect
import math
import re
import textwrap
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from anytime_bench.errors import ComponentError, ConfigError, first_line, short

_RECORDED = contextvars.ContextVar("recorded", default=False)


@contextlib.contextmanager
def recorded_values():
    """Coerce the config a run folder recorded: what a run was made with reopens as it was. Earlier versions took
    inf and nan for a number option, and a run made with one must still open; everything else is checked."""
    token = _RECORDED.set(True)
    try:
        yield
    finally:
        _RECORDED.reset(token)


def reading_record() -> bool:
    """Whether the config being built is one a run folder recorded (:func:`recorded_values`)."""
    return _RECORDED.get()


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        for option in get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {type_name(tp)}, got {short(value)}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{where}: expected one of {', '.join(repr(a) for a in get_args(tp))}, got {short(value)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {short(value)}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {short(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            # A config is TOML, whose integers are 64-bit: a larger one could be neither saved nor read back.
            if not -2**63 <= value < 2**63:
                raise ConfigError(f"{where}: {short(value)} is outside TOML's 64-bit integer range")
            return value
        raise ConfigError(f"{where}: expected an integer, got {short(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer of 400 digits: no float holds it
                raise ConfigError(f"{where}: {short(value)} is too large for a number") from None
            # No option means anything by inf or nan, and a range check alone lets nan through (every comparison
            # with it is false): an infinite learning rate would fail only at the first step, the run folder made.
            if not math.isfinite(number) and not _RECORDED.get():
                raise ConfigError(f"{where}: expected a finite number, got {short(value)}")
            return number
        raise ConfigError(f"{where}: expected a number, got {short(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {short(value)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {short(value)}")
        return from_dict(tp, value, where)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {type_name(tp)}, got {short(value)}")


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types raise ConfigError.

    ``where`` names the table in messages (``encoder.ovqvae``). After
    construction, a ``validate()`` method on the dataclass, if present, checks
    ranges and raises ConfigError itself.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {short(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)
    renamed = getattr(cls, "RENAMED", None) or {}
    removed = getattr(cls, "REMOVED", None) or {}
    for key in unknown:
        if key in renamed:
            raise ConfigError(f"{where}.{key} was renamed: use {where}.{renamed[key]}")
        if key in removed:
            raise ConfigError(f"{where}.{key} was removed: it runs as {key} = {short(removed[key])} now; leave it out")
    if unknown:
        known = ", ".join(sorted(fields)) or "none"
        raise ConfigError(f"{where}: unknown key {short(unknown[0])} (known keys: {known})")
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        if callable(validate):
            validate_where(obj, where)
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a plugin's __post_init__ or validate() may refuse a value only with ConfigError
        raise ComponentError(f"{where}: its Config raised {type(exc).__name__}: {first_line(exc, 200)} (a bug in the "
                             f"component whose options {where} holds; `anytime-bench plugins` names its plugin)"
                             ) from exc
    return obj


def validate_where(obj: Any, where: str) -> None:
    """Run ``obj.validate()``, prefixing its ConfigError messages with ``where``."""
    try:
        obj.validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON/TOML-friendly dict of a dataclass instance (tuples become lists)."""
    def convert(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: convert(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return v
    return convert(obj)


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (and of its bases), or its ``metadata["doc"]``."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:] + [None], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    for f in dataclasses.fields(cls):
        if f.metadata and isinstance(f.metadata.get("doc"), str):
            docs[f.name] = f.metadata["doc"]
    return docs


def type_name(tp: Any) -> str:
    """A readable name of a field's type (``int``, ``list[int]``, ``'a' or 'b'``)."""
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list[{type_name(args[0])}]" if args else "list"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


FLAG_PATTERN = re.compile(r"--[A-Za-z0-9][A-Za-z0-9_-]*")
"""The form of a flag a component option may declare: ``--`` and a name of letters, digits, ``-`` and ``_`` (``-x``
would be a short option, and ``--`` alone ends a command line's options)."""


def flag_of(f: dataclasses.Field) -> str | None:
    """The command-line flag a component option declares (``metadata={"flag": "--x"}``), or None (also for one not
    of :data:`FLAG_PATTERN`'s form, which the contract check refuses)."""
    flag = (f.metadata or {}).get("flag")
    return flag if isinstance(flag, str) and FLAG_PATTERN.fullmatch(flag) else None


def is_local(f: dataclasses.Field) -> bool:
    """A component option that says where something is on this machine (``metadata={"local": True}``)."""
    return bool((f.metadata or {}).get("local"))


def local_options(cls: type) -> set[str]:
    """The names of a ``Config`` dataclass's machine-local options (:func:`is_local`)."""
    return {f.name for f in dataclasses.fields(cls) if is_local(f)}


def options_of(cls: type) -> list[dict[str, Any]]:
    """Every option of a ``Config`` dataclass: name, type, default and documentation."""
    hints = get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out.append({"name": f.name, "type": type_name(hints.get(f.name, f.type)), "default": to_dict(default)
                    if dataclasses.is_dataclass(default) else default, "doc": docs.get(f.name, ""),
                    "flag": (f.metadata or {}).get("flag", ""), "local": is_local(f)})
    return out


def require(condition: bool, key: str, message: str) -> None:
    """Range check for ``validate()`` methods: ``require(self.k >= 1, "k", "must be >= 1")``."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


__all__ = ["from_dict", "to_dict", "require", "validate_where", "options_of", "field_docs", "short", "is_local",
           "local_options"]
