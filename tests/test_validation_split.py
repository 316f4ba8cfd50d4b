"""The validation split: held-out real data for choosing settings on other data than the reported results."""

from __future__ import annotations

import csv
import json

import pytest
import torch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from anytime_bench.cli import main
from anytime_bench.contract.components import splits_problem
from anytime_bench.contract.interfaces import DataSplits
from anytime_bench_plugins.datasets import Mnist, MnistConfig

from .conftest import TINY
from .fixtures import write_mnist


def exit_code(args):
    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def test_mnist_keeps_the_test_images_past_test_limit_as_validation(tmp_path):
    root = write_mnist(tmp_path, train=30, test=20)
    every = Mnist(MnistConfig(download=False), root).load()
    splits = Mnist(MnistConfig(download=False, test_limit=15), root).load()
    assert splits.test.shape[0] == 15 and splits.validation.shape == (5, 1, 28, 28)
    assert torch.equal(splits.validation, every.test[15:])
    assert torch.equal(splits.validation_labels, every.test_labels[15:])
    assert every.validation is None and every.validation_labels is None  # no limit: no image left over
    assert Mnist(MnistConfig(download=False, test_limit=20), root).load().validation is None
    assert splits_problem(splits, ["image"]) == ""


def _splits(**kw):
    x, y = torch.zeros(6, 1, 4, 4), torch.zeros(6, dtype=torch.long)
    return DataSplits(**{"train": x, "test": x, "train_labels": y, "test_labels": y, "num_classes": 2, **kw})


@pytest.mark.parametrize("kw, problem", [
    (dict(validation=torch.zeros(3, 1, 4, 5), validation_labels=torch.zeros(3, dtype=torch.long)),
     "train items (1, 4, 4) and validation items (1, 4, 5) differ"),
    (dict(validation=torch.zeros(0, 1, 4, 4), validation_labels=torch.zeros(0, dtype=torch.long)),
     "the validation split is empty"),
    (dict(validation=torch.full((3, 1, 4, 4), 2.0), validation_labels=torch.zeros(3, dtype=torch.long)),
     "the validation split spans [2, 2], outside [-1, 1]"),
    (dict(validation=torch.zeros(3, 1, 4, 4)), "has labels for some splits only"),
    (dict(validation=torch.zeros(3, 1, 4, 4), validation_labels=torch.zeros(2, dtype=torch.long)),
     "validation labels must be an int64 tensor of shape [3]"),
    (dict(validation_labels=torch.zeros(3, dtype=torch.long)), "has validation labels but no validation split"),
])
def test_a_bad_validation_split_is_named(kw, problem):
    assert splits_problem(_splits(**kw), ["image"]) == problem


def test_generated_samples_scored_against_the_validation_split(tmp_path, mnist_idx, capsys):
    config = tmp_path / "mnist.toml"
    entries = '\n[[model]]\nencoder = "rvq"\n\n[[model]]\nencoder = "rvq"\ntop_p = 0.9\n'
    config.write_text(TINY.read_text() + "\n[dataset.mnist]\ndownload = false\ntest_limit = 60\n" + entries)
    common = [str(config), "--dataset", "mnist", "--data-root", str(mnist_idx), "--budgets", "0.5,1", "--metrics",
              "fid,mse", "--num-samples", "16", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache"),
              "--quiet", "--set", 'run.reference_split="validation"']
    assert exit_code(["run", *common, "--run-id", "candidates"]) == 0
    rows = list(csv.DictReader((tmp_path / "candidates" / "metrics.csv").open()))
    fid = [json.loads(r["provenance"]) for r in rows if r["metric"] == "fid"]
    mse = [json.loads(r["provenance"]) for r in rows if r["metric"] == "mse"]
    assert fid and {p["reference_split"] for p in fid} == {"validation"}
    assert all(p["reference_set"].startswith("mnist-validation-40-") for p in fid)  # the 40 images past 60
    assert mse and all(p.get("reference_split", "test") == "test" for p in mse)  # reconstructions stay on test
    record = json.loads((tmp_path / "candidates" / "run.json").read_text())
    assert record["metric_references"] == {"fid": "validation", "mse": "test"}  # read by choose, without plugins

    # choose reads the candidates' FID back and names the lower average over the two budgets
    scores = {label: sum(float(r["value"]) for r in rows if r["model"] == label and r["metric"] == "fid") / 2
              for label in ("rvq", "rvq-p9")}
    capsys.readouterr()
    assert exit_code(["choose", str(tmp_path / "candidates")]) == 0
    chosen = tomllib.loads(capsys.readouterr().out.split("# chosen on the validation split of ")[1].split("\n", 1)[1])
    assert chosen["model"] == [{"encoder": "rvq", "prior": "transformer", "temperature": 1.0, "top_k": 0,
                                "top_p": 0.9 if scores["rvq-p9"] < scores["rvq"] else 1.0}]

    # the whole test set in use: nothing is held out, and the run says so before it trains anything
    config.write_text(TINY.read_text() + "\n[dataset.mnist]\ndownload = false\n" + entries)
    capsys.readouterr()
    assert exit_code(["run", *common, "--run-id", "refused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'run.reference_split = "validation": dataset \'mnist\' holds no validation split' in err[0]
    assert not list((tmp_path / "refused").glob("checkpoints/**/*.pt"))
