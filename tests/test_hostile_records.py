"""Hostile run.json values through every command that opens a run folder (issue 37), not only through the parser.

The session's tiny run is copied per case and its ``run.json`` given one hostile value: an integer of 5000 digits,
``"run": 5``, a config value of the wrong type, a data block with an absurd shape, nesting deeper than Python
recurses... Every command that opens the folder (``evaluate``, ``sample``, ``bench``, ``config --of-run``,
``report``, ``runs``, and ``run``/``train --run-id`` resuming into it) ends in one line naming the file and what is
wrong, exit 2 (``runs`` lists the folder as unreadable and exits 0), with no traceback, and leaves every byte of the
run folder as it was. Every case is refused while the record is read, so the lot costs a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import TINY, assert_clean_error, run_cli

RUN_ID = "tiny"
BIG = "9" * 5000
"""Python refuses to turn more than 4300 digits into an int with an error of its own (it gave exit 1 before)."""


@pytest.fixture(scope="module")
def source(tiny_run, shared_cache) -> tuple[Path, Path]:
    """The finished tiny run (trained once per session) and its cache."""
    assert tiny_run.name == RUN_ID
    return tiny_run, shared_cache


def hostile(path: str | None, raw: str):
    """``run.json`` with the JSON text ``raw`` at the dotted ``path`` (the whole file when None): written as text,
    since Python cannot even print an integer of 5000 digits, let alone write one as JSON."""
    def change(state: dict) -> str:
        if path is None:
            return raw
        marker = "@@hostile@@"
        *parents, last = path.split(".")
        table = state
        for key in parents:
            table = table.setdefault(key, {})
        table[last] = marker
        return json.dumps(state, indent=2).replace(json.dumps(marker), raw)
    return change


# Refused by the record's parser: every reader of the record says why, report and runs included.
UNPARSED = {
    "5000-digit-int-in-history": (hostile("processes", BIG), "an integer of 5000 digits"),
    "5000-digit-int-in-config": (hostile("config.run.seed", BIG), "an integer of 5000 digits"),
    "5000-digit-int-in-seeds": (hostile("seeds.train", f"[0, {BIG}]"), "an integer of 5000 digits"),
    "5000-digit-int-deep-in-models": (hostile("models.ovqvae.train_seeds.0.codes_used", BIG),
                                      "an integer of 5000 digits"),
    "run-5": (hostile("config.run", "5"), "'config' must be a table of tables"),
    "component-table-3": (hostile("config.encoder", "3"), "'config' must be a table of tables"),
    "data-5": (hostile("data", "5"), "'data' must be a table"),
    "nested-past-recursion": (hostile("models.ovqvae.extra", "[" * 5000 + "]" * 5000), "nests values too deeply"),
    "nested-50-levels": (hostile("config.encoder.ovqvae.widths", "[" * 50 + "8" + "]" * 50),
                         "nests values deeper than 40 levels"),
    "text-of-300000": (hostile("failure", json.dumps("x" * 300_000)), "holds a text of 300000 characters"),
    "newer-schema": (hostile("schema", "99"), "written by a newer anytime-bench (record schema 99"),
    "identity-set-5": (hostile("identity.set", "5"), "'identity' must be a canonical config form"),
    "top-level-nan": (hostile("wall_seconds", "NaN"), "a top-level number is not finite"),
    "not-an-object": (hostile(None, "[1, 2]"), "must hold a JSON object, not list"),
}

# The record parses, but the config or the data facts it holds cannot be used: every command that reopens or
# resumes the run refuses it; report and runs, which read only the results contract, still read it.
UNUSABLE = {
    "seed-a-string": (hostile("config.run.seed", '"zero"'), "run.seed: expected an integer, got 'zero'"),
    "budgets-a-string": (hostile("config.run.budgets", '"sixteen"'), "run.budgets: expected a list"),
    "encoder-steps-a-list": (hostile("config.encoder.ovqvae.steps", "[1]"), "encoder.ovqvae.steps: expected an "
                                                                            "integer"),
    "infinite-temperature": (hostile("config.run.temperature", "1e999"), "run.temperature: must be in"),
    "shape-of-1e35-values": (hostile("data.data_shape", "[10000000, 10000000, 10000000, 10000000, 10000000]"),
                             "holds 1e+35 values an item"),
    "shape-of-1e14-values": (hostile("data.data_shape", "[1, 10000000, 10000000]"), "holds 1e+14 values an item"),
    "shape-with-0": (hostile("data.data_shape", "[0, 8, 8]"), "data.data_shape must be a list of 1-5 positive"),
    "shape-of-6-dims": (hostile("data.data_shape", "[1, 1, 1, 1, 1, 1]"), "data.data_shape must be a list of 1-5"),
    "modality-html": (hostile("data.modality", '"<script>"'), "data.modality '<script>' is not a registered"),
    "sample-rate-negative": (hostile("data.sample_rate", "-5"), "data.sample_rate must be a positive integer"),
}

CASES = {**UNPARSED, **UNUSABLE}
REOPENING = ["evaluate", "sample", "bench", "config"]
RESUMING = ["run", "train"]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root``, with the bytes of each file: what a command must leave as it was."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


@pytest.fixture
def spoilt(source, tmp_path, request) -> tuple[Path, Path, str, bool]:
    """A copy of the source run with the case's hostile run.json, its cache, the message expected, and whether the
    record's parser refuses it (else only the commands that use its config or data facts do)."""
    run, cache = source
    copy = tmp_path / "runs" / RUN_ID
    shutil.copytree(run, copy)
    change, message = CASES[request.param]
    (copy / "run.json").write_text(change(json.loads((copy / "run.json").read_text())))
    return copy, cache, message, request.param in UNPARSED


def command_line(command: str, run: Path, cache: Path, tmp_path: Path) -> list:
    if command == "config":
        return ["config", "--of-run", run]
    if command == "report":
        return ["report", run, "--out", tmp_path / "report", "--format", "md"]
    if command == "runs":
        return ["runs", run.parent, "--json"]
    if command in RESUMING:
        return [command, TINY, "--out", run.parent, "--run-id", RUN_ID, "--cache-dir", cache, "--quiet"]
    extra = ["--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0"] if command == "bench" else []
    return [command, run, *extra, "--cache-dir", cache, "--quiet"]


# A report that can be written draws its figures (most of a second): one case shows it written. Its data block
# is the one a report reads (for the items to embed).
REPORTED = [*UNPARSED, "modality-html"]


@pytest.mark.parametrize("spoilt, command", [(case, command) for case in CASES
                                              for command in [*REOPENING, "runs", *RESUMING]]
                         + [(case, "report") for case in REPORTED], indirect=["spoilt"])
def test_a_hostile_record_is_one_line_naming_it_and_nothing_changes(spoilt, command, tmp_path):
    run, cache, message, unparsed = spoilt
    before = snapshot(run.parent)
    result = run_cli(*command_line(command, run, cache, tmp_path))
    if command == "runs":  # a listing: the folder is one of its entries, unreadable or read
        assert result.code == 0 and "Traceback" not in result.err and not result.err.strip(), result.err
        (entry,) = json.loads(result.out)
        if unparsed:
            assert entry["status"] == "unreadable" and "run.json" in entry["problem"], entry
            assert message in entry["problem"], entry["problem"]
        else:
            assert entry["status"] == "done" and not entry["problem"], entry
    elif command == "report" and not unparsed:  # it reads the tables and the record, not the config's values
        assert result.code == 0 and "Traceback" not in result.err and not result.err.strip(), result.err
        assert (tmp_path / "report" / "report.md").is_file()
    else:
        assert_clean_error(result, 2, f"{run}/run.json", message)
        if command == "report":  # which run.json cannot be read, and why, rather than only "pass --metric"
            assert "no run folder names its headline metric (" in result.err
            assert not (tmp_path / "report").exists() and list(tmp_path.glob(".report*")) == []
        assert result.out == ""
    assert snapshot(run.parent) == before  # no byte of the run folder changed, nothing added (not even a lock)


@pytest.mark.parametrize("spoilt", ["5000-digit-int-in-seeds", "newer-schema"], indirect=True)
def test_a_report_ranked_by_a_named_metric_says_why_a_record_was_not_read(spoilt, source, tmp_path):
    """With --metric the tables are still ranked (the record only informs them): the run is listed as incomplete,
    with the reason its record could not be read, beside a readable run."""
    from anytime_bench.files.markdown import escape

    run, _, message, _ = spoilt
    shutil.copytree(source[0], tmp_path / "good")
    before = snapshot(run.parent)
    result = run_cli("report", tmp_path / "good", run, "--out", tmp_path / "report", "--metric", "mse", "--format",
                     "md")
    assert result.code == 0, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {RUN_ID}"), result.err
    assert f"missing a readable run.json ({run}/run.json" in lines[0] and message in lines[0]
    incomplete = (tmp_path / "report" / "report.md").read_text().split("**Incomplete runs:** ", 1)[1].split("\n")[0]
    assert escape("missing a readable run.json (") in incomplete and escape(message) in incomplete, incomplete
    assert snapshot(run.parent) == before


def test_the_untouched_copy_is_read_by_the_same_commands(source, tmp_path):
    """The control: the same folder, its record unchanged, is read by the commands that are cheap to run on it
    (``config --of-run``, ``runs``, ``report``), so what refuses a case above is its hostile value alone; the
    other commands name that value in their line. (``evaluate`` on an unchanged copy of this run, and ``run
    --run-id`` resuming into one up to its lock, are run by tests/test_attacks.py.)"""
    run, cache = source
    copy = tmp_path / "runs" / RUN_ID
    shutil.copytree(run, copy)
    config = run_cli(*command_line("config", copy, cache, tmp_path))
    assert config.code == 0 and "[encoder.ovqvae]" in config.out, config.err
    (entry,) = json.loads(run_cli(*command_line("runs", copy, cache, tmp_path)).out)
    assert entry["status"] == "done" and entry["recognised"], entry
    report = run_cli(*command_line("report", copy, cache, tmp_path))
    assert report.code == 0 and not report.err.strip(), report.err
    assert "no run folder names" not in report.err and (tmp_path / "report" / "report.md").is_file()


@pytest.mark.parametrize("model", ["../../../secret", "ABSOLUTE"])
def test_a_model_name_in_a_table_is_never_a_path_the_report_reads_media_from(tmp_path, model):
    """A model's name comes from metrics.csv, which is untrusted: its exported clips are looked for in the folder
    named from it, made safe, inside the run folder; never at a path the name spells."""
    import pandas as pd

    from anytime_bench.analysis.report import media
    from anytime_bench.analysis.report.gather import Gathered
    from anytime_bench.store.rundir import RunPaths

    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "budget1-tokens16-0.wav").write_bytes(b"RIFF....WAVEfmt SECRET")
    root = tmp_path / "runs" / "r"
    (root / "audio" / "ovqvae").mkdir(parents=True)
    (root / "audio" / "ovqvae" / "budget1-tokens16-0.wav").write_bytes(b"RIFF....WAVEfmt OWN")
    name = str(secret) if model == "ABSOLUTE" else model
    run = Gathered(paths=RunPaths(root), name="r", state={"data": {"modality": "audio"}},
                   metrics=pd.DataFrame({"model": [name, "ovqvae"], "dataset": ["spoken-digits"] * 2}))
    found = [item[3] for item in media([run])]
    assert found == [b"RIFF....WAVEfmt OWN"]


@pytest.mark.parametrize("kind", ["meta", "nested", "sparse_coo", "quantized"])
def test_a_checkpoint_holding_a_tensor_no_file_here_holds_is_refused_naming_it(tmp_path, kind):
    """Such tensors have no values to check (meta) or no place in a state dict: one line naming the file, not an
    internal error from the check for NaN, nor torch's warnings."""
    import warnings

    import torch

    from anytime_bench.errors import CheckpointError
    from anytime_bench.files import storage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # making them: torch's prototype and deprecation notes
        tensor = {"meta": lambda: torch.empty(4, device="meta"),
                  "nested": lambda: torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
                  "sparse_coo": lambda: torch.eye(3).to_sparse(),
                  "quantized": lambda: torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.quint8)}[kind]()
        path = tmp_path / "train0.encoder.pt"
        torch.save({"format": storage.CHECKPOINT_FORMAT, "kind": "encoder", "name": "ovqvae", "config_digest": "d",
                    "state": {"w": tensor}, "extra": {}}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing but the error
        with pytest.raises(CheckpointError, match=f"checkpoint {path} cannot be loaded safely: it holds a {kind} "
                                                  f"tensor \\(at 'state.w'\\)"):
            storage.load_checkpoint(path, kind="encoder", name="ovqvae", config_digest="d")


def test_an_archive_member_that_is_not_an_array_is_refused_naming_it(tmp_path):
    """numpy returns a member stored without .npy as raw bytes: a caller checking dtypes crashed on it, and a cache
    that should be rebuilt stopped the metric."""
    import zipfile

    import numpy as np

    from anytime_bench.errors import DataError
    from anytime_bench.files import archives

    path = tmp_path / "train0-sample0.npz"
    np.savez(path, generated_k4=np.zeros((2, 4), np.uint8))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("generated_k2", b"hello")
    with pytest.raises(DataError, match="member 'generated_k2' of the samples archive is not an array"):
        archives.read(path, "samples archive")


def test_one_folder_that_cannot_be_read_or_ranked_stops_no_other_in_report_and_runs(tiny_run, tmp_path):
    """A lone surrogate in run.json (valid JSON, no valid text), a provenance cell nested deeper than Python
    recurses, and a headline metric that neither the record nor an installed plugin gives a direction for: each
    stopped the whole report (or runs) with an internal error or exit 2."""
    import pandas as pd

    folders = tmp_path / "runs"
    for name in ("good", "surrogate", "nested", "unknown-metric"):
        shutil.copytree(tiny_run, folders / name, ignore=shutil.ignore_patterns("samples", "checkpoints", "codes"))
    record = json.loads((folders / "surrogate" / "run.json").read_text())
    (folders / "surrogate" / "run.json").write_text(json.dumps({**record, "status": "\udc80"}))
    metrics = pd.read_csv(folders / "nested" / "metrics.csv")
    metrics.loc[0, "provenance"] = "[" * 100_000 + "]" * 100_000
    metrics.to_csv(folders / "nested" / "metrics.csv", index=False)
    record = json.loads((folders / "unknown-metric" / "run.json").read_text())
    record["config"]["run"]["headline_metric"] = "mymetric"
    (folders / "unknown-metric" / "run.json").write_text(json.dumps(record))

    result = run_cli("report", *sorted(folders.iterdir()), "--out", tmp_path / "report", "--format", "md")
    assert result.code == 0, result.err
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| good |" in text and "| nested |" in text  # the nested cell is read as no provenance
    assert "surrogate/run.json holds a text that is not valid Unicode" in result.err
    assert "unknown-metric: its headline metric 'mymetric' records no direction" in result.err
    assert_clean_error(run_cli("report", *sorted(folders.iterdir()), "--out", tmp_path / "strict", "--strict"), 2,
                       "--strict")
    listed = run_cli("runs", folders)
    assert listed.code == 0 and "good" in listed.out and "surrogate" in listed.out, listed.err


def test_control_characters_from_a_run_folder_reach_no_terminal(tiny_run, tmp_path):
    """A status holding a newline and a terminal's escape code: runs prints it escaped, and report's warning quoting
    it stays one line."""
    folder = tmp_path / "runs" / "odd"
    shutil.copytree(tiny_run, folder, ignore=shutil.ignore_patterns("samples", "checkpoints", "codes"))
    record = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**record, "status": "done\n\x1b[31mEVIL\u2028\x9b1m"}))
    listed = run_cli("runs", folder.parent)
    assert listed.code == 0 and "\x1b" not in listed.out and "\\x1b[31mEVIL\\u2028\\x9b1m" in listed.out, listed.out
    assert not {"\x9b", "\u2028"} & set(listed.out)  # a terminal's escape in one C1 character, a line break
    undecodable = folder.parent / os.fsdecode(b"bad\xff")  # a folder's name that is not UTF-8
    shutil.copytree(folder, undecodable)
    for args in (("runs", folder.parent), ("runs", folder.parent, "--markdown")):
        listed = run_cli(*args)
        assert listed.code == 0 and "bad\\udcff" in listed.out.replace("\\\\", "\\"), listed.err
    shutil.rmtree(undecodable)
    result = run_cli("report", folder, "--out", tmp_path / "report", "--format", "md")
    assert result.code == 0, result.err
    assert result.err.count("\n") == 1 and "\x1b" not in result.err, result.err
    assert result.err.startswith("warning: odd: missing the end of its last pass (run.json says done\\n\\x1b[31mEVIL")


def test_a_link_loop_or_a_stray_name_among_exported_clips_leaves_those_clips_out():
    """Neither stopped the whole report: a loop raised an error the lookup did not expect, and a file named like
    an export with a budget that is no number (``budget..``) was an internal error."""
    import tempfile

    import pandas as pd

    from anytime_bench.analysis.report import media
    from anytime_bench.analysis.report.gather import Gathered
    from anytime_bench.store.rundir import RunPaths

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "r"
        (root / "audio" / "ovqvae").mkdir(parents=True)
        (root / "audio" / "ovqvae" / "budget..-tokens1-0.flac").write_bytes(b"fLaC stray")
        (root / "audio" / "ovqvae" / "budget0.5-tokens8-0.flac").write_bytes(b"fLaC own")
        (root / "audio" / "looped").symlink_to("looped")
        run = Gathered(paths=RunPaths(root), name="r", state={"data": {"modality": "audio"}},
                       metrics=pd.DataFrame({"model": ["looped", "ovqvae"], "dataset": ["spoken-digits"] * 2}))
        assert [item[3] for item in media([run])] == [b"fLaC own"]


def test_a_cached_feature_file_of_another_width_is_computed_again(tiny_run, shared_cache, tmp_path):
    """The file held as many rows as the reference set, of other widths: FID failed inside the plugin (exit 1),
    blamed on it, where a cache that is not what this code writes is computed again."""
    import numpy as np

    cache = tmp_path / "cache"
    shutil.copytree(shared_cache, cache)
    files = [path for path in sorted((cache / "fidelity").glob("*.npz")) if "penultimate" in np.load(path).files]
    assert files
    for path in files:  # the reference features' files (beside them: floors, one value per split)
        arrays = dict(np.load(path))
        np.savez(path, **{name: value[:, :5].copy() for name, value in arrays.items()})
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    result = run_cli("evaluate", run, "--cache-dir", cache, "--quiet")
    assert result.code == 0, result.err
    assert all(np.load(path)["penultimate"].shape[1] > 5 for path in files)


def test_control_characters_in_a_runs_names_reach_no_report_file_nor_figure(tiny_run, tmp_path):
    """A model name holding a terminal's escape codes: report.md, report.html and the figures' text show it
    escaped (matplotlib warned of each missing glyph, escape codes and all)."""
    import pandas as pd

    folder = tmp_path / "odd"
    shutil.copytree(tiny_run, folder, ignore=shutil.ignore_patterns("samples", "checkpoints", "codes"))
    metrics = pd.read_csv(folder / "metrics.csv")
    metrics.loc[metrics.model == metrics.model.iloc[0], "model"] = "evil\x1b[31m\x07"
    metrics.to_csv(folder / "metrics.csv", index=False)
    result = run_cli("report", folder, "--out", tmp_path / "report")
    assert result.code == 0 and "Glyph" not in result.err and "\x1b" not in result.err, result.err
    for name in ("report.md", "report.html"):
        text = (tmp_path / "report" / name).read_text()
        assert "\x1b" not in text and "\x07" not in text and "x1b" in text, name
