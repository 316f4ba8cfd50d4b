from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from anytime_bench.contract.plugin_manager import load_plugins

from .fixtures import write_mnist

ROOT = Path(__file__).resolve().parent.parent
TINY = Path(__file__).resolve().parent / "configs" / "tiny.toml"
MNIST_ROOT = Path(os.environ.get("ANYTIME_BENCH_MNIST", ROOT.parent / "shared" / "datasets" / "mnist"))


# matplotlib builds its font cache on first import in a fresh HOME (CI's), and logs that it does to whatever stderr is
# then, after 5 s: here, before any test captures stderr and counts its lines.
import matplotlib.font_manager  # noqa: E402,F401

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # The README's command runs the suite in one pytest-xdist process per core (tox.ini): tiny tensors gain little
    # from a second thread, and every process's threads would compete for the same cores (on 2 cores the suite ran
    # in 625 s with two threads per process against 354 s with one, issue #38's session of 2026-12-06).
    # the share a run's own training worker gets (anytime_bench.engine.workers)
    from anytime_bench.engine.workers import available_cores

    torch.set_num_threads(max(1, available_cores() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Nothing a test runs may download (CI may reach the internet): a test that needs a download to fail (the
    Inception weights) sees it fail wherever it runs."""
    import urllib.error
    import urllib.request

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("the tests run offline")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def plugins():
    return load_plugins()


@pytest.fixture
def cli_plugins(monkeypatch):
    """``cli_plugins(("name", plugin), ...)``: the plugins with these registered in this process, as a third
    party's would be, and the CLI loading exactly those for the rest of the test."""
    def install(*extra):
        loaded = load_plugins(extra=list(extra))
        monkeypatch.setattr("anytime_bench.contract.plugin_manager.load_plugins", lambda: loaded)
        return loaded

    return install


def plugin_of(kind: str, *classes: type) -> object:
    """A plugin registering ``classes`` as components of ``kind`` (prior, metric, ...), as a third party's module
    would: for ``cli_plugins(("mine", plugin_of("prior", Mine)))``."""
    from anytime_bench import hookimpl

    return type("Plugin", (), {f"register_{kind}s": hookimpl(lambda self: list(classes))})()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the whole session: feature classifiers and reference features are content-addressed."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, shared_cache) -> Path:
    """A finished run of the tiny config (three models, fid, rfid, mse, psnr), trained once per session.

    Tests that change it work on a copy (``shutil.copytree``); its cache is ``shared_cache``.
    """
    out = tmp_path_factory.mktemp("tiny")
    result = run_cli("run", TINY, "--out", out, "--run-id", "tiny", "--cache-dir", shared_cache, "--quiet")
    assert result.code == 0, result.err
    return out / "tiny"


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The real MNIST IDX files, for the few tests that need real data (marked ``real_data``): skipped, saying how to
    enable them, where they are absent. Everything else reads the small IDX files of ``mnist_idx``."""
    if not (MNIST_ROOT / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"needs the real MNIST IDX files, not found in {MNIST_ROOT}: set ANYTIME_BENCH_MNIST to the "
                    "folder holding train-images-idx3-ubyte.gz and the three other files to run it")
    return MNIST_ROOT


def speech_missing() -> str:
    """Why this machine cannot synthesize speech (no espeak-ng: neither the espeakng-loader wheel, which has no build
    for Linux aarch64 or Intel macOS, nor the system's), or ``""``."""
    from anytime_bench import DataError
    from anytime_bench_plugins import speech as synthesis

    try:
        synthesis.engine("auto")
    except DataError as exc:
        return str(exc)
    return ""


@pytest.fixture(scope="session")
def speech() -> None:
    """For the tests that synthesize spoken digits: skipped, saying why and how to enable them, on a machine with no
    speech synthesizer."""
    why = speech_missing()
    if why:
        pytest.skip(f"needs a speech synthesizer, and this machine has none ({why})")


@pytest.fixture(scope="session")
def mnist_idx(tmp_path_factory) -> Path:
    """Small MNIST IDX files in the real format, made by the tests (no download, no real data needed)."""
    return write_mnist(tmp_path_factory.mktemp("mnist-idx"))


def pytest_collection_modifyitems(items):
    # `.ci/run` runs these again where the real data is: they are the ones that ask for it.
    for item in items:
        if "mnist_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)

# The example plugin's own tests run against the installed example (tests/test_third_party_plugin.py).
collect_ignore = ["example_plugin"]


# Python's warning filters when no -W option or PYTHONWARNINGS is given: what the console script prints.
CONSOLE_WARNING_FILTERS = [("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, None),
                           ("ignore", PendingDeprecationWarning, None), ("ignore", ImportWarning, None),
                           ("ignore", ResourceWarning, None)]


def run_cli(*args, env: dict | None = None) -> SimpleNamespace:
    """The ``anytime-bench`` command in this process (as its console script runs it): exit code, stdout, stderr.

    Warnings land in stderr as the console script would print them, so a check for one line of stderr sees them.
    """
    from anytime_bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            warnings.simplefilter("default")
            for action, category, module in reversed(CONSOLE_WARNING_FILTERS):
                warnings.filterwarnings(action, category=category, module=module or "")
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(old)
    for w in caught:
        err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line))
    return SimpleNamespace(code=code, out=out.getvalue(), err=err.getvalue(), returncode=code, stdout=out.getvalue(),
                           stderr=err.getvalue())


def rewrite_torch_file(path: Path, change) -> None:
    """Replace what a torch file holds by ``change(payload)``, as someone crafting it would."""
    from anytime_bench.files import storage

    buffer = io.BytesIO()
    torch.save(change(storage.load_untrusted(path)), buffer)
    path.write_bytes(buffer.getvalue())


def assert_clean_error(result, code: int, *patterns: str) -> None:
    """One line on stderr holding every pattern, this exit code, no traceback."""
    assert result.code == code, (result.code, result.err[-2000:])
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    for pattern in patterns:
        assert pattern in lines[0], lines[0]
