"""Checking a component class against :data:`anytime_bench.contract.interfaces.CONTRACT` when plugins load.

What can be seen without building the component is checked here: class
attributes, the presence and call signatures of methods, the constructor's
signature and the ``Config`` dataclass, whose defaults are built and validated
as a run that sets no option builds them. Values that exist only once a
component is built (``code_length``) are checked by
:mod:`anytime_bench.contract.components`; behaviour is checked by
:mod:`anytime_bench.testing`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from typing import Any

from anytime_bench.contract.interfaces import CONTRACT, DEFAULT_SAMPLING_OPTIONS, SAMPLING_OPTIONS
from anytime_bench.contract.schema import flag_of, from_dict, is_local, to_dict
from anytime_bench.errors import ComponentError, ConfigError, first_line, short

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
"""Component names appear in file names of run folders: lower-case letters, digits, '.', '_' and '-' only.
The one definition: check with :func:`is_component_name` (``\\Z``, not ``$``, which also matches before a final
newline)."""


def is_component_name(name: Any) -> bool:
    """Whether ``name`` is a valid component name: a string matching :data:`NAME_PATTERN` whole."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


_CONSTRUCTOR_ARGS: dict[str, tuple[list[str], list[str]]] = {
    "dataset": (["config", "data_root"], []),
    "encoder": (["config", "data_shape"], []),
    "prior": (["config", "vocab_size", "seq_len"], []),
    "metric": (["config"], []),
    "modality": (["config"], []),
}

_CLASS_VALUES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "ordered": (bool, "True or False"),
    "higher_is_better": (bool, "True or False"),
    "kv_cache": (bool, "True or False"),
    "uses_cache_dir": (bool, "True or False"),
    "per_budget": (bool, "True or False"),
    "defaults": (dict, "a dict of config tables"),
    "preview_size": (tuple, "a (width, height) tuple of inches"),
    "sampling_options": (tuple, "a tuple of sampling setting names"),
}


def parse_call(call: str) -> tuple[str, list[str], list[str]]:
    """``"stream(n, length, *, generator, top_k)"`` -> ``("stream", ["n", "length"], ["generator", "top_k"])``."""
    name, _, rest = call.partition("(")
    positional: list[str] = []
    keywords: list[str] = []
    target = positional
    for part in (p.strip() for p in rest.rstrip(")").split(",")):
        if not part:
            continue
        if part == "*":
            target = keywords
            continue
        target.append(part)
    return name, positional, keywords


def accepts(fn: Any, positional: list[str], keywords: list[str], bound_self: bool) -> bool:
    """Whether ``fn`` can be called with these positional and keyword arguments (``self`` included if unbound)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # builtins without a signature: nothing to check
    args = ([object()] if bound_self else []) + [object()] * len(positional)
    try:
        signature.bind(*args, **{k: object() for k in keywords})
    except TypeError:
        return False
    return True


def _method(cls: type, member: str) -> tuple[Any, bool] | None:
    """The function behind ``cls.member`` and whether calling it through an instance passes ``self``."""
    try:
        raw = inspect.getattr_static(cls, member)
    except AttributeError:
        return None
    if isinstance(raw, staticmethod):
        return raw.__func__, False
    if isinstance(raw, classmethod):
        return getattr(cls, member), False
    if inspect.isfunction(raw):
        return raw, True
    value = getattr(cls, member)
    return (value, False) if callable(value) else None


METRIC_INPUTS = ("generated", "reconstructed", "likelihood")
"""What a metric may require (``Metric.requires``)."""

MAY_BE_NONE = ("floor",)
"""Optional members that a class may set to None, meaning absent: how a subclass gives up one it inherits (``rfid``,
a metric of reconstructions, gives up the floor of ``fid``); the core reads them as absent too."""


def check_class(kind: str, cls: Any) -> list[str]:
    """Every way ``cls`` breaks the contract of ``kind``, as phrases naming the member; empty when it conforms.

    A class whose members make the check itself raise (a property that fails, a value of a type nothing expects)
    breaks the contract too: it is set aside like any other, and stops no other plugin."""
    try:
        return _class_problems(kind, cls)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit from a plugin's property too
        return [f"checking it raised {type(exc).__name__}: {first_line(exc, 160)}"]


def _class_problems(kind: str, cls: Any) -> list[str]:
    if not isinstance(cls, type):
        return [f"is {cls!r}, not a class"]
    problems: list[str] = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        problems.append("member 'name' must be a non-empty string class attribute")
    elif not is_component_name(name):
        problems.append(f"member 'name' {name!r} must be 1-64 lower-case letters, digits, '.', '_' or '-' "
                        "(it appears in file names)")
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        problems.append("member 'Config' must be a dataclass")
    else:
        no_default = [f.name for f in dataclasses.fields(config) if f.init and f.default is dataclasses.MISSING
                      and f.default_factory is dataclasses.MISSING]
        if no_default:
            problems.append(f"member 'Config' needs a default for every option (no default: {', '.join(no_default)})")
        malformed = [f.name for f in dataclasses.fields(config)
                     if "flag" in (f.metadata or {}) and flag_of(f) is None]
        if malformed:
            problems.append(f"member 'Config' declares a flag for {', '.join(malformed)} that is not '--' and a name "
                            "(letters, digits, '-' and '_')")
        unsettable = _unflaggable(config)
        if unsettable:
            problems.append(f"member 'Config' declares a flag for {', '.join(unsettable)}, whose type no flag sets "
                            "(a flag reads one number, flag value, choice or text: set lists in a config or --set)")
        unflagged = [f.name for f in dataclasses.fields(config) if is_local(f) and flag_of(f) is None]
        if unflagged:
            problems.append(f"member 'Config' marks {', '.join(unflagged)} local without a flag to give it again "
                            "when a run is reopened")
        # A config takes only finite numbers: a default of inf could not be written in a config file and read back.
        endless = [f.name for f in dataclasses.fields(config) if isinstance(f.default, float)
                   and not math.isfinite(f.default)]
        if endless:
            problems.append(f"member 'Config' gives {', '.join(endless)} a default that is not a finite number (a "
                            "config cannot set it back: use a finite bound, or 0 and say that 0 means none)")
        if not (no_default or endless):
            problems += _check_defaults(config)
    for member, what, required, *_ in CONTRACT[kind]:
        if member in ("name", "Config"):
            continue
        if what == "instance":
            continue  # checked on the built component
        present = hasattr(cls, member) and not (member in MAY_BE_NONE and getattr(cls, member) is None)
        if not present:
            if required:
                problems.append(f"required member {member!r} is missing" + (
                    "" if what == "class" else f" (the core calls {what})"))
            continue
        if what == "class":
            problems += _check_value(kind, member, getattr(cls, member))
            continue
        found = _method(cls, member)
        if found is None:
            problems.append(f"member {member!r} must be a method (the core calls {what})")
            continue
        _, positional, keywords = parse_call(what)
        if not accepts(found[0], positional, keywords, found[1]):
            problems.append(f"member {member!r} does not accept the core's call {what}")
    if kind == "prior" and getattr(cls, "kv_cache", False) is True:
        found = _method(cls, "stream")
        if found is not None and not accepts(found[0], ["n", "length"], ["generator", "temperature", "top_k",
                                                                         "use_cache"], found[1]):
            problems.append("member 'stream' must accept use_cache=False when kv_cache is True")
    if kind == "prior":
        problems += _check_sampling_options(cls)
    positional, keywords = _CONSTRUCTOR_ARGS[kind]
    if kind == "dataset" and getattr(cls, "uses_cache_dir", False) is True:
        keywords = ["cache_dir"]
    if kind == "encoder" and getattr(cls, "per_budget", False) is True:
        keywords = ["tokens"]
    if not accepts(cls, positional, keywords, bound_self=False):
        call = f"cls({', '.join(positional + [k + '=...' for k in keywords])})"
        problems.append(f"its constructor does not accept the core's call {call}")
    return problems


def _check_defaults(config: type) -> list[str]:
    """A ``Config`` with no option set, as a run builds it: each default read back as its type hint reads a config
    value, then ``validate()``; and ``RENAMED`` and ``REMOVED``, which the core reads when a config or a record names
    an old option. A default that fails here would fail every run, blaming the user's config for an option it never
    set."""
    problems = []
    fields = {f.name for f in dataclasses.fields(config) if f.init}
    renamed = getattr(config, "RENAMED", None)
    if renamed is not None and not (isinstance(renamed, dict) and all(
            isinstance(k, str) and isinstance(v, str) and v.split() for k, v in renamed.items())):
        problems.append("member 'Config.RENAMED' must be a dict of old option names to the options that replace them")
    elif renamed:
        still = [k for k in renamed if k in fields]
        nowhere = [(k, v) for k, v in renamed.items() if v.split()[0] not in fields]
        if still:
            problems.append(f"member 'Config.RENAMED' maps {still[0][:40]!r}, which is still an option of the Config "
                            "(an option renamed is no longer one)")
        elif nowhere:
            problems.append(f"member 'Config.RENAMED' maps {nowhere[0][0][:40]!r} to {nowhere[0][1][:40]!r}, which "
                            "is not an option of the Config")
    removed = getattr(config, "REMOVED", None)
    if removed is not None and not (isinstance(removed, dict) and all(isinstance(k, str) for k in removed)):
        problems.append("member 'Config.REMOVED' must be a dict of removed option names to the values the component "
                        "now runs at")
    elif removed:
        wrong = [k for k in removed if k in fields or k in (renamed if isinstance(renamed, dict) else {})]
        if wrong:
            problems.append(f"member 'Config.REMOVED' names {wrong[0][:40]!r}, which is an option or renamed")
    try:
        defaults = {name: value for name, value in to_dict(config()).items() if name in fields}
        from_dict(config, defaults, "Config")
    except ConfigError as exc:
        problems.append(f"member 'Config' fails with its own defaults: {first_line(exc, 160)}")
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the plugin's __post_init__ or validate(): SystemExit too
        cause = exc.__cause__ if isinstance(exc, ComponentError) and exc.__cause__ is not None else exc
        problems.append(f"member 'Config' fails with its own defaults: {type(cause).__name__}: "
                        f"{first_line(cause, 160)}")
    return problems


def _unflaggable(config: type) -> list[str]:
    """The options with a flag whose type a command line's one value cannot give (a list, a table)."""
    try:
        hints = typing.get_type_hints(config)
    except Exception:  # a hint that does not resolve: the option is read as text, as before
        return []
    out = []
    for f in dataclasses.fields(config):
        if flag_of(f) is None:
            continue
        tp = hints.get(f.name, str)
        args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in (
            typing.Union, types.UnionType) else [tp]
        if any(typing.get_origin(a) in (list, tuple, dict) or a in (list, tuple, dict)
               or dataclasses.is_dataclass(a) for a in args):
            out.append(f.name)
    return out


def sampling_options_of(cls: type) -> tuple[str, ...]:
    """The sampling settings a prior class declares, or the default ones."""
    declared = getattr(cls, "sampling_options", None)
    return tuple(declared) if isinstance(declared, tuple) else DEFAULT_SAMPLING_OPTIONS


def _check_sampling_options(cls: type) -> list[str]:
    """Declared sampling settings are known ones, and ``stream`` and ``sample`` (where present) accept each."""
    declared = getattr(cls, "sampling_options", None)
    if not isinstance(declared, tuple):
        return []  # absent: the default; another type is reported by _check_value
    if not all(isinstance(o, str) for o in declared):
        return ["member 'sampling_options' must be a tuple of sampling setting names (strings)"]
    unknown = [o for o in declared if o not in SAMPLING_OPTIONS]
    if unknown:
        return [f"member 'sampling_options' names {str(unknown[0])[:40]!r}, not one of {', '.join(SAMPLING_OPTIONS)}"]
    problems = []
    for member in ("stream", "sample"):
        found = _method(cls, member)
        if found is not None and not accepts(found[0], ["n", "length"], ["generator", *declared], found[1]):
            problems.append(f"member {member!r} must accept the declared sampling options {', '.join(declared)}")
    return problems


def _check_value(kind: str, member: str, value: Any) -> list[str]:
    if member == "requires":
        if value not in METRIC_INPUTS:
            return [f"member 'requires' must be one of {', '.join(map(repr, METRIC_INPUTS))}, got {value!r}"]
        return []
    expected = _CLASS_VALUES.get(member)
    if expected and not isinstance(value, expected[0]):
        return [f"member {member!r} must be {expected[1]}, got {short(value)}"]
    if member == "preview_size" and not (len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in value)):
        # the figures' size in inches: a shape that fails here would fail the run's last stage, after all its work
        return [f"member 'preview_size' must be a (width, height) tuple of two positive numbers, got {short(value)}"]
    return []
