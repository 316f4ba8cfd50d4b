"""The example in plugins/README.md (a dataset, an encoder, a prior and a metric), installed with pip as a third
party would, then run through every command, with no change to the core."""

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from anytime_bench.contract.interfaces import CONTRACT

from .conftest import ROOT

EXAMPLE = ROOT / "tests" / "example_plugin"
FILES = ["pyproject.toml", "toy_bars.py", "toy_pca.py", "toy_unigram.py", "toy_mae.py", "first-run.toml",
         "test_toys.py"]


def test_the_guide_shows_the_tested_files_verbatim():
    guide = (ROOT / "plugins" / "README.md").read_text()
    blocks = re.findall(r"```(?:toml|python)\n(.*?)```", guide, flags=re.S)
    for name in FILES:
        assert (EXAMPLE / name).read_text() in blocks, f"plugins/README.md does not show {name} as tested"
    for name in FILES[1:5]:
        assert len((EXAMPLE / name).read_text().splitlines()) < 100, f"{name} is no longer a small example"


def test_the_guide_names_every_member_of_the_contract():
    guide = (ROOT / "plugins" / "README.md").read_text()
    contract = guide[guide.index("## The contract"):guide.index("## A complete example")]
    for kind, members in CONTRACT.items():
        for member in members:
            assert f"`{member.name}" in contract, \
                f"the guide's contract section does not explain {kind} member {member.name}"


def test_every_member_of_the_contract_is_described():
    """What the guide's method tables show: each argument of each call, what it returns, its default if optional,
    and errors a plugin can import."""
    import builtins

    import anytime_bench
    from anytime_bench.contract.checks import parse_call

    for kind, members in CONTRACT.items():
        calls = {m.name: m.what for m in members}
        for member in members:
            where = f"{kind} member {member.name}"
            assert member.returns, f"{where}: no returns (or value)"
            assert bool(member.default) != member.required, f"{where}: a default is for optional members only"
            if member.what not in ("class", "instance"):
                _, positional, keywords = parse_call(member.what)
                same = re.fullmatch(r"as `(\w+)`.*", member.arguments)
                if same:  # "as `stream`": the same arguments as that call
                    assert parse_call(calls[same.group(1)])[1:] == (positional, keywords), where
                else:
                    for argument in positional + keywords:
                        assert f"`{argument}`" in member.arguments, f"{where}: argument {argument} not described"
            for error in re.findall(r"`(\w+Error)`", member.raises):
                assert error in anytime_bench.__all__ or isinstance(getattr(builtins, error, None), type), \
                    f"{where}: {error} cannot be imported from anytime_bench"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    # --no-build-isolation/--no-index: nothing is downloaded; setuptools comes from the test environment
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(EXAMPLE)], check=True, capture_output=True)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]))


def cli(env, *args, cwd=None):
    result = subprocess.run([sys.executable, "-m", "anytime_bench", *map(str, args)], env=env, capture_output=True,
                            text=True, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_installed_plugins_are_listed_with_their_distribution(installed):
    rows = {(r["kind"], r["name"]): r for r in json.loads(cli(installed, "plugins", "--json").stdout)}
    for key in (("dataset", "bars"), ("encoder", "pca-ordered"), ("prior", "unigram"), ("metric", "mae")):
        assert rows[key]["distribution"] == "anytime-bench-toys" and rows[key]["version"] == "0.1.0"
    options = json.loads(cli(installed, "plugins", "pca-ordered", "--json").stdout)[0]["options"]
    assert {o["name"]: (o["default"], o["doc"][:12]) for o in options} == {
        "code_length": (16, "D: principal"), "codebook_size": (32, "K: quantile ")}


def test_the_example_runs_through_run_bench_sample_and_report(installed, tmp_path):
    config = EXAMPLE / "first-run.toml"
    done = cli(installed, "run", config, "--run-id", "first", "--out", tmp_path, "--cache-dir", tmp_path / "cache",
               "--quiet")
    assert "done in" in done.stdout
    run = tmp_path / "first"
    metrics = pd.read_csv(run / "metrics.csv")
    assert set(metrics.model) == {"pca-ordered", "ovqvae"} and set(metrics.metric) == {"mae", "mse"}
    pca = metrics[(metrics.model == "pca-ordered") & (metrics.metric == "mae")].sort_values("budget")
    assert pca.value.is_monotonic_decreasing  # PCA codes are ordered: more codes, smaller error

    bench = cli(installed, "bench", run, "--batch-sizes", "1,20", "--repeats", "1", "--min-seconds", "0",
                "--synthetic-length", "8", "--synthetic-batch", "4", "--quiet")
    assert "declares no KV cache, so none was timed" in bench.stdout
    cost = pd.read_csv(run / "cost.csv")
    mine = cost[cost.model == "pca-ordered"]
    # Its prior declares no KV cache: the cache column says so, and nothing was timed twice as cached and uncached.
    assert not mine.cache.any() and not mine.duplicated(["tokens", "batch", "stage", "budget"]).any()

    sampled = cli(installed, "sample", run, "--deadline", "5", "-n", "3", "--quiet")
    assert "pca-ordered: 16/16 tokens" in sampled.stdout

    report = cli(installed, "report", run, "--out", tmp_path / "report", "--metric", "mae")
    assert "report of 1 run (" in report.stdout and (tmp_path / "report" / "report.html").is_file()

    resolved = cli(installed, "config", config).stdout
    assert '[encoder.pca-ordered]' in resolved and "smoothing = 0.5" in resolved


def test_the_example_passes_the_conformance_kit_in_its_own_tests(installed):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "test_toys.py")],
                          env=installed, capture_output=True, text=True, timeout=300, cwd=EXAMPLE)
    assert done.returncode == 0, done.stdout[-2000:]
    assert re.search(r"\b(\d+) passed", done.stdout) and int(re.search(r"\b(\d+) passed", done.stdout)[1]) >= 16


def test_a_prior_written_before_top_p_runs_at_the_default_and_is_refused_below_it(installed, tmp_path):
    """top_p is an optional keyword of stream: the guide's unigram prior does not take it."""
    result = subprocess.run([sys.executable, "-m", "anytime_bench", "run", str(EXAMPLE / "first-run.toml"), "--set",
                             "run.top_p=0.9", "--out", str(tmp_path), "--run-id", "r", "--quiet"],
                            env=installed, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("Error: run.top_p: prior 'unigram' does not accept top_p (nucleus sampling); "
                                     "set run.top_p = 1 or choose a prior that does")
    assert not (tmp_path / "r" / "checkpoints").exists()  # refused before anything was trained


def test_the_guides_command_plugin_runs_as_shown(cli_plugins):
    """The plugin guide's command example, registered as a third party's would be, on a committed run."""
    import types

    from .conftest import run_cli

    guide = (ROOT / "plugins" / "README.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", guide, flags=re.S)
                if "def register_commands" in block)
    plugin = types.ModuleType("budgets_command")
    exec(compile(code, "plugins/README.md", "exec"), plugin.__dict__)
    cli_plugins(("budgets-command", plugin))
    result = run_cli("budgets", ROOT / "results" / "reference-digits")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [f"{model}: 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1"
                                       for model in ("ovqvae", "vqvae-channel", "vqvae-spatial")]
