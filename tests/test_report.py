"""`anytime-bench report` over two digits runs (different seeds), an MNIST run and a run not comparable with them."""

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from anytime_bench.cli import main

from .conftest import TINY, assert_clean_error, run_cli


def invoke(*args):
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None), f"exit code {exc.code}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_idx):
    out = tmp_path_factory.mktemp("runs")
    cache = out / "cache"
    common = [TINY, "--encoders", "ovqvae,vqvae-channel", "--metrics", "fid,mse", "--out", out, "--cache-dir", cache,
              "--quiet"]
    invoke("run", *common, "--run-id", "digits-a", "--seed", "0")
    invoke("run", *common, "--run-id", "digits-b", "--seed", "1")
    invoke("run", *common, "--run-id", "digits-small", "--num-samples", "32")
    mnist = out / "mnist.toml"
    mnist.write_text(TINY.read_text() + "\n[dataset.mnist]\ndownload = false\n")
    invoke("run", mnist, "--dataset", "mnist", "--data-root", mnist_idx, "--encoders", "ovqvae", "--metrics", "fid",
           "--num-samples", "64", "--out", out, "--cache-dir", cache, "--run-id", "mnist-a", "--quiet")
    return out


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.external: list[str] = []
        self.lines: list[list[int]] = []
        self.sections: list[str] = []
        self._table = None
        self._row = None
        self._header = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            # each dataset's section has its leaderboard: read together, under one header, as "leaderboard"
            self._table = "leaderboard" if "leaderboard" in attrs.get("class", "").split() else attrs.get("id")
            self._header = self._table in self.tables
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table:
            self._row = []
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "figure" and "data-lines" in attrs:
            self.lines.append([int(n) for n in attrs["data-lines"].split()])
        elif tag == "section":
            self.sections.append(attrs.get("id"))
        if (tag == "link" or (tag == "script" and attrs.get("src"))
                or (tag in ("img", "audio") and not attrs.get("src", "").startswith("data:"))):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None and self._table:
            if not self._header:
                self.tables[self._table].append(self._row)
            self._header, self._row = False, None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._row is not None:
            if self.lasttag in ("td", "th"):
                self._row.append(data)


def test_report_writes_markdown_and_a_self_contained_html_page(runs, tmp_path, capsys):
    out = tmp_path / "report"
    invoke("report", runs / "digits-a", runs / "digits-b", runs / "mnist-a", runs / "digits-small",
           runs / "missing-run", "--out", out)
    assert "missing-run: no such folder" in capsys.readouterr().err  # skipped, saying why; the others reported
    markdown = (out / "report.md").read_text()
    assert "## digits\n\n### Leaderboard: fid" in markdown and "## mnist\n\n### Leaderboard: fid" in markdown
    # what the section and its heading say is not repeated in every row of a table that cannot scroll
    assert "### Leaderboard: fid\n\n| runs | model | differs | n | anytime score |" in markdown
    assert "Ranked by fid (lower is better)." in markdown  # not \`fid\`: the intro is escaped whole
    assert "**Contents:** [Overview](#overview) · [digits](#digits) · [mnist](#mnist) · [Provenance](#provenance)" \
        in markdown and "## Overview" in markdown and (out / "overview.png").is_file()
    assert "![fid versus budget" in markdown and (out / "digits-fid-quality_vs_budget.png").is_file()

    page = Page()
    page.feed((out / "report.html").read_text())
    assert not page.external  # no scripts, stylesheets, images or sounds from elsewhere
    header, *rows = page.tables["leaderboard"]
    assert header[:5] == ["dataset", "runs", "model", "differs", "n"]
    keyed = {(r[0], r[1], r[2].replace(" (unordered)", "")): r for r in rows}
    # digits-a and digits-b differ only in their seed: one row per model, with both training replicates
    assert set(keyed) == {("digits", runs, model) for runs in ("digits-a, digits-b", "digits-small")
                          for model in ("ovqvae", "vqvae-channel")} | {("mnist", "mnist-a", "ovqvae")}
    assert keyed[("digits", "digits-a, digits-b", "ovqvae")][4] == "2"
    assert keyed[("digits", "digits-small", "ovqvae")][4] == "1"
    # digits-small differs from the pooled runs in its sample count, a run setting, not the model's
    assert {row[3] for row in rows} == {"-"}
    assert "[" in keyed[("digits", "digits-a, digits-b", "ovqvae")][header.index("full budget")]  # an interval
    flag = header.index("flag")
    flags = {key: row[flag] if flag < len(row) else "" for key, row in keyed.items()}
    # the pooled runs and digits-small differ in sample count: flagged as different groups
    assert "not comparable" in flags[("digits", "digits-small", "ovqvae")]
    assert "not comparable" in flags[("digits", "digits-a, digits-b", "ovqvae")]
    assert flags[("digits", "digits-a, digits-b", "ovqvae")].split(" of ")[0] != \
        flags[("digits", "digits-small", "ovqvae")].split(" of ")[0]
    assert flags[("mnist", "mnist-a", "ovqvae")] == ""  # alone on its dataset
    assert len(page.images) >= 5 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.sections == ["dataset-1", "dataset-2"]  # digits, mnist: ids that hold no name from a run folder
    # the overview, and per dataset its small multiples: one axis each here, a line per entry
    assert page.lines == [[2, 1], [2, 2], [1]], page.lines
    provenance = page.tables["provenance"]
    assert [r[0] for r in provenance[1:]] == ["digits-a", "digits-b", "digits-small", "mnist-a"]  # by path
    assert "missing-run: no such folder" in markdown.split("## Skipped", 1)[1]


def test_a_report_written_over_an_earlier_one_removes_what_it_no_longer_writes_and_nothing_else(runs, tmp_path):
    out = tmp_path / "report"
    assert run_cli("report", runs / "digits-a", runs / "mnist-a", "--out", out).code == 0
    (out / "notes.txt").write_text("mine")
    (out / "photo.png").write_bytes(b"mine")
    result = run_cli("report", runs / "digits-a", "--out", out, "--format", "md")
    assert result.code == 0, result.err
    assert "removed 3 file(s) of an earlier report" in result.err  # mnist's figure and sample grid, the html page
    assert {p.name for p in out.iterdir()} == {"report.md", "overview.png", "digits-fid-quality_vs_budget.png",
                                               "digits-a-samples.png", "notes.txt", "photo.png"}
    # a folder that held no report of anytime-bench keeps every file, even one named as a report's figure
    other = tmp_path / "pictures"
    other.mkdir()
    (other / "mnist-fid-quality_vs_budget.png").write_bytes(b"mine")
    assert run_cli("report", runs / "digits-a", "--out", other).code == 0
    assert (other / "mnist-fid-quality_vs_budget.png").read_bytes() == b"mine"
    # and a page of its own, or a figure it would write over, is never replaced: the report is refused
    for name, mine in (("report.md", "# My paper\n\n# anytime-bench report\n"), ("overview.png", "mine")):
        paper = tmp_path / f"paper-{name}"
        paper.mkdir()
        (paper / name).write_text(mine)
        assert_clean_error(run_cli("report", runs / "digits-a", "--out", paper), 2,
                           f"--out {paper} holds {name}, which this report would replace though no anytime-bench "
                           "report wrote it")
        assert [p.name for p in paper.iterdir()] == [name] and (paper / name).read_text() == mine


def _leaderboard_lines(markdown: Path) -> list[str]:
    """The rows of the report's leaderboards (not of its provenance table, whose rows also start with a run)."""
    text = markdown.read_text()
    boards = [part.split("\n\n", 2)[1] for part in text.split("### Leaderboard")[1:]]
    return [line for board in boards for line in board.splitlines()[2:]]


def test_runs_made_under_other_defaults_are_not_pooled_though_they_set_the_same_options(runs, tmp_path):
    """A plugin that changed a default: two runs of one config file share what was set, not what they ran."""
    changed = tmp_path / "digits-b"
    shutil.copytree(runs / "digits-b", changed)
    record = json.loads((changed / "run.json").read_text())
    defaults = record["identity"]["defaults"]["encoder"]["ovqvae"]
    assert "beta" in defaults and "beta" not in record["identity"]["set"]["encoder"]["ovqvae"]
    defaults["beta"] = 2 * defaults["beta"]
    del defaults["min_keep"]  # and an option it does not record (added later, say) keeps nothing apart
    (changed / "run.json").write_text(json.dumps(record))
    out = tmp_path / "report"
    invoke("report", runs / "digits-a", changed, "--out", out, "--format", "md")
    rows = [line.split(" | ")[0].strip("| ") for line in _leaderboard_lines(out / "report.md")]
    assert sorted(rows) == ["digits-a", "digits-a", "digits-b", "digits-b"]  # two experiments, one seed each
    del defaults["beta"]
    (changed / "run.json").write_text(json.dumps(record))
    invoke("report", runs / "digits-a", changed, "--out", out, "--format", "md")
    rows = [line.split(" | ")[0].strip("| ") for line in _leaderboard_lines(out / "report.md")]
    assert rows == ["digits-a, digits-b"] * 2  # pooled again: nothing they both record differs


def test_a_folder_that_is_no_run_is_skipped_and_a_folder_of_runs_is_named_as_such(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a run")
    result = run_cli("report", runs / "digits-a", tmp_path / "empty", tmp_path / "notes", "--out", tmp_path / "r")
    assert result.code == 0, result.err
    skipped = (tmp_path / "r" / "report.md").read_text().split("## Skipped", 1)[1]
    for name in ("empty", "notes"):
        assert f"{name}: not a run folder (it holds neither run.json nor metrics.csv)" in skipped
    assert "Incomplete" not in (tmp_path / "r" / "report.md").read_text()
    assert_clean_error(run_cli("report", runs, "--out", tmp_path / "parent"), 2,
                       f"{runs}: not a run folder (it holds neither run.json nor metrics.csv, but run folders: name "
                       f"them, as {runs}/*)")
    assert_clean_error(run_cli("report", runs / "digits-a", tmp_path / "empty", "--strict", "--out", tmp_path / "s"),
                       2, "empty: not a run folder")


def test_a_model_measured_identically_in_two_experiments_is_one_row_naming_both_runs(runs, tmp_path):
    # an ablation that resumed another run's checkpoints: its config differs (here in what else it runs), its
    # ovqvae measurements do not, and its vqvae-channel measurements are made different
    copy = tmp_path / "digits-a-ablation"
    shutil.copytree(runs / "digits-a", copy)
    record = json.loads((copy / "run.json").read_text())
    record["config"]["run"]["metrics"] = ["fid", "mse", "psnr"]
    (copy / "run.json").write_text(json.dumps(record))
    metrics = pd.read_csv(copy / "metrics.csv")
    metrics.loc[metrics.model == "vqvae-channel", "value"] *= 1.5
    metrics.to_csv(copy / "metrics.csv", index=False)
    out = tmp_path / "report"
    invoke("report", runs / "digits-a", copy, "--out", out)
    page = Page()
    page.feed((out / "report.html").read_text())
    header, *rows = page.tables["leaderboard"]
    listed = sorted((r[1], r[2].replace(" (unordered)", ""), r[header.index("n")]) for r in rows)
    assert listed == [("digits-a", "vqvae-channel", "1"), ("digits-a, digits-a-ablation", "ovqvae", "1"),
                      ("digits-a-ablation", "vqvae-channel", "1")]

    # a run that measured part of what another did (fewer budgets): nothing of its own, so no row or curve of its own
    fewer = tmp_path / "digits-a-fewer"
    shutil.copytree(runs / "digits-a", fewer)
    metrics = pd.read_csv(fewer / "metrics.csv")
    metrics[metrics.budget != metrics.budget.max()].to_csv(fewer / "metrics.csv", index=False)
    invoke("report", fewer, runs / "digits-a", copy, "--out", out)
    page = Page()
    page.feed((out / "report.html").read_text())
    header, *rows = page.tables["leaderboard"]
    listed = sorted((r[1], r[2].replace(" (unordered)", "")) for r in rows)
    assert listed == [("digits-a, digits-a-ablation, digits-a-fewer", "ovqvae"),
                      ("digits-a, digits-a-fewer", "vqvae-channel"), ("digits-a-ablation", "vqvae-channel")]
    assert sum(page.lines[-1]) == 3, page.lines  # one curve each
    # and the same report whatever the order of the folders: rows, their cells, figures
    invoke("report", copy, runs / "digits-a", fewer, "--out", tmp_path / "reversed")
    again = Page()
    again.feed((tmp_path / "reversed" / "report.html").read_text())
    assert sorted(again.tables["leaderboard"][1:]) == sorted(rows) and again.lines == page.lines
    assert sorted(p.name for p in (tmp_path / "reversed").iterdir()) == sorted(p.name for p in out.iterdir())
    assert all((tmp_path / "reversed" / p.name).read_bytes() == p.read_bytes() for p in out.iterdir())


def test_runs_in_same_named_folders_are_told_apart_and_one_folder_given_twice_is_read_once(runs, tmp_path):
    for machine in ("cpu", "gpu"):
        shutil.copytree(runs / "digits-a", tmp_path / machine / "digits-a")
    metrics = pd.read_csv(tmp_path / "gpu" / "digits-a" / "metrics.csv")
    metrics["value"] *= 1.5  # the same config and seed, measured elsewhere: to compare, never to pool
    metrics.to_csv(tmp_path / "gpu" / "digits-a" / "metrics.csv", index=False)
    out = tmp_path / "report"
    shutil.copytree(runs / "digits-a", tmp_path / "cpu_digits-a")  # its sample grid's file name is cpu/digits-a's
    invoke("report", tmp_path / "cpu" / "digits-a", tmp_path / "gpu" / "digits-a", tmp_path / "cpu" / "." / "digits-a",
           tmp_path / "cpu_digits-a", "--out", out)
    page = Page()
    page.feed((out / "report.html").read_text())
    header, *rows = page.tables["leaderboard"]
    assert sorted((r[1], r[2].replace(" (unordered)", ""), r[header.index("n")]) for r in rows) == [
        ("cpu/digits-a, cpu_digits-a", "ovqvae", "1"), ("cpu/digits-a, cpu_digits-a", "vqvae-channel", "1"),
        ("gpu/digits-a", "ovqvae", "1"), ("gpu/digits-a", "vqvae-channel", "1")]
    assert [r[0] for r in page.tables["provenance"][1:]] == ["cpu/digits-a", "cpu_digits-a", "gpu/digits-a"]
    assert {p.name for p in out.glob("*-samples.png")} == {"cpu_digits-a-samples.png", "gpu_digits-a-samples.png",
                                                           "cpu_digits-a-2-samples.png"}


def test_runs_that_trained_the_same_seed_start_another_group_whatever_their_seeds_read(tmp_path):
    from anytime_bench.analysis.report.gather import Gathered, split_repeated_seeds
    from anytime_bench.store.rundir import RunPaths

    def run(name, seeds):
        return Gathered(paths=RunPaths(tmp_path / name), name=name, group="g",
                        metrics=pd.DataFrame({"train_seed": seeds}))

    runs = [run("a", [0.0, 1.0]), run("b", [2.0]), run("c", [1.0, float("nan")]), run("d", [float("inf")]),
            run("e", [float("inf")])]
    split_repeated_seeds(runs)
    assert [r.group for r in runs] == ["g", "g", "g#2", "g", "g#2"]


def test_measurements_with_a_missing_value_or_column_still_have_a_fingerprint():
    from anytime_bench.analysis.report.gather import measurements_of

    row = dict(dataset="digits", model="ovqvae", ordered=True, per_budget=False, train_seed=0, sample_seed=0,
               budget=1.0, tokens=16, value=0.5)
    frame = pd.DataFrame([row, {**row, "budget": 0.5, "tokens": 8, "value": float("nan")}])
    assert measurements_of(frame, "k") == measurements_of(frame.iloc[::-1], "k") != measurements_of(frame.iloc[:1], "k")
    assert measurements_of(frame.drop(columns="tokens"), "k")  # older runs have no tokens column


def test_runs_of_one_dataset_ranked_by_different_headlines_get_a_figure_each(runs, tmp_path):
    invoke("run", TINY, "--encoders", "ovqvae", "--metrics", "fid,mse", "--set", "run.headline_metric=mse",
           "--out", runs, "--cache-dir", runs / "cache", "--quiet", "--run-id", "digits-mse")
    out = tmp_path / "report"
    invoke("report", runs / "digits-a", runs / "digits-mse", "--out", out)
    assert (out / "digits-fid-quality_vs_budget.png").is_file() and (out / "digits-mse-quality_vs_budget.png").is_file()
    markdown = (out / "report.md").read_text()
    assert "digits-fid-quality_vs_budget.png" in markdown and "digits-mse-quality_vs_budget.png" in markdown


def test_report_rejects_unknown_metric_and_format(runs, capsys):
    for args, message in (([runs / "digits-a", "--metric", "nope"], "--metric: 'nope'"),
                          ([runs / "digits-a", "--metric", ""], "--metric: expected a metric name"),
                          ([runs / "digits-a", "--format", "pdf"], "--format: 'pdf'")):
        with pytest.raises(SystemExit) as exc:
            main(["report", *map(str, args)])
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_the_report_shows_sample_grids_reduced_and_decodes_no_bomb():
    import io
    import struct
    import zlib

    from PIL import Image

    from anytime_bench.analysis.report.figures import PREVIEW_WIDTH, preview_png

    buffer = io.BytesIO()
    Image.new("RGBA", (1000, 120), (10, 200, 30, 255)).save(buffer, "PNG")
    reduced = Image.open(io.BytesIO(preview_png(buffer.getvalue())))
    assert reduced.format == "PNG" and reduced.size == (PREVIEW_WIDTH, 96)
    with pytest.raises(ValueError):
        preview_png(b"not a png at all")
    # A few bytes whose header declares 100 million pixels: refused before decoding.
    png = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", 10_000, 10_000) + bytes(png[24:29])
    png[16:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(ValueError):
        preview_png(bytes(png))
