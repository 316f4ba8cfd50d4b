"""Discovery of plugins through the ``anytime_bench`` entry-point group, and the component registry.

A broken plugin fails alone: it is *quarantined*, not fatal, so that one stale
plugin among ten stops neither the others nor ``anytime-bench plugins``, the
command that diagnoses it. What is quarantined, and why at that granularity:

* a whole plugin (entry point) that cannot be imported or registered, whose
  hook raises (``SystemExit`` included, ``register_commands`` too) or returns
  something other than a list: code that failed once is not trusted in part,
  so none of its components or commands is used;
* a component class that breaks its kind's contract
  (:mod:`anytime_bench.contract.checks`, checked before anything runs): that class
  alone; its plugin's other components were checked on their own and stay
  usable;
* a component whose option declares a command-line flag that the core's
  commands take, or that another component declares for an option of another
  type (:meth:`Plugins.refuse_flags`): the flag would change what every
  command reads, for runs that never select the component;
* every plugin that shares its entry-point name with another, and every
  component that shares its kind and name with another, built-ins included:
  which one Python would find first depends on the order of installation, so
  keeping either would make a result depend on it; refusing both, with a line
  naming both, is the least surprising.

:attr:`Plugins.broken` lists what was quarantined (``anytime-bench plugins``
shows it, other commands print one warning line). Selecting a quarantined
component (:meth:`Plugins.get`, which every command and config goes through)
raises :class:`~anytime_bench.errors.BrokenPluginError` naming it, its plugin
and distribution and the reason, before any work.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import keyword
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, get_type_hints

import click
import pluggy

from anytime_bench.contract import hookspecs
from anytime_bench.contract.checks import check_class
from anytime_bench.contract.schema import flag_of
from anytime_bench.errors import AnytimeBenchError, BrokenPluginError, ComponentError, PluginError, first_line

ENTRY_POINT_GROUP = "anytime_bench"

#: kind -> the hook that contributes it
KINDS: dict[str, str] = {
    "dataset": "register_datasets",
    "encoder": "register_encoders",
    "prior": "register_priors",
    "metric": "register_metrics",
    "modality": "register_modalities",
}

_REASON_LIMIT = 200  # characters of an exception's message quoted in a reason


@dataclass(frozen=True)
class Origin:
    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} (distribution {self.distribution} {self.version})"


CORE_DISTRIBUTION = "anytime-bench"
"""The distribution of the core and its built-in plugins, as its entry points name it."""


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "plugin": self.origin.plugin,
            "distribution": self.origin.distribution,
            "version": self.origin.version,
            "broken": None,
        }


class StandIn:
    """What :meth:`Plugins.standing_in` puts in place of a component that cannot be loaded: its ``Config`` takes
    what a run recorded of it, and ``reason`` says why the component itself cannot be used."""

    name: str = ""
    reason: str = ""
    Config: type


STAND_IN_ORIGIN = Origin("(stand-in)", "(not loaded)", "-")
MAX_STAND_IN_OPTIONS = 256
"""Options a stand-in takes at most: a component's config has a few dozen; building a class of 200,000 took minutes."""


@dataclass(frozen=True)
class Broken:
    """A quarantined plugin (``kind`` and ``name`` None: the whole of it) or one of its components, and why."""

    origin: Origin
    reason: str
    kind: str | None = None
    name: str | None = None

    @property
    def subject(self) -> str:
        return str(self.origin) if self.kind is None else f"{self.kind} {self.name!r} of {self.origin}"

    def as_dict(self) -> dict[str, Any]:
        """A row of ``anytime-bench plugins --json``: a component's keys, ``broken`` holding the reason."""
        return {"kind": self.kind, "name": self.name, "description": "", "plugin": self.origin.plugin,
                "distribution": self.origin.distribution, "version": self.origin.version, "broken": self.reason}


class _Failure(Exception):
    """A plugin's hook failed; the message is the reason its plugin is quarantined."""


class Plugins:
    """Loaded plugins and the components they contribute, by kind and name; :attr:`broken` lists what was
    quarantined (see the module's docstring)."""

    def __init__(self, manager: pluggy.PluginManager, origins: dict[str, Origin], broken: Iterable[Broken] = ()):
        self.manager = manager
        self.origins = dict(origins)  # the plugins in use: a quarantined plugin's distribution is not recorded
        self.broken: list[Broken] = list(broken)
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._refused: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}  # why selecting a name fails
        contributed: list[tuple[str, Any, Origin]] = []
        for plugin_name, _ in manager.list_name_plugin():
            origin = self.origins.get(plugin_name) or Origin(plugin_name, "unknown", "unknown")
            classes, failure = self._collect(plugin_name)
            if failure is None:
                contributed += [(kind, cls, origin) for kind, cls in classes]
                continue
            self._quarantine(origin, failure)
            for kind, cls in classes:  # what its other hooks returned is refused with the reason, not as unknown
                name = getattr(cls, "name", None)
                if isinstance(name, str):
                    self._refused[kind].setdefault(name, self._skipped(kind, name, origin, failure))
        self._add_all(contributed)

    def _collect(self, plugin_name: str) -> tuple[list[tuple[str, Any]], str | None]:
        """Every class one plugin's hooks return, and why the first hook that failed fails the plugin (None)."""
        out: list[tuple[str, Any]] = []
        for kind, hook_name in KINDS.items():
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                if impl.plugin_name == plugin_name:
                    try:
                        out += [(kind, cls) for cls in self._call(impl, hook_name)]
                    except _Failure as exc:
                        return out, str(exc)
        return out, None

    @staticmethod
    def _call(impl: Any, hook_name: str) -> list[Any]:
        try:
            result = impl.function()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin must not hide behind a traceback, nor exit quietly
            raise _Failure(f"failed in {hook_name}: {type(exc).__name__}: {first_line(exc, _REASON_LIMIT)}") from exc
        if result is None:  # pluggy would drop it, and the plugin's components would be "unknown" with no reason
            raise _Failure(f"{hook_name} returned None, not a list of classes (a `return` missing? `return []` "
                           "contributes none)")
        if isinstance(result, type):
            name = getattr(result, "__name__", "?")[:60]
            raise _Failure(f"{hook_name} must return a list of classes, got the class {name} itself: return [{name}]")
        if not isinstance(result, (list, tuple)):
            raise _Failure(f"{hook_name} must return a list of classes, got {type(result).__name__}")
        return list(result)

    def _add_all(self, contributed: list[tuple[str, Any, Origin]]) -> None:
        owners: dict[tuple[str, str], list[Origin]] = {}
        for kind, cls, origin in contributed:
            name = getattr(cls, "name", None)
            if isinstance(name, str):
                owners.setdefault((kind, name), []).append(origin)
        for kind, cls, origin in contributed:
            name = getattr(cls, "name", None)
            label = name if isinstance(name, str) and name else str(getattr(cls, "__name__", repr(cls)))
            same = owners.get((kind, name), []) if isinstance(name, str) else []
            builtin = [o for o in same if o.distribution == CORE_DISTRIBUTION]
            if len(same) > 1 and len(builtin) == 1:
                # A built-in keeps its name: another package's component taking it must not stop every run that
                # uses the built-in (one broken plugin never stops what does not use it).
                if origin is not builtin[0]:
                    self.broken.append(Broken(origin, f"the name is the built-in {kind}'s ({builtin[0]}), so this "
                                                      f"one is not used: rename it in {origin.distribution}",
                                              kind, label))
                    continue
                same = [origin]
            if len(same) > 1:
                others = " and ".join(str(o) for o in same if o is not origin) or str(origin)
                self.broken.append(Broken(origin, f"the name is also registered by {others}, so neither is used",
                                          kind, label))
                times = "twice" if len(same) == 2 else f"{len(same)} times"
                self._refused[kind][name] = (f"{kind} {name!r} is registered {times}: by "
                                             f"{' and by '.join(str(o) for o in same)}; none is used, uninstall "
                                             "all but one")
                continue
            problems = check_class(kind, cls)
            if problems:
                reason = f"it breaks the {kind} contract: {'; '.join(problems)}"
                self.broken.append(Broken(origin, reason, kind, label))
                if isinstance(name, str):
                    self._refused[kind][name] = self._skipped(kind, name, origin, reason)
                continue
            self._components[kind][name] = Component(kind, name, cls, origin)

    @staticmethod
    def _skipped(kind: str, name: str, origin: Origin, reason: str) -> str:
        return f"{kind} {name!r} of {origin} is broken and was skipped when plugins loaded: {reason}"

    def _quarantine(self, origin: Origin, reason: str) -> None:
        """Set a whole plugin aside: its components, components already refused and hooks included."""
        for kind in KINDS:
            for name, component in list(self._components[kind].items()):
                if component.origin == origin:
                    del self._components[kind][name]
                    self._refused[kind][name] = self._skipped(kind, name, origin, reason)
        self.broken = [b for b in self.broken if b.origin != origin] + [Broken(origin, reason)]
        self.origins.pop(origin.plugin, None)
        if self.manager.get_plugin(origin.plugin) is not None:
            self.manager.unregister(name=origin.plugin)

    def refuse_flags(self, reserved: Iterable[str]) -> None:
        """Set aside each component one of whose options declares a command-line flag that would change what another
        flag means: one the core's commands already take (it would replace the core's option in every command, for
        runs that never select the component), or one another component declares for an option of another type
        (one flag sets both, and one of them would read a value of the wrong type). Built-ins keep their flags;
        among other plugins' components, the first in name order keeps a flag."""
        reserved = set(reserved)
        declared: dict[str, tuple[Any, Component, str]] = {}  # flag -> its option's type, component and option
        for component in sorted(self.all(), key=lambda c: (c.origin.distribution != CORE_DISTRIBUTION, c.kind,
                                                           c.name)):
            hints = get_type_hints(component.cls.Config)
            flags = [(flag, f.name) for f in dataclasses.fields(component.cls.Config) if (flag := flag_of(f))]
            problem = None
            for flag, option in flags:
                if flag in reserved:
                    problem = f"its option {option!r} declares the flag {flag}, which anytime-bench's commands take"
                elif flag in declared and declared[flag][0] != hints.get(option):
                    _, owner, theirs = declared[flag]
                    problem = (f"its option {option!r} declares the flag {flag}, which sets the option {theirs!r} "
                               f"of {owner.kind} {owner.name!r}, of another type")
                if problem:
                    break
            if problem:
                self._set_aside(component, f"{problem}: choose another flag in {component.origin.distribution}")
                continue
            for flag, option in flags:
                declared.setdefault(flag, (hints.get(option), component, option))

    def _set_aside(self, component: Component, reason: str) -> None:
        """Quarantine one component that passed the contract's checks, for a reason found later."""
        del self._components[component.kind][component.name]
        self._refused[component.kind][component.name] = self._skipped(component.kind, component.name,
                                                                      component.origin, reason)
        self.broken.append(Broken(component.origin, reason, component.kind, component.name))

    def get(self, kind: str, name: str, suggest: bool = False) -> Component:
        """The component ``name`` of ``kind``; a quarantined one is refused with its reason, an unknown one with
        the list of installed ones (and the quarantined plugins, which might have provided it), and, where a person
        typed the name (``suggest``; not a name read from a run folder), the installed name closest to it."""
        component = self._components[kind].get(name)
        if component is not None:
            return component
        refusal = self.refusal(kind, name)
        if refusal is not None:
            raise BrokenPluginError(refusal)
        available = ", ".join(sorted(self._components[kind]))
        raise self.not_found(f"unknown {kind} {name!r}", did_you_mean(name, self._components[kind]) if suggest else "",
                             f" (available: {available or 'none installed'})",
                             f"; {kind}s installed: {available or 'none'}")

    def not_found(self, head: str, close: str, listed: str, listed_after_skipped: str = "") -> PluginError:
        """The error for a name no installed component has: ``head``, then the closest installed name (``close``,
        from :func:`did_you_mean`) and what is installed (``listed``); where nothing is close and plugins were
        skipped whole (an import or a hook failed), those first, the likelier cause, then ``listed_after_skipped``
        (the list of what is installed can be long)."""
        whole = [b for b in self.broken if b.kind is None]
        skipped = (f"broken plugins, which might have provided it, were skipped: "
                   f"{'; '.join(f'{b.origin}: {b.reason}' for b in whole)} (anytime-bench plugins --check)")
        if whole and not close:
            return BrokenPluginError(f"{head}: {skipped}{listed_after_skipped}")
        message = f"{head}{close}{listed}"
        return BrokenPluginError(f"{message}; {skipped}") if whole else PluginError(message)

    def standing_in(self, kind: str, name: str, options: dict[str, Any], reason: str) -> Plugins | None:
        """A copy of these plugins in which component ``name`` of ``kind``, which cannot be loaded here for
        ``reason``, is stood in for by a class whose ``Config`` takes the ``options`` a run folder recorded for it
        and nothing else (:class:`StandIn`): a command that reads only the record of it (its config) works, and what
        would use the component is refused with the reason. None where those options cannot make a ``Config``."""
        if len(options) > MAX_STAND_IN_OPTIONS or not all(
                isinstance(key, str) and key.isidentifier() and not key.startswith("_") and not keyword.iskeyword(key)
                and unicodedata.normalize("NFKC", key) == key for key in options):
            return None  # not a config's options as this core writes them (Python reads names in NFKC)
        fields = []
        for key, value in options.items():
            default = dataclasses.field(default_factory=lambda value=value: copy.deepcopy(value)) \
                if isinstance(value, (list, dict)) else dataclasses.field(default=value)
            fields.append((key, Any, default))
        try:
            config = dataclasses.make_dataclass("RecordedConfig", fields)
        except (TypeError, ValueError, SyntaxError):
            return None
        stand_in = type(f"StandIn({name})", (StandIn,), {"name": name, "Config": config, "reason": reason})
        plugins = copy.copy(self)
        plugins._components = {k: dict(v) for k, v in self._components.items()}
        plugins._refused = {k: {n: r for n, r in v.items() if (k, n) != (kind, name)} for k, v in self._refused.items()}
        plugins._components[kind][name] = Component(kind, name, stand_in, STAND_IN_ORIGIN)
        return plugins

    def refusal(self, kind: str, name: str) -> str | None:
        """Why the quarantined component ``name`` of ``kind`` cannot be used (one line), or None when it is not
        quarantined."""
        return self._refused[kind].get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def all(self) -> list[Component]:
        return [c for kind in KINDS for c in sorted(self._components[kind].values(), key=lambda c: c.name)]

    def add_commands(self, cli: click.Group) -> None:
        """The commands plugins add (hook ``register_commands``), each wrapped so that what it raises names its
        plugin. A plugin whose hook raises, ``SystemExit`` included, is quarantined: what it added is taken
        back, and the other commands work."""
        for impl in self.manager.hook.register_commands.get_hookimpls():
            origin = self.origins.get(impl.plugin_name) or Origin(impl.plugin_name, "unknown", "unknown")
            before = dict(cli.commands)
            try:
                impl.function(cli=cli)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit(0) here once made every command exit 0 silently
                cli.commands.clear()
                cli.commands.update(before)
                self._quarantine(origin, f"failed in register_commands: {type(exc).__name__}: "
                                         f"{first_line(exc, _REASON_LIMIT)}")
                continue
            for name, command in cli.commands.items():
                if before.get(name) is not command:
                    _attribute(command, name, origin)


def _attribute(command: click.Command, name: str, origin: Origin) -> None:
    """Make what a plugin's command raises as it runs name the plugin: an exception or a non-zero exit becomes
    a :class:`ComponentError` (exit code 1, or the plugin's own non-zero code). Bad input it reports as the hook
    specification asks (:class:`AnytimeBenchError`, click's usage errors) and an exit with code 0 pass as they are.
    """
    invoke = command.invoke

    def invoke_attributed(ctx: click.Context) -> Any:
        try:
            return invoke(ctx)
        except (AnytimeBenchError, ComponentError, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except (click.exceptions.Exit, SystemExit) as exc:
            code = exc.exit_code if isinstance(exc, click.exceptions.Exit) else exc.code
            if code in (0, None):
                raise
            error = ComponentError(f"{origin}: its command {name!r} exited with status {first_line(exc) or code}")
            error.exit_code = code if isinstance(code, int) and 0 < code < 256 else 1
            raise error from exc
        except Exception as exc:
            raise ComponentError(f"{origin}: its command {name!r} failed: {type(exc).__name__}: "
                                 f"{first_line(exc, _REASON_LIMIT)}") from exc

    command.invoke = invoke_attributed  # type: ignore[method-assign]


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def entry_point_origins() -> list[tuple[metadata.EntryPoint, Origin]]:
    """Each ``anytime_bench`` entry point once, with the plugin, distribution and version that messages name."""
    out: list[tuple[metadata.EntryPoint, Origin]] = []
    seen: set[tuple[str, str]] = set()
    names: dict[int, tuple[str, str]] = {}  # each read parses the whole METADATA file, long description included
    for ep in _entry_points():
        dist = ep.dist
        if id(dist) not in names:
            names[id(dist)] = (dist.metadata["Name"], dist.version) if dist is not None else ("unknown", "unknown")
        # an editable and a regular install of one distribution can list the same entry point twice
        if (ep.name, ep.value) in seen:
            continue
        seen.add((ep.name, ep.value))
        out.append((ep, Origin(ep.name, *names[id(dist)])))
    return out


def load_plugins(extra: Iterable[tuple[str, Any]] = ()) -> Plugins:
    """Import every ``anytime_bench`` entry point and collect its components; what is broken is quarantined
    (see the module's docstring), never raised.

    ``extra`` registers in-process plugins as ``(name, module_or_object)``,
    for tests and notebooks; they go through the same checks.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    # origin, how to load it, its entry point
    found: list[tuple[Origin, Callable[[], Any], str | None]] = [(origin, ep.load, ep.value)
                                                                  for ep, origin in entry_point_origins()]
    for name, plugin in extra:
        found.append((Origin(name, "(in-process)", "-"), lambda plugin=plugin: plugin, None))
    counts = Counter(origin.plugin for origin, _, _ in found)
    origins: dict[str, Origin] = {}
    broken: list[Broken] = []
    for i, (origin, load, value) in enumerate(found):
        if counts[origin.plugin] > 1:
            others = " and ".join(str(o) for j, (o, _, _) in enumerate(found) if o.plugin == origin.plugin and j != i)
            broken.append(Broken(origin, f"{others} has the same plugin name, so neither is used"))
            continue
        try:
            plugin = load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit at import time too: a plugin may not end the program
            broken.append(Broken(origin, f"failed to import ({value}): {type(exc).__name__}: "
                                         f"{first_line(exc, _REASON_LIMIT)}"))
            continue
        try:
            manager.register(plugin, name=origin.plugin)
        except (ValueError, pluggy.PluginValidationError) as exc:
            broken.append(Broken(origin, f"could not be registered: {first_line(exc, _REASON_LIMIT)}"))
            continue
        problem = _hookless(manager, plugin, value)
        if problem is not None:  # it would add nothing, and a run would only say its component is unknown
            manager.unregister(plugin)
            broken.append(Broken(origin, problem))
            continue
        origins[origin.plugin] = origin
    return Plugins(manager, origins, broken)


def _hookless(manager: pluggy.PluginManager, plugin: Any, value: str | None) -> str | None:
    """Why a registered plugin implements no hook (an entry point naming a class, a function without
    ``@hookimpl``, a misspelt hook), or None."""
    callers = manager.get_hookcallers(plugin) or []  # what registering found marked: a misspelt hook has no spec
    unknown = sorted(caller.name for caller in callers if caller.spec is None)
    if callers and not unknown:
        return None
    hooks = sorted(name for name in dir(hookspecs) if name.startswith("register_"))
    if unknown:
        return (f"marks {', '.join(unknown)} with @hookimpl, but no hook is named so (the hooks: "
                f"{', '.join(hooks)})")
    where = f" ({value})" if value else ""
    return (f"implements no hook: its entry point{where} must name a module (or object) with functions named "
            f"after the hooks and marked @anytime_bench.hookimpl ({', '.join(hooks)})")


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """``": did you mean 'x'?"`` for the installed name closest to a mistyped one, else nothing (a name much longer
    or shorter is another name, not a typo: a plugin's ``my-digits`` is not the built-in ``digits``)."""
    close = difflib.get_close_matches(name, sorted(n for n in names if abs(len(n) - len(name)) <= 2), 1)
    return f": did you mean {close[0]!r}?" if close else ""
