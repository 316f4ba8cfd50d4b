"""A run folder's record (``run.json``): parsed against a schema with bounds, migrated from older formats.

Every reader of a record goes through :func:`read_record`: reopening a run
(``evaluate``, ``sample``, ``bench``, ``config --of-run``), resuming it,
``report`` and ``runs``. A record may come from someone else, so nothing in it
is trusted: the file is refused unread above :data:`MAX_RECORD_BYTES`, every
number, string and table the core reads is checked for type and range, and
keys this version does not know are kept as they are and never read.

Formats (``schema``):

1. no ``schema`` key: the resolved config and ``config_digest``, a hash of
   every recorded value but the machine-local ``[run]`` keys and ``top_p`` at
   its default (1.0). Defaults in force were not recorded.
2. adds ``identity``, the canonical form of :mod:`.identity` (what was set, the
   defaults in force), and ``status`` values ``running``, ``done``, ``failed``
   and ``interrupted`` with the process that wrote them.

Migrations run in order on what was read, never on the file, and say what
they did (:attr:`Record.notes`). Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anytime_bench.errors import ConfigError
from anytime_bench.store import identity
from anytime_bench.store.identity import LOCAL_KEYS, SCHEMA

MAX_RECORD_BYTES = 16 * 2**20
"""A run's record is kilobytes (a torchrun record with one entry per process, a little more); a larger one from
elsewhere is refused unread rather than parsed into memory."""

MAX_DIGITS = 40
"""No number a run writes has more digits; Python refuses to parse above 4300 with an error of its own."""

MAX_DEPTH = 40
MAX_TEXT = 200_000


@dataclass
class Record:
    """A record as this version reads it: migrated to :data:`SCHEMA`, validated."""

    state: dict[str, Any]
    schema: int
    """The format it was written in."""
    notes: list[str] = field(default_factory=list)
    """What each migration did."""

    @property
    def identity(self) -> dict[str, Any]:
        return self.state["identity"]

    @property
    def digest(self) -> str:
        return identity.run_digest(self.identity)

    @property
    def recognised(self) -> bool:
        """The recorded digest is the one this version computes from the record's identity."""
        return self.state.get("config_digest") == self.digest


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise ValueError(f"an integer of {digits} digits, more than any run writes")
    return int(text)


def parse(text: str, where: Path | str) -> dict[str, Any]:
    """The JSON object of a record, its numbers bounded."""
    try:
        state = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise ConfigError(f"{where} nests values too deeply") from None
    except ValueError as exc:  # JSONDecodeError is one
        raise ConfigError(f"{where} is not a valid run record: {str(exc)[:120]}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{where} must hold a JSON object, not {type(state).__name__}")
    _check_sizes(state, where, 0)
    return state


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_sizes(value: Any, where: Path | str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ConfigError(f"{where} nests values deeper than {MAX_DEPTH} levels")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ConfigError(f"{where} holds a text of {len(value)} characters, more than any run writes")
    if isinstance(value, str) and not _unicode(value):
        raise ConfigError(f"{where} holds a text that is not valid Unicode (a lone surrogate), which no run writes")
    if isinstance(value, float) and not math.isfinite(value) and depth <= 1:
        raise ConfigError(f"{where}: a top-level number is not finite")
    if isinstance(value, dict):
        for key, item in value.items():
            if len(key) > 1000:
                raise ConfigError(f"{where} holds a key of {len(key)} characters")
            if not _unicode(key):
                raise ConfigError(f"{where} holds a key that is not valid Unicode (a lone surrogate), which no run "
                                  f"writes")
            _check_sizes(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_sizes(item, where, depth + 1)


# ---------------------------------------------------------------------- the schema

def _text(limit: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and len(v) <= limit


def _integer(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1e9


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= 1e12


def _floor(v: Any) -> bool:
    """A metric's real-versus-real floor as evaluate records it (:func:`.stages.evaluate.floors`)."""
    return (isinstance(v, dict) and all(_real(v.get(k)) for k in ("mean", "low", "high"))
            and v["low"] <= v["mean"] <= v["high"] and _integer(1, 10**9)(v.get("n"))
            and _integer(1, 10**6)(v.get("splits")) and isinstance(v.get("capped", False), bool)
            and all(_text(200)(v.get(k, "")) for k in ("feature_space", "reference_set", "split"))
            and isinstance(v.get("values", []), list) and all(_real(x) for x in v.get("values", [])))


def _table_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, dict) and all(check(x) for x in v.values())


def _tables(v: Any) -> bool:
    """A config: ``run`` a table of values, ``model`` its entries (an array of tables in a config, a table of them
    by label in a canonical form), every other table a table of per-component tables."""
    def entries(t: Any) -> bool:
        return isinstance(t, list) and all(isinstance(e, dict) for e in t)

    return (isinstance(v, dict) and isinstance(v.get("run", {}), dict)
            and all(k == "run" or (k == "model" and entries(t)) or _table_of(lambda x: isinstance(x, dict))(t)
                    for k, t in v.items()))


def _form(v: Any) -> bool:
    return (isinstance(v, dict) and _integer(1, SCHEMA)(v.get("schema")) and _tables(v.get("set"))
            and _tables(v.get("defaults")))


FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "schema": (_integer(1, 10**6), "an integer"),
    "run_id": (_text(255), "a name of at most 255 characters"),
    "config": (_tables, "a table of tables (run, the model entries, then one table per component)"),
    "config_digest": (_text(64), "a digest"),
    "identity": (_form, "a canonical config form (schema, set, defaults)"),
    "status": (_text(300), "a status"),
    "failure": (_text(MAX_TEXT), "a text"),
    "created": (_text(64), "a time"),
    "updated": (_text(64), "a time"),
    "finished": (_text(64), "a time"),
    "seeds": (lambda v: isinstance(v, dict), "a table"),
    "versions": (_table_of(_text(200)), "a table of version strings"),
    "git_commit": (_text(64), "a commit"),
    "components": (_table_of(_table_of(_text(300))), "a table per kind of the distribution of each component"),
    "passes": (lambda v: isinstance(v, list) and all(isinstance(p, dict) for p in v),
               "a list of tables (what each earlier pass over the run recorded of itself)"),
    "stages_by": (_table_of(lambda v: isinstance(v, dict) and all(isinstance(x, str) and len(x) <= 200
                                                                 for x in v.values())),
                  "a table of per-stage tables of texts (the commit and version that last ran each stage)"),
    "device": (lambda v: isinstance(v, dict), "a table"),
    "processes": (_integer(1, 10**6), "a process count"),
    "train_workers": (_integer(0, 10**6), "a worker count"),
    "data": (lambda v: v is None or isinstance(v, dict), "a table"),
    "models": (_table_of(lambda m: isinstance(m, dict)), "a table of per-model tables"),
    "stage_seconds": (_table_of(_number), "a table of seconds"),
    "wall_seconds": (_number, "seconds"),
    "local": (lambda v: isinstance(v, dict), "a table"),
    "process": (lambda v: isinstance(v, dict), "a table"),
    "metric_directions": (_table_of(lambda v: isinstance(v, bool)), "a table of true (higher is better) or false"),
    "metric_requires": (_table_of(lambda v: v in ("generated", "reconstructed", "likelihood")),
                        "a table of generated, reconstructed or likelihood (what each measurement scores)"),
    "metric_references": (_table_of(lambda v: v in ("train", "test", "validation")),
                          "a table of train, test or validation (the split each measurement compares with)"),
    "metric_floors": (_table_of(_floor), "a table of floors (mean, low, high, n, splits, feature_space...)"),
    "floor_notes": (_table_of(_text(1000)), "a table of texts (why a metric has no floor)"),
}
"""Every key the core reads, with what it must be; other keys are kept and never read."""


DECIDING = ("schema", "config", "identity", "config_digest", "data")
"""Keys that decide what a reopened run does: a malformed one refuses the record. Every other key of
:data:`FIELDS` only informs (times, versions, statistics): a malformed one is dropped as it is read, with a note,
so that a damaged field of history never stops a run from being evaluated or reported."""


def validate(state: dict[str, Any], where: Path | str) -> list[str]:
    """Check ``state`` in place; what was dropped, as notes."""
    notes = []
    for key, (check, what) in FIELDS.items():
        if key in state and not check(state[key]):
            if key in DECIDING:
                raise ConfigError(f"{where}: {key!r} must be {what}")
            del state[key]
            notes.append(f"ignored {key!r}: it must be {what}")
    return notes


# ---------------------------------------------------------------------- migrations

def _from_1(state: dict[str, Any]) -> str:
    config = state.get("config")
    if not isinstance(config, dict):
        raise ConfigError("has no 'config'")
    values = {kind: table for kind, table in config.items()}
    run = {k: v for k, v in (config.get("run") or {}).items() if k not in LOCAL_KEYS}
    defaults: dict[str, Any] = {}
    if run.get("top_p") == 1.0:  # the one default schema 1 kept out of its digest
        defaults["run"] = {"top_p": run.pop("top_p")}
    values["run"] = run
    state["identity"] = {"schema": SCHEMA, "set": values, "defaults": defaults}
    state["schema"] = 2
    if str(state.get("status", "")).startswith("failed in "):
        state["status"], state["failed_in"] = "failed", str(state["status"])[len("failed in "):]
    elif state.get("status") == "started":
        state["status"] = "running"
    return ("schema 1 -> 2: every recorded value counts as set, since schema 1 did not record which were defaults "
            "(its digest hashed them all); the identity digest is schema 1's config_digest")


MIGRATIONS: dict[int, Callable[[dict[str, Any]], str]] = {1: _from_1}
"""``version -> migration to version + 1``, run in order on what was read."""


def migrate(state: dict[str, Any], where: Path | str) -> Record:
    version = state.get("schema", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{where}: 'schema' must be a positive integer")
    if version > SCHEMA:
        raise ConfigError(f"{where} was written by a newer anytime-bench (record schema {version}; this version "
                          f"reads up to {SCHEMA}): upgrade anytime-bench to read it")
    record = Record(state=dict(state), schema=version)
    while record.state.get("schema", 1) < SCHEMA:
        step = record.state.get("schema", 1)
        try:
            record.notes.append(MIGRATIONS[step](record.state))
        except ConfigError as exc:
            raise ConfigError(f"{where} {exc}") from None
    record.notes += validate(record.state, where)
    for key in ("config", "identity"):
        if key not in record.state:
            raise ConfigError(f"{where} has no {key!r}: '{key}' must be {FIELDS[key][1]}")
    return record


def read_record(path: Path) -> Record:
    """The record at ``path`` as this version reads it; every way it can be unreadable is one ConfigError."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        what = "a link" if path.is_symlink() else "missing" if not path.exists() else "not a regular file"
        raise ConfigError(f"{path.parent} is not a run folder: {path.name} is {what}")
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise ConfigError(f"{path} is larger than {MAX_RECORD_BYTES // 2**20} MB, which no run writes")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None
    state = parse(text, path)
    notes = validate(state, path)
    record = migrate(state, path)
    record.notes[:0] = notes
    return record


def run_settings(state: dict[str, Any]) -> dict[str, Any]:
    """The ``[run]`` table of the config a record holds (what a run made before model entries sampled with), or
    none: it fills the entry columns of such a run's tables."""
    config = state.get("config")
    settings = config.get("run") if isinstance(config, dict) else None
    return settings if isinstance(settings, dict) else {}
