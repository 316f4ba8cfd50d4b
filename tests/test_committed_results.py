"""The committed reference results: in the format that today's code writes, and light enough to clone.

Checkpoints and full samples archives are not committed: the command recorded in each run regenerates them
(``anytime-bench run <config> --run-id <id>``; the runs are deterministic on a CPU).
"""

from __future__ import annotations

import json
import re
import subprocess

import pandas as pd
import pytest

from anytime_bench.engine.config import config_from_record
from anytime_bench.engine.run import RunRecord
from anytime_bench.store.inventory import KEPT
from anytime_bench.store.rundir import ENTRY_COLUMNS, METRICS_COLUMNS, RUN_FILES, ReportPaths
from anytime_bench.store.tables import read_metrics

from .conftest import ROOT, run_cli

RESULTS = ROOT / "results"
RUNS = sorted(p for p in RESULTS.glob("reference-*") if (p / "run.json").is_file()) + sorted(
    p for p in RESULTS.glob("ablation-*") if (p / "run.json").is_file())
NOT_COMMITTED = ("checkpoints/", "codes/", "samples/")


def _pattern(glob: str) -> re.Pattern:
    """A RUN_FILES pattern (``samples/<model>/train<t>-sample<s>.npz``, ``a, b``, ``{x,y}``) as a regex."""
    text = re.escape(glob).replace(r"\{", "(").replace(r"\}", ")").replace(",", "|")
    text = re.sub(r"<[^>]*>", "[^/]+", text.replace(r"\<", "<").replace(r"\>", ">"))
    text = text.replace(r"\[", "(").replace(r"\]", ")?")
    return re.compile(text)


ALLOWED = [_pattern(part.strip()) for f in RUN_FILES for part in f.pattern.split(", ")]


def tracked(folder) -> list[str]:
    out = subprocess.run(["git", "ls-files", str(folder.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True)
    return [line[len(str(folder.relative_to(ROOT))) + 1:] for line in out.stdout.splitlines()]


def test_the_committed_results_are_light():
    size = sum((ROOT / f).stat().st_size for f in subprocess.run(
        ["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True).stdout.split() if (ROOT / f).is_file())
    # Issue #36's budget: 10 MB (decimal) for every run, kept as results/README.md says (the test below), and the
    # report. One MNIST rvq checkpoint (13 MB) would break it; the test below names any checkpoint or samples archive
    # file by file.
    assert size <= 10 * 10**6, f"results/ holds {size / 10**6:.2f} MB at HEAD (at most 10 MB)"


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_a_committed_run_has_todays_format(plugins, run):
    state = RunRecord(run / "run.json").read()
    config_from_record(state["config"], plugins, {})  # today's plugins accept its config
    assert state["status"] in ("done", "evaluated")  # `run`, or a later `evaluate` that rewrote the results
    metrics = pd.read_csv(run / "metrics.csv")
    # Today's columns, or those of a run made before model entries or before the source column (read with them
    # filled in from the record, below).
    later = set(ENTRY_COLUMNS) | {"source"}
    assert list(metrics.columns) == [c for c in METRICS_COLUMNS if c in metrics.columns]
    assert set(METRICS_COLUMNS) - set(metrics.columns) <= later
    before_entries = [c for c in METRICS_COLUMNS if c not in later]
    # Runs made before model entries are read with their entries' columns filled from the record.
    read = read_metrics(run / "metrics.csv", problems := [], 0, state["config"]["run"])
    assert read is not None, problems
    assert set(METRICS_COLUMNS) <= set(read.columns)
    assert set(read.source) <= set(state["config"]["run"]["metrics"])  # every measurement's plugin, from the record
    if list(metrics.columns) == before_entries:
        assert (read.encoder == read.model).all()
        assert set(read.prior) == {state["config"]["run"].get("prior", "transformer")}
        assert set(read.top_p) == {state["config"]["run"].get("top_p", 1.0)}
    files = tracked(run) or [str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()]
    for name in files:
        assert not name.startswith(NOT_COMMITTED), f"{run.name}/{name} is regenerated, not committed"
        assert any(p.fullmatch(name) for p in ALLOWED) or name == ".lock", f"{run.name}/{name} is not in RUN_FILES"



WRITTEN = re.compile(r" Written [^ ]+\.$", re.M)


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_a_committed_summary_is_what_todays_code_writes_from_the_committed_table(plugins, run):
    """The results pages quote the summaries: one that today's code would write otherwise from the same table and
    record (a format since changed, values summarised at other digits) is stale."""
    from anytime_bench.analysis.results import metric_order, summary_markdown

    state = RunRecord(run / "run.json").read()
    cfg = config_from_record(state["config"], plugins, {})
    frame = read_metrics(run / "metrics.csv", problems := [], run_settings=state["config"]["run"])
    assert frame is not None, problems
    written = summary_markdown(frame, cfg, state["metric_directions"], metric_order(frame, cfg.run.headline),
                               state.get("metric_floors") or {}, state.get("floor_notes"), state.get("metric_requires"))
    committed = (run / "summary.md").read_text()
    assert WRITTEN.sub("", committed) == WRITTEN.sub("", written), \
        f"{run.name}/summary.md is stale: anytime-bench evaluate --floors-only results/{run.name}"

@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_a_committed_run_keeps_what_results_readme_says_and_its_figures_are_compressed(run):
    from PIL import Image

    kept = next(files for prefix, files in KEPT.items() if run.name.startswith(prefix))
    modality = RunRecord(run / "run.json").read().get("data", {}).get("modality")
    names = tracked(run)
    assert names, f"{run.name} is not committed"
    for name in names:
        assert name in kept or (name.startswith(f"{modality}/") and "<modality>/" in kept), \
            f"{run.name}/{name}: results/README.md's 'What is kept' leaves it out"
        if name.endswith(".png"):
            with Image.open(run / name) as image:
                # a palette, or a sample grid of more than 256 colours, which a palette would change
                assert image.mode == "P" or (name == "samples.png" and image.mode == "RGB" and
                                             image.getcolors(256) is None), f"{run.name}/{name} is {image.mode}"


def test_results_readme_is_the_index_that_runs_markdown_prints_now():
    assert tracked(RESULTS) and "README.md" in tracked(RESULTS)
    result = run_cli("runs", RESULTS, "--markdown", "--configs", ROOT / "configs")
    assert result.code == 0, result.err
    assert (RESULTS / "README.md").read_text() == result.out, \
        "results/README.md is stale: anytime-bench runs results --markdown > results/README.md"
    for run in RUNS:
        assert f"[`{run.name}`]({run.name}/)" in result.out


def test_an_index_of_runs_without_a_folder_of_configs_names_each_runs_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a user's folder: no configs/ beside it
    result = run_cli("runs", RESULTS / "reference-digits", "--markdown")
    assert result.code == 0, result.err
    assert "no config file: `run.dataset = \"digits\"`" in result.out and "no folder of config files" in result.out


def test_the_committed_report_reads_the_committed_runs():
    report = RESULTS / "reference-report"
    assert (report / ReportPaths(report).markdown.name).is_file() and (report / ReportPaths(report).html.name).is_file()
    text = (report / "report.md").read_text()
    for run in RUNS:
        assert run.name in text, f"the committed report does not include {run.name}"


def _glance_rows() -> list[list[str]]:
    text = (ROOT / "docs" / "results" / "index.md").read_text()
    section = text.split("## At a glance: every method on MNIST", 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]


def test_the_at_a_glance_table_is_what_the_committed_runs_measured():
    from anytime_bench.analysis.report.gather import load_run
    from anytime_bench.analysis.stats import estimate

    rows = _glance_rows()
    assert len(rows) >= 9
    columns = [("fid", b) for b in (0.2, 0.4, 0.6, 0.8, 1.0)] + [("fid-random", 0.2), ("fid-random", 1.0)]
    for row in rows:
        model, run = row[0].split("`")[1], row[1].strip("`")
        metrics = load_run(RESULTS / run).metrics
        if len(row) == 2 + len(columns) + 1:  # runs of several FID feature spaces: the last cell says each row's
            spaces = {json.loads(p).get("feature_space", "?")
                      for p in metrics[(metrics.model == model) & (metrics.metric == "fid")].provenance.unique()}
            assert len(spaces) == 1 and row[-1].split(" / ")[0].strip("`") == spaces.pop().rsplit("-", 1)[-1][:8]
            row = row[:-1]
        for (metric, budget), cell in zip(columns, row[2:], strict=True):
            part = metrics[(metrics.model == model) & (metrics.metric == metric) & (metrics.budget - budget).abs().lt(1e-9)]
            if cell == "-":
                assert part.empty, f"{run} {model} {metric} at {budget} was measured"
                continue
            shown = cell.strip("*")
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            assert part.train_seed.nunique() == 3
            assert abs(estimate(part).mean - float(shown)) <= 0.5 * 10 ** -decimals + 1e-12, (run, model, metric, budget)
