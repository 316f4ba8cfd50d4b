"""Comparison reports across run folders: a leaderboard, plots and provenance, as Markdown and HTML.

Reads only the ``results/<run-id>/`` contract (metrics.csv, cost.csv, run.json,
samples.png), so it works on runs made by any version that keeps it, and on
runs of third-party plugins.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import storage
from .plots import plt, save_figure, sns
from .results import anytime_score, bootstrap_interval, markdown_table, monotone_violations

QUARTILES = (0.25, 0.5, 0.75)
EQUAL_QUALITY = 0.10
"""Speed-up at equal quality: full-budget cost over the cost of the smallest budget within 10% of full quality."""


@dataclass
class Run:
    path: Path
    name: str
    metrics: pd.DataFrame | None = None
    cost: pd.DataFrame | None = None
    state: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def load_run(path: Path) -> Run:
    run = Run(path=path, name=path.name)
    if not path.is_dir():
        run.missing.append("the folder itself")
        return run
    try:
        run.state = json.loads((path / "run.json").read_text())
    except FileNotFoundError:
        run.missing.append("run.json")
    except (json.JSONDecodeError, UnicodeDecodeError):
        run.missing.append("a readable run.json")
    for attr, name, required in (("metrics", "metrics.csv", ["dataset", "model", "seed", "budget", "metric", "value"]),
                                 ("cost", "cost.csv", ["model", "budget", "batch", "cache", "stage", "seconds"])):
        file = path / name
        if not file.is_file():
            if name == "metrics.csv":
                run.missing.append(name)
            continue
        try:
            frame = pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            run.missing.append(f"a readable {name}")
            continue
        absent = [c for c in required if c not in frame.columns]
        if absent:
            run.missing.append(f"{name} columns {', '.join(absent)}")
            continue
        if "ordered" not in frame.columns and name == "metrics.csv":
            frame["ordered"] = True
        setattr(run, attr, frame)
    return run


def _comparability(run: Run, metric: str) -> str:
    """What decides whether two runs' numbers of ``metric`` can be ranked together."""
    if run.metrics is None or "provenance" not in run.metrics.columns:
        return "unknown"
    rows = run.metrics[run.metrics.metric == metric].provenance.dropna()
    if rows.empty:
        return "unknown"
    try:
        prov = json.loads(rows.iloc[0])
    except (TypeError, json.JSONDecodeError):
        return "unknown"
    reference = str(prov.get("reference", ""))
    reference_set = reference.rsplit("-", 1)[0] if reference else ""
    return f"{prov.get('extractor_sha256', prov.get('implementation', '?'))[:12]}|{reference_set}|{prov.get('samples', '?')}"


def _at(curve: pd.Series, budget: float) -> float:
    """Quality at ``budget``: measured if present, else linear interpolation between measured budgets."""
    if budget in curve.index:
        return float(curve[budget])
    b = curve.index.to_numpy(float)
    if budget < b.min() or budget > b.max():
        return float("nan")
    return float(np.interp(budget, b, curve.to_numpy(float)))


def _fmt(value: float, interval: tuple[float, float] | None = None) -> str:
    if value != value:  # NaN
        return "-"
    text = f"{value:.4g}"
    if interval and interval[0] == interval[0]:
        text += f" [{interval[0]:.4g}, {interval[1]:.4g}]"
    return text


def leaderboard(runs: list[Run], metric: str, higher_is_better: bool) -> pd.DataFrame:
    rows = []
    groups: dict[tuple[str, str], str] = {}
    for run in runs:
        if run.metrics is None:
            continue
        part = run.metrics[run.metrics.metric == metric]
        if part.empty:
            run.missing.append(f"metric {metric!r} in metrics.csv")
            continue
        key = _comparability(run, metric)
        for (dataset, model), group in part.groupby(["dataset", "model"], sort=False):
            per_seed = group.pivot_table(index="budget", columns="seed", values="value", aggfunc="mean")
            curve = per_seed.mean(axis=1)
            b = curve.index.to_numpy(float)
            row: dict[str, Any] = {
                "dataset": dataset, "run": run.name, "model": model, "ordered": bool(group.ordered.iloc[0]),
                "seeds": per_seed.shape[1], "anytime score": anytime_score(b, curve.to_numpy(float)),
                "full budget": float(curve[curve.index.max()]),
                "monotone": not monotone_violations(b, curve.to_numpy(float), higher_is_better),
                "comparability": key,
            }
            for q in QUARTILES:
                values = np.array([_at(per_seed[s].dropna(), q) for s in per_seed.columns])
                row[f"at {q:g}"] = float(np.mean(values))
                row[f"at {q:g} interval"] = bootstrap_interval(values) if len(values) > 1 else None
            row["speed-up at equal quality"] = _speedup(run, model, curve, higher_is_better)
            groups.setdefault((dataset, key), "")
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # Runs of one dataset whose metric came from different extractors, reference sets or sample counts are flagged.
    flags = []
    for _, row in frame.iterrows():
        keys = set(frame[frame.dataset == row.dataset].comparability)
        flags.append("" if len(keys) == 1 else f"not comparable: group {sorted(keys).index(row.comparability) + 1}"
                     f" of {len(keys)} (extractor, reference set or sample count differ)")
    frame["flag"] = flags
    ascending = not higher_is_better
    return frame.sort_values(["dataset", "comparability", "anytime score"], ascending=[True, True, ascending])


def _speedup(run: Run, model: str, curve: pd.Series, higher_is_better: bool) -> float:
    if run.cost is None:
        return float("nan")
    cost = run.cost[(run.cost.model == model) & run.cost.cache.astype(bool)]
    if cost.empty:
        return float("nan")
    cost = cost[cost.batch == cost.batch.max()].groupby("budget")["seconds"].sum()
    full_budget = curve.index.max()
    full = float(curve[full_budget])
    tolerance = abs(full) * EQUAL_QUALITY
    good = [b for b in curve.index if (curve[b] >= full - tolerance if higher_is_better else curve[b] <= full + tolerance)]
    cheapest = min(good)
    if cheapest not in cost.index or full_budget not in cost.index:
        return float("nan")
    return float(cost[full_budget] / cost[cheapest])


def _board_table(board: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "run", "model", "seeds", "anytime score", "full budget"] + [f"at {q:g}" for q in QUARTILES] + [
        "speed-up at equal quality", "monotone", "flag"]
    rows = []
    for _, r in board.iterrows():
        rows.append([r.dataset, r.run, r.model + ("" if r.ordered else " (unordered)"), str(r.seeds),
                     _fmt(r["anytime score"]), _fmt(r["full budget"])]
                    + [_fmt(r[f"at {q:g}"], r[f"at {q:g} interval"]) for q in QUARTILES]
                    + [_fmt(r["speed-up at equal quality"]) + ("x" if r["speed-up at equal quality"] ==
                                                                  r["speed-up at equal quality"] else ""),
                       "yes" if r.monotone else "no", r.flag])
    return header, rows


def provenance_rows(runs: list[Run], metric: str) -> tuple[list[str], list[list[str]]]:
    header = ["run", "config digest", "git commit", "anytime-bench", "torch", "torch-fidelity", "device", "extractor",
              "reference set", "missing"]
    rows = []
    for run in runs:
        s = run.state
        versions = s.get("versions", {})
        device = s.get("device", {})
        device_text = device.get("gpu") or device.get("device", "?") if isinstance(device, dict) else str(device)
        prov: dict[str, Any] = {}
        if run.metrics is not None and "provenance" in run.metrics.columns:
            part = run.metrics[run.metrics.metric == metric].provenance.dropna()
            if len(part):
                try:
                    prov = json.loads(part.iloc[0])
                except json.JSONDecodeError:
                    prov = {}
        rows.append([run.name, str(s.get("config_digest", "?")), str(s.get("git_commit", "?"))[:12],
                     versions.get("anytime-bench", "?"), versions.get("torch", "?"), versions.get("torch-fidelity", "?"),
                     device_text, str(prov.get("extractor", "?")), str(prov.get("reference", "?")),
                     ", ".join(run.missing) or "-"])
    return header, rows


def _quality_plot(runs: list[Run], dataset: str, metric: str, path: Path) -> bool:
    frames = []
    for run in runs:
        if run.metrics is None:
            continue
        part = run.metrics[(run.metrics.dataset == dataset) & (run.metrics.metric == metric)].copy()
        part["curve"] = [f"{run.name}: {m}" for m in part.model]
        frames.append(part)
    data = pd.concat(frames) if frames else pd.DataFrame()
    if data.empty:
        return False
    _curves(data, "budget", "budget (fraction of codes)", metric, f"{dataset}: {metric} versus budget", path,
            errorbar=("ci", 95))
    return True


def _curves(data: pd.DataFrame, x: str, xlabel: str, metric: str, title: str, path: Path, **lineplot: Any) -> None:
    """One line per run and model ("curve" column) of ``metric`` against ``x``."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=data, x=x, y="value", hue="curve", marker="o", ax=ax, **lineplot)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=6)
    save_figure(fig, path)


def _time_plot(runs: list[Run], dataset: str, metric: str, path: Path) -> bool:
    frames = []
    for run in runs:
        if run.metrics is None or run.cost is None:
            continue
        quality = run.metrics[(run.metrics.dataset == dataset) & (run.metrics.metric == metric)]
        if quality.empty:
            continue
        quality = quality.groupby(["model", "budget"], as_index=False)["value"].mean()
        cost = run.cost[run.cost.cache.astype(bool)]
        cost = cost[cost.batch == cost.batch.max()]
        cost = cost.assign(per_sample=cost.seconds / cost.batch).groupby(["model", "budget"], as_index=False)[
            "per_sample"].sum()
        joined = quality.merge(cost, on=["model", "budget"])
        joined["curve"] = [f"{run.name}: {m}" for m in joined.model]
        frames.append(joined)
    if not frames:
        return False
    _curves(pd.concat(frames), "per_sample", "seconds per sample (prior + decoder)", metric,
            f"{dataset}: {metric} versus time", path, sort=True)
    return True


def _datasets(runs: list[Run]) -> list[str]:
    names: list[str] = []
    for run in runs:
        if run.metrics is not None:
            names += [d for d in run.metrics.dataset.unique() if d not in names]
    return names


def build_report(paths: list[Path], out: Path, metric: str, formats: list[str],
                 higher_is_better: bool = False) -> dict[str, Any]:
    """Write ``report.md`` and/or ``report.html`` (self-contained) into ``out``; returns what was written."""
    runs = [load_run(Path(p)) for p in paths]
    out.mkdir(parents=True, exist_ok=True)
    board = leaderboard(runs, metric, higher_is_better)
    figures: list[tuple[str, str, Path]] = []  # (section, caption, file)
    for dataset in _datasets(runs):
        file = out / f"{dataset}-quality_vs_budget.png"
        if _quality_plot(runs, dataset, metric, file):
            figures.append((dataset, f"{metric} versus budget, every model of every run (bands: 95% over seeds)", file))
        file = out / f"{dataset}-quality_vs_time.png"
        if _time_plot(runs, dataset, metric, file):
            figures.append((dataset, f"{metric} versus cost per sample", file))
        for run in runs:
            grid = run.path / "samples.png"
            if run.metrics is not None and dataset in set(run.metrics.dataset) and grid.is_file():
                copy = out / f"{run.name}-samples.png"
                shutil.copyfile(grid, copy)
                figures.append((dataset, f"samples of {run.name} (rows: models, columns: budgets)", copy))
    board_header, board_rows = _board_table(board) if not board.empty else ([], [])
    prov_header, prov_rows = provenance_rows(runs, metric)
    missing = [f"{r.name}: missing {', '.join(r.missing)}" for r in runs if r.missing]
    direction = "higher is better" if higher_is_better else "lower is better"
    intro = (f"Metric `{metric}` ({direction}). Anytime score: normalized area under the quality-versus-budget "
             f"curve. Quality at 25/50/75% of the codes is measured or linearly interpolated between measured "
             f"budgets, with a 95% bootstrap interval over seeds where there are several. Speed-up at equal "
             f"quality: full-budget sampling time over that of the smallest budget within "
             f"{EQUAL_QUALITY:.0%} of full-budget quality (from cost.csv, largest batch).")
    written = {}
    if "md" in formats:
        parts = ["# anytime-bench report", "", intro, ""]
        if missing:
            parts += ["**Incomplete runs:** " + "; ".join(missing), ""]
        parts += ["## Leaderboard", ""]
        parts += [markdown_table(board_header, board_rows), ""] if board_rows else ["No run has this metric.", ""]
        for dataset in dict.fromkeys(f[0] for f in figures):
            parts += [f"## {dataset}", ""]
            parts += [f"![{caption}]({file.name})\n\n*{caption}*\n" for d, caption, file in figures if d == dataset]
        parts += ["## Provenance", "", markdown_table(prov_header, prov_rows), ""]
        storage.write_text(out / "report.md", "\n".join(parts))
        written["md"] = out / "report.md"
    if "html" in formats:
        storage.write_text(out / "report.html", _html(intro, missing, board_header, board_rows, figures, prov_header,
                                                      prov_rows))
        written["html"] = out / "report.html"
    return {"written": written, "runs": len(runs), "rows": len(board_rows), "missing": missing}


def _html_table(header: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html(intro, missing, board_header, board_rows, figures, prov_header, prov_rows) -> str:
    # One self-contained file: images inline as data URIs, no external scripts, styles or fonts.
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
             "figure{display:inline-block;margin:1em}figcaption{font-size:12px;color:#444}.warn{color:#a00}")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>anytime-bench report</title>',
             f"<style>{style}</style></head><body>", "<h1>anytime-bench report</h1>", f"<p>{html.escape(intro)}</p>"]
    if missing:
        parts.append('<p class="warn">Incomplete runs: ' + html.escape("; ".join(missing)) + "</p>")
    parts.append("<h2>Leaderboard</h2>")
    parts.append(_html_table(board_header, board_rows, "leaderboard") if board_rows else "<p>No run has this metric.</p>")
    for dataset in dict.fromkeys(f[0] for f in figures):
        parts.append(f"<h2>{html.escape(dataset)}</h2>")
        for d, caption, file in figures:
            if d != dataset:
                continue
            data = base64.b64encode(file.read_bytes()).decode()
            parts.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts += ["<h2>Provenance</h2>", _html_table(prov_header, prov_rows, "provenance"), "</body></html>"]
    return "\n".join(parts)
