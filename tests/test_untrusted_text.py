"""Text and files from someone's run folder, cache or image folder: shown as written, never obeyed.

A name may hold what matplotlib reads as a formula, what a terminal reads as an escape code, what a console reads
as markup or what a Markdown viewer renders as HTML; an archive may hold members nobody asked for, an image folder
a file of another format under an image's suffix, and a run folder a link where a table should be.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from anytime_bench.errors import DataError

from .conftest import ROOT, run_cli

HOSTILE = "x$\\frac{$\x1b]0;owned\x07\x1b[31m<img src=x onerror=alert(1)>[link=mailto:e]"


def _digits_copy(tmp_path, model: str = "ovqvae"):
    """results/reference-digits with one model renamed to HOSTILE in its metrics table."""
    run = tmp_path / "run"
    shutil.copytree(ROOT / "results" / "reference-digits", run)
    table = pd.read_csv(run / "metrics.csv", keep_default_na=False)
    table.loc[table.model == model, "model"] = HOSTILE
    table.to_csv(run / "metrics.csv", index=False)
    return run, table


def test_a_name_that_reads_as_a_formula_or_markup_is_drawn_and_reported_as_written(tmp_path):
    run, _ = _digits_copy(tmp_path)
    result = run_cli("report", run, "--out", tmp_path / "report")
    assert result.code == 0, result.err
    text = (tmp_path / "report" / "report.md").read_text()
    assert "<img" not in text and "\x1b" not in text


def test_choose_prints_names_from_a_metrics_table_without_their_escape_codes_or_markup(tmp_path):
    run, table = _digits_copy(tmp_path)
    state = json.loads((run / "run.json").read_text())
    state["metric_references"] = {metric: "validation" for metric in state["metric_references"]}
    (run / "run.json").write_text(json.dumps(state))
    result = run_cli("choose", run, env={"COLUMNS": "400"})
    assert result.code == 0, result.err
    assert "\x1b" not in result.out and "\x07" not in result.out
    assert "\\x1b]0;owned" in result.out.replace("\n", "")  # shown, escaped
    assert "link=mailto:e]" in result.out.replace("\n", "")  # rich's markup shown as text


def test_a_summary_shows_a_run_id_and_a_kept_floor_note_as_text_not_html(plugins):
    from anytime_bench.analysis.results import summary_markdown
    from anytime_bench.engine.config import config_from_record
    from anytime_bench.engine.run import RunRecord
    from anytime_bench.store.tables import read_metrics

    run = ROOT / "results" / "reference-digits"
    state = RunRecord(run / "run.json").read()
    cfg = config_from_record(state["config"], plugins, {})
    frame = read_metrics(run / "metrics.csv", [], run_settings=state["config"]["run"])
    frame["run_id"] = "<img src=x onerror=alert(1)>[x](javascript:alert(1))"
    text = summary_markdown(frame, cfg, {"fid": False}, ["fid"], {},
                            notes={"fid": "<script>alert(1)</script> [click](javascript:alert(1)) \x1b]52;c;x\x07"})
    assert text.splitlines()[0] == "# &lt;img src=x onerror=alert(1)&gt;\\[x\\](javascript:alert(1))"
    assert "<script>" not in text and "[click]" not in text and "\x1b" not in text
    assert "No floor for `fid`: &lt;script&gt;alert(1)&lt;/script&gt; \\[click\\](javascript:alert(1)) \\\\x1b" in text  # shown


def test_the_headline_a_command_prints_escapes_a_model_name_from_a_table(tmp_path):
    from anytime_bench.analysis.results import headline

    _, table = _digits_copy(tmp_path)
    line = headline(table, "fid")
    assert "\x1b" not in line and "\x07" not in line and "x$\\frac{$\\x1b]0;owned\\x07" in line


def test_a_log_line_quoting_a_path_shows_the_path_as_written():
    from rich.console import Console

    from anytime_bench.contract.context import RunContext

    out = io.StringIO()
    ctx = RunContext(console=Console(file=out, width=300, color_system=None))
    ctx.log("wrote t/ev[link=mailto:evil]x[bogus/metrics.csv \x9b31m")
    assert out.getvalue() == "wrote t/ev[link=mailto:evil]x[bogus/metrics.csv \\x9b31m\n"


def test_a_file_of_another_format_under_an_image_suffix_is_not_opened_as_that_format(tmp_path):
    """Pillow opens an EPS (through Ghostscript, where installed) whatever the file's suffix."""
    from anytime_bench_plugins.image_datasets import read_image

    eps = tmp_path / "x.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    with pytest.raises(DataError, match=r"x.png: unreadable image \(not a PNG, JPEG, BMP, WEBP or TIFF image\)$"):
        read_image(eps, 8)


def test_an_archive_unpacks_only_the_members_asked_for(tmp_path, monkeypatch):
    from anytime_bench.files import archives

    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in (("codes", np.arange(4)), ("junk", np.zeros(2**16))):
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{name}.npy", buffer.getvalue())
    monkeypatch.setattr(archives, "MAX_ARCHIVE_BYTES", 2**12)  # the codes fit, the junk does not
    assert list(archives.read(path, keys=("codes",))) == ["codes"]
    with pytest.raises(DataError, match="would unpack to"):
        archives.read(path)


def test_a_table_in_a_run_folder_that_is_a_link_is_not_followed(tmp_path):
    from anytime_bench.store.tables import read_metrics

    elsewhere = tmp_path / "elsewhere.csv"
    shutil.copy(ROOT / "results" / "reference-digits" / "metrics.csv", elsewhere)
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(elsewhere, run / "metrics.csv")
    problems: list[str] = []
    assert read_metrics(run / "metrics.csv", problems) is None
    assert problems == ["a metrics.csv that is a file, not a link"]
    os.mkfifo(run / "pipe.csv")  # refused, not waited on
    assert read_metrics(run / "pipe.csv", problems) is None and problems[-1] == "a readable pipe.csv"
