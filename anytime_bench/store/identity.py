"""Run identity: the canonical form of a config and the one digest of runs, encoders and priors.

A run's results are decided by the values of its options, but an upgrade of
the core or of a plugin adds options (with defaults that keep the old
behaviour) and may change defaults. An identity that hashed every resolved
value would change with every added option, and every run folder written
before it would stop resuming. So the canonical form of a config keeps two
tables apart:

- ``set``: the values that differ from the defaults in force when the run was
  made (and, for each selected component, its table, empty when every option
  is at its default);
- ``defaults``: the defaults that were in force, recorded beside them.

The digest hashes ``set`` alone. Adding an option with a default leaves every
existing digest as it was. A default that changes later is still known: a
config rebuilt against the *recorded* defaults (:func:`canonical` with a
``baseline``) gives the old digest exactly when it asks for the old values,
and :func:`first_difference` names the option whose value differs.

Resume, checkpoint reuse and report grouping all key on these digests
(:func:`run_digest`, :func:`encoder_digest`, :func:`prior_digest`,
:func:`group_digest`). Nothing here imports torch or a plugin: configs are
plain tables (``{"run": {...}, "encoder": {name: {...}}, ...}``), so the report
and ``runs`` use it on records they read.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SCHEMA = 2
"""The run record's format, bumped by a change that old records must be migrated through (:mod:`.record`)."""

Tables = dict[str, Any]
"""A config as plain tables: ``run`` maps keys to values; every other table maps component names to such maps."""

LOCAL_KEYS = ("data_root", "cache_dir", "checkpoint_every", "workers")
"""``[run]`` keys that say where things are on this machine: recorded, but never part of an identity and never read
back from a run folder (a run folder from elsewhere must not point this machine at its paths)."""

SEED_KEYS = ("seed", "train_seeds", "sample_seeds")
"""``[run]`` keys that only choose seeds: runs that differ in nothing else are replicates of one experiment."""


def digest(obj: Any) -> str:
    """The 16-hex-digit hash every identity uses (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tables(config: Tables) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Each table of options with its path: ``("run",)``, ``("encoder", "ovqvae")``, ..."""
    out: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for kind, table in config.items():
        if kind == "run":
            out.append((("run",), table))
        elif isinstance(table, dict):
            out.extend(((kind, name), options) for name, options in table.items() if isinstance(options, dict))
    return out


def _get(tables: Tables, path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = tables
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None


def _put(tables: Tables, path: tuple[str, ...], key: str, value: Any) -> None:
    node = tables
    for part in path:
        node = node.setdefault(part, {})
    if key:
        node[key] = value


def canonical(values: Tables, defaults: Tables, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The canonical form of a config whose resolved ``values`` the code in use would fill from ``defaults``.

    ``baseline`` is the canonical form recorded by the run being resumed or reopened: an option it knew is
    compared with the default *it* recorded (so a default changed since then counts as a value set), and only an
    option it did not know (added since) is compared with today's default. Machine-local options must already be
    left out of both tables.
    """
    known_set, known_defaults = ((baseline or {}).get("set") or {}), ((baseline or {}).get("defaults") or {})
    out_set: Tables = {}
    out_defaults: Tables = {}
    for path, table in _tables(values):
        _put(out_set, path, "", None)  # a selected component's table is in the identity, even empty
        then_set, then_defaults = _get(known_set, path), _get(known_defaults, path)
        now_defaults = _get(defaults, path) or {}
        for key, value in table.items():
            if baseline is not None and ((then_set is not None and key in then_set)
                                         or (then_defaults is not None and key in then_defaults)):
                in_force = then_defaults if then_defaults is not None and key in then_defaults else None
            else:
                in_force = now_defaults if key in now_defaults else None
            if in_force is not None and in_force[key] == value:
                _put(out_defaults, path, key, value)
            else:
                _put(out_set, path, key, value)
    return {"schema": SCHEMA, "set": out_set, "defaults": out_defaults}


def run_digest(form: dict[str, Any]) -> str:
    """The identity of a run: what was set. Resuming a run folder needs the same digest."""
    return digest(form["set"])


def group_digest(form: dict[str, Any]) -> str:
    """The identity of a run without its seeds: runs that share it are replicates of one experiment."""
    values = dict(form["set"])
    values["run"] = {k: v for k, v in (values.get("run") or {}).items() if k not in SEED_KEYS}
    return digest(values)


def encoder_digest(form: dict[str, Any], dataset: str, encoder: str, train_seed: int, tokens: int | None = None,
                   changes: dict[str, Any] | None = None) -> str:
    """What decides an encoder's weights: the data, the training seed and the encoder's own options (its table's,
    with ``changes`` over them: the options in which a model entry's encoder differs from its table's)."""
    values = form["set"]
    options = (values.get("encoder") or {}).get(encoder, {})
    if changes:
        options = {**options, **changes}
    return digest({
        "dataset": dataset,
        "dataset_options": (values.get("dataset") or {}).get(dataset, {}),
        "seed": train_seed,
        "encoder": encoder,
        "options": options,
        **({} if tokens is None else {"tokens": tokens}),
    })


def prior_digest(form: dict[str, Any], encoder_identity: str, prior: str,
                 entry_options: dict[str, Any] | None = None) -> str:
    """What decides a prior's weights: its encoder's identity and the prior's own options (its table's, with a model
    entry's ``prior_options`` over them)."""
    options = (form["set"].get("prior") or {}).get(prior, {})
    if entry_options:
        options = {**options, **entry_options}
    return digest({"encoder": encoder_identity, "prior": prior, "options": options})


def first_difference(recorded: dict[str, Any], wanted: dict[str, Any]) -> str:
    """The first option whose value differs between two canonical forms, as ``table.key: a -> b``; empty if none."""
    def flat(form: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in ("defaults", "set"):
            for path, table in _tables(form.get(part) or {}):
                out.update({".".join((*path, key)): value for key, value in table.items()})
        return out

    def paths(form: dict[str, Any]) -> set[str]:
        return {".".join(path) for path, _ in _tables(form.get("set") or {})}

    a, b = flat(recorded), flat(wanted)
    for key in sorted(set(a) | set(b)):
        if key in a and key in b and a[key] != b[key]:
            return f"{key}: {_short(a[key])} in the run, {_short(b[key])} now"
    for key in sorted(paths(recorded) ^ paths(wanted)):
        return f"{key}: {'selected in the run only' if key in paths(recorded) else 'selected now only'}"
    for key in sorted(set(a) ^ set(b)):
        return f"{key}: {_short(a[key]) if key in a else 'unset'} in the run, {_short(b[key]) if key in b else 'unset'} now"
    return ""


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."
