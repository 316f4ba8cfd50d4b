"""`anytime-bench runs` (what run folders a user has), the library pipeline, and the commands that read results
without torch."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys

from .conftest import ROOT, TINY, run_cli
from .test_identity import COMMITTED


def test_runs_lists_every_committed_run_with_status_and_compatibility():
    result = run_cli("runs", ROOT / "results", "--json")
    assert result.code == 0, result.err
    entries = json.loads(result.out)
    assert [e["run_id"] for e in entries] == [p.name for p in COMMITTED]
    assert all(e["recognised"] and e["schema"] == 1 and e["status"] in ("done", "evaluated") for e in entries)
    table = run_cli("runs", ROOT / "results")
    assert table.code == 0 and "reference-zoo-mnist" in table.out and "yes (schema 1, migrated)" in table.out


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


def test_report_and_runs_import_no_torch(tiny_run, tmp_path):
    code = ("import sys\nfrom anytime_bench.cli import main\n"
            "for args in (['runs', sys.argv[1]], ['report', sys.argv[1], '--out', sys.argv[2]]):\n"
            "    try:\n        main(args)\n    except SystemExit as exc:\n        assert not exc.code, exc.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code, str(tiny_run), str(tmp_path / "report")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "report" / "report.html").is_file()


def test_the_readme_python_example_runs(tmp_path, shared_cache):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(from anytime_bench\.pipeline import .*?)```", readme, re.S)
    assert block, "the README shows a benchmark run from Python"
    code = block.group(1)
    assert "configs/digits.toml" in code and 'out="results"' in code
    code = code.replace("configs/digits.toml", str(TINY)).replace('out="results"', f'out="{tmp_path}"')
    # the tiny config's sizes, one model and a cheap metric: the same calls, in seconds
    code = code.replace('"run": {', f'"run": {{"cache_dir": "{shared_cache}", "encoders": ["ovqvae"], '
                                    '"metrics": ["mse"], ')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    results = namespace["results"]
    assert set(results.metrics.model) == {"ovqvae"} and set(results.summary().budget) == {0.25, 0.5, 1.0}
