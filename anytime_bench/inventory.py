"""What run folders a user has: each one's id, dataset, models, status, seeds, the version that wrote it, and
whether this version recognises it (``anytime-bench runs``). Reads records only, imports no torch."""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .record import read_record
from .rundir import RUN_JSON

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
