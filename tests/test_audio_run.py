"""One reduced audio run through the CLI: dataset defaults, the results contract, WAV files, the spectrogram grid."""

import json

import pandas as pd
import pytest
import soundfile as sf

from anytime_bench.cli import main
from anytime_bench.engine.config import load_config

from .conftest import ROOT

TINY_AUDIO = ROOT / "tests" / "configs" / "tiny-audio.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, speech):
    out = tmp_path_factory.mktemp("results")
    try:
        main(["run", str(TINY_AUDIO), "--out", str(out), "--run-id", "audio", "--cache-dir", str(out / "cache"),
              "--quiet"])
    except SystemExit as exc:
        assert exc.code in (0, None), f"exit code {exc.code}"
    return out / "audio"


def test_choosing_an_audio_dataset_picks_audio_models_and_metrics(plugins):
    cfg = load_config(None, {"run": {"dataset": "spoken-digits"}}, plugins)
    assert cfg.run.encoders == ["ovqvae-spec", "vqvae-channel-spec"]
    assert cfg.run.metrics[0] == "fad" and {"accuracy", "mel-distance"} <= set(cfg.run.metrics)
    # What the user says wins over the dataset's defaults.
    cfg = load_config(None, {"run": {"dataset": "spoken-digits", "metrics": ["mse"]}}, plugins)
    assert cfg.run.metrics == ["mse"] and cfg.run.encoders == ["ovqvae-spec", "vqvae-channel-spec"]
    assert load_config(None, {}, plugins).run.encoders == ["ovqvae", "vqvae-channel", "vqvae-spatial"]


def test_spoken_digits_trains_half_the_ordered_examples_at_full_length(plugins):
    """Nested dropout per example, with half the examples kept at full length (the ordered model's full-length
    price, #39); the unordered twin has no truncation to share; a config that says otherwise wins."""
    cfg = load_config(None, {"run": {"dataset": "spoken-digits"}}, plugins)
    ordered = cfg.component_config("encoder", "ovqvae-spec")
    assert (ordered.truncation, ordered.full_length_prob) == ("example", 0.5)
    cfg = load_config(ROOT / "configs" / "ablations" / "spoken-digits-per-example.toml", {}, plugins)
    ordered = cfg.component_config("encoder", "ovqvae-spec")
    assert (ordered.truncation, ordered.full_length_prob) == ("example", 0.0)


def test_audio_run_writes_the_results_contract_and_listenable_clips(run_dir):
    for name in ("metrics.csv", "summary.md", "quality_vs_budget.png", "samples.png", "run.json"):
        assert (run_dir / name).is_file(), name
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert set(frame.model) == {"ovqvae-spec", "vqvae-channel-spec"}
    assert set(frame.metric) == {"fad", "accuracy", "confidence", "isc", "rfad", "mel-distance"}
    assert len(frame) == 2 * 2 * 6 and frame.value.notna().all()
    clips = sorted((run_dir / "audio" / "ovqvae-spec").glob("*.flac"))
    assert [c.name for c in clips if c.name.endswith("-0.flac")] == ["budget0.25-tokens2-0.flac",
                                                                      "budget1-tokens8-0.flac"]
    info = sf.info(clips[0])
    assert (info.format, info.subtype, info.samplerate, info.frames) == ("FLAC", "PCM_16", 8000, 2000)
    assert len(list((run_dir / "audio" / "real-test").glob("*.flac"))) == 4
    assert not list((run_dir / "audio").rglob("*.wav"))


def test_audio_run_records_the_feature_classifier_accuracy(run_dir):
    state = json.loads((run_dir / "run.json").read_text())
    assert state["status"] == "done"
    assert state["data"] == {"modality": "audio", "sample_rate": 8000, "data_shape": [1, 2000], "items": [30, 10]}
    accuracy = state["metrics_provenance"]["fad"]["extractor_test_accuracy"]
    assert 0.0 <= accuracy <= 1.0
    assert state["config"]["encoder"]["ovqvae-spec"]["scale"] == "mel"


def test_a_report_of_image_and_audio_runs_ranks_each_by_its_own_headline(run_dir, tiny_run, tmp_path):
    from .conftest import run_cli

    result = run_cli("report", tiny_run, run_dir, "--out", tmp_path / "report", "--format", "md")
    assert result.code == 0, result.err
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## digits\n\n### Leaderboard: fid\n" in text and "## spoken-digits\n\n### Leaderboard: fad\n" in text
    # ranked by one metric that the audio run does not measure: left out as such, not as incomplete
    result = run_cli("report", tiny_run, run_dir, "--out", tmp_path / "by-fid", "--format", "md", "--metric", "fid")
    assert result.code == 0 and "missing" not in result.err, result.err
    text = (tmp_path / "by-fid" / "report.md").read_text()
    assert "Incomplete" not in text and f"**Not ranked:** {run_dir.name}: not scored by fid (it measures " in text
    assert "missing" not in result.err
