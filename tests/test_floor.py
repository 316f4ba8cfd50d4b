"""The real-versus-real floor (issue #36, item 5): what real data scores, in every summary and report."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import statistics

import numpy as np
import pandas as pd
import pytest
import torch

from anytime_bench import MetricInputs, RunContext
from anytime_bench.store.record import validate
from anytime_bench_plugins.datasets import Digits, DigitsConfig
from anytime_bench_plugins.metrics import Accuracy, Confidence, FidelityConfig, FidRandom, Isc, Kid, Prc, RandomFeaturesConfig

from .conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def digits():
    return Digits(DigitsConfig()).load()


def test_the_floor_of_real_data_is_far_below_a_model_has_an_interval_and_is_cached(digits, tmp_path, monkeypatch):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    real = MetricInputs(digits.train, digits.train, "digits", "train", digits, seed=0)
    noise = torch.rand(64, *digits.data_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1  # a bad model
    model = FidRandom(RandomFeaturesConfig()).compute(MetricInputs(noise, digits.train, "digits", "train", digits,
                                                                   seed=0), ctx)
    calls = []
    score = FidRandom.score

    def counted(self, candidate, reference):
        calls.append((len(candidate), len(reference)))
        return score(self, candidate, reference)

    monkeypatch.setattr(FidRandom, "score", counted)
    floor = FidRandom(RandomFeaturesConfig()).floor(real, ctx, 64, 5)
    # each split: 64 held-out items against the disjoint rest of the reference set
    assert calls == [(64, len(digits.train) - 64)] * 5
    assert len(floor) == 5 and all(v >= 0 for v in floor) and statistics.stdev(floor) > 0  # not degenerate
    assert statistics.mean(floor) < 0.2 * model, (floor, model)
    cached = list((tmp_path / "fidelity").glob("*-floor-n64-splits5.npz"))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as arrays:
        assert arrays["values"].dtype == np.float64
    # a fresh metric (another run) reads the cached floor: nothing is scored again
    calls.clear()
    assert FidRandom(RandomFeaturesConfig()).floor(real, ctx, 64, 5) == floor and calls == []
    # another sample count is another floor
    assert len(FidRandom(RandomFeaturesConfig()).floor(real, ctx, 32, 5)) == 5 and calls == [(32, len(digits.train)
                                                                                                 - 32)] * 5


def test_the_kid_floor_of_real_data_is_near_zero(digits, tmp_path):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    kid = Kid(FidelityConfig(classifier_width=8, classifier_steps=20))
    noise = torch.rand(64, *digits.data_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model = kid.compute(MetricInputs(noise, digits.train, "digits", "train", digits, seed=0), ctx)
    floor = kid.floor(MetricInputs(digits.train, digits.train, "digits", "train", digits, seed=0), ctx, 64, 5)
    assert len(set(floor)) == 5 and abs(statistics.mean(floor)) < 0.05 * model, (floor, model)


def test_the_classifier_metrics_give_the_real_items_own_scores_as_their_floors(digits, tmp_path):
    """accuracy (of reconstructions): the real test items' accuracy, in disjoint folds; confidence, isc and prc (of
    generated samples): held-out real reference items scored as samples, in the splits every floor uses."""
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    config = FidelityConfig()  # the shipped digits classifier
    test = MetricInputs(digits.test, digits.test, "digits", "test", digits, seed=0)
    n = len(digits.test) // 5
    folds = Accuracy(config).floor(test, ctx, n, 5)
    order = torch.randperm(len(digits.test), generator=torch.Generator().manual_seed(0))
    for i, fold in enumerate(folds):  # each fold is the accuracy of its own real items (each its own label)
        held = order[i * n:(i + 1) * n]
        fake = MetricInputs(digits.test[held], digits.test, "digits", "test", digits, seed=0)
        fake.splits = dataclasses.replace(digits, test_labels=digits.test_labels[held])
        assert Accuracy(config).compute(fake, ctx) == pytest.approx(fold)
    assert len(set(folds)) > 1 and min(folds) > 0.8  # a real classifier on real digits, folds that differ
    noise = torch.rand(n, *digits.data_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert Accuracy(config).compute(MetricInputs(noise, digits.test, "digits", "test", digits, seed=0), ctx) < 0.5

    real = MetricInputs(digits.train, digits.train, "digits", "train", digits, seed=0)
    first = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(0))[:64]
    as_sample = MetricInputs(digits.train[first], digits.train, "digits", "train", digits, seed=0)
    noisy = MetricInputs(noise[:64], digits.train, "digits", "train", digits, seed=0)
    for metric in (Confidence(config), Isc(config)):
        floor = metric.floor(real, ctx, 64, 5)
        assert len(set(floor)) == 5 and floor[0] == pytest.approx(metric.compute(as_sample, ctx))
        assert statistics.mean(floor) > metric.compute(noisy, ctx), metric.name  # higher is better
    prc = Prc(config)
    floor = prc.floor(real, ctx, 64, 5)
    assert set(floor) == {"precision", "recall"} and all(len(v) == 5 for v in floor.values())
    assert statistics.mean(floor["precision"]) > prc.compute(noisy, ctx)["precision"]


def test_the_classifier_metrics_refuse_another_feature_space_before_any_feature_is_read(digits, tmp_path):
    """Their classes are the dataset's: Inception's thousand ImageNet classes would score a number that means nothing."""
    from anytime_bench import DataError

    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    inputs = MetricInputs(digits.test[:8], digits.test, "digits", "test", digits, seed=0)
    for metric in (Accuracy, Confidence):
        inception = metric(FidelityConfig(feature_extractor="inception-v3-compat"))
        with pytest.raises(DataError, match=f"^{metric.name} needs the classifier feature extractor"):
            inception.preflight(inputs, ctx)  # before any training
        with pytest.raises(DataError, match=f"^{metric.name} needs the classifier feature extractor"):
            inception.compute(inputs, ctx)
        with pytest.raises(DataError, match=f"^{metric.name} needs the classifier feature extractor"):
            inception.floor(inputs, ctx, 4, 2)
    assert not list(tmp_path.rglob("*.npz"))  # refused before any feature was computed or cached


def test_the_summary_and_the_record_show_each_floor_and_each_models_distance(tiny_run):
    record = json.loads((tiny_run / "run.json").read_text())
    floors = record["metric_floors"]
    assert set(floors) == {"fid", "fid-random"}  # the generated-sample metrics of the tiny run; rfid, mse, psnr: none
    fid = floors["fid"]
    assert fid["low"] < fid["mean"] < fid["high"] and fid["n"] == 64 and fid["splits"] == 5 and not fid["capped"]
    assert fid["feature_space"] == record["metrics_provenance"]["fid"]["feature_space"]
    assert fid["reference_set"] == record["metrics_provenance"]["fid"]["reference_set"]
    summary = (tiny_run / "summary.md").read_text()
    section = summary[summary.index("## Real-versus-real floor"):]
    section = section[:section.index("\n## ", 1)]
    assert re.search(rf"\| fid \| {re.escape(fid['feature_space'])} \| .* \| 64 \| 5 \| {fid['mean']:.4g} ", section)
    assert "No floor for `rfid`, `mse`, `psnr`" in section
    metrics = pd.read_csv(tiny_run / "metrics.csv")
    full = metrics[(metrics.metric == "fid") & (metrics.budget == 1.0) & (metrics.model == "ovqvae")].value.mean()
    assert full > fid["mean"]  # the models are far from real data
    assert f"| fid | ovqvae | {full:.4g} | {full - fid['mean']:.4g} |" in section


def test_the_report_shows_the_floor_per_dataset_and_says_when_a_run_recorded_none(tiny_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_run, old, ignore=shutil.ignore_patterns("samples", "checkpoints", "codes"))
    state = json.loads((old / "run.json").read_text())
    floor = state.pop("metric_floors")["fid"]  # a run evaluated before floors were recorded
    (old / "run.json").write_text(json.dumps(state))
    metrics = pd.read_csv(old / "metrics.csv")  # another experiment's numbers: not merged with tiny's rows
    metrics["value"] *= 1.1
    metrics.to_csv(old / "metrics.csv", index=False)
    result = run_cli("report", tiny_run, old, "--out", tmp_path / "report", "--format", "md,html")
    assert result.code == 0, result.err
    page = (tmp_path / "report" / "report.md").read_text().replace("\\", "")
    section = page[page.index("### Real-versus-real floor"):]
    assert (f"- fid in {floor['feature_space']} (reference set {floor['reference_set']}, 64 held-out items, 5 "
            f"splits): {floor['mean']:.4g} [{floor['low']:.4g}, {floor['high']:.4g}] - runs tiny") in section
    assert f"- fid: floor not recorded (run `anytime-bench evaluate --floors-only {old}` to compute it)" in section
    # every metric a run recorded a floor for shows it, not only the ranked one (fid here)
    other = json.loads((tiny_run / "run.json").read_text())["metric_floors"]["fid-random"]
    assert (f"- fid-random in {other['feature_space']} (reference set {other['reference_set']}, 64 held-out items, "
            f"5 splits): {other['mean']:.4g} [{other['low']:.4g}, {other['high']:.4g}] - runs tiny") in section
    board = [line for line in page.split("### Leaderboard", 1)[1].split("\n\n", 2)[1].splitlines()[2:]]
    header = next(line for line in page.splitlines() if line.startswith("| runs |")).split(" | ")
    column = header.index("minus floor")
    assert len(board) == 6 and all(line.split(" | ")[column] == "-" for line in board if "| old |" in line)
    for line in board:
        if "| tiny |" in line:
            cells = line.split(" | ")
            assert float(cells[column]) == pytest.approx(float(cells[header.index("full budget")]) - floor["mean"],
                                                         abs=2e-3)
    assert "Real-versus-real floor</h3>" in (tmp_path / "report" / "report.html").read_text()


def test_a_malformed_floor_in_a_record_is_dropped_with_a_note():
    good = {"mean": 0.1, "low": 0.05, "high": 0.15, "n": 64, "splits": 5, "feature_space": "f", "reference_set": "r"}
    for bad in ({**good, "mean": float("nan")}, {**good, "low": 0.2}, {**good, "n": "64"}, {**good, "values": ["x"]},
                {**good, "feature_space": "x" * 300}, [good]):
        state = {"metric_floors": {"fid": bad}}
        assert validate(state, "run.json") == ["ignored 'metric_floors': it must be a table of floors (mean, low, "
                                               "high, n, splits, feature_space...)"] and state == {}
    state = {"metric_floors": {"fid": good}}
    assert validate(state, "run.json") == [] and state["metric_floors"]["fid"] == good


def test_the_summary_says_when_the_floor_is_capped_and_names_metrics_without_one():
    from anytime_bench.analysis.results import floor_section

    frame = pd.DataFrame({"metric": ["fid"] * 4 + ["mse"] * 2, "model": ["a", "a", "b", "b", "a", "b"],
                          "budget": [0.5, 1.0, 0.5, 1.0, 1.0, 1.0], "value": [9.0, 5.0, 8.0, 7.0, 0.1, 0.2],
                          "run_id": "r", "train_seed": 0, "sample_seed": 0})
    floor = {"mean": 1.5, "low": 1.0, "high": 2.0, "n": 179, "splits": 5, "capped": True, "num_samples": 1000,
             "feature_space": "space", "reference_set": "digits-test-359-x"}
    text = "\n".join(floor_section(frame, ["fid", "mse"], {"fid": floor}, {"a": "a", "b": "b (unordered)"}))
    text = text.replace("\\", "")  # Markdown escapes
    assert "| fid | space | digits-test-359-x | 179 (capped from 1000: half the reference set) | 5 | 1.5 [1, 2] |" in text
    assert "| fid | a | 5 | 3.5 |" in text and "| fid | b (unordered) | 7 | 5.5 |" in text
    assert "No floor for `mse`" in text
    assert "No floor for" not in "\n".join(floor_section(frame[frame.metric == "fid"], ["fid"], {"fid": floor}, {}))


def test_floors_only_records_the_floors_of_a_run_evaluated_without_them_and_leaves_its_measurements(tiny_run,
                                                                                                      tmp_path,
                                                                                                      shared_cache):
    old = tmp_path / "old"  # a committed run: no samples, no checkpoints, evaluated before floors were recorded
    shutil.copytree(tiny_run, old, ignore=shutil.ignore_patterns("samples", "checkpoints", "codes"))
    state = json.loads((old / "run.json").read_text())
    expected = state.pop("metric_floors")
    (old / "run.json").write_text(json.dumps(state))
    summary = (old / "summary.md").read_text()
    (old / "summary.md").write_text(summary[:summary.index("## Real-versus-real floor")])
    metrics, plot = (old / "metrics.csv").read_bytes(), (old / "quality_vs_budget.png").read_bytes()
    result = run_cli("evaluate", old, "--floors-only", "--quiet", "--cache-dir", shared_cache)
    assert result.code == 0, result.err
    assert f"fid {expected['fid']['mean']:.4g} " in result.out and "summary.md written anew" in result.out
    state = json.loads((old / "run.json").read_text())
    assert state["metric_floors"].keys() == expected.keys()
    for name, floor in expected.items():
        assert state["metric_floors"][name]["values"] == pytest.approx(floor["values"])
        assert state["metric_floors"][name]["reference_set"] == floor["reference_set"] != "?"
    assert state["status"] == "done" and "floors" in state["stage_seconds"]
    assert (old / "metrics.csv").read_bytes() == metrics and (old / "quality_vs_budget.png").read_bytes() == plot
    assert "## Real-versus-real floor" in (old / "summary.md").read_text()
    refused = run_cli("evaluate", old, "--floors-only", "--sample-seeds", "0")
    assert refused.code == 2 and refused.err.strip() == "Error: --floors-only scores no samples: it takes no --sample-seeds"
    (old / "metrics.csv").unlink()
    missing = run_cli("evaluate", old, "--floors-only")
    assert missing.code == 2 and len(missing.err.strip().splitlines()) == 1 and "metrics.csv" in missing.err
    assert (old / "summary.md").is_file()  # nothing written is lost



def test_floors_only_writes_a_summary_anew_without_the_data_where_every_floor_is_kept(tmp_path, shared_cache):
    run = tmp_path / "run"  # a committed MNIST run, on a machine without MNIST
    shutil.copytree(ROOT / "results" / "ablation-mnist-rvq-oracle", run)
    state = json.loads((run / "run.json").read_text())
    metrics = (run / "metrics.csv").read_bytes()
    (run / "summary.md").write_text("a summary in a format since changed\n")
    result = run_cli("evaluate", run, "--floors-only", "--quiet", "--cache-dir", shared_cache)
    assert result.code == 0, result.err
    assert json.loads((run / "run.json").read_text())["metric_floors"] == state["metric_floors"]
    assert "## headline: fid by budget" in (run / "summary.md").read_text()
    assert (run / "metrics.csv").read_bytes() == metrics
    # a floor to compute needs the data: refused in one line, nothing lost
    state["metric_floors"].pop("fid-random")
    (run / "run.json").write_text(json.dumps(state))
    summary = (run / "summary.md").read_bytes()
    refused = run_cli("evaluate", run, "--floors-only", "--quiet", "--cache-dir", shared_cache)
    assert refused.code == 2 and len(refused.err.strip().splitlines()) == 1 and "--data-root" in refused.err
    assert (run / "summary.md").read_bytes() == summary

def test_floors_only_records_no_floor_in_another_feature_space_than_the_runs_measurements(tiny_run, tmp_path,
                                                                                          shared_cache, monkeypatch):
    old = tmp_path / "old"  # scored with a feature classifier that is gone: today's floor is not comparable
    shutil.copytree(tiny_run, old, ignore=shutil.ignore_patterns("samples", "checkpoints", "codes"))
    state = json.loads((old / "run.json").read_text())
    today = state["metrics_provenance"]["fid"]["feature_space"]
    state["metrics_provenance"]["fid"]["feature_space"] = "anytime-bench-classifier-0000000000000000"
    (old / "run.json").write_text(json.dumps(state))
    result = run_cli("evaluate", old, "--floors-only", "--quiet", "--cache-dir", shared_cache)
    assert result.code == 0, result.err
    state = json.loads((old / "run.json").read_text())
    assert set(state["metric_floors"]) == {"fid-random"}  # the old fid floor is gone, not kept beside the note
    note = state["floor_notes"]["fid"]
    assert f"feature space is {today} today, not anytime-bench-classifier-0000000000000000" in note
    summary = (old / "summary.md").read_text()
    section = summary[summary.index("## Real-versus-real floor"):]
    section = section[:section.index("\n## ", 1)]
    assert f"No floor for `fid`: {note}." in section and "| fid | ovqvae |" not in section
    assert "| fid-random | ovqvae |" in section
    report = run_cli("report", old, "--out", tmp_path / "report", "--format", "md")
    assert report.code == 0, report.err
    page = (tmp_path / "report" / "report.md").read_text().replace("\\", "")
    assert f"- fid: no real-versus-real floor: {note} - runs old" in page

    # a floor recorded in the measurements' own space is kept: today's extractor cannot compute it again, and
    # nothing is scored only to be thrown away
    from anytime_bench_plugins.metrics import Fid, FidRandom

    scored = []
    for metric in (Fid, FidRandom):
        monkeypatch.setattr(metric, "floor", lambda self, *args: scored.append(self.name) or [1.0] * args[-1])
    state["metric_floors"]["fid"] = {**json.loads((tiny_run / "run.json").read_text())["metric_floors"]["fid"],
                                     "feature_space": "anytime-bench-classifier-0000000000000000"}
    state.pop("floor_notes")
    (old / "run.json").write_text(json.dumps(state))
    result = run_cli("evaluate", old, "--floors-only", "--quiet", "--cache-dir", shared_cache)
    assert result.code == 0, result.err
    again = json.loads((old / "run.json").read_text())
    assert again["metric_floors"]["fid"] == state["metric_floors"]["fid"] and "fid" not in again["floor_notes"]
    assert again["metric_floors"] == state["metric_floors"] and scored == []
    # a metric with a value whose floor is not recorded is scored (and only that metric)
    state["metric_floors"].pop("fid-random")
    (old / "run.json").write_text(json.dumps(state))
    assert run_cli("evaluate", old, "--floors-only", "--quiet", "--cache-dir", shared_cache).code == 0
    assert scored == ["fid-random"]
    assert json.loads((old / "run.json").read_text())["metric_floors"]["fid"] == state["metric_floors"]["fid"]


def test_evaluate_says_when_it_replaces_scores_made_in_another_feature_space(tiny_run, tmp_path, shared_cache):
    old = tmp_path / "old"  # scored by an earlier version, with a feature classifier that is gone
    shutil.copytree(tiny_run, old)
    state = json.loads((old / "run.json").read_text())
    today = state["metrics_provenance"]["fid"]["feature_space"]
    state["metrics_provenance"]["fid"]["feature_space"] = "anytime-bench-classifier-0000000000000000"
    (old / "run.json").write_text(json.dumps(state))
    result = run_cli("evaluate", old, "--quiet", "--cache-dir", shared_cache)
    assert result.code == 0, result.err
    assert result.err.splitlines() == [
        f"warning: fid was scored in another feature space than the run's earlier scores: its feature space is "
        f"{today} today, not anytime-bench-classifier-0000000000000000 as when the run was scored; metrics.csv now "
        f"holds today's"]
    state = json.loads((old / "run.json").read_text())  # scored in today's space now: said once
    version = state["metrics_provenance"]["fid"]["version"]
    state["metrics_provenance"]["fid"]["version"] = "0.0.1"  # a metric library upgraded since: another code
    (old / "run.json").write_text(json.dumps(state))
    result = run_cli("evaluate", old, "--quiet", "--cache-dir", shared_cache)
    assert result.code == 0 and result.err.splitlines() == [  # and not the feature space again
        f"warning: fid was scored by torch-fidelity {version}, the run's earlier scores by torch-fidelity 0.0.1; "
        f"metrics.csv now holds today's"], result.err
    # the record says who scored it, and the report shows it beside the commit that made the run
    state = json.loads((old / "run.json").read_text())
    assert set(state["stages_by"]["evaluate"]) == {"git_commit", "at", "anytime-bench"}
    state["git_commit"] = "0" * 40
    (old / "run.json").write_text(json.dumps(state))
    assert run_cli("report", old, "--out", tmp_path / "report", "--format", "md").code == 0
    scored = state["stages_by"]["evaluate"]["git_commit"][:12]
    assert f"| 000000000000 (evaluated by {scored}) |" in (tmp_path / "report" / "report.md").read_text()
