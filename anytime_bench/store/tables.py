"""Reading a run folder's tables (metrics and cost, :mod:`anytime_bench.store.rundir`) back, validated.

The files may come from someone else or from an older version: a table that
cannot be read, misses a column or holds text where numbers belong is
reported as a problem (appended to ``problems``) and not used; nothing raises.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from anytime_bench.errors import DataError
from anytime_bench.files.datafiles import read_regular
from anytime_bench.store.rundir import COST_COLUMNS

ENTRY_DEFAULTS: dict[str, Any] = {"encoder_options": "", "prior": "transformer", "prior_options": "",
                                  "temperature": 1.0, "top_k": 0, "top_p": 1.0}
"""The ``[run]`` settings a model took before model entries, when its run's record does not say (no entry's own
options: ``[run]`` has none)."""

METRICS_REQUIRED = ["dataset", "model", "budget", "metric", "value"]
COST_REQUIRED = ["model", "budget", "batch", "cache", "stage", "seconds"]
MAX_TABLE_BYTES = 200 * 2**20


def _read(path: Path, required: list[str], problems: list[str]) -> pd.DataFrame | None:
    if path.is_symlink():  # a path found in a run folder, which is not followed
        problems.append(f"a {path.name} that is a file, not a link")
        return None
    try:
        if path.stat().st_size > MAX_TABLE_BYTES:
            problems.append(f"a {path.name} under {MAX_TABLE_BYTES // 2**20} MB")
            return None
        # read once it is open and checked (a pipe or a file swapped in meanwhile is refused), parsed from memory
        frame = pd.read_csv(io.BytesIO(read_regular(path, MAX_TABLE_BYTES, path.name)))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError, DataError):
        problems.append(f"a readable {path.name}")
        return None
    absent = [c for c in required if c not in frame.columns]
    if absent:
        problems.append(f"{path.name} columns {', '.join(absent)}")
        return None
    return frame


MAX_MAGNITUDE = 1e150
"""The largest magnitude a table's finite number may have: the statistics square differences of values, and a square
of more than about 1e154 overflows. No measurement comes near it, and a metric that returns one is refused as it
returns it (``BoundMetric.compute``), so a file that holds one was not written by a run."""


def _numeric(frame: pd.DataFrame, columns: list[str], name: str, problems: list[str]) -> pd.DataFrame | None:
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        # an empty value is a missing measurement (NaN); text is a malformed file
        if values.isna().sum() > frame[column].isna().sum() or (column != "value" and values.isna().any()):
            problems.append(f"numeric {column} values in {name}")
            return None
        magnitude = values.abs()
        if ((magnitude > MAX_MAGNITUDE) & (magnitude < float("inf"))).any():  # inf is said apart, as a value
            problems.append(f"{column}s of at most {MAX_MAGNITUDE:g} in size in {name}")
            return None
        frame[column] = values
    return frame


def _flag(column: pd.Series) -> pd.Series:
    return _text(column).str.lower().isin(["true", "1", "1.0"])


def _text(column: pd.Series) -> pd.Series:
    """Every cell as a string, an empty cell as ''."""
    return pd.Series([str(v) if isinstance(v, str) or pd.notna(v) else "" for v in column], index=column.index,
                     dtype=object)


def json_cell(text: Any) -> Any:
    """A JSON cell of a table from elsewhere (options, provenance), parsed; None where it is not one: malformed,
    nested deeper than Python recurses, or holding text that is not valid Unicode (a lone surrogate, which JSON can
    spell and no file can hold), each of which a reader would otherwise meet later as a crash."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = json.loads(text)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return None
    return value


def source_of(measurement: str, plugins: Any) -> str:
    """The metric plugin that gave ``measurement`` in a table written before the ``source`` column: itself when a
    plugin of that name is listed (``ink_w1``), else the listed plugin it extends (``prc`` for ``prc_precision``:
    a dict result is recorded as ``<plugin>_<key>``), else itself. ``plugins`` is what the run's record lists
    (``run.metrics``) or the installed names: never a guess from the name alone."""
    names = [p for p in plugins if isinstance(p, str)] if isinstance(plugins, list | tuple) else []
    if measurement in names:
        return measurement
    extended = [p for p in names if measurement.startswith(f"{p}_")]
    return max(extended, key=len) if extended else measurement


def headline_measurement(frame: pd.DataFrame, metric: str) -> str:
    """What heads a table for the headline ``metric`` (a plugin's name): the measurement of that name, or, for a
    plugin whose result is a dict (recorded as ``<plugin>_<key>``), its first measurement in the table; ``metric``
    itself when the table holds neither."""
    if (frame.metric == metric).any() or "source" not in frame.columns:
        return metric
    given = frame.metric[frame.source == metric]
    return str(given.iloc[0]) if len(given) else metric


def read_metrics(path: Path, problems: list[str], legacy_train_seed: int = 0,
                 run_settings: dict[str, Any] | None = None) -> pd.DataFrame | None:
    """The metrics table with numeric budgets, values and seeds; runs made before training seeds get
    ``legacy_train_seed`` and their ``seed`` column as the sampling seed. Runs made before model entries name
    each model by its encoder, with the run's prior and sampling settings (``run_settings``, their ``[run]``
    table): those fill the entry's columns."""
    frame = _read(path, METRICS_REQUIRED, problems)
    if frame is None:
        return None
    settings = run_settings if isinstance(run_settings, dict) else {}
    if "encoder" not in frame.columns:
        frame["encoder"] = frame["model"]
    for column, default in ENTRY_DEFAULTS.items():
        if column not in frame.columns:
            value = settings.get(column, default)
            fits = isinstance(value, str) if isinstance(default, str) else (
                isinstance(value, (int, float)) and not isinstance(value, bool))
            frame[column] = value if fits else default
    if "sample_seed" not in frame.columns:
        frame["sample_seed"] = frame["seed"] if "seed" in frame.columns else 0
    if "train_seed" not in frame.columns:
        frame["train_seed"] = legacy_train_seed
    numeric = ["budget", "value", "train_seed", "sample_seed", "temperature", "top_k", "top_p"] + (
        ["tokens"] if "tokens" in frame.columns else [])
    frame = _numeric(frame, numeric, path.name, problems)
    if frame is None:
        return None
    if not frame.budget.between(0, 1, inclusive="right").all():
        problems.append(f"budgets within (0, 1] in {path.name}")
        return None
    frame["ordered"] = _flag(frame["ordered"]) if "ordered" in frame.columns else True
    frame["per_budget"] = _flag(frame["per_budget"]) if "per_budget" in frame.columns else False
    for column in ("dataset", "model", "encoder", "encoder_options", "prior", "prior_options", "metric"):
        frame[column] = _text(frame[column])
    if "source" not in frame.columns:
        frame["source"] = [source_of(name, settings.get("metrics")) for name in frame["metric"]]
    frame["source"] = _text(frame["source"])
    if "provenance" not in frame.columns:
        frame["provenance"] = ""
    if "run_id" not in frame.columns:
        frame["run_id"] = path.parent.name
    return frame


def read_cost(path: Path, problems: list[str]) -> pd.DataFrame | None:
    """The cost table with numeric budgets, batch sizes and seconds."""
    frame = _read(path, COST_REQUIRED, problems)
    if frame is None:
        return None
    frame = _numeric(frame, ["budget", "batch", "seconds"], path.name, problems)
    if frame is None:
        return None
    if not (frame.batch > 0).all():
        problems.append(f"positive batch sizes in {path.name}")
        return None
    frame["cache"] = _flag(frame["cache"])
    frame["model"] = _text(frame["model"])
    return frame[[c for c in COST_COLUMNS if c in frame.columns]]
