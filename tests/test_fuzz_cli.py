"""Fuzzing the command line with Hypothesis: bad options and bad config files (the promises: tests/fuzzing.py).
Bad run-folder contents: test_fuzz_run_folders.py."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import tomli_w
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from anytime_bench.cli import build_cli
from anytime_bench.contract.plugin_manager import load_plugins

from .conftest import run_cli
from .fuzzing import FUZZ, MARKER, SCALE, check, files


@pytest.fixture(scope="module")
def commands():
    cli = build_cli(load_plugins())
    return {name: command for name, command in cli.commands.items()}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """An empty working folder that is also HOME: relative paths and default caches land inside it."""
    box = tmp_path / "box"
    box.mkdir()
    (box / "a-file").write_text("not a folder")
    monkeypatch.chdir(box)
    monkeypatch.setenv("HOME", str(box))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))  # matplotlib's font cache is not ours
    MARKER.unlink(missing_ok=True)
    return box


# ---------------------------------------------------------------------- options

JUNK = st.one_of(
    st.text(alphabet=string.printable.replace("/", ""), max_size=25),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "nan", "inf", "-1", "0", "1e309", "a,b,,c", "1/0", "0..99999999", "..", ".", "cuda:9",
                     "cuda", "mps", "tpu", "x" * 300, "-", "--", "=", "metric.fid.x=1", "run.seed=-1", "\x00"]),
)
PATHS = st.one_of(st.sampled_from(["a-file", "a-file/below", "missing", ".", "missing/deeper", ""]),
                  st.text(alphabet=string.ascii_letters + "._-", min_size=1, max_size=12))
PATH_OPTIONS = {"--out", "--data-root", "--cache-dir", "--of-run"}


@st.composite
def command_lines(draw, commands):
    name = draw(st.sampled_from(sorted(commands)))
    options = [p for p in commands[name].params if p.opts and p.opts[0].startswith("--")]
    args = [name]
    for param in draw(st.lists(st.sampled_from(options), max_size=4)) if options else []:
        flag = param.opts[0]
        if getattr(param, "is_flag", False):
            args.append(flag)
            continue
        args += [flag, draw(PATHS if flag in PATH_OPTIONS else JUNK)]
    if draw(st.booleans()):
        args.append(draw(st.one_of(PATHS, JUNK.filter(lambda v: not v.startswith("-")))))
    if draw(st.integers(0, 9)) == 0:
        args.append("--" + draw(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)))
    if name in ("run", "train"):
        args += ["--out", "a-file"]  # anything that gets past validation stops here, before any work
    if name == "report":
        args += ["--out", "report-out"]
    return args


def test_fuzzed_command_lines(commands, sandbox):
    @settings(FUZZ, max_examples=450 * SCALE)
    @given(args=command_lines(commands))
    def fuzz(args):
        before = files(sandbox)
        check(run_cli(*args), sandbox, before, allowed=(sandbox / "report-out",))

    fuzz()


# ---------------------------------------------------------------------- config files

KEYS = st.one_of(st.sampled_from(["run", "dataset", "encoder", "prior", "metric", "modality", "budgets", "seed",
                                  "train_seeds", "sample_seeds", "encoders", "metrics", "ovqvae", "digits", "fid",
                                  "transformer", "steps", "code_length", "num_samples", "device", "cache_dir",
                                  "data_root", "temperature", "top_k", "top_p", "seeds", "stage2_steps", "image"]),
                 st.text(alphabet=string.ascii_lowercase + "_-.", min_size=1, max_size=10))
LEAVES = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans(),
                   st.text(max_size=12), st.lists(st.one_of(st.integers(-5, 5), st.floats(-2, 2), st.text(max_size=3)),
                                                  max_size=4))
TABLES = st.recursive(LEAVES, lambda children: st.dictionaries(KEYS, children, max_size=4), max_leaves=12)


@st.composite
def config_files(draw):
    how = draw(st.sampled_from(["toml", "toml", "toml", "bytes", "deep", "text"]))
    if how == "toml":
        document = draw(st.dictionaries(KEYS, TABLES, min_size=1, max_size=4))
        try:
            return tomli_w.dumps(document).encode()
        except (TypeError, ValueError):
            return b"[run]\nseed = -1\n"
    if how == "bytes":
        return draw(st.binary(max_size=200))
    if how == "deep":
        depth = draw(st.integers(10, 3000))
        return ("[run]\nbudgets = " + "[" * depth + "]" * draw(st.integers(0, depth)) + "\n").encode()
    return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")


def test_fuzzed_config_files(sandbox):
    @settings(FUZZ, max_examples=450 * SCALE)
    @given(content=config_files(), command=st.sampled_from(["run", "train", "config"]))
    def fuzz(content, command):
        path = sandbox / "fuzzed.toml"
        path.write_bytes(content)
        before = files(sandbox)
        check(run_cli(command, path, "--out", "a-file", "--quiet"), sandbox, before)

    fuzz()


# ---------------------------------------------------------------------- the fuzzer can fail


def test_the_fuzzer_catches_a_reintroduced_traceback(sandbox, monkeypatch):
    """Undo the config reader's care for encodings: the config fuzz must notice the traceback (printed with
    --debug), and without --debug the 'internal error' that is no plugin's failure."""
    from anytime_bench.files import configfiles

    def careless(path):
        return configfiles.tomllib.loads(Path(path).read_bytes().decode("utf-8"))  # UnicodeDecodeError escapes

    monkeypatch.setattr(configfiles, "read_toml", careless)
    monkeypatch.setenv("ANYTIME_BENCH_DEBUG", "1")  # and the traceback that the CLI prints with --debug

    @settings(FUZZ, max_examples=100, phases=[Phase.generate])  # the first failure is enough: no shrinking
    @given(content=config_files())
    def fuzz(content):
        path = sandbox / "fuzzed.toml"
        path.write_bytes(content)
        check(run_cli("run", path, "--out", "a-file", "--quiet"), sandbox, files(sandbox))

    with pytest.raises(AssertionError, match="Traceback"):
        fuzz()
    monkeypatch.delenv("ANYTIME_BENCH_DEBUG")
    with pytest.raises(AssertionError, match="internal error"):  # without --debug: one line, but no plugin named
        fuzz()
