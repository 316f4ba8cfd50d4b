"""`anytime-bench runs` (what run folders a user has), the library pipeline, and the commands that read results
without torch."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from anytime_bench.files.markdown import escape
from anytime_bench.store.record import SCHEMA

from .conftest import ROOT, TINY, assert_clean_error, run_cli
from .test_identity import COMMITTED


def test_runs_lists_every_committed_run_with_status_and_compatibility():
    result = run_cli("runs", ROOT / "results", "--json")
    assert result.code == 0, result.err
    entries = json.loads(result.out)
    assert [e["run_id"] for e in entries] == [p.name for p in COMMITTED]
    # Runs written before schema 2 are migrated; those written since are read as they are.
    assert all(e["recognised"] and e["schema"] in (1, SCHEMA) and e["status"] in ("done", "evaluated")
               for e in entries)
    table = run_cli("runs", ROOT / "results")
    assert table.code == 0 and "reference-zoo-mnist" in table.out


def test_runs_says_a_record_of_an_earlier_schema_is_migrated(tmp_path):
    # The committed runs were written at schema 1 or 2; a command that writes their record (evaluate --floors-only)
    # writes it at today's schema. The kept fixture of schema 1 is listed as migrated.
    shutil.copytree(ROOT / "tests" / "records" / "v1-tiny", tmp_path / "v1-tiny")
    entries = json.loads(run_cli("runs", tmp_path, "--json").out)
    assert [(e["run_id"], e["schema"], e["recognised"]) for e in entries] == [("v1-tiny", 1, True)]
    table = run_cli("runs", tmp_path)
    assert table.code == 0 and "yes (schema 1, migrated)" in table.out


def test_runs_tells_a_live_run_from_a_dead_one_and_lists_an_unreadable_one(tiny_run, tmp_path):
    folder = tmp_path / "runs"
    shutil.copytree(tiny_run, folder / "tiny")
    record = json.loads((folder / "tiny" / "run.json").read_text())
    assert record["status"] == "done" and record["schema"] == 2
    (folder / "tiny" / "run.json").write_text(json.dumps({**record, "status": "running", "stage": "train"}))
    (folder / "broken").mkdir()
    (folder / "broken" / "run.json").write_text('{"config": {"run": 5}}')

    def listed():
        result = run_cli("runs", folder, "--json")
        assert result.code == 0, result.err
        return {e["run_id"]: e for e in json.loads(result.out)}

    entries = listed()
    assert entries["tiny"]["status"] == "stopped"  # the record says running, but no process holds the lock
    assert entries["broken"]["status"] == "unreadable" and "'config' must be a table of tables" in \
        entries["broken"]["problem"]
    with open(folder / "tiny" / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert listed()["tiny"]["status"] == "running"
    # the table names each folder (a copy by its own name), and a problem in a line of its own below it
    shutil.copytree(folder / "tiny", folder / "copy")
    table = run_cli("runs", folder).out
    lines = table.splitlines()
    assert any(line.strip().startswith("copy (run id tiny)") for line in lines), table
    assert "no (below)" in table and lines[-1].startswith("broken: ") and "must be a table of tables" in lines[-1]


def test_report_runs_and_choose_import_no_torch(tiny_run, tmp_path):
    # choose refuses this run (scored against its training split), after reading it without torch
    code = ("import sys\nfrom anytime_bench.cli import main\n"
            "for args, want in ((['runs', sys.argv[1]], 0),\n"
            "                   (['runs', sys.argv[1], '--markdown', '--configs', sys.argv[3]], 0),\n"
            "                   (['report', sys.argv[1], '--out', sys.argv[2]], 0), (['choose', sys.argv[1]], 2)):\n"
            "    try:\n        main(args)\n    except SystemExit as exc:\n        assert (exc.code or 0) == want, exc.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code, str(tiny_run), str(tmp_path / "report"), str(ROOT / "configs")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "report" / "report.html").is_file()
    assert "was scored against the train split, not the validation split" in result.stderr


def test_a_config_of_model_entries_matches_the_record_that_writes_every_entry_in_full():
    """A record writes each [[model]] entry with every field; a file sets a few: only what it sets is compared."""
    from anytime_bench.store.inventory import ConfigFile, differences

    file = ConfigFile("configs/pairs.toml", {"run.dataset": "digits", "model": [
        {"encoder": "rvq", "prior_options": {"n_layer": 1}}, {"encoder": "rvq", "top_p": 0.95}]}, "", set())
    recorded = {"run.dataset": "digits", "model": [
        {"encoder": "rvq", "label": "rvq", "prior": "transformer", "temperature": 1.0, "prior_options": {"n_layer": 1,
                                                                                                       "d_model": 64}},
        {"encoder": "rvq", "label": "rvq-p95", "prior": "transformer", "temperature": 1.0, "top_p": 0.95}]}
    assert differences(file, recorded) == []
    first, second = recorded["model"]
    for entries in ([first, {**second, "top_p": 0.9}], [{**first, "prior_options": {"n_layer": 2}}, second], [first]):
        assert [d.split(" = ")[0] for d in differences(file, {**recorded, "model": entries})] == ["model"]


def test_runs_markdown_names_each_runs_config_and_headline_and_what_it_could_not_read(tiny_run, tmp_path):
    folder, configs = tmp_path / "runs", tmp_path / "configs"
    shutil.copytree(tiny_run, folder / "tiny")
    shutil.copytree(tiny_run, folder / "no-metrics")
    (folder / "no-metrics" / "metrics.csv").unlink()
    (folder / "broken").mkdir()
    (folder / "broken" / "run.json").write_text('{"config": {"run": 5}}')
    (configs / "ablations").mkdir(parents=True)
    (configs / "ablations" / "tiny.toml").write_text(
        "# Does the tiny benchmark finish? Seconds on a CPU.\n#   anytime-bench run configs/ablations/tiny.toml "
        "--run-id tiny\n" + TINY.read_text().replace("num_samples = 64", "num_samples = 65")
        .replace("stage2_steps = 30", "stage2_steps = 29", 1))
    (configs / "near.toml").write_text(TINY.read_text().replace("steps = 30", "steps = 31", 1))
    result = run_cli("runs", folder, "--markdown", "--configs", configs)
    assert result.code == 0, result.err
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in result.out.splitlines() if line.startswith("| [")}
    assert set(rows) == {"[`tiny`](tiny/)", "[`no-metrics`](no-metrics/)", "[`broken`](broken/)"}
    frame = pd.read_csv(folder / "tiny" / "metrics.csv")
    fid = frame[(frame.metric == "fid") & (frame.model == "ovqvae")]
    low, full = (fid[fid.budget == b].value.mean() for b in (0.25, 1.0))
    asks, config, seeds, headline = rows["[`tiny`](tiny/)"]
    assert asks == "Does the tiny benchmark finish?" and seeds == "0"
    # the file whose comment runs it, with where the run's recorded options differ from it
    # text cells are escaped (they quote run folders, which may come from someone else); the links are not, and the
    # config and its options are code spans, in which nothing is markup
    assert config == "`configs/ablations/tiny.toml` with `run.num_samples = 64`, `encoder.ovqvae.stage2_steps = 30`"
    assert headline.startswith(escape("fid at 0.25 -> 1: ovqvae ")) and \
        escape(f"ovqvae {low:.3g} -> {full:.3g};") in headline
    asks, config, _, headline = rows["[`no-metrics`](no-metrics/)"]
    assert asks == "Does the tiny benchmark finish?" and headline == "no readable metrics.csv"  # its record says tiny
    assert rows["[`broken`](broken/)"][0].startswith("unreadable run.json: ")
    (folder / "no-metrics" / "run.json").write_text(
        (folder / "no-metrics" / "run.json").read_text().replace('"run_id": "tiny"', '"run_id": "no-metrics"'))
    out = run_cli("runs", folder, "--markdown", "--configs", configs).out
    row = next(line for line in out.splitlines() if line.startswith("| [`no-metrics`]"))
    # named by no comment now: the file it differs least from, and what it asks from its record
    assert ("| digits: ovqvae, vqvae-channel, vqvae-spatial with a transformer prior | `configs/near.toml` with "
            "`encoder.ovqvae.steps = 30` |") in row
    assert_clean_error(run_cli("runs", folder, "--markdown", "--configs", tmp_path / "none"), 2,
                       "is not a folder of config files")
    (configs / "bad.toml").write_text("[run\n")
    assert_clean_error(run_cli("runs", folder, "--markdown", "--configs", configs), 2, "bad.toml cannot be read")
    assert_clean_error(run_cli("runs", folder, "--markdown", "--json"), 2, "--json and --markdown: choose one")


def test_runs_markdown_reads_a_config_that_extends_another_as_a_run_does(tiny_run, tmp_path):
    """A run records its config merged with the files it extends: the index compares it with the merged file, and
    where a run is one option from a base and from a file extending it, it is the base with that option."""
    folder, configs = tmp_path / "runs", tmp_path / "configs"
    shutil.copytree(tiny_run, folder / "tiny")
    shutil.copytree(tiny_run, folder / "other")
    record = json.loads((folder / "other" / "run.json").read_text())
    record["run_id"], record["config"]["run"]["num_samples"] = "other", 65
    (folder / "other" / "run.json").write_text(json.dumps(record))
    (configs / "ablations").mkdir(parents=True)
    (configs / "base.toml").write_text(TINY.read_text().replace("num_samples = 64", "num_samples = 70"))
    (configs / "ablations" / "tiny.toml").write_text(
        "# The base with the tiny run's sample count.\n#   anytime-bench run configs/ablations/tiny.toml --run-id tiny\n"
        'extends = "../base.toml"\n\n[run]\nnum_samples = 64\n')
    result = run_cli("runs", folder, "--markdown", "--configs", configs)
    assert result.code == 0, result.err
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in result.out.splitlines() if line.startswith("| [")}
    assert rows["[`tiny`](tiny/)"][:2] == ["The base with the tiny run's sample count.",
                                          "`configs/ablations/tiny.toml`"]  # every option it inherits holds
    # one option from both files: the base with it, not the extending file with its own change undone
    assert rows["[`other`](other/)"][1] == "`configs/base.toml` with `run.num_samples = 65`"


def test_the_readme_python_example_runs(tmp_path, shared_cache):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(import torch\nfrom anytime_bench import load_model, run_benchmark.*?)```", readme,
                      re.S)
    assert block, "the README shows a benchmark run from Python, then anytime sampling of its model"
    code = block.group(1)
    assert "configs/digits.toml" in code and 'out="results"' in code and '"results/from-python"' in code
    code = code.replace("configs/digits.toml", str(TINY)).replace('out="results"', f'out="{tmp_path}"')
    code = code.replace('"results/from-python"', f'"{tmp_path / "from-python"}"')
    # the tiny config's sizes, one model and a cheap metric: the same calls, in seconds
    code = code.replace('"run": {', f'"run": {{"cache_dir": "{shared_cache}", "encoders": ["ovqvae"], '
                                    '"metrics": ["mse"], ')
    namespace: dict = {"__name__": "__main__"}  # run as the script itself, as its guard asks
    exec(compile(code, "README.md", "exec"), namespace)
    results = namespace["results"]
    assert set(results.metrics.model) == {"ovqvae"} and set(results.summary().budget) == {0.25, 0.5, 1.0}
    anytime = namespace["anytime"]
    assert 1 <= anytime.tokens <= namespace["model"].encoder.code_length and anytime.data.shape[0] == 16
    assert anytime.stopped_by in ("deadline", "budget")  # "budget": every code sampled within 50 ms


def test_a_script_that_runs_the_benchmark_unguarded_is_told_why_its_workers_failed(tmp_path, shared_cache):
    script = tmp_path / "unguarded.py"
    script.write_text(f"""from anytime_bench import run_benchmark
run_benchmark({str(TINY)!r}, out={str(tmp_path)!r}, run_id="r", overrides={{"run": {{"workers": 2, "metrics": ["mse"],
              "encoders": ["ovqvae", "vqvae-channel"], "cache_dir": {str(shared_cache)!r}}}}})
""")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode != 0
    assert "run_benchmark was called as a training worker imported the script that calls it: call it under " \
           "`if __name__ == \"__main__\":`" in result.stderr, result.stderr[-2000:]


def test_train_stages_from_python_return_none_until_there_are_results(tmp_path, shared_cache):
    from anytime_bench import run_benchmark

    overrides = {"run": {"encoders": ["ovqvae"], "metrics": ["mse"], "cache_dir": str(shared_cache), "workers": 1}}
    assert run_benchmark(TINY, out=tmp_path, run_id="r", overrides=overrides, stages=["train"]) is None
    assert (tmp_path / "r" / "checkpoints").is_dir()
    results = run_benchmark(TINY, out=tmp_path, run_id="r", overrides=overrides)  # resumes, trains nothing again
    assert set(results.metrics.model) == {"ovqvae"}


def test_load_model_names_what_a_run_folder_lacks(tiny_run):
    import anytime_bench
    from anytime_bench import ConfigError

    model = anytime_bench.load_model(tiny_run, "ovqvae", 0)
    budget = anytime_bench.sampling.sample(model.prior, model.encoder, 5, tokens=2,
                                           generator=torch.Generator().manual_seed(0), **model.sampling)
    assert budget.codes.shape == (5, 2) and budget.stopped_by == "budget"
    with pytest.raises(ConfigError, match="no model 'nope'; its models: ovqvae"):
        anytime_bench.load_model(tiny_run, "nope")
    for seed in (7, "0", True, 0.0):
        with pytest.raises(ConfigError, match=f"no training seed {seed!r}"):
            anytime_bench.load_model(tiny_run, "ovqvae", seed)


def test_load_model_refuses_a_per_budget_model(tmp_path, shared_cache):
    import anytime_bench
    from anytime_bench import ConfigError

    result = run_cli("run", TINY, "--encoders", "oracle", "--budgets", "0.5,1", "--metrics", "mse", "--out", tmp_path,
                     "--run-id", "o", "--cache-dir", shared_cache, "--quiet")
    assert result.code == 0, result.err
    with pytest.raises(ConfigError, match="'oracle' in .* is a per-budget model"):
        anytime_bench.load_model(tmp_path / "o", "oracle")
    # bench times each member at its own length: no time ratios to report, and it says so
    bench = run_cli("bench", tmp_path / "o", "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0",
                    "--synthetic-length", "0", "--cache-dir", shared_cache)
    assert bench.code == 0, bench.err
    assert "no time ratios: every model is per-budget" in bench.out


def test_samples_of_new_seeds_are_scored_by_evaluate_with_those_seeds_as_sample_says(tiny_run, tmp_path, shared_cache):
    run = tmp_path / "r"
    shutil.copytree(tiny_run, run)
    sampled = run_cli("sample", run, "--sample-seeds", "1", "--cache-dir", shared_cache)
    assert sampled.code == 0, sampled.err
    # a run folder keeps no machine-local option: the hint gives them again, or following it would miss the cache
    assert sampled.out.strip().endswith(f"next: anytime-bench evaluate {run} --sample-seeds 1 --cache-dir "
                                        f"{shlex.quote(str(shared_cache))}")
    evaluated = run_cli("evaluate", run, "--sample-seeds", "0,1", "--cache-dir", shared_cache, "--quiet")
    assert evaluated.code == 0, evaluated.err
    assert sorted(pd.read_csv(run / "metrics.csv").sample_seed.unique()) == [0, 1]


def test_the_recorded_commit_is_the_packages_not_the_current_folders(tmp_path, monkeypatch):
    import subprocess

    from anytime_bench.engine.provenance import git_commit

    ours = git_commit()
    other = tmp_path / "project"
    other.mkdir()
    for args in (["init", "-q"], ["-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty",
                                  "-m", "x"]):
        subprocess.run(["git", *args], cwd=other, check=True, capture_output=True)
    monkeypatch.chdir(other)
    assert git_commit() == ours  # a checkout's commit, or "unknown" for an installed package: never the project's


def test_a_record_resumed_many_times_keeps_its_first_and_latest_passes(tmp_path):
    from anytime_bench.engine.run import MAX_PASSES, RunRecord

    record = RunRecord(tmp_path / "run.json")
    for i in range(MAX_PASSES + 10):
        record.update(stage_seconds={"train": float(i)}, wall_seconds=float(i), status="done", config={"run": {}})
        record.new_pass(record.read())
    state = record.read()
    kept = [p["wall_seconds"] for p in state["passes"]]
    assert len(kept) == MAX_PASSES and kept[0] == 0 and kept[1:] == list(range(11, MAX_PASSES + 10))
    assert "wall_seconds" not in state and "stage_seconds" not in state and state["config"] == {"run": {}}


def test_a_record_is_written_within_the_size_it_is_read_back_at(tmp_path, monkeypatch):
    """Indented, a record read at close to the limit would be written past it and refused from then on: it is written
    compact, or, beyond the limit even so, refused before anything is written."""
    from anytime_bench import ConfigError
    from anytime_bench.engine import run as run_module
    from anytime_bench.engine.run import RunRecord

    monkeypatch.setattr(run_module, "MAX_RECORD_BYTES", 4000)
    record = RunRecord(tmp_path / "run.json")
    record.update(config={"run": {}}, passes=[{"versions": {"anytime-bench": str(i)}} for i in range(60)])
    written = (tmp_path / "run.json").read_bytes()
    assert len(written) <= 4000 and b"\n  " not in written  # compact, where indented it would not fit
    assert len(record.read()["passes"]) == 60
    with pytest.raises(ConfigError, match="would grow larger than"):
        record.update(passes=[{"versions": {"anytime-bench": str(i)}} for i in range(200)])
    assert (tmp_path / "run.json").read_bytes() == written
