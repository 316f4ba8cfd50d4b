"""Audio: the datasets (espeak-ng spoken digits, VCTK layout, WAV folders), the 1-D VQ-VAEs and the audio metrics."""

import io
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from anytime_bench import ConfigError, DataError, DataSplits, MetricInputs, RunContext
from anytime_bench_plugins import speech
from anytime_bench_plugins.audio_datasets import (
    SpokenDigits,
    SpokenDigitsConfig,
    Vctk,
    VctkConfig,
    WavFolder,
    WavFolderConfig,
    fit_length,
    trim_silence,
)
from anytime_bench_plugins.metrics import Fad, FidelityConfig, MelConfig, MelDistance
from anytime_bench_plugins.modalities import Audio, NoOptions
from anytime_bench_plugins.rvq import WaveRVQConfig
from anytime_bench_plugins.vqvae import UnorderedWaveChannelVQVAE, WaveChannelVQVAE, WaveVQConfig

from .fixtures import word, write_vctk

TINY_DIGITS = dict(clips=20, sample_rate=8000, length=4000)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory, speech):
    root = tmp_path_factory.mktemp("spoken")
    return SpokenDigits(SpokenDigitsConfig(**TINY_DIGITS), root).load(), root


def test_spoken_digits_are_synthesized_labelled_split_and_cached(spoken, monkeypatch):
    splits, root = spoken
    assert splits.modality == "audio" and splits.sample_rate == 8000 and splits.num_classes == 10
    assert splits.train.shape[1:] == (1, 4000) and len(splits.train) + len(splits.test) == 20
    assert sorted(torch.cat([splits.train_labels, splits.test_labels]).tolist()) == sorted(list(range(10)) * 2)
    assert splits.train.abs().max() <= 1.0 and splits.train.abs().amax(dim=(1, 2)).min() > 0.5  # peak-normalised
    assert "espeakng-loader" in splits.info["engine"]
    # A second load reads the cache: nothing is synthesized again.
    synthesizer = speech.engine("auto")
    monkeypatch.setattr(synthesizer, "synthesize_all", lambda *a: pytest.fail("synthesized again"))
    again = SpokenDigits(SpokenDigitsConfig(**TINY_DIGITS), root).load()
    assert torch.equal(again.train, splits.train) and torch.equal(again.test_labels, splits.test_labels)


def test_spoken_digits_synthesis_is_deterministic(spoken, tmp_path):
    splits, _ = spoken
    rebuilt = SpokenDigits(SpokenDigitsConfig(**TINY_DIGITS), tmp_path).load()
    assert torch.allclose(rebuilt.train, splits.train, atol=1e-6)


def test_an_espeak_variant_that_does_not_exist_is_refused_not_left_out():
    import re

    # espeak-ng speaks with the plain voice when it finds no such variant: a dataset of other speakers than asked
    engine = speech.LibraryEngine()
    for variant in ("zz9", "../!v/f1"):
        with pytest.raises(DataError, match=re.escape(f"has no voice variant {variant!r}")):
            engine.synthesize_all([speech.Utterance("one", f"en-us+{variant}", 150, 50)], 0)
    assert len(engine.synthesize_all([speech.Utterance("one", "en-us+f1", 150, 50)], 0)) == 1


def test_missing_espeak_says_how_to_install_it(tmp_path, monkeypatch):
    def no_wheel():
        raise ImportError("No module named 'espeakng_loader'")

    monkeypatch.setattr(speech, "_ENGINES", {})
    monkeypatch.setattr(speech, "LibraryEngine", no_wheel)
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="pip install espeakng-loader .*apt-get install espeak-ng"):
        SpokenDigits(SpokenDigitsConfig(**TINY_DIGITS), tmp_path).load()


def test_trim_and_fit_length_centre_the_loud_part():
    wave = word(8000, 0.2, 440)
    trimmed = trim_silence(wave, 8000)
    assert len(trimmed) < len(wave) * 0.6
    fitted = fit_length(trimmed, 4000)
    assert len(fitted) == 4000 and abs(int(np.argmax(np.abs(fitted))) - 2000) < 300
    assert len(fit_length(np.ones(5000, dtype=np.float32), 4000)) == 4000


def test_vctk_layout_is_resampled_trimmed_and_clipped(tmp_path):
    write_vctk(tmp_path / "VCTK-Corpus")
    splits = Vctk(VctkConfig(sample_rate=16000, length=8000, test_fraction=0.34), tmp_path / "VCTK-Corpus").load()
    assert splits.sample_rate == 16000 and splits.info["labels"] == ["p225", "p226"]
    assert splits.train.shape[1:] == (1, 8000) and len(splits.train) + len(splits.test) == 6
    # Resampled from 48 kHz: the 200 Hz tone keeps its pitch at 16 kHz (zero crossings per second).
    clip = torch.cat([splits.train, splits.test])[0, 0].numpy()
    loud = clip[np.abs(clip) > 0.05]
    crossings = np.sum(np.diff(np.sign(loud)) != 0) / (len(loud) / 16000) / 2
    assert 150 < crossings < 400


@pytest.mark.parametrize("mic", ["mic1", "mic2"])
def test_vctk_reads_one_microphone_so_no_utterance_is_on_both_sides_of_the_split(tmp_path, mic):
    write_vctk(tmp_path / "VCTK-Corpus", mics=("mic1", "mic2"))
    splits = Vctk(VctkConfig(sample_rate=16000, length=8000, test_fraction=0.34, mic=mic),
                  tmp_path / "VCTK-Corpus").load()
    assert len(splits.train) + len(splits.test) == 6  # 3 utterances of each of 2 speakers, once each
    train, test = splits.train.flatten(1), splits.test.flatten(1)
    similarity = torch.nn.functional.normalize(test, dim=1) @ torch.nn.functional.normalize(train, dim=1).T
    assert float(similarity.max()) < 0.999  # before, both recordings of an utterance were read, one on each side


def test_a_vctk_speaker_without_the_chosen_microphone_is_left_out_by_name(tmp_path):
    root = write_vctk(tmp_path / "VCTK-Corpus", mics=("mic1", "mic2"))
    for path in (root / "wav48_silence_trimmed" / "p226").iterdir():
        if path.stem.endswith("_mic2"):
            path.unlink()  # as p280 and p315 of VCTK 0.92, recorded by one microphone only
    write_vctk(tmp_path / "more", mics=("mic1", "mic2"))
    (tmp_path / "more" / "wav48_silence_trimmed" / "p225").rename(root / "wav48_silence_trimmed" / "p227")
    splits = Vctk(VctkConfig(sample_rate=16000, length=8000, test_fraction=0.34, mic="mic2"), root).load()
    assert splits.info["labels"] == ["p225", "p227"] and splits.info["speakers_without_mic"] == ["p226"]
    assert len(Vctk(VctkConfig(sample_rate=16000, length=8000, test_fraction=0.34), root).load().info["labels"]) == 3


def test_a_wav_folder_or_vctk_alone_selects_the_audio_benchmark(plugins):
    from anytime_bench.engine.config import load_config

    for dataset in ("wav-folder", "vctk"):
        cfg = load_config(None, {"run": {"dataset": dataset}}, plugins)
        assert cfg.run.encoders == ["ovqvae-spec", "vqvae-channel-spec"]  # the image encoders refused its clips
        assert "fad" in cfg.run.metrics and "asr" not in cfg.run.metrics  # asr needs the words a dataset names


def test_wav_folder_names_a_corrupt_file(tmp_path):
    for label in ("yes", "no"):
        (tmp_path / label).mkdir()
        for i in range(2):
            sf.write(tmp_path / label / f"{i}.wav", word(16000, 0.3, 300), 16000)
    (tmp_path / "no" / "broken.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(DataError, match="broken.wav"):
        WavFolder(WavFolderConfig(length=4000), tmp_path).load()


def _folder_with(tmp_path, name, wave, rate):
    for label in ("yes", "no"):
        (tmp_path / label).mkdir()
        for i in range(2):
            sf.write(tmp_path / label / f"{i}.wav", word(16000, 0.3, 300), 16000)
    sf.write(tmp_path / "no" / name, wave, rate)
    return tmp_path


@pytest.mark.parametrize("rate, frames, message", [
    (47981, 1000, "47981 Hz cannot be resampled to 16000 Hz here"),  # a prime rate: a 13 GB filter, refused unbuilt
    (1, 3000, "would be more than"),  # 3000 samples at 1 Hz are 48 million at 16 kHz
])
def test_a_rate_that_would_blow_up_resampling_is_refused_before_it(tmp_path, rate, frames, message):
    root = _folder_with(tmp_path, "odd.wav", np.zeros(frames, np.float32) + 0.1, rate)
    with pytest.raises(DataError, match=f"odd.wav: .*{message}"):
        WavFolder(WavFolderConfig(length=4000), root).load()


def test_a_sample_rate_option_that_would_blow_up_resampling_is_refused_before_it():
    from anytime_bench_plugins.audio_datasets import resample

    # spoken digits resample espeak-ng's 22050 Hz to the configured rate: a prime one is refused unbuilt
    with pytest.raises(DataError, match="22050 Hz cannot be resampled to 47981 Hz here .* choose another sample_rate"):
        resample(np.zeros(100, np.float32), 22050, 47981)
    assert resample(np.zeros(100, np.float32), 22050, 16000).shape == (73,)


def test_a_file_longer_than_the_limit_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    import anytime_bench_plugins.audio_datasets as audio

    root = _folder_with(tmp_path, "long.wav", np.zeros((10000, 2), np.float32) + 0.1, 16000)
    monkeypatch.setattr(audio, "MAX_AUDIO_SAMPLES", 16000)  # 8000 frames of 2 channels; the others hold 14400
    with pytest.raises(DataError, match="long.wav: more than 16000 samples"):
        WavFolder(WavFolderConfig(length=4000), root).load()
    monkeypatch.setattr(audio, "MAX_AUDIO_SAMPLES", 20000)
    assert len(WavFolder(WavFolderConfig(length=4000), root).load().train) > 0


def test_every_common_rate_resamples_within_the_limits():
    from anytime_bench_plugins.audio_datasets import MAX_RESAMPLING_TERMS

    common = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 37800, 44100, 48000, 88200, 96000, 176400, 192000]
    for source in common:
        for target in (8000, 16000, 22050, 24000, 44100, 48000):
            g = math.gcd(source, target)
            assert (source // g) * (target // g) <= MAX_RESAMPLING_TERMS, (source, target)


def test_wav_folder_without_label_folders_is_a_data_error(tmp_path):
    sf.write(tmp_path / "a.wav", word(16000, 0.3, 300), 16000)
    with pytest.raises(DataError, match="one sub-folder per label"):
        WavFolder(WavFolderConfig(), tmp_path).load()


@pytest.mark.parametrize("strides,length", [([5, 4, 4], 16000), ([2, 4], 2000), ([3, 1], 300)])
def test_wave_vqvae_shapes_for_odd_and_even_strides(strides, length):
    cfg = WaveVQConfig(code_length=6, codebook_size=8, widths=[4] * len(strides), strides=strides)
    model = WaveChannelVQVAE(cfg, (1, length))
    x = torch.rand(3, 1, length) * 2 - 1
    codes = model.encode(x)
    assert codes.shape == (3, 6) and codes.dtype == torch.int64
    assert model.decode(codes[:, :2]).shape == (3, 1, length)


@pytest.mark.parametrize("config", [WaveVQConfig, WaveRVQConfig])
def test_group_normalized_tokenizers_refuse_widths_that_8_groups_do_not_split(config):
    # a layer of more than 8 channels is normalized in 8 groups: 12 channels failed when the encoder was built
    config(widths=[8] * len(config().strides)).validate()
    with pytest.raises(ConfigError, match="^widths: .*multiples of 8"):
        config(widths=[12] * len(config().strides)).validate()


def test_wave_vqvae_rejects_images_and_indivisible_lengths():
    with pytest.raises(ConfigError, match="waveforms"):
        WaveChannelVQVAE(WaveVQConfig(), (1, 8, 8))
    with pytest.raises(ConfigError, match="encoder.ovqvae-1d.strides: .* cannot be downsampled"):
        WaveChannelVQVAE(WaveVQConfig(strides=[5, 4, 4, 4, 2]), (1, 1000))


@pytest.mark.parametrize("options,message", [({"strides": [5, 4]}, "one stride per width"),
                                             ({"strides": [5, 4, 0, 4, 2]}, ">= 1"),
                                             ({"spectral_weight": -1.0}, ">= 0"),
                                             ({"spectral_ffts": [512, 8]}, ">= 16")])
@pytest.mark.parametrize("config", [WaveVQConfig, WaveRVQConfig])
def test_every_waveform_tokenizer_checks_its_strides_and_spectral_loss_alike(config, options, message):
    with pytest.raises(ConfigError, match=f"{next(iter(options))}: .*{message}"):
        config(**options).validate()


def test_ordered_wave_vqvae_needs_fewer_codes_than_its_unordered_twin():
    torch.manual_seed(0)
    t = torch.arange(400) / 400
    freqs = torch.rand(64, 1, 1) * 8 + 2
    data = (0.8 * torch.sin(2 * np.pi * freqs * t) * torch.rand(64, 1, 1)).float()
    cfg = WaveVQConfig(code_length=8, codebook_size=16, widths=[16, 16], strides=[4, 5], batch_size=32, steps=150,
                       stage2_steps=250, spectral_weight=0.0)
    ctx = RunContext(quiet=True)
    errors = {}
    for cls in (WaveChannelVQVAE, UnorderedWaveChannelVQVAE):
        torch.manual_seed(0)
        model = cls(cfg, (1, 400))
        model.fit(data, ctx)
        errors[cls.name] = float(((model.decode(model.encode(data)[:, :2]) - data) ** 2).mean())
    assert errors["ovqvae-1d"] < errors["vqvae-channel-1d"]


def audio_inputs(candidate, reference, splits):
    return MetricInputs(candidate, reference, "tones", "test", splits, 0)


@pytest.fixture(scope="module")
def tones():
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(4000) / 8000
    labels = torch.arange(60) % 3
    freqs = torch.tensor([200.0, 500.0, 1200.0])[labels] * (1 + 0.05 * torch.rand(60, generator=gen))
    waves = (0.6 * torch.sin(2 * np.pi * freqs[:, None] * t)).unsqueeze(1)
    waves = waves + 0.01 * torch.randn(waves.shape, generator=gen)
    return DataSplits(waves[:40], waves[40:], labels[:40], labels[40:], modality="audio", num_classes=3,
                      sample_rate=8000)


def test_mel_distance_is_zero_for_identical_audio_and_grows_with_distortion(tones):
    metric = MelDistance(MelConfig())
    ctx = RunContext(quiet=True)
    same = metric.compute(audio_inputs(tones.test, tones.test, tones), ctx)
    noisy = metric.compute(audio_inputs(tones.test + 0.05 * torch.randn_like(tones.test), tones.test, tones), ctx)
    silent = metric.compute(audio_inputs(torch.zeros_like(tones.test), tones.test, tones), ctx)
    assert same == 0.0 and 0 < noisy < silent
    assert metric.provenance()["sample_rate"] == 8000


def test_mel_distance_refuses_images():
    images = DataSplits(torch.zeros(4, 1, 8, 8), torch.zeros(2, 1, 8, 8))
    with pytest.raises(DataError, match="needs audio"):
        MelDistance(MelConfig()).preflight(MetricInputs(images.test, images.test, "x", "test", images, 0),
                                           RunContext(quiet=True))


def test_fad_separates_the_right_sounds_from_the_wrong_ones(tones, tmp_path):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    metric = Fad(FidelityConfig(classifier_width=8, classifier_steps=60))
    real = metric.compute(audio_inputs(tones.test[:10], tones.train, tones), ctx)
    wrong = torch.sin(2 * np.pi * 3000 * torch.arange(4000) / 8000).expand(10, 1, 4000) * 0.6
    fake = metric.compute(audio_inputs(wrong, tones.train, tones), ctx)
    assert real < fake
    assert metric.provenance()["extractor_test_accuracy"] > 0.9


def test_inception_features_are_refused_for_audio(tones, tmp_path):
    inputs = MetricInputs(tones.test, tones.train, "tones", "train", tones, 0)
    with pytest.raises(DataError, match="for images"):
        Fad(FidelityConfig(feature_extractor="inception-v3-compat")).preflight(inputs, RunContext(quiet=True,
                                                                                                 cache_dir=tmp_path))


@pytest.mark.parametrize("scale", ["mel", "linear"])
def test_the_spectrogram_front_end_neither_clips_loud_frames_nor_loses_the_tone(tones, scale):
    from anytime_bench_plugins.spectrogram_vqvae import SpectrogramCodec, SpectrogramVQConfig

    codec = SpectrogramCodec(SpectrogramVQConfig(sample_rate=8000, scale=scale, n_mels=32), 4000, 8)
    loud = tones.test[:6] / tones.test[:6].abs().amax(dim=-1, keepdim=True)  # peak-normalised, as datasets give
    image = codec.to_image(loud)
    assert image.shape[1:] == codec.image_shape and image.min() >= -1
    assert image.max() < 0.99, "the loudest frames reach the top of the range: they would be clipped"
    back = codec.to_wave(image)
    assert back.shape == loud.shape and back.abs().amax(dim=-1).max() <= 1
    # Griffin-Lim recovers a wave whose loud bins (within 50 dB of the top) are the ones encoded, up to the clip's
    # level, to within 7 dB (0.1 of the image's range of 2 for 140 dB), and whose pitch is the tone's.
    error = (codec.to_image(back) - image)[..., :codec.frames]
    strong = image[..., :codec.frames] > 0.3
    for e, s in zip(error, strong, strict=True):
        assert s.any() and (e[s] - e[s].median()).abs().mean() < 0.1
    peak = lambda w: torch.fft.rfft(w.squeeze(1)).abs().argmax(dim=-1)  # noqa: E731
    assert ((peak(back) - peak(loud)).abs() <= 0.1 * peak(loud)).all()  # within 10% (mel bands are coarse)


def test_audio_export_is_a_flac_file_of_exactly_the_stored_samples():
    stored = (np.sin(np.linspace(0, 40, 800)) * 20000).astype(np.int16).reshape(1, 800)
    stored[0, :3] = [-32768, 32767, 0]  # the extremes survive too
    suffix, mime, data = Audio(NoOptions()).export(stored, {"sample_rate": 8000})
    assert (suffix, mime) == (".flac", "audio/flac")
    back, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == 8000 and np.array_equal(back, stored.reshape(-1))


def test_a_clip_too_short_for_the_spectrogram_is_named_by_the_option_not_a_torch_error():
    from anytime_bench_plugins.spectrogram_vqvae import SpectrogramOVQVAE, SpectrogramVQConfig

    with pytest.raises(ConfigError, match=r"encoder.ovqvae-spec.n_fft: clips of 100 samples are too short for "
                                          r"n_fft = 512; use clips of more than 256 samples"):
        SpectrogramOVQVAE(SpectrogramVQConfig(), (1, 100))


def test_a_file_that_is_not_audio_is_named_without_the_readers_internals(tmp_path):
    root = _folder_with(tmp_path, "fake.wav", np.zeros(100, np.float32), 16000)
    (root / "no" / "fake.wav").write_text("not audio at all")
    with pytest.raises(DataError, match=r"fake.wav: not a readable audio file \(Format not recognised") as caught:
        WavFolder(WavFolderConfig(length=4000), root).load()
    assert "BytesIO" not in str(caught.value)


def test_the_command_engine_without_a_system_espeak_says_so_not_to_install_the_wheel(monkeypatch):
    monkeypatch.setattr(speech, "_ENGINES", {})
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match='engine = "command" needs the system\'s espeak-ng on the PATH'):
        speech.engine("command")


def test_the_preview_of_silent_clips_warns_of_nothing():
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a silent clip (an undertrained model's) warned of a log of zero each run
        Audio(NoOptions()).preview(ax, np.zeros((3, 1, 4000), np.int16), {"sample_rate": 8000})
    plt.close(fig)
