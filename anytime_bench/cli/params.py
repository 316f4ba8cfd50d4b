"""Parameter types of the command line: lists, ranges, seeds and ``--set`` assignments."""

from __future__ import annotations

import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import click

from anytime_bench.errors import first_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

MAX_ITEMS = 1000


def _fraction(text: str) -> float:
    # float() where it can: Fraction("1e999999999") computes the power of ten exactly, for hours
    value = float(Fraction(text)) if "/" in text else float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


ITEM_TYPES: dict[str, tuple[Callable[[str], Any], str]] = {
    "str": (str, "a name"),
    "int": (int, "an integer"),
    "number": (_fraction, "a number or fraction (1/8)"),
}


class FiniteRange(click.FloatRange):
    """click's FloatRange, and not NaN: every comparison with NaN is false, so the range alone lets it through."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


class ListParam(click.ParamType):
    """A comma-separated list (``0.25,0.5,1`` or ``1/8,1/4``); integer lists also take ranges ``a..b``."""

    def __init__(self, item: str = "str", ranges: bool = False):
        self.item, self.ranges = item, ranges
        self.name = f"list of {item}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[Any]:
        if isinstance(value, list):
            return value
        parse, what = ITEM_TYPES[self.item]
        out: list[Any] = []
        for part in (p.strip() for p in str(value).split(",")):
            if not part:
                continue
            try:
                if self.ranges and ".." in part:
                    low, high = (int(x) for x in part.split("..", 1))
                    if high < low:
                        raise ValueError(part)
                    if high - low >= MAX_ITEMS:
                        self.fail(f"{part[:40]!r} is a range of more than {MAX_ITEMS} items", param, ctx)
                    out += list(range(low, high + 1))
                else:
                    out.append(parse(part))
            except (ValueError, ZeroDivisionError, OverflowError):
                self.fail(f"{part[:40]!r} is not {what}" + (" or a range a..b" if self.ranges else ""), param, ctx)
            if len(out) > MAX_ITEMS:
                self.fail(f"more than {MAX_ITEMS} items", param, ctx)
        if not out:
            self.fail(f"expected a comma-separated list, got {str(value)[:40]!r}", param, ctx)
        return out


class SeedsParam(click.ParamType):
    """Seeds as a count (``3``: seed, seed+1, seed+2) or an explicit list (``0,5,9`` or ``0..4``)."""

    name = "count or list of seeds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | list[int]:
        if isinstance(value, (int, list)):
            return value
        text = str(value).strip()
        if text.isascii() and text.isdigit() and len(text) < 10:  # not '²', a digit that int() refuses
            return int(text)
        return ListParam("int", ranges=True).convert(text, param, ctx)


class PathParam(click.Path):
    """A path on this machine, refused if it holds a NUL byte or another control character (a typo, or a trap)."""

    def __init__(self, path_type: type | None = Path):
        super().__init__(path_type=path_type)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            self.fail(f"{text[:40]!r} holds control characters, which no path given here may hold (rename it)", param, ctx)
        if len(text) > 4096:
            self.fail("is longer than any path can be", param, ctx)
        return super().convert(value, param, ctx)


class Assignment(click.ParamType):
    """``kind.name.key=value`` for ``--set``: the value is read as TOML (``100``, ``[1, 2]``, ``"text"``), or taken
    as a plain string when it is not TOML (a path, say)."""

    name = "kind.name.key=value"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[list[str], Any]:
        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        parts = key.strip().split(".")
        if len(parts) > 3:  # a name or label with dots (model.rvq-v1.2.top_p): the key is last, the kind first
            parts = [parts[0], ".".join(parts[1:-1]), parts[-1]]
        if not sep or len(parts) not in (2, 3) or not all(parts):
            self.fail(f"{str(value)[:60]!r} is not run.key=value or kind.name.key=value", param, ctx)
        try:
            parsed = tomllib.loads(f"v = {text}")["v"]
        except (tomllib.TOMLDecodeError, RecursionError):
            parsed = text
        except ValueError as exc:  # an integer of more digits than Python converts
            self.fail(f"{key.strip()[:60]}: a number too long to read ({first_line(exc, 60)})", param, ctx)
        return parts, parsed


def assignments_to_config(assignments: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """``--set`` assignments as a partial config (``{"encoder": {"ovqvae": {"steps": 100}}}``)."""
    out: dict[str, Any] = {}
    for parts, value in assignments:
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise click.BadParameter(f"--set {'.'.join(parts)} conflicts with another --set")
        node[parts[-1]] = value
    return out
