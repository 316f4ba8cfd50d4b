"""Fuzzing run folders with Hypothesis: one file of a finished run crafted (record, tables, samples, checkpoints,
caches), then a command pointed at it (the promises: tests/fuzzing.py). Its own file, so that it runs beside the
command-line fuzzing rather than after it."""

from __future__ import annotations

import json
import pickle
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import TINY, run_cli
from .fuzzing import FUZZ, MARKER, SCALE, Exploit, check, files


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


