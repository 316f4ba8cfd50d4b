"""Discovery of plugins through the ``anytime_bench`` entry-point group, and the component registry.

Every registered class is checked against the contract of its kind
(:mod:`anytime_bench.contract`) before anything else runs: a plugin that breaks
it stops the program with one line naming the plugin, its distribution and the
member.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .contract import check_class
from .errors import PluginError

ENTRY_POINT_GROUP = "anytime_bench"

#: kind -> the hook that contributes it
KINDS: dict[str, str] = {
    "dataset": "register_datasets",
    "encoder": "register_encoders",
    "prior": "register_priors",
    "metric": "register_metrics",
    "modality": "register_modalities",
}


@dataclass(frozen=True)
class Origin:
    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} (distribution {self.distribution} {self.version})"


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    cls: type
    origin: Origin

    @property
    def description(self) -> str:
        # The summary is the docstring's first paragraph: a summary wrapped over two lines is shown whole.
        summary = inspect.cleandoc(self.cls.__doc__ or "").split("\n\n", 1)[0]
        return " ".join(summary.split())

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "plugin": self.origin.plugin,
            "distribution": self.origin.distribution,
            "version": self.origin.version,
        }


class Plugins:
    """Loaded plugins and the components they contribute, by kind and name."""

    def __init__(self, manager: pluggy.PluginManager, origins: dict[str, Origin]):
        self.manager = manager
        self.origins = origins
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        for kind, hook_name in KINDS.items():
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                origin = origins.get(impl.plugin_name) or Origin(impl.plugin_name, "unknown", "unknown")
                for cls in self._call(impl, origin, hook_name):
                    self._add(kind, cls, origin)

    @staticmethod
    def _call(impl: Any, origin: Origin, hook_name: str) -> list[type]:
        try:
            result = impl.function()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin must not hide behind a traceback, nor exit quietly
            raise PluginError(f"{origin} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc
        if result is None:
            return []
        if not isinstance(result, (list, tuple)):
            raise PluginError(f"{origin}: {hook_name} must return a list of classes, got {type(result).__name__}")
        return list(result)

    def _add(self, kind: str, cls: Any, origin: Origin) -> None:
        name = getattr(cls, "name", None)
        label = f"{kind} {name!r}" if isinstance(name, str) and name else f"{kind} {getattr(cls, '__name__', cls)!r}"
        problems = check_class(kind, cls)
        if problems:
            raise PluginError(f"{origin}: {label} breaks the {kind} contract: {'; '.join(problems)}")
        existing = self._components[kind].get(name)
        if existing is not None:
            raise PluginError(f"{kind} {name!r} is registered twice: by {existing.origin} and by {origin}")
        self._components[kind][name] = Component(kind, name, cls, origin)

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._components[kind][name]
        except KeyError:
            available = ", ".join(sorted(self._components[kind])) or "none installed"
            raise PluginError(f"unknown {kind} {name!r} (available: {available})") from None

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def all(self) -> list[Component]:
        return [c for kind in KINDS for c in sorted(self._components[kind].values(), key=lambda c: c.name)]

    def add_commands(self, cli: Any) -> None:
        for impl in self.manager.hook.register_commands.get_hookimpls():
            origin = self.origins.get(impl.plugin_name) or Origin(impl.plugin_name, "unknown", "unknown")
            try:
                impl.function(cli=cli)
            except Exception as exc:
                raise PluginError(f"{origin} failed in register_commands: {type(exc).__name__}: {exc}") from exc


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def load_plugins(extra: Iterable[tuple[str, Any]] = ()) -> Plugins:
    """Import every ``anytime_bench`` entry point and collect its components.

    ``extra`` registers in-process plugins as ``(name, module_or_object)``,
    for tests and notebooks; they go through the same checks.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    origins: dict[str, Origin] = {}
    seen: set[tuple[str, str]] = set()
    names: dict[int, tuple[str, str]] = {}  # each read parses the whole METADATA file, long description included
    for ep in _entry_points():
        dist = ep.dist
        if id(dist) not in names:
            names[id(dist)] = (dist.metadata["Name"], dist.version) if dist is not None else ("unknown", "unknown")
        dist_name, dist_version = names[id(dist)]
        # an editable and a regular install of one distribution can list the same entry point twice
        if (ep.name, ep.value) in seen:
            continue
        seen.add((ep.name, ep.value))
        origin = Origin(ep.name, dist_name, dist_version)
        if ep.name in origins:
            raise PluginError(f"two plugins are named {ep.name!r}: {origins[ep.name]} and {origin}")
        try:
            plugin = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit at import time too: a plugin may not end the program
            raise PluginError(f"{origin} failed to import ({ep.value}): {type(exc).__name__}: {exc}") from exc
        _register(manager, plugin, origin)
        origins[ep.name] = origin
    for name, plugin in extra:
        origin = Origin(name, "(in-process)", "-")
        if name in origins:
            raise PluginError(f"two plugins are named {name!r}: {origins[name]} and {origin}")
        _register(manager, plugin, origin)
        origins[name] = origin
    return Plugins(manager, origins)


def _register(manager: pluggy.PluginManager, plugin: Any, origin: Origin) -> None:
    try:
        manager.register(plugin, name=origin.plugin)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise PluginError(f"{origin} could not be registered: {exc}") from exc
