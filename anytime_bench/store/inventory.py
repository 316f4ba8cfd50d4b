"""What run folders a user has: each one's id, dataset, models, status, seeds, the version that wrote it, and
whether this version recognises it (``anytime-bench runs``). Reads records only, imports no torch."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anytime_bench.errors import ConfigError, first_line
from anytime_bench.files.markdown import code
from anytime_bench.store.record import read_record
from anytime_bench.store.rundir import RUN_JSON

MAX_FOLDERS = 10_000


@dataclass
class RunEntry:
    path: str
    run_id: str
    dataset: str = ""
    models: list[str] = field(default_factory=list)
    status: str = ""
    stage: str = ""
    train_seeds: list[Any] = field(default_factory=list)
    sample_seeds: list[Any] = field(default_factory=list)
    written_by: str = ""
    schema: int | None = None
    recognised: bool = False
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def live(folder: Path) -> bool:
    """Whether a process holds the run folder's lock now (the lock is released when its process ends, however)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    # No link followed, no wait on a pipe: the folder may come from someone else.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(folder / ".lock", flags)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _text(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe(folder: Path) -> RunEntry:
    """One run folder as ``runs`` lists it; an unreadable record is an entry with its problem, never an error."""
    entry = RunEntry(path=str(folder), run_id=folder.name)
    try:
        record = read_record(folder / RUN_JSON)
    except ConfigError as exc:
        entry.status, entry.problem = "unreadable", _text(exc, 200)
        return entry
    state = record.state
    config = state.get("config") or {}
    run = config.get("run") or {}
    entry.run_id = _text(state.get("run_id", folder.name), 100)
    entry.dataset = _text(run.get("dataset", "digits"), 60)
    entries = config.get("model")
    if isinstance(entries, list):  # model entries, named by their labels
        entry.models = [_text(m.get("label", "?"), 60) for m in entries if isinstance(m, dict)]
    else:
        encoders = run.get("encoders", ["ovqvae", "vqvae-channel", "vqvae-spatial"])
        entry.models = [_text(m, 60) for m in encoders] if isinstance(encoders, list) else []
    seeds = state.get("seeds") or {}
    entry.train_seeds = [s for s in seeds.get("train", []) if isinstance(s, int)][:100] \
        if isinstance(seeds.get("train"), list) else []
    entry.sample_seeds = [s for s in seeds.get("sample", []) if isinstance(s, int)][:100] \
        if isinstance(seeds.get("sample"), list) else []
    versions = state.get("versions") or {}
    commit = state.get("git_commit") or ""
    entry.written_by = _text(f"{versions.get('anytime-bench', '?')}" + (f" ({commit[:8]})" if commit else ""), 60)
    entry.schema = record.schema
    entry.status = _text(state.get("status", ""), 40)
    entry.stage = _text(state.get("stage", ""), 40)
    if entry.status == "running" and not live(folder):
        # The record says running but no process holds the lock: it ended without saying so (kill -9, a crash).
        entry.status = "stopped"
    entry.recognised = record.recognised
    if not record.recognised:
        entry.problem = "its config digest is not the one its recorded config gives"
    return entry


def run_folders(folder: Path) -> list[Path]:
    """``folder`` itself when it is a run folder, else the run folders directly inside it (links not followed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")
    if (folder / RUN_JSON).exists() or (folder / RUN_JSON).is_symlink():
        return [folder]
    try:
        children = sorted(p for p in folder.iterdir() if not p.is_symlink() and p.is_dir())
    except OSError as exc:
        raise ConfigError(f"{folder} cannot be listed: {exc.strerror}") from None
    found = [p for p in children[:MAX_FOLDERS] if (p / RUN_JSON).exists() or (p / RUN_JSON).is_symlink()]
    return found


def list_runs(folder: str | Path = "results") -> list[RunEntry]:
    """Every run folder in ``folder`` (or ``folder`` itself), described."""
    return [describe(p) for p in run_folders(Path(folder))]


# The index of a results folder (``anytime-bench runs FOLDER --markdown``): what each run asks, the config it came
# from, its seeds and its headline numbers, with what a committed run keeps. Reads the records, the metrics tables and
# the project's config files; nothing a run folder names is opened.

KEPT: dict[str, tuple[str, ...]] = {
    "reference-": ("metrics.csv", "summary.md", "run.json", "cost.csv", "quality_vs_budget.png", "samples.png",
                   "cost_vs_budget.png", "quality_vs_time.png", "<modality>/"),
    "ablation-": ("metrics.csv", "summary.md", "run.json", "cost.csv"),
}
"""What a committed run folder keeps, by the prefix of its name; ``<modality>/`` is the exported items (audio clips)."""

KEPT_TEXT = (
    "**What is kept.** A reference run (`reference-*`) keeps its tables (`metrics.csv`, `summary.md`, `cost.csv` "
    "when `bench` ran), its record (`run.json`), its figures (`quality_vs_budget.png`, `samples.png`, "
    "`cost_vs_budget.png`, `quality_vs_time.png`) and the items its modality exported (`audio/`: the clips the "
    "report plays). An ablation (`ablation-*`) keeps its tables and its record only: its figures are redrawn by "
    "`anytime-bench report` from `metrics.csv`. Figures are PNGs in a 256-colour palette (sample grids only where "
    "that is lossless, else true colour). Checkpoints, codes and sample archives are never committed: the command "
    "in each run's config regenerates them, so `report`, `runs` and `config --of-run` work on these folders and "
    "`sample`, `evaluate` (but `--floors-only`) and `bench` do not. `reference-report/` is the report "
    "over every run (its command is in docs/guide/reports.md). `tests/test_committed_results.py` enforces all of "
    "this and keeps `results/` under 10 MB."
)

MAX_CONFIG_FILES = 1000
LOCAL_KEYS = {"run.data_root", "run.cache_dir", "run.device", "run.workers", "run.checkpoint_every", "run.precision"}
"""Where and how a run ran, not what it asks: not compared with a config file."""
NEAR = 3
"""A run whose config differs from a config file in at most this many options is that file with those options."""
DEFAULT_DATASET = "digits"
"""The dataset of a config file that names none."""


@dataclass
class ConfigFile:
    name: str
    """``configs/ablations/pow2.toml``: the path under the config folder, prefixed by the folder's name."""
    options: dict[str, Any]
    """Every option the file sets, those of the files it ``extends`` included, flattened (``encoder.ovqvae.steps``)."""
    header: str
    """The comment before the first table, without the lines that show the command."""
    run_ids: set[str]
    """The ``--run-id`` of every command the comment shows."""
    bases: int = 0
    """How many files it stands on through ``extends``."""


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_files(folder: Path) -> list[ConfigFile]:
    """Every TOML file under ``folder`` (the project's ``configs/``), read as a run reads it (its ``extends`` chain
    merged: a run records the merged config); ``ConfigError`` names one that fails."""
    import re

    from anytime_bench.files.configfiles import merge_layers, read_layers

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder of config files (--configs): the index names each run's config "
                          "from it")
    files = sorted(p for p in folder.rglob("*.toml") if p.is_file() and not p.is_symlink())[:MAX_CONFIG_FILES]
    out = []
    for path in files:
        name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
        try:
            layers = read_layers(path)
            text = path.read_text(encoding="utf-8")  # read_layers has checked its size and encoding
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{name} cannot be read as a config: {first_line(exc, 160)}") from None
        comment = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            comment.append(line[1:])
        prose = []
        for line in comment:
            if line.startswith("   ") or line.strip().startswith("anytime-bench "):
                break  # the command that runs it, and its continuation lines
            prose.append(line.strip())
        run_ids = set(re.findall(r"--run-id[ =]([A-Za-z0-9._-]+)", " ".join(comment)))
        out.append(ConfigFile(name, _flatten(merge_layers(layers)), " ".join(prose).strip(), run_ids, len(layers) - 1))
    return out


def _holds(recorded: Any, value: Any) -> bool:
    """Whether a recorded value is what a file sets: a record writes each table in full (every ``[[model]]`` entry
    with every field), a file only what it sets, so a table holds what the file's table sets, and a list of tables
    holds the file's entry by entry."""
    if isinstance(value, dict):
        return isinstance(recorded, dict) and all(k in recorded and _holds(recorded[k], v) for k, v in value.items())
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return (isinstance(recorded, list) and len(recorded) == len(value)
                and all(_holds(r, v) for r, v in zip(recorded, value, strict=True)))
    return recorded == value


def differences(file: ConfigFile, recorded: dict[str, Any]) -> list[str] | None:
    """The options the run's recorded config sets otherwise than ``file``, as ``key = value``; ``None`` when the
    file is for another dataset (a file that names none is for the default, digits). A table of a plugin the run
    does not use is left out."""
    if file.options.get("run.dataset", DEFAULT_DATASET) != recorded.get("run.dataset"):
        return None
    out = []
    for key, value in file.options.items():
        if key in LOCAL_KEYS:
            continue
        parts = key.split(".")
        table = ".".join(parts[:2]) + "." if parts[0] != "run" and len(parts) > 2 else ""
        if table and not any(k.startswith(table) for k in recorded):
            continue
        if key not in recorded or not _holds(recorded[key], value):
            shown = json.dumps(recorded[key]) if key in recorded else "(unset)"
            out.append(f"{key} = {_text(shown, 80)}")
    return out


def _first_sentence(text: str, limit: int = 240) -> str:
    import re

    sentence = re.split(r"(?<=[.?!])\s", text, maxsplit=1)[0]
    if sentence.endswith(":"):  # a list follows
        sentence = sentence[:-1] + "."
    return _text(sentence, limit)


@dataclass
class IndexRow:
    run_id: str
    asks: str
    config: str
    seeds: str
    headline: str


def headline_of(frame: Any, metric: str) -> str:
    """``model a -> b`` per model: the mean over seeds of ``metric`` at the run's smallest and largest budget (a
    per-budget model that lacks the smallest shows its own smallest, named; one that lacks the largest, ``-``)."""
    from anytime_bench.store.tables import headline_measurement

    metric = headline_measurement(frame, metric)
    part = frame[frame.metric == metric]
    if part.empty:
        return f"no {metric} in metrics.csv"
    low, high = part.budget.min(), part.budget.max()
    cells = []
    for model in dict.fromkeys(part.model):
        rows = part[part.model == model]
        first = rows.budget.min()
        start = f"{rows[rows.budget == first].value.mean():.3g}" + ("" if first == low else f" (at {first:g})")
        end = f"{rows[rows.budget == high].value.mean():.3g}" if (rows.budget == high).any() else "-"
        cells.append(f"{model} {start} -> {end}")
    return f"{metric} at {low:g} -> {high:g}: " + "; ".join(cells)


def index_row(folder: Path, files: list[ConfigFile]) -> IndexRow:
    from anytime_bench.store.tables import read_metrics

    entry = describe(folder)
    row = IndexRow(folder.name, "", "", ",".join(map(str, entry.train_seeds)), "")  # the link goes to the folder
    if entry.status == "unreadable":
        row.asks = f"unreadable run.json: {entry.problem}"
        return row
    config = read_record(folder / RUN_JSON).state.get("config")
    recorded = _flatten(config) if isinstance(config, dict) else {}
    named = [f for f in files if folder.name in f.run_ids or entry.run_id in f.run_ids]
    diffs = {f.name: differences(f, recorded) for f in files}
    # As near, a file standing on fewer others: a run one option away from a base and from a file extending it is
    # the base with that option, not the other file with its own change undone.
    near = sorted((f for f in files if diffs[f.name] is not None and len(diffs[f.name]) <= NEAR),
                  key=lambda f: (len(diffs[f.name]), f.bases, -len(f.options), f.name))
    chosen = named[0] if len(named) == 1 else near[0] if near else None
    if chosen is not None:
        changed = diffs[chosen.name] or []
        row.config = code(chosen.name) + (" with " + ", ".join(code(d) for d in changed) if changed else "")
        if chosen.header and (chosen in named or not changed):
            row.asks = _first_sentence(chosen.header)
    if not row.config:
        keys = ("run.dataset", "run.encoders", "run.prior", "run.budgets", "run.num_samples")
        row.config = "no config file: " + ", ".join(code(f"{k} = {_text(json.dumps(recorded[k]), 80)}") for k in keys
                                                     if k in recorded)
    if not row.asks:
        row.asks = (f"{entry.dataset}: " + ", ".join(entry.models) + " with a "
                    f"{_text(recorded.get('run.prior', 'transformer'), 40)} prior")
    metrics_csv = folder / "metrics.csv"
    problems: list[str] = []
    frame = None if metrics_csv.is_symlink() or not metrics_csv.is_file() else read_metrics(metrics_csv, problems)
    if frame is None:
        row.headline = "no readable metrics.csv" + (f" ({'; '.join(problems)})" if problems else "")
        return row
    metrics = recorded.get("run.metrics")
    headline = recorded.get("run.headline_metric") or (metrics[0] if isinstance(metrics, list) and metrics else "")
    row.headline = headline_of(frame, str(headline)) if headline else "no headline metric recorded"
    return row


def markdown_index(folder: str | Path, configs: str | Path | None = "configs") -> str:
    """``results/README.md``: every run folder in ``folder`` with what it asks, its config, seeds and headline;
    without a folder of ``configs``, each run's main options stand for its config file."""
    from urllib.parse import quote

    from anytime_bench.files.markdown import escape, markdown_table

    files = config_files(Path(configs)) if configs is not None else []
    rows = [index_row(p, files) for p in run_folders(Path(folder))]

    def link(run_id: str) -> str:  # a folder's name may hold a byte that is not UTF-8: its link keeps it, as %FF
        return f"[`{escape(run_id)}`]({quote(run_id, errors='surrogateescape')}/)"

    table = markdown_table(["run", "what it asks", "config", "training seeds", "headline (mean over seeds)"],
                           [[link(r.run_id), r.asks, r.config, r.seeds, r.headline] for r in rows], markup=(0, 2))
    return "\n".join([
        "# Committed results", "",
        f"Generated by `anytime-bench runs {Path(folder).name} --markdown > {Path(folder).name}/README.md` (a test "
        "fails when it is stale): every run folder, what it asks (the first sentence of its config file's comment, "
        "else its dataset and models), "
        + ("the config it came from (the file under `configs/` whose comment runs it "
           f"with `--run-id`, else the one its recorded config matches in all but at most {NEAR} options, listed), "
           if configs is not None else "its main options (no folder of config files was given), ")
        + "its training seeds, and its headline metric at its smallest and largest budget per model, the mean over "
        "training and sampling seeds.", "",
        KEPT_TEXT, "",
        table, "",
    ])
