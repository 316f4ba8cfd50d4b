"""One run folder: its config, plugins, paths, context, record and the facts its stages share.

A *model* of a run is one model entry (:class:`.config.ModelEntry`, named by its
label): an encoder, the prior trained on its codes and how that prior is
sampled. An encoder is trained once per training seed and shared by the
entries that use it; a prior once per encoder, prior options and training seed. Stages, commands and
``bench`` receive a :class:`Run`; they never read the run's record themselves.
The record (:data:`anytime_bench.store.rundir.RUN_JSON`) is written as the run goes, and read back
validated the same way (:func:`validated`) when a command reopens a run folder
(:meth:`Run.open`) or resumes one (:meth:`Run.prepare`). A run folder may come from someone else: nothing in it is unpickled,
and no path recorded in it (data root, cache folder) is followed.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import shlex
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

if TYPE_CHECKING:
    import pandas as pd

from anytime_bench.contract.components import Bound, BoundDataset, BoundEncoder, BoundMetric, BoundModality, BoundPrior
from anytime_bench.contract.context import Ledger, LoopCheckpoints, RunContext, resolve_device
from anytime_bench.contract.conventions import tokens_for
from anytime_bench.contract.distributed import broadcast_object, init_from_env
from anytime_bench.contract.interfaces import DataSplits, MetricInputs
from anytime_bench.contract.plugin_manager import CORE_DISTRIBUTION, Plugins, StandIn
from anytime_bench.engine.config import (
    COMPONENT_TABLES,
    BenchConfig,
    ModelEntry,
    config_from_record,
    data_root_path,
    made_with_clause,
    provided_by,
    unavailable,
)
from anytime_bench.engine.provenance import device_description, git_commit, package_versions
from anytime_bench.errors import (
    AnytimeBenchError,
    CheckpointError,
    CheckpointMismatchError,
    ComponentError,
    ConfigError,
    DataError,
    PluginError,
    first_line,
    short,
    signals_held,
)
from anytime_bench.files import storage
from anytime_bench.files.configfiles import merge
from anytime_bench.store import identity
from anytime_bench.store.record import MAX_RECORD_BYTES, SCHEMA, Record, read_record, run_settings
from anytime_bench.store.rundir import RUN_JSON, RunPaths, check_run_id, new_run_id, now, prior_slot
from anytime_bench.store.tables import read_metrics

T = TypeVar("T")

FINISHED = "done"

PASS_KEYS = ("updated", "versions", "components", "git_commit", "device", "processes", "train_workers",
             "stage_seconds", "wall_seconds", "status", "stage", "failure", "finished", "interrupted", "last_failure")
"""What a pass over a run folder (``run`` or ``train``) records of itself, and a later pass would write over."""

MAX_PASSES = 50
"""Earlier passes a record keeps (the first and the latest): a run restarted by a scheduler many times stays small."""

PREFLIGHT_ITEMS = 8
"""Real test items each metric of generated samples scores at preflight, as if they were samples (a metric of
reconstructions scores the whole test split as its reconstructions)."""


MAX_ITEM_VALUES = 2**25
"""No data item a run records holds more values: the audio reader's limit for one file (2**25 samples), an RGB
image of 3344 x 3344 pixels. A recorded shape is refused above it before anything is built from it."""


@dataclass(frozen=True)
class DataFacts:
    """What the stages need to know of the data without loading it again."""

    modality: str
    data_shape: tuple[int, ...]
    sample_rate: int | None = None
    items: tuple[int, int] | None = None
    """Train and test items, where known: a dataset that loads other numbers of them is not the run's data."""

    def as_info(self) -> dict[str, Any]:
        """What a modality is told of the data (``splits_info``)."""
        return {"modality": self.modality, "data_shape": list(self.data_shape), "sample_rate": self.sample_rate}

    def recorded(self) -> dict[str, Any]:
        """What the run's record holds of the data."""
        return self.as_info() | ({} if self.items is None else {"items": list(self.items)})

    def other_data(self, loaded: DataFacts) -> str | None:
        """How ``loaded`` (the data as loaded now) differs from the data these facts recorded, or None."""
        if None not in (self.items, loaded.items) and loaded.items != self.items:
            return (f"{loaded.items[0]} train and {loaded.items[1]} test items, where the run was trained on "
                    f"{self.items[0]} and {self.items[1]}")
        if loaded.data_shape != self.data_shape:
            return f"items of shape {list(loaded.data_shape)}, where the run's were {list(self.data_shape)}"
        return None


def make_context(cfg: BenchConfig, device: torch.device, quiet: bool) -> RunContext:
    """This process's context; under torchrun it joins the process group first."""
    topology, device = init_from_env(device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # torch-fidelity moves its extractors with .cuda(): the current device
    return RunContext(device=device, seed=cfg.run.seed, cache_dir=cfg.run.cache_path, quiet=quiet, topology=topology,
                      precision=cfg.run.precision)


class RunRecord:
    """The run's record: written atomically, merged key by key, read back only through :func:`.record.read_record`
    (parsed, bounded, migrated), never trusted."""

    def __init__(self, path: Path, writes: bool = True):
        self.path = path
        self.writes = writes

    def load(self) -> Record:
        return read_record(self.path)

    def read(self) -> dict[str, Any]:
        return self.load().state

    def update(self, **changes: Any) -> None:
        """Merge ``changes`` into the record, table by table."""
        self._write(lambda state: merge(state, changes))

    def replace(self, **changes: Any) -> None:
        """Set whole keys (a table written anew, not merged into the one recorded: a floor no longer given goes)."""
        self._write(lambda state: {**state, **changes})

    def new_pass(self, state: dict[str, Any]) -> None:
        """A run resumed (``run`` or ``train`` again on its folder): what the last pass recorded of itself, which
        this one writes anew (its versions, its stage times, how it ended), is kept in ``passes``, and the stage
        times start afresh. The first pass, which trained most, and the latest ones are kept."""
        def moved(state: dict[str, Any]) -> dict[str, Any]:
            earlier = {key: state.pop(key) for key in PASS_KEYS if key in state}
            passes = state.get("passes") if isinstance(state.get("passes"), list) else []
            state["passes"] = passes[:1] + passes[1:][-(MAX_PASSES - 2):] + [earlier] if earlier else passes
            return state
        self._write(moved)

    def _write(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        if not self.writes:
            return
        state = change(self.read() if self.path.is_file() else {})
        state["updated"] = now()
        text = json.dumps(state, indent=2, default=str) + "\n"
        if len(text.encode()) > MAX_RECORD_BYTES:  # read back refused above it: compact, or refused before writing
            text = json.dumps(state, separators=(",", ":"), default=str) + "\n"
            if len(text.encode()) > MAX_RECORD_BYTES:
                raise ConfigError(f"{self.path} would grow larger than {MAX_RECORD_BYTES // 2**20} MB, which no run "
                                  "writes: it holds more than a run records (remove what it should not hold)")
        storage.write_text(self.path, text)


class Run:
    """A run folder and everything the stages share. Build it with :meth:`prepare` (a new or resumed run) or
    :meth:`open` (an existing run folder)."""

    def __init__(self, cfg: BenchConfig, plugins: Plugins, paths: RunPaths, ctx: RunContext,
                 facts: DataFacts | None = None):
        self.cfg = cfg
        self.plugins = plugins
        self.paths = paths
        self.ctx = ctx
        self.record = RunRecord(paths.run_json, writes=ctx.is_main)
        self.facts = facts
        self.recorded_data = facts
        """What the run's record holds of its data (:meth:`open`, or a run resumed: :meth:`check_folder`): data that
        loads otherwise is not the run's (:meth:`data`)."""
        self._splits: DataSplits | None = None
        self._modality: BoundModality | None = None
        self._encoders: dict[str, BoundEncoder] = {}
        self._lock: Any = None
        self.preflight_seconds: float | None = None
        self.finished_before = False
        """Whether the run had finished before this process began on it (:meth:`begin` marks it running first) and
        this process works on it as an extra command, which leaves it finished whatever happens (a whole run done
        again, ``run --redo``, is not one: :func:`~anytime_bench.engine.pipeline.execute`)."""
        self.left_as_is = False
        """Found finished and not begun: a ``run`` of it has nothing to do (:meth:`done_before`)."""
        self.begun = False
        """A pass of ``run`` or ``train`` over the run (:meth:`begin`), not a command on its folder (``sample``,
        ``evaluate``, ``bench``), which leaves a run that had finished or stopped as it was."""
        self.dataset_aside: str | None = None
        """Why the run's dataset, which this command reads nothing of, cannot be loaded here (:meth:`open`)."""
        self.warnings: list[str] = []
        """What a stage found that the user must hear even with ``--quiet``: the command prints each on stderr."""

    # ------------------------------------------------------------------ opening

    @classmethod
    def prepare(cls, cfg: BenchConfig, plugins: Plugins, out: Path, run_id: str | None, quiet: bool) -> Run:
        """A run to start or resume in ``out/<run-id>``; nothing is written until :meth:`begin`."""
        if run_id is not None:
            check_run_id(run_id)
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file, not a folder")
        check_local(cfg)
        if run_id is not None and ((out / run_id / RUN_JSON).is_file() or (out / run_id / RUN_JSON).is_symlink()):
            # A run to resume: its record is read and checked now, as a reopened run's is, rather than after the
            # data are loaded and every component exercised (seconds) or a process group joined.
            validated(read_record(out / run_id / RUN_JSON), out / run_id / RUN_JSON, plugins, {})
        ctx = make_context(cfg, resolve_device(cfg.run.device), quiet)
        # Under torchrun every rank must name the same folder: rank 0's timestamp decides.
        name = broadcast_object(run_id or new_run_id(cfg.run.dataset))
        return cls(cfg, plugins, RunPaths(out / name), ctx)

    @classmethod
    def open(cls, path: Path, plugins: Plugins, *, quiet: bool, device: str | None = None,
             data_root: str | None = None, cache_dir: str | None = None, flags: dict[str, Any] | None = None,
             set_aside: bool = False, metrics_aside: bool = False, data: bool = True) -> Run:
        """An existing run folder, its record validated; paths on this machine come from the caller, not from it
        (``flags`` give the components' machine-local options, ``{"--some-flag": path}``). With ``set_aside``, the
        models whose encoder or prior cannot be loaded here are left out (``cfg.set_aside`` says which and why), and
        the others are opened; with ``metrics_aside``, for commands that score nothing, metrics likewise. Without
        ``data``, for commands that read no data, a dataset that cannot be loaded here is stood in for by what the
        run recorded of it (:attr:`dataset_aside` says why; :meth:`data` refuses)."""
        paths = RunPaths(Path(path))
        record = _run_record(paths)
        state = record.state
        plugins, dataset_aside = (plugins, None) if data else _dataset_stood_in(state, plugins)
        cfg = validated(record, paths.run_json, plugins, {"data_root": data_root, "cache_dir": cache_dir}, flags,
                        set_aside, metrics_aside)
        if device is not None:
            cfg.run.device = device
        check_local(cfg)
        facts = _data_facts(state.get("data"), paths.run_json, plugins)
        run = cls(cfg, plugins, paths, make_context(cfg, resolve_device(cfg.run.device), quiet), facts)
        run.dataset_aside = dataset_aside
        return run

    @classmethod
    def for_worker(cls, cfg: BenchConfig, plugins: Plugins, root: Path) -> Run:
        """The run as a training worker process sees it: it trains and saves checkpoints, the parent records."""
        run = cls(cfg, plugins, RunPaths(root), make_context(cfg, resolve_device(cfg.run.device), quiet=True))
        run.record.writes = False
        return run

    @functools.cached_property
    def made_by(self) -> dict[str, str]:
        """The commit and version of the code this process runs (looked up once: git runs in a subprocess)."""
        return {"git_commit": git_commit(), "anytime-bench": package_versions().get("anytime-bench", "?")}

    def selected(self) -> list[tuple[str, str]]:
        """``(kind, name)`` of every component the run uses: its dataset, its models' encoders and priors, its
        metrics."""
        cfg = self.cfg.run
        return [("dataset", cfg.dataset)] + [("encoder", m.encoder) for m in self.cfg.models] + [
            ("prior", m.prior) for m in self.cfg.models] + [("metric", m) for m in cfg.metrics]

    def components_used(self) -> dict[str, dict[str, str]]:
        """kind -> name -> the distribution and version that provided each selected component: what to install
        again if a later machine lacks it."""
        out: dict[str, dict[str, str]] = {}
        for kind, name in self.selected():
            out.setdefault(kind, {})[name] = self.provider(kind, name)
        return out

    def in_process_plugins(self) -> bool:
        """Whether a selected component comes from a plugin registered in this process only (not an entry point):
        worker processes could not load it."""
        return any(self.plugins.get(kind, name).origin.distribution == "(in-process)"
                   for kind, name in self.selected())

    def check_folder(self) -> None:
        """Whether :meth:`begin` could take the run folder, told before the data is loaded and the components are
        tried out (which takes seconds and may train a metric's feature extractor): a folder that is not a run
        folder, a run of another config or with a record it would refuse, one that cannot be created or written,
        or one another process works on. Nothing is written; :meth:`begin` checks again when it takes the
        folder. Under torchrun rank 0 checks, and what it refuses stops every rank."""
        self._on_main(self._check_folder)

    def _on_main(self, work: Callable[[], None]) -> None:
        """``work`` on rank 0 alone; under torchrun its one-line error stops every rank with the same line (the
        others would wait for rank 0 at their next collective, and fail there on a lost connection)."""
        problem = None
        if self.ctx.is_main:
            try:
                work()
            except AnytimeBenchError as exc:
                problem = exc
        said = broadcast_object(None if problem is None else str(problem))
        if problem is not None:
            raise problem
        if said is not None:
            echo = ConfigError(said)
            echo.rank_0_said = True  # type: ignore[attr-defined]  # rank 0 says it: the CLI leaves it to rank 0
            raise echo

    def _check_folder(self) -> None:
        root = self.paths.root
        resuming = self.paths.run_json.is_file() or self.paths.run_json.is_symlink()
        if not resuming and root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ConfigError(f"{root} exists and is not a run folder; choose another --run-id")
        existing = next((folder for folder in (root, *root.parents) if folder.exists()), None)
        if existing is not None and not existing.is_dir():
            raise ConfigError(f"cannot create the run folder {root}: {existing} is not a folder")
        if existing is not None and not writable(existing):
            raise ConfigError(f"cannot write to the run folder {root}: permission denied")
        if resuming:
            previous = self.record.load()
            # Resumed only once the record holds what a reopened run would accept: a crafted config or data block
            # whose identity still matches would otherwise be taken in and merged into the record.
            validated(previous, self.paths.run_json, self.plugins, {})
            self.resume_identity(previous)
            self.recorded_data = _data_facts(previous.state.get("data"), self.paths.run_json, self.plugins)
            if self._splits is not None:  # loaded before the folder was checked (the preflight): checked now
                self._check_data(self.facts)
            if self.paths.lock.is_file() and not self.paths.lock.is_symlink():
                self.lock()  # refused here if another process holds it; released until begin takes it
                self.close()

    def done_before(self) -> bool:
        """Whether the folder holds this run finished, its results written and readable: a ``run`` of it has
        nothing left to do (one whose ``metrics.csv`` is gone, unreadable or empty resumes, and writes it again).
        Asked once :meth:`check_folder` has checked the record and that it holds this config."""
        done = False
        state = self.record.read() if self.ctx.is_main and self.paths.run_json.is_file() else {}
        if state.get("status") == FINISHED and self.paths.metrics_csv.is_file():
            frame = read_metrics(self.paths.metrics_csv, [], run_settings=run_settings(state))  # as results are read
            done = frame is not None and len(frame) > 0
        return bool(broadcast_object(done))

    def begin(self) -> None:
        """Create (or reopen, to resume) the run folder and record how this run was made."""
        cfg, ctx = self.cfg, self.ctx
        self.begun = True
        self._on_main(self._take_folder)
        # Under torchrun every rank keys its checkpoints on rank 0's identity.
        cfg.baseline = broadcast_object(cfg.baseline)
        state = self.record.read() if ctx.is_main and self.paths.run_json.is_file() else {}
        self.finished_before = state.get("status") == FINISHED
        if state:
            self.record.new_pass(state)
        form = cfg.canonical()
        self.record.update(
            schema=SCHEMA,
            run_id=self.paths.run_id,
            config=cfg.to_dict(),
            identity=form,
            config_digest=identity.run_digest(form),
            seeds={"train": cfg.run.train_seed_list, "sample": cfg.run.sample_seed_list},
            versions=package_versions(self.plugins),
            components=self.components_used(),
            git_commit=git_commit(),
            device=device_description(ctx.device),
            processes=ctx.topology.world_size,
            created=state.get("created", now()),
            local={"data_root": cfg.run.data_root, "cache_dir": str(cfg.run.cache_path)},
        )
        # Whole, not merged: an option renamed or dropped since the run began must not stay beside its successor.
        self.record.replace(config=cfg.to_dict(), identity=form)
        self.mark_running("prepare")
        if self.preflight_seconds is not None:
            self.record.update(stage_seconds={"preflight": self.preflight_seconds})
        if self.facts is not None:
            self.record.update(data=self.facts.recorded())

    def _take_folder(self) -> None:
        root = self.paths.root
        self._check_folder()  # again: the folder may have changed hands while the preflight ran
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the run folder {root}: {exc.strerror}") from None
        if not writable(root):
            raise ConfigError(f"cannot write to the run folder {root}: permission denied")
        self.lock()

    def resume_identity(self, previous: Record) -> None:
        """Resume only the run this config describes: the same identity, reckoned against the defaults the run
        recorded (an option added since, at its default, changes nothing; a default changed since does)."""
        self.cfg.baseline = previous.identity
        if self.cfg.digest() != previous.digest:
            difference = identity.first_difference(previous.identity, self.cfg.canonical())
            where = difference.split(":", 1)[0].split(".")
            if len(where) == 3:  # an option renamed since the run was made: named as a config names it now
                new = {old: new for new, old in self.cfg.recorded[0].get((where[0], where[1]), {}).items()}
                if where[2] in new:
                    difference = f"{where[0]}.{where[1]}.{new[where[2]]}{difference[len('.'.join(where)):]}"
            labels = recorded_models(previous.state.get("config")) or []
            difference += self.default_changed(where, previous)
            some = (f" (or, to work on some of its models, `anytime-bench sample|evaluate|bench {self.paths.root} "
                    f"--models {','.join(self.models)}`)" if set(self.models) < set(map(str, labels))
                    and difference.startswith(("run.encoders", "model")) else "")
            raise ConfigError(f"{self.paths.root} holds a run of another config ({difference or 'another identity'}); "
                              f"choose another --run-id{some}")

    def default_changed(self, where: list[str], previous: Record) -> str:
        """Where the option at ``where`` (``run.key`` or ``kind.name.key``) that stops a resume is at a default that
        is not the one the run was made with (an upgrade of the core or of the plugin changed it): what to set to
        resume the run, and the versions; else nothing."""
        def at(tables: Any) -> Any:
            for part in where:
                tables = tables.get(part, _MISSING) if isinstance(tables, dict) else _MISSING
            return tables

        now, default = at(self.cfg.to_dict()), at(self.cfg.defaults())
        was = at(previous.identity.get("defaults"))
        wanted = at(previous.identity.get("set"))
        wanted = was if wanted is _MISSING else wanted
        if len(where) not in (2, 3) or now is _MISSING or now != default or was is _MISSING or was == default:
            return ""
        if len(where) == 3 and where[0] in COMPONENT_TABLES:
            made = (previous.state.get("components") or {}).get(where[0], {})
            made = made.get(where[1]) if isinstance(made, dict) else None
            here = self.provider(where[0], where[1])
        else:  # a [run] option: the core's default
            made = (previous.state.get("versions") or {}).get(CORE_DISTRIBUTION)
            made = f"{CORE_DISTRIBUTION} {made}" if isinstance(made, str) else None
            here = f"{CORE_DISTRIBUTION} {package_versions(None).get(CORE_DISTRIBUTION, '?')}"
        versions = f", {here} now" + (f", {str(made)[:80]} in the run" if isinstance(made, str) and made != here
                                      else "")
        value, key = json.dumps(wanted), ".".join(where)
        if len(value) > 80:  # not a line to paste: where to read it
            ask = f"set {key} to the value the run recorded (`anytime-bench config --of-run {self.paths.root}`)"
        else:
            ask = (f"--set {shlex.quote(f'{key}={value}')} (or {where[-1]} = {value} in the config's "
                   f"[{'.'.join(where[:-1])}])")
        return f"; the default changed since the run was made{versions}: ask for the old value to resume it, {ask}"

    def mark_running(self, stage: str) -> None:
        """The record says which process works on the run; with the lock, ``runs`` tells a live run from a dead one."""
        self.record.update(status="running", stage=stage,
                           process={"pid": os.getpid(), "host": socket.gethostname()[:255], "since": now()})

    def lock(self, new_run: bool = True) -> None:
        """Refuse a second process working on the same run folder at the same time (``new_run``: ``run`` or
        ``train``, which may choose another folder)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        path = self.paths.lock
        # No link followed, no wait on a pipe: a run folder from someone else may hold either as its lock file.
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as exc:
            # the folder is not writable: nothing to remove (a lock file of another user's, where it is, is)
            if exc.errno == errno.EROFS or not os.access(self.paths.root, os.W_OK):
                raise ConfigError(f"{self.paths.root} cannot be written ({exc.strerror}): this command writes into "
                                  "the run folder; copy it somewhere writable first") from None
            raise ConfigError(f"{path} cannot be opened as the run's lock file ({exc.strerror}); remove it") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ConfigError(f"{path} is not a regular file, so it cannot be the run's lock file; remove it")
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ConfigError(f"{self.paths.root} is in use by another anytime-bench process; wait for it to "
                              "finish" + (" or choose another --run-id" if new_run else "")) from None
        self._lock = handle

    def close(self) -> None:
        """Release the run folder's lock."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ data

    @property
    def writes(self) -> bool:
        return self.ctx.is_main

    def data(self) -> DataSplits:
        """The dataset's splits, loaded once per process and checked."""
        if self._splits is None:
            cfg = self.cfg.run
            component = self.plugins.get("dataset", cfg.dataset)
            if issubclass(component.cls, StandIn):
                raise ConfigError(f"dataset {cfg.dataset!r} cannot be loaded here: {component.cls.reason}")
            root = data_root_path(cfg.data_root)
            dataset = BoundDataset.build(component, self.cfg.component_config("dataset", cfg.dataset), root,
                                         cfg.cache_path / "datasets")
            splits = dataset.load(self.plugins.names("modality"))
            if cfg.reference_split == "validation" and splits.validation is None:
                raise DataError(f"run.reference_split = \"validation\": dataset {cfg.dataset!r} holds no validation "
                                f"split as configured (`anytime-bench plugins {cfg.dataset}` says whether an option "
                                f"keeps one)")
            loaded = DataFacts(splits.modality, tuple(splits.data_shape), splits.sample_rate,
                               (len(splits.train), len(splits.test)))
            self._check_data(loaded)
            self._splits = splits
            self.facts = loaded
        return self._splits

    def _check_data(self, loaded: DataFacts | None) -> None:
        """Refuse data that is not what the run recorded of its own (another folder, or files added since): trained
        on one split and scored on another, its numbers would replace the run's under its name."""
        differs = None if self.recorded_data is None or loaded is None else self.recorded_data.other_data(loaded)
        if differs:
            raise DataError(f"dataset {self.cfg.run.dataset!r} now loads {differs}: it is not this run's data (another "
                            "--data-root, or files changed since); point --data-root at the run's data")

    def data_facts(self) -> DataFacts:
        """Modality, item shape and sample rate: from the loaded data, else from the run's record."""
        if self.facts is None:
            self.data()
        assert self.facts is not None
        return self.facts

    def modality(self) -> BoundModality:
        if self._modality is None:
            name = self.data_facts().modality
            component = self.plugins.get("modality", name)
            config = self.cfg.options.get("modality", {}).get(name) or component.cls.Config()
            self._modality = BoundModality.build(component, config)
        return self._modality

    def reference_split(self, generated: bool) -> str:
        """The name of the split a metric compares with: the configured one for generated samples, else the test
        split (reconstructions and likelihoods are of the test split's own items)."""
        return self.cfg.run.reference_split if generated else "test"

    def reference(self, generated: bool) -> tuple[Any, str]:
        """The real data a metric compares with, and the name of its split."""
        splits = self.data()
        split = self.reference_split(generated)
        return {"train": splits.train, "test": splits.test, "validation": splits.validation}[split], split

    # ------------------------------------------------------------------ components

    def in_recorded_order(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame``'s rows, its models in the order the run's recorded config lists them (models set aside included,
        which :attr:`models` leaves out), each model's rows in their order."""
        listed = recorded_models(self.record.read().get("config")) if self.paths.run_json.is_file() else None
        order = {label: i for i, label in enumerate(listed if listed is not None else self.models)}
        rank = [order.get(label, len(order)) for label in frame.model]
        return frame.iloc[sorted(range(len(frame)), key=rank.__getitem__)].reset_index(drop=True)

    @property
    def models(self) -> list[str]:
        """The labels of the run's model entries, in the config's order."""
        return [entry.label for entry in self.cfg.models]

    def entry(self, label: str) -> ModelEntry:
        return self.cfg.model(label)

    @property
    def encoders(self) -> list[str]:
        """The trained encoders the entries use, by key (:meth:`.EncoderInstance.key`: an encoder's name, or with an
        entry's own options its instance), each once, in the order entries first name them."""
        return list(dict.fromkeys(self.cfg.instance(entry) for entry in self.cfg.models))

    def entries_of(self, encoder: str) -> list[ModelEntry]:
        """The entries that use trained encoder ``encoder`` (a key of :attr:`encoders`)."""
        return [entry for entry in self.cfg.models if self.cfg.instance(entry) == encoder]

    def slot(self, entry: ModelEntry) -> str:
        """Which of its encoder's priors ``entry`` samples (:func:`.rundir.prior_slot`)."""
        options = self.cfg.spelled("prior", entry.prior, entry.prior_options)  # as the run recorded them
        return prior_slot(entry.prior, self.cfg.run.prior, identity.digest(options)[:8] if options else "")

    def priors_of(self, encoder: str) -> dict[str, ModelEntry]:
        """The distinct priors trained on ``encoder``'s codes: slot -> the first entry that uses it."""
        out: dict[str, ModelEntry] = {}
        for entry in self.entries_of(encoder):
            out.setdefault(self.slot(entry), entry)
        return out

    def encoder(self, instance: str, device: torch.device | None = None, tokens: int | None = None) -> BoundEncoder:
        """A freshly built, untrained encoder ``instance`` (a key of :attr:`encoders`; its initial weights are not
        seeded here); ``tokens`` builds that member of a per-budget model."""
        found = self.cfg.encoder_of(instance)
        return BoundEncoder.build(self.plugins.get("encoder", found.name), found.config, self.data_facts().data_shape,
                                  device or self.ctx.device, tokens=tokens)

    def members(self, encoder: str) -> list[int | None]:
        """The separately trained members of an encoder: ``[None]`` for an ordinary one, whose prefixes serve every
        budget; for a per-budget model, the token count of each budget it covers."""
        shape = self.shape_of(encoder)
        if not shape.per_budget:
            return [None]
        return sorted({tokens_for(b, shape.code_length) for b in shape.covered_budgets(self.cfg.run.budgets)})

    def budgets_of(self, encoder: str) -> list[float]:
        """The budgets at which the models with ``encoder`` are sampled and scored."""
        shape = self.shape_of(encoder)
        return shape.covered_budgets(self.cfg.run.budgets) if shape.per_budget else list(self.cfg.run.budgets)

    def shape_of(self, encoder: str) -> BoundEncoder:
        """Encoder ``encoder`` built once on the CPU, for its code length, codebook size and order."""
        if encoder not in self._encoders:
            self._encoders[encoder] = self.encoder(encoder, torch.device("cpu"))
        return self._encoders[encoder]

    def prior(self, encoder: BoundEncoder, entry: ModelEntry) -> BoundPrior:
        """The prior of ``entry`` for ``encoder``'s codes, given its code vectors if it reads them."""
        component = self.plugins.get("prior", entry.prior)
        prior = BoundPrior.build(component, self.cfg.prior_configs[entry.label], encoder.codebook_size,
                                 encoder.code_length, self.ctx.device)
        vectors = encoder.code_vectors()
        try:
            prior.use_code_vectors(vectors)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (model {entry.label!r})") from None
        return prior

    def metrics(self) -> list[BoundMetric]:
        return [BoundMetric.build(self.plugins.get("metric", name), self.cfg.component_config("metric", name))
                for name in self.cfg.run.metrics]

    @property
    def scores_likelihood(self) -> bool:
        """Whether a metric of the run scores the priors' likelihood of the test codes (then sampling keeps it): a
        metric set aside does where the run recorded so, or recorded nothing of it."""
        if any(getattr(self.plugins.get("metric", name).cls, "requires", None) == "likelihood"
               for name in self.cfg.run.metrics):
            return True
        if not self.cfg.metrics_set_aside:
            return False
        recorded = self.record.read().get("metric_requires") if self.paths.run_json.is_file() else None
        recorded = recorded if isinstance(recorded, dict) else {}
        return any(recorded.get(name, "likelihood") == "likelihood" for name in self.cfg.metrics_set_aside)

    def encoder_digest(self, encoder: str, train_seed: int, tokens: int | None = None) -> str:
        """What decides the weights of encoder ``encoder`` (a key of :attr:`encoders`): the data, the training seed
        and its own options (:mod:`.identity`)."""
        found = self.cfg.encoder_of(encoder)
        return identity.encoder_digest(self.cfg.canonical(), self.cfg.run.dataset, found.name, train_seed, tokens,
                                       self.cfg.spelled("encoder", found.name, found.changes))

    def prior_digest(self, entry: ModelEntry, train_seed: int, tokens: int | None = None) -> str:
        return identity.prior_digest(self.cfg.canonical(), self.encoder_digest(self.cfg.instance(entry), train_seed, tokens),
                                     entry.prior, self.cfg.spelled("prior", entry.prior, entry.prior_options))

    def fit_context(self, encoder: str, train_seed: int, kind: str, digest: str, ledger: Ledger,
                    tokens: int | None = None, slot: str = "") -> RunContext:
        """The context one fit gets: its training seed, its own checkpoint folder, a ledger of the data it drew."""
        checkpoints = LoopCheckpoints(self.paths.partial(encoder, train_seed, kind, tokens, slot), digest,
                                      self.cfg.run.checkpoint_every, self.writes)
        return replace(self.ctx, seed=train_seed if kind == "encoder" else train_seed + 1, checkpoints=checkpoints,
                       ledger=ledger)

    def load_trained(self, label: str, train_seed: int, tokens: int | None = None) -> tuple[BoundEncoder, BoundPrior]:
        """The encoder and prior of model ``label`` (or of its member for ``tokens`` codes) as trained with
        ``train_seed``, from their checkpoints."""
        entry = self.entry(label)
        key = self.cfg.instance(entry)

        def restore(bound: Bound, kind: str, digest: str, slot: str = "") -> None:
            path = self.paths.checkpoint(key, train_seed, kind, tokens, slot)
            try:
                payload = storage.load_checkpoint(path, kind=kind, name=key, config_digest=digest)
            except CheckpointError as exc:
                if os.path.lexists(path):
                    raise
                # deleted since: a finished run's `run` leaves it missing; what trains it again is worth saying
                raise CheckpointError(f"{exc}: `anytime-bench run --redo` on the run's config (`anytime-bench "
                                      f"config --of-run {self.paths.root}` prints it) trains it again") from None
            bound.load_saved(payload["state"], path)

        encoder = self.encoder(key, tokens=tokens)
        restore(encoder, "encoder", self.encoder_digest(key, train_seed, tokens))
        prior = self.prior(encoder, entry)
        restore(prior, "prior", self.prior_digest(entry, train_seed, tokens), self.slot(entry))
        return encoder, prior

    def only(self, labels: list[str]) -> None:
        """Work on the models ``labels`` only (``--models``); the others are left out
        (:attr:`.BenchConfig.left_out`), and what the folder holds of them is kept."""
        for label in labels:
            if label in self.cfg.set_aside:
                raise ConfigError(f"--models: model {short(label, 40)} cannot be loaded here: "
                                  f"{self.cfg.set_aside[label]}")
            if label not in self.models:
                raise ConfigError(f"--models: no model labelled {short(label, 40)} (models: {', '.join(self.models)})")
        self.cfg = self.cfg.without([label for label in self.models if label not in labels])

    def set_aside_unusable(self, trained: bool) -> None:
        """Set aside the models that an upgraded plugin no longer builds, or whose checkpoints it no longer takes:
        what a record cannot show before something is built (:func:`.config.without_unavailable` sets aside what it
        can). Each model's encoder is built here, and with ``trained`` (the commands that load weights) each of its
        trained members is loaded. A model set aside joins ``cfg.set_aside`` with why, and the others are worked on.

        Only an upgrade's failure sets a model aside: its component comes from another version of its distribution
        than a pass over the run recorded (:meth:`made_with`). At the same version a constructor that raises is the
        plugin's fault or the machine's, and a checkpoint that does not fit is the file's; a checkpoint that is
        missing or of another config is the folder's. Those, and a failure every model would share, are left to the
        stage, which fails on them as it always did and records the failure."""
        why: dict[str, str] = {}
        for entry in self.cfg.models:
            key = self.cfg.instance(entry)
            try:
                self.shape_of(key)
                for train_seed in self.cfg.run.train_seed_list if trained else []:
                    for tokens in self.members(key):
                        self.load_trained(entry.label, train_seed, tokens)
            except (ComponentError, ConfigError, CheckpointMismatchError) as exc:
                kind, name = getattr(exc, "component", (None, None))
                made = self.made_with(kind, name) if kind else []
                if all(provider == self.provider(kind, name) for provider in made):
                    continue  # the version the run was made with, or a record that cannot say: not an upgrade's
                why[entry.label] = (("" if isinstance(exc, CheckpointError) else "it cannot be built here: ")
                                    + first_line(exc) + made_with_clause(made[0]))
            except CheckpointError:
                continue
        if why and len(why) < len(self.cfg.models):
            self.cfg = self.cfg.without(why)

    def provider(self, kind: str, name: str) -> str:
        """The distribution and version that provide component ``name`` of ``kind`` here."""
        origin = self.plugins.get(kind, name).origin
        return f"{origin.distribution} {origin.version}"

    def made_with(self, kind: str, name: str) -> list[str]:
        """The distributions and versions that provided component ``name`` of ``kind`` to the passes over the run
        (``run`` or ``train``, resumed: :meth:`RunRecord.new_pass`), earliest first, as its record says
        (:meth:`components_used`; a run recorded before that, by the versions of its packages); none where it does
        not say."""
        state = self.record.read() if self.paths.run_json.is_file() else {}
        distribution = self.plugins.get(kind, name).origin.distribution
        out: list[str] = []
        passes = state.get("passes") if isinstance(state.get("passes"), list) else []
        for recorded in [p for p in passes if isinstance(p, dict)] + [state]:
            found = recorded.get("components")
            found = found.get(kind) if isinstance(found, dict) else None
            versions = recorded.get("versions")
            version = versions.get(distribution) if isinstance(versions, dict) else None
            provider = (found[name] if isinstance(found, dict) and isinstance(found.get(name), str) else
                        f"{distribution} {version}" if isinstance(version, str) else None)
            if provider is not None and provider not in out:
                out.append(provider)
        return out

    def preflight(self) -> None:
        """Exercise every selected component once at the run's real shapes, before any training: each model's
        untrained encoder round-trips two real examples, its untrained prior streams two full-length sequences with
        the run's sampling settings (on the run's device) and samples them (its own ``sample``, where it has one),
        the state of each is one that a checkpoint can hold and read back, and each metric checks what it needs
        (weights files, labels) and scores real test items as if they were samples (:data:`PREFLIGHT_ITEMS`). A
        wrong shape, dtype or range fails here, in seconds, with exit 2 naming the component, the method and what
        came back against what was expected. What a metric builds on the way (a feature extractor, reference
        features) is cached for the evaluation; the seconds it took are recorded (``stage_seconds.preflight``)."""
        started = time.perf_counter()
        splits = self.data()
        cfg = self.cfg.run
        metrics = self.metrics()
        likelihood = [m.name for m in metrics if m.likelihood]
        scores: torch.Tensor | None = None  # the untrained priors' log-probabilities, for metrics of likelihoods
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the seeded stream alone
            for name in self.encoders:
                encoder = self.shape_of(name)
                try:
                    codes = encoder.encode(splits.train[:2], "preflight")
                    encoder.decode(codes, "preflight")
                    encoder.check_untrained_state("preflight")  # a state no checkpoint can hold is found before training
                except ComponentError as exc:
                    raise PluginError(f"{exc} (encoder {name!r}, checked before any training)") from None
                for entry in self.entries_of(name):
                    try:
                        prior = self.prior(encoder, entry)
                        prior.check_untrained_state("preflight")
                        for _ in prior.stream(2, encoder.code_length, generator=torch.Generator().manual_seed(0),
                                              **entry.sampling, stage="preflight"):
                            pass
                        if prior.has_sample:  # what bench times; without it, sample() is the stream just tried
                            prior.sample(2, encoder.code_length, generator=torch.Generator().manual_seed(0),
                                         **entry.sampling, stage="preflight")
                        if likelihood and not prior.has_log_prob:
                            raise ConfigError(f"metric {likelihood[0]!r} scores the prior's likelihood of the test "
                                              f"codes, and prior {entry.prior!r} (model {entry.label!r}) gives none "
                                              "(no log_prob): drop the metric or use a prior that has it")
                        if likelihood:
                            scores = prior.log_prob(codes, "preflight")
                    except ComponentError as exc:
                        raise PluginError(f"{exc} (model {entry.label!r}, checked before any training)") from None
        modality = self.modality()
        recorded: dict[str, str] = {}  # measurement -> the metric that records it
        for metric in metrics:
            reference, split = self.reference(metric.generated)
            inputs = MetricInputs(scores if metric.likelihood else splits.test[:2], reference, cfg.dataset, split,
                                  splits, cfg.seed)
            metric.preflight(inputs, self.ctx)
            # Scored the way evaluate scores: stored as the samples archive stores them, read back by the modality;
            # a metric of reconstructions pairs them with the test split item by item, so it gets all of it.
            real = splits.test[:PREFLIGHT_ITEMS] if metric.generated else splits.test
            items = scores if metric.likelihood else modality.from_stored(modality.to_stored(real), "preflight")
            try:
                with torch.random.fork_rng(devices=[]):
                    measured = metric.compute(MetricInputs(items, reference, cfg.dataset, split, splits, cfg.seed),
                                              self.ctx, "preflight")
                    metric.provenance("preflight")
            except ComponentError as exc:
                raise PluginError(f"{exc} (scored on {len(items)} real test items, before any training)") from None
            for name in measured:  # one table row per name: the second metric's values would pass as the first's
                if recorded.setdefault(name, metric.name) != metric.name:
                    raise PluginError(f"metrics {recorded[name]!r} and {metric.name!r} both record a measurement "
                                      f"named {name!r} (a dict result is recorded as <metric>_<key>): leave one out "
                                      "of run.metrics")
        self.preflight_seconds = round(time.perf_counter() - started, 3)

    # ------------------------------------------------------------------ stages

    def stage(self, name: str, fn: Callable[[], T]) -> T:
        """Run one stage, the record saying so. If it fails or is interrupted, the record says where it stopped,
        unless the run had already finished or stopped (a failed extra command never marks a finished run as failed,
        nor hides where a stopped one stopped: it is recorded as ``last_failure``)."""
        state = self._recorded()
        previous = FINISHED if self.finished_before else state.get("status")
        # A command on a run that had finished or stopped leaves it as it was, where it stopped included.
        kept = previous == FINISHED or (not self.begun and previous not in (None, "running"))
        where = state.get("stage")
        if self.writes:
            self.mark_running(name)
        started = time.perf_counter()
        try:
            result = fn()
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            if interrupted and not getattr(exc, "where", ""):
                exc.where = f" in stage {name} of {self.paths.root}"  # type: ignore[attr-defined]
            reason = "interrupted" if interrupted else f"{type(exc).__name__}: {exc}"
            seconds = round(time.perf_counter() - started, 3)
            try:
                with signals_held(getattr(exc, "where", "") or f" in stage {name} of {self.paths.root}"):
                    if kept:
                        self.record.update(status=previous, **({"stage": where} if isinstance(where, str) else {}),
                                           last_failure={"stage": name, "reason": reason[:2000], "at": now()})
                    elif interrupted:
                        self.record.update(status="interrupted", stage=name, interrupted=now(),
                                           stage_seconds={f"{name} (interrupted)": seconds})
                    else:
                        self.record.update(status="failed", stage=name, failure=reason[:2000], finished=now(),
                                           stage_seconds={f"{name} (failed)": seconds})
            except (ConfigError, OSError):
                pass  # the record itself is unreadable or unwritable: the original error matters more
            raise
        if self.writes:  # who made what it wrote: a later version may evaluate a run that an earlier one trained
            self.record.update(stages_by={name: {**self.made_by, "at": now()}})
        if previous == FINISHED or self._status() == "running":
            # An extra command on a finished run leaves it finished (its stage would say "evaluated", say, and a
            # later failure would then mark the run failed); a stage that did not say what it finished leaves the
            # run as it was.
            self.record.update(status=previous or "running", **(
                {"stage": where} if kept and isinstance(where, str) else {}))
        return result

    def seconds_key(self, stage: str) -> str:
        """The key of ``stage_seconds`` under which ``stage`` records its time: its own name where it worked on
        every model, else "<stage> (some models)" (``--models``, or models set aside), which leaves the time of the
        whole stage as it was recorded."""
        return f"{stage} (some models)" if self.cfg.not_worked_on else stage

    def _status(self) -> str | None:
        return self._recorded().get("status")

    def _recorded(self) -> dict[str, Any]:
        """The record as it stands, or nothing where there is none to write to or it cannot be read."""
        if not (self.writes and self.paths.run_json.is_file()):
            return {}
        try:
            return self.record.read()
        except ConfigError:
            return {}


_MISSING = object()


def recorded_models(config: Any) -> list[Any] | None:
    """The labels of the models a recorded config lists, in its order: its entries', or ``run.encoders`` in the
    form without entries; None where it lists none readably."""
    entries = config.get("model") if isinstance(config, dict) else None
    listed = ([e.get("label") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else
              (config.get("run") or {}).get("encoders") if isinstance(config, dict) else None)
    return listed if isinstance(listed, list) else None


def writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def check_local(cfg: BenchConfig) -> None:
    """The machine-local folders a run uses exist as folders (or can be created)."""
    run = cfg.run
    data_root_path(run.data_root)
    cache = run.cache_path
    for folder in (cache, *cache.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(f"the cache folder {cache} cannot be used: {folder} is a file")
            break


def recorded(paths: RunPaths, plugins: Plugins, local: dict[str, Any],
             flags: dict[str, Any] | None = None, set_aside: bool = False,
             metrics_aside: bool = False) -> tuple[dict[str, Any], BenchConfig]:
    """A run folder's record and its config, validated; machine-local keys come from ``local`` and machine-local
    options from ``flags`` (``set_aside``: as :meth:`Run.open`)."""
    record = _run_record(paths)
    return record.state, validated(record, paths.run_json, plugins, local, flags, set_aside, metrics_aside)


def _run_record(paths: RunPaths) -> Record:
    """The record of the run folder ``paths`` names, read (not yet validated); refused where it is no run folder."""
    if not paths.root.is_dir():
        hint = f" (it is a file; its folder is {paths.root.parent})" if paths.root.name == RUN_JSON else ""
        raise ConfigError(f"{paths.root} is not a run folder: "
                          + ("not a folder" + hint if os.path.lexists(paths.root) else "no such folder"))
    return RunRecord(paths.run_json).load()


def _dataset_stood_in(state: dict[str, Any], plugins: Plugins) -> tuple[Plugins, str | None]:
    """``plugins`` with the run's dataset stood in for by what the run recorded of it (``state``) where the dataset
    cannot be loaded here (:meth:`.Plugins.standing_in`), and why it cannot; ``plugins`` as they are, and None,
    where it can or where the record does not say (validating the record then refuses it, with its own message)."""
    config = state.get("config") if isinstance(state.get("config"), dict) else {}
    if not isinstance(state.get("data"), dict):
        return plugins, None  # a run that never loaded its data: what it would need of the dataset is not recorded
    name = config.get("run", {}).get("dataset") if isinstance(config.get("run"), dict) else None
    reason = unavailable(plugins, "dataset", name)
    tables = config.get("dataset") if isinstance(config.get("dataset"), dict) else {}
    options = tables.get(name, {}) if isinstance(name, str) else None
    if reason is None or not isinstance(options, dict):
        return plugins, None
    reason += provided_by(state.get("components"), "dataset", name)
    stood = plugins.standing_in("dataset", name, options, reason)
    return (plugins, None) if stood is None else (stood, reason)


def validated(record: Record, where: Path, plugins: Plugins, local: dict[str, Any],
              flags: dict[str, Any] | None = None, set_aside: bool = False, metrics_aside: bool = False) -> BenchConfig:
    """The config a record holds, with its data facts checked too: every command that reopens or resumes a run
    folder refuses the same records, whichever of the two it uses."""
    state = record.state
    if "config" not in state:
        raise ConfigError(f"{where} has no 'config'")
    try:
        cfg = config_from_record(state["config"], plugins, local, flags, set_aside, record.identity, metrics_aside,
                                 state.get("components"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: the recorded config cannot be used here: {exc}") from None
    _data_facts(state.get("data"), where, plugins)
    cfg.baseline = record.identity
    return cfg


def _data_facts(data: Any, where: Path, plugins: Plugins) -> DataFacts | None:
    """The recorded data facts, validated; None when the run has not loaded its data yet."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: 'data' must be an object")
    modality, shape, rate = data.get("modality"), data.get("data_shape"), data.get("sample_rate")
    if not isinstance(modality, str) or modality not in plugins.names("modality"):
        raise ConfigError(f"{where}: data.modality {str(modality)[:40]!r} is not a registered modality")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 5
            or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 10**7 for n in shape)):
        raise ConfigError(f"{where}: data.data_shape must be a list of 1-5 positive integers")
    if math.prod(shape) > MAX_ITEM_VALUES:
        # Models are built from it before any checkpoint is read: 10**14 values asked the encoder for petabytes.
        raise ConfigError(f"{where}: data.data_shape {shape} holds {math.prod(shape):.3g} values an item, more than "
                          f"any data a run reads ({MAX_ITEM_VALUES})")
    if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool) or not 1 <= rate <= 10**7):
        raise ConfigError(f"{where}: data.sample_rate must be a positive integer or null")
    items = data.get("items")  # recorded since 2026-12-07
    if items is not None and (not isinstance(items, list) or len(items) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 10**12 for n in items)):
        raise ConfigError(f"{where}: data.items must be the numbers of train and test items")
    return DataFacts(modality, tuple(shape), rate, None if items is None else (items[0], items[1]))

