"""Comparison reports across run folders: gather, statistics, figures, render.

Reads only the ``results/<run-id>/`` contract (:mod:`anytime_bench.store.rundir`: the
tables, the record, the sample grid, exported items), so it works on runs made by any version that
keeps it, and on runs of third-party plugins. Run folders may come from
others: every file is validated, nothing is unpickled, no link is followed out
of a run folder, and everything written stays inside ``--out``.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from anytime_bench.analysis.report.figures import Entry, datasets, entries, figures, overview_plot
from anytime_bench.analysis.report.gather import (
    Gathered,
    distinct_folders,
    load_run,
    name_apart,
    shown,
    split_changed_defaults,
    split_repeated_seeds,
)
from anytime_bench.analysis.report.leaderboard import board_table, floor_lines, leaderboard, provenance_table, recorded_floors
from anytime_bench.analysis.report.render import Figure, Page, write
from anytime_bench.analysis.stats import LEVEL
from anytime_bench.analysis.tradeoffs import EQUAL_QUALITY
from anytime_bench.errors import AnytimeBenchError, ConfigError, first_line
from anytime_bench.files.storage import staging_name
from anytime_bench.store.record import read_record
from anytime_bench.store.rundir import METRICS_CSV, REAL_EXPORTS, RUN_JSON, ReportPaths, RunPaths
from anytime_bench.store.tables import headline_measurement

MAX_MEDIA_BYTES = 2 * 2**20
"""An exported item larger than this is not embedded (the page stays one reasonably sized file)."""
_EXPORTED = re.compile(r"budget(?P<budget>\d+(?:\.\d+)?(?:e-?\d+)?)-tokens(?P<tokens>\d+)-0\.[A-Za-z0-9]{1,8}")
"""An exported item's name as :meth:`RunPaths.export` writes it (``budget0.25-tokens4-0.flac``; ``:g`` numbers)."""


def media(runs: list[Gathered]) -> list[tuple[str, str, str, bytes]]:
    """Exported items to embed: per run, two real ones and the first item of each model at each budget."""
    out: list[tuple[str, str, str, bytes]] = []
    for run in runs:
        data = run.state.get("data") if isinstance(run.state.get("data"), dict) else {}
        modality = data.get("modality") if isinstance(data.get("modality"), str) else None
        if not modality or run.metrics is None:
            continue
        try:
            folder, real = run.paths.exports(modality), run.paths.exports(modality, REAL_EXPORTS)
        except AnytimeBenchError:  # a link out of the folder, or a loop: that run's media are left out
            continue
        if not folder.is_dir() or folder.is_symlink():
            continue
        section = str(run.metrics.dataset.iloc[0]) if len(run.metrics) else modality
        if real.is_dir() and not real.is_symlink():
            for file in sorted(real.iterdir())[:2]:
                out += _item(section, f"{run.name}: real test item {file.stem}", file)
        for model in dict.fromkeys(run.metrics.model):
            try:  # a model's name from the table is only ever a name: never a path to follow
                model_folder = run.paths.exports(modality, str(model))
            except AnytimeBenchError:
                continue
            if not model_folder.is_dir() or model_folder.is_symlink():
                continue
            files = [f for f in model_folder.iterdir() if _EXPORTED.fullmatch(f.name)]
            for file in sorted(files, key=lambda f: float(_EXPORTED.fullmatch(f.name)["budget"])):
                match = _EXPORTED.fullmatch(file.name)
                out += _item(section, f"{run.name}: {model} at budget {match['budget']} ({match['tokens']} tokens)",
                             file)
    return out


def _item(section: str, caption: str, file: Path) -> list[tuple[str, str, str, bytes]]:
    if file.is_symlink() or not file.is_file() or file.stat().st_size > MAX_MEDIA_BYTES:
        return []
    mime = mimetypes.guess_type(file.name)[0] or ""
    if not mime.startswith(("audio/", "video/")):
        return []
    return [(section, caption, mime, file.read_bytes())]


def headline_of(path: Path) -> str | None:
    """The headline metric that a run folder's config names, if it is readable: the measurement that heads its table
    (a plugin whose result is a dict heads it with its first key's)."""
    run = load_run(Path(path))
    config = run.state.get("config")
    table = config.get("run") if isinstance(config, dict) else None
    if isinstance(table, dict):
        metrics = table.get("metrics")
        headline = table.get("headline_metric") or (metrics[0] if isinstance(metrics, list) and metrics else "")
        if isinstance(headline, str) and headline:
            return headline if run.metrics is None else headline_measurement(run.metrics, headline)
    return None


def record_problem(path: Path) -> str | None:
    """Why a run folder's record cannot be read (one line naming the file), or None."""
    try:
        read_record(RunPaths(Path(path)).run_json)
    except ConfigError as exc:
        return first_line(exc, 200)
    return None


def recorded_directions(paths: list[Path]) -> dict[str, bool]:
    """Whether higher is better, per metric, as the readable runs among ``paths`` recorded it (runs written since
    directions were recorded); a metric two runs disagree on is left out, for the plugin to say."""
    out: dict[str, bool] = {}
    disputed: set[str] = set()
    for path in paths:
        try:  # the record alone: load_run would read each run's metrics.csv once more
            recorded = read_record(RunPaths(Path(path)).run_json).state.get("metric_directions") or {}
        except ConfigError:
            continue  # an unreadable record has no directions: the run is reported as incomplete elsewhere
        for name, higher in recorded.items():
            if out.setdefault(name, higher) != higher:
                disputed.add(name)
    return {name: higher for name, higher in out.items() if name not in disputed}


def unreadable(path: Path) -> str | None:
    """Why a run folder cannot be read for a report (a file that is a link out of it, a folder that cannot be
    listed, a path that is no folder, a folder holding neither a record nor a metrics table: a typo is bad input,
    refused under --strict), or None. A folder that merely misses one of them is readable: it is reported as
    incomplete."""
    name = shown(str(path))  # the line is written into the report: no byte that is not text
    if not Path(path).is_dir():
        return f"{name}: {'not a folder' if os.path.lexists(path) else 'no such folder'}"
    try:
        paths = RunPaths(Path(path))  # its files' paths are checked as they are named: a link out is refused
        if not any(os.path.lexists(file) for file in (paths.run_json, paths.metrics_csv)):
            inner = f", but run folders: name them, as {Path(name) / '*'}" if holds_runs(Path(path)) else ""
            return f"{name}: not a run folder (it holds neither {RUN_JSON} nor {METRICS_CSV}{inner})"
        load_run(Path(path))
    except (AnytimeBenchError, OSError) as exc:
        why = first_line(exc, 200) if isinstance(exc, AnytimeBenchError) else exc.strerror or str(exc)
        return f"{name}: {shown(why)}"
    return None


def holds_runs(folder: Path, look: int = 1000) -> bool:
    """Whether one of the first ``look`` entries of ``folder`` is a run folder (a folder with a record)."""
    try:
        with os.scandir(folder) as listing:
            for _, entry in zip(range(look), listing, strict=False):
                if entry.is_dir(follow_symlinks=False) and os.path.lexists(os.path.join(entry.path, RUN_JSON)):
                    return True
    except OSError:
        return False
    return False


def readable(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The run folders that can be read, and a line for each one that cannot (:func:`unreadable`)."""
    good: list[Path] = []
    skipped: list[str] = []
    for path in paths:
        reason = unreadable(path)
        if reason is None:
            good.append(Path(path))
        else:
            skipped.append(reason)
    return good, skipped


def headlines(paths: list[Path], metric: str | None) -> dict[str, list[Path]]:
    """The run folders to rank by each metric: ``metric`` for all, or else each run's own headline (image and
    audio runs in one report are each ranked by their own measure); in order of their paths, the metrics in the
    order their first runs come."""
    paths = sorted(paths, key=str)  # in order of paths: no part of a report hangs on the order they were given in
    if metric:
        return {metric: paths}
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(headline_of(path) or "", []).append(path)
    if "" in groups:
        if len(groups) == 1:
            # Where a record cannot be read, that is why: say so, naming the file, rather than only ask for --metric
            why = next((f" ({problem})" for problem in map(record_problem, groups[""]) if problem), "")
            raise ConfigError(f"no run folder names its headline metric{why}: pass --metric")
        first = next(m for m in groups if m)
        groups[first] += groups.pop("")  # ranked with the others; reported as missing if it lacks the metric
    return groups


def build_report(groups: dict[str, list[Path]], out: Path, formats: list[str],
                 higher_is_better: dict[str, bool], skipped: list[str] | None = None) -> dict[str, Any]:
    """Write ``report.md`` and/or ``report.html`` (self-contained) into ``out``; returns what was written.

    ``groups`` maps each metric to the run folders ranked by it (:func:`headlines`); ``skipped`` names the run
    folders that could not be read and why (:func:`readable`): the report lists them.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    seen: set[str] = set()
    runs = {metric: [load_run(p) for p in distinct_folders(paths, seen)] for metric, paths in groups.items()}
    runs = {metric: members for metric, members in runs.items() if members}
    everyone = [run for members in runs.values() for run in members]
    name_apart(everyone)
    split_changed_defaults(everyone)
    split_repeated_seeds(everyone)
    # Everything is written to a staging folder beside --out and moved in at the end: a failure leaves no
    # half-made report.
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=staging_name(out.name), suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise ConfigError(f"cannot create the report folder {out}: {exc.strerror}") from None
    try:
        result = _build(runs, ReportPaths(staging), formats, higher_is_better, list(skipped or []))
        try:
            out.mkdir(exist_ok=True)
            earlier = ReportPaths(out).holds_report()
            written = {file.name for file in staging.iterdir()}
            foreign = sorted(name for name in written if not earlier and os.path.lexists(out / name))
            if foreign:  # a page or figure of the user's own, in a folder no report of ours wrote
                raise ConfigError(f"--out {out} holds {foreign[0]}, which this report would replace though no "
                                  "anytime-bench report wrote it: choose another folder")
            for name in written:
                os.replace(staging / name, out / name)
            # What an earlier report in this folder wrote and this one did not (a figure of a dataset no longer
            # reported, the page in a format not asked for now) would read as part of this report: removed. Only
            # files by the report's own names, in a folder that held a report.
            stale = sorted(file for file in out.iterdir() if earlier and file.name not in written
                           and ReportPaths.is_reports(file.name) and file.is_file() and not file.is_symlink())
            for file in stale:
                file.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot write the report into {out}: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result["written"] = {kind: out / path.name for kind, path in result["written"].items()}
    result["removed"] = [file.name for file in stale]
    return result


def _build(groups: dict[str, list[Gathered]], report_paths: ReportPaths, formats: list[str],
           higher_is_better: dict[str, bool], skipped: list[str]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    drawn: list[Figure] = []
    provenance: list[list[str]] = []
    header: list[str] = []
    overview: list[tuple[str, str, list[Entry]]] = []  # each dataset and metric, its entries best first
    floors: list[tuple[str, str]] = []
    for metric, runs in groups.items():
        rows += [{**row, "metric": metric} for row in leaderboard(runs, metric, higher_is_better[metric])]
        by_dataset = {dataset: entries(runs, dataset, metric, higher_is_better[metric]) for dataset in datasets(runs)}
        overview += [(dataset, metric, members) for dataset, members in by_dataset.items()]
        drawn += figures(runs, metric, by_dataset, report_paths)
        floors += floor_lines(runs, metric)
        header, body = provenance_table(runs, metric)
        provenance += body
    # The floor of every other metric the runs recorded one for, so that each feature space a run used shows its
    # floor, not only the ranked metric's.
    everyone = [run for runs in groups.values() for run in runs]
    for metric in sorted(recorded_floors(everyone) - set(groups)):
        floors += floor_lines(everyone, metric)
    lines = overview_plot(overview, report_paths.overview)
    first = [Figure("", "The best entry of each family per dataset (best anytime score, the leaderboard's ranking): "
                        "mean over training seeds, 95% bands", report_paths.overview, tuple(lines))] if lines else []
    # plain names: the intro is escaped whole in both formats, so a code span's backticks would show as written
    ranked = ", ".join(f"{m} ({'higher' if higher_is_better[m] else 'lower'} is better)" for m in groups)
    intro = (f"Ranked by {ranked}. Runs whose configs differ only in their seeds are pooled into one "
             f"row per model, and a model measured identically in several experiments (shared checkpoints and "
             f"seeds), or at fewer budgets or seeds in one, is one row naming every run; differs: the settings "
             f"in which a row differs from most rows of "
             f"the same model on its dataset (its encoder's options, its prior's as prior.NAME, its sampling, its "
             f"dataset's as dataset.NAME); n is "
             f"the number of training replicates, and numbers are means "
             f"over them with a {LEVEL:.0%} Student-t interval where n > 1 (each replicate averaged over its "
             f"sampling seeds first). "
             f"Anytime score: normalized area under the quality-versus-budget curve. Quality at 25/50/75% of the "
             f"codes is measured or linearly interpolated between measured budgets. Monotone: no significant dip as "
             f"the budget grows. Speed-up at equal quality: full-budget sampling time over that of the smallest "
             f"budget within {EQUAL_QUALITY:.0%} of full-budget quality (from the cost table of bench, largest batch).")
    page = Page(intro=intro,
                missing=[f"{r.name}: missing {', '.join(r.missing)}" for r in everyone if r.missing],
                unscored=[f"{r.name}: not scored by {', '.join(r.unscored)} (it measures "
                          f"{', '.join(m[:40] for m in r.listed_metrics or [])})" for r in everyone if r.unscored],
                board=board_table(rows), figures=drawn, provenance=(header, provenance), media=media(everyone),
                skipped=skipped, overview=first, floors=floors)
    written = write(page, report_paths, formats)
    return {"written": written, "runs": len(everyone), "rows": len(rows), "missing": page.missing,
            "skipped": skipped}


__all__ = ["build_report", "headline_of", "headlines", "readable", "unreadable"]
