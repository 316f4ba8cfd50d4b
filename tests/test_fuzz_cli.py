"""Fuzzing the whole command line with Hypothesis: bad options, bad config files, bad run-folder contents.

Every input must end in exit code 2 with one line (or exit 1 with one line naming a plugin, for a plugin's own
failure; or success, where the input happens to be harmless), with no traceback, no file written outside the
folder the command was pointed at, and no code run from a file. The profile is derandomized: CI sees the same
examples every time. ``ANYTIME_BENCH_FUZZ_SCALE=N`` (N > 1) draws N times as many examples, fresh ones each run:
the longer search to run by hand after changing what reads untrusted input.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from anytime_bench.cli import build_cli
from anytime_bench.contract.plugin_manager import load_plugins

from .conftest import TINY, run_cli

MARKER = Path("/tmp/anytime-bench-fuzz-ran")
SCALE = max(1, int(os.environ.get("ANYTIME_BENCH_FUZZ_SCALE") or 1))
FUZZ = settings(derandomize=SCALE == 1, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


class Exploit:
    def __reduce__(self):
        return (exec, (f"open({str(MARKER)!r}, 'w').write('pwned')",))


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def check(result, sandbox: Path, before: set[Path], allowed: tuple[Path, ...] = ()) -> None:
    """The promises: a clean exit, one line on failure, nothing written outside ``allowed``, no code run."""
    assert not MARKER.exists(), "code from a file was executed"
    assert "Traceback" not in result.err, result.err[-3000:]
    lines = [line for line in result.err.splitlines() if line.strip()]
    if result.code == 2:
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.err[-3000:]
        assert not lines[0].rstrip().endswith(":"), f"the error names nothing: {lines[0]!r}"
    elif result.code == 1:
        assert len(lines) == 1 and "from plugin" in lines[0], result.err[-3000:]
    else:
        assert result.code == 0, (result.code, result.err[-3000:])
    new = files(sandbox) - before
    stray = [p for p in new if not any(folder == p or folder in p.parents for folder in allowed)]
    assert not stray, f"wrote outside the chosen folders: {sorted(stray)[:5]}"


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


# ---------------------------------------------------------------------- run-folder contents


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    """A small finished run to corrupt, and its own small cache: one model, two budgets, fid and mse, benched."""
    out = tmp_path_factory.mktemp("fuzz")
    result = run_cli("run", TINY, "--encoders", "ovqvae", "--metrics", "fid,mse", "--budgets", "0.5,1",
                     "--num-samples", "16", "--out", out, "--run-id", "r", "--cache-dir", out / "cache", "--quiet")
    assert result.code == 0, result.err
    bench = run_cli("bench", out / "r", "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0",
                    "--synthetic-length", "0", "--cache-dir", out / "cache", "--quiet")
    assert bench.code == 0, bench.err
    return out / "r"


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                              st.text(max_size=10)),
                    lambda children: st.one_of(st.lists(children, max_size=3),
                                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
                    max_leaves=10)


def mutate_json(draw, data):
    """``data`` with one value somewhere replaced by junk."""
    if not isinstance(data, (dict, list)) or not data or draw(st.integers(0, 3)) == 0:
        return draw(JSON)
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = draw(st.sampled_from(keys))
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[key] = mutate_json(draw, copy[key])
    return copy


def _torch_bytes(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


ARRAYS = st.one_of(
    st.builds(lambda n: np.zeros((n, 1, 8, 8), np.uint8), st.integers(0, 20)),
    st.builds(lambda n: np.zeros((n, 3), np.float64), st.integers(0, 20)),
    st.builds(lambda: np.array(["text"])),
    st.builds(lambda: np.zeros((16, 1, 8, 8), np.int16)),
    st.builds(lambda: np.full((16, 1, 8, 8), 255, np.uint8)),
)


def mutate_state(draw, state: dict) -> dict:
    """A checkpoint's state with one entry changed, removed or added: what a crafted file in the right envelope
    (format, kind, name and config digest, all readable from run.json) can hold."""
    state = dict(state)
    key = draw(st.sampled_from(sorted(state)))
    value = state[key]
    how = draw(st.sampled_from(["shape", "nan", "dtype", "junk", "remove", "add"]))
    if how == "remove":
        del state[key]
    elif how == "add":
        state[draw(st.text(max_size=8))] = torch.zeros(draw(st.integers(0, 3)))
    elif how == "junk":
        state[key] = draw(JSON)
    elif not isinstance(value, torch.Tensor):
        state[key] = torch.zeros(2)
    elif how == "shape":
        shape = draw(st.lists(st.integers(0, 6), max_size=4))
        state[key] = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    elif how == "nan" and value.is_floating_point() and value.numel():
        state[key] = value.clone().view(-1).index_fill_(0, torch.tensor([0]), float("nan")).view(value.shape)
    else:
        state[key] = value.to(draw(st.sampled_from([torch.int64, torch.bool, torch.complex64, torch.float16])))
    return state


@st.composite
def corruptions(draw, run: Path):
    """(relative path, new bytes, command) for one corrupted file of a run folder."""
    target = draw(st.sampled_from(["run.json", "metrics.csv", "cost.csv", "samples", "checkpoint", "cache"]))
    command = {"run.json": ["sample", "evaluate", "bench", "report", "config"], "metrics.csv": ["report", "bench"],
               "cost.csv": ["report"], "samples": ["evaluate"], "checkpoint": ["sample", "bench"],
               "cache": ["evaluate"]}[target]
    command = draw(st.sampled_from(command))
    if target == "run.json":
        data = json.loads((run / "run.json").read_text())
        mutated = mutate_json(draw, data)
        content = draw(st.one_of(st.just(json.dumps(mutated).encode()), st.binary(max_size=60)))
        return "run.json", content, command
    if target in ("metrics.csv", "cost.csv"):
        lines = (run / target).read_text().splitlines()
        row = draw(st.integers(0, len(lines) - 1))
        cells = lines[row].split(",")
        cell = draw(st.integers(0, len(cells) - 1))
        cells[cell] = draw(st.one_of(st.text(alphabet=string.printable.replace(",", ""), max_size=12),
                                     st.sampled_from(["nan", "inf", "-1", "2", "", "../../x", "True"])))
        lines[row] = ",".join(cells)
        return target, ("\n".join(lines) + "\n").encode(), command
    if target == "samples":
        name = "samples/ovqvae/train0-sample0.npz"
        how = draw(st.sampled_from(["bytes", "arrays", "pickle"]))
        if how == "bytes":
            return name, draw(st.binary(max_size=100)), command
        import io

        buffer = io.BytesIO()
        if how == "pickle":
            np.savez(buffer, generated_k8=np.array([Exploit()], dtype=object))
        else:
            with np.load(run / name) as real:
                arrays = {k: real[k] for k in real.files}
            arrays[draw(st.sampled_from(sorted(arrays)))] = draw(ARRAYS)
            np.savez(buffer, **arrays)
        return name, buffer.getvalue(), command
    if target == "checkpoint":
        name = f"checkpoints/ovqvae/train0.{draw(st.sampled_from(['encoder', 'prior']))}.pt"
        if draw(st.booleans()):
            payload = torch.load(run / name, weights_only=True)
            return name, _torch_bytes({**payload, "state": mutate_state(draw, payload["state"])}), command
        content = draw(st.one_of(st.binary(max_size=100), st.just(pickle.dumps(Exploit())),
                                 st.builds(_torch_bytes, JSON),
                                 st.just(_torch_bytes({"format": 1, "kind": "encoder", "name": "ovqvae",
                                                       "config_digest": "x", "state": {}}))))
        return name, content, command
    return "cache", draw(st.one_of(st.binary(max_size=100), st.just(pickle.dumps(Exploit())))), command


def test_fuzzed_run_folders(fuzz_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))

    @settings(FUZZ, max_examples=120 * SCALE)
    @given(data=st.data())
    def fuzz(data):
        MARKER.unlink(missing_ok=True)
        box = tmp_path / "box"
        shutil.rmtree(box, ignore_errors=True)
        run, cache = box / "r", box / "cache"
        shutil.copytree(fuzz_run, run)
        shutil.copytree(fuzz_run.parent / "cache", cache)
        name, content, command = data.draw(corruptions(run))
        if name == "cache":
            targets = sorted(p for p in cache.rglob("*") if p.is_file())
            (data.draw(st.sampled_from(targets))).write_bytes(content)
        else:
            (run / name).write_bytes(content)
        before = files(box)
        args = {"report": [command, run, "--out", box / "report", "--metric", "mse"],
                "config": [command, "--of-run", run],
                "bench": [command, run, "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0",
                          "--synthetic-length", "0", "--cache-dir", cache, "--quiet"]}.get(
            command, [command, run, "--cache-dir", cache, "--quiet"])
        result = run_cli(*args)
        check(result, box, before, allowed=(run, cache, box / "report"))
        # a crafted file is bad input: it must not pass for a failure of the plugin that reads it
        assert result.code != 1, result.err

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
