"""Audio datasets: spoken digits synthesized offline with espeak-ng, VCTK, and any folder of WAV files.

Every clip becomes a mono float waveform ``[1, length]`` in ``[-1, 1]`` at the
configured sample rate: resampled with torchaudio, silence-trimmed, peak-
normalised, and centred in (or cut to) a fixed length. Files are read with
soundfile, which needs no FFmpeg (torchaudio 2.11's own loader does).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from anytime_bench import (
    DataError,
    DataSplits,
    archives,
    contained,
    data_file,
    hookimpl,
    listing,
    read_regular,
    require,
)

from .datasets import stratified_split

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


MAX_AUDIO_SAMPLES = 2**25
"""Samples (frames times channels) one file may hold, before and after resampling: about 35 minutes of 16 kHz
mono, 128 MB as float32. A longer file, or a small one that decodes or resamples to more, is refused unread."""
MAX_AUDIO_BYTES = 512 * 2**20
"""Larger files are refused unread: :data:`MAX_AUDIO_SAMPLES` of 32-bit samples take 128 MB."""
MAX_RESAMPLING_TERMS = 2**20
"""The largest product of a file's rate and the target rate in lowest terms. torchaudio's resampling filter holds
about that many values: 22050 Hz to 16 kHz needs 141,120, while a prime rate such as 47981 Hz needs 768 million
(13 GB and 80 s for a 1000-sample file)."""


def read_audio(path: Path, target_rate: int | None = None) -> tuple[np.ndarray, int]:
    """A mono float32 waveform and its sample rate, or a DataError naming the file.

    Reads at most :data:`MAX_AUDIO_SAMPLES` samples whatever the header
    declares. With ``target_rate``, a file that cannot be resampled to it
    within the limits is refused before any resampling.
    """
    import io

    import soundfile as sf

    # Read through the file as opened and checked, not by its name: a pipe swapped in meanwhile would hang the read.
    data = read_regular(path, MAX_AUDIO_BYTES, "audio file")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, cap = int(f.samplerate), max(1, MAX_AUDIO_SAMPLES // f.channels)
            data = f.read(cap + 1, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError by format
        # soundfile names what it read, here the in-memory copy ("Error opening <_io.BytesIO object at 0x...>:"):
        # the file is named already
        said = re.sub(r"^Error opening <_io\.BytesIO object at 0x[0-9a-f]+>: ", "", str(exc))
        raise DataError(f"{path}: not a readable audio file ({said})") from None
    if len(data) > cap:
        raise DataError(f"{path}: more than {MAX_AUDIO_SAMPLES} samples; cut it into shorter files first")
    if data.size == 0:
        raise DataError(f"{path}: contains no samples")
    if not np.isfinite(data).all():
        raise DataError(f"{path}: holds NaN or infinite samples")
    if rate < 1:
        raise DataError(f"{path}: declares a sample rate of {rate}")
    problem = None if target_rate is None else resampling_problem(len(data), rate, target_rate)
    if problem:
        raise DataError(f"{path}: {problem}")
    return data.mean(axis=1), rate


def resampling_problem(samples: int, rate: int, target: int) -> str | None:
    """Why ``samples`` at ``rate`` cannot be resampled to ``target`` within the limits above, or None."""
    if rate == target:
        return None
    common = math.gcd(rate, target)
    if (rate // common) * (target // common) > MAX_RESAMPLING_TERMS:
        return (f"{rate} Hz cannot be resampled to {target} Hz here (a ratio of {target // common}:{rate // common} "
                "in lowest terms); resample the audio first or choose another sample_rate")
    if samples * target > MAX_AUDIO_SAMPLES * rate:
        return f"{samples} samples at {rate} Hz would be more than {MAX_AUDIO_SAMPLES} at {target} Hz"
    return None


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    problem = resampling_problem(len(wave), rate, target)
    if problem:
        raise DataError(problem)
    if rate == target:
        return wave
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(wave), rate, target).numpy()


def trim_silence(wave: np.ndarray, rate: int, threshold_db: float = -35.0, frame_ms: float = 10.0) -> np.ndarray:
    """Drop leading and trailing frames whose RMS is ``threshold_db`` below the loudest frame."""
    frame = max(1, int(rate * frame_ms / 1000))
    n = len(wave) // frame
    if n == 0:
        return wave
    frames = wave[:n * frame].reshape(n, frame)
    if float(np.abs(frames).max()) > 1e18:  # a float file's samples (up to 3e38): their squares overflow float32
        frames = frames.astype(np.float64)
    rms = np.sqrt(np.mean(frames ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    return wave[loud[0] * frame:(loud[-1] + 1) * frame]


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Centre a clip in ``length`` samples, zero-padded, or keep its middle ``length`` samples."""
    if len(wave) >= length:
        start = (len(wave) - length) // 2
        return wave[start:start + length]
    out = np.zeros(length, dtype=np.float32)
    start = (length - len(wave)) // 2
    out[start:start + len(wave)] = wave
    return out


def prepare(wave: np.ndarray, rate: int, target_rate: int, length: int, peak: float = 0.95) -> np.ndarray:
    wave = trim_silence(resample(wave, rate, target_rate), target_rate)
    top = float(np.abs(wave).max())
    if top > 0:
        gain = peak / top
        # in float64 where the gain of a clip of tiny samples (1e-40) is beyond float32's range
        wave = (wave if gain < float(np.finfo(np.float32).max) else wave.astype(np.float64)) * gain
    return fit_length(wave.astype(np.float32), length)


def to_splits(clips: np.ndarray, labels: np.ndarray, names: list[str], test_fraction: float, seed: int,
              rate: int, info: dict) -> DataSplits:
    train, test = stratified_split(labels, test_fraction, seed)
    x = torch.from_numpy(clips).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return DataSplits(x[train], x[test], y[train], y[test], modality="audio", num_classes=len(names),
                      sample_rate=rate, info={**info, "labels": names, "clips": len(clips)})


@dataclass
class AudioClipConfig:
    sample_rate: int = 16000
    """Samples per second every clip is resampled to."""
    length: int = 16000
    """Samples per clip (16000 at 16 kHz: one second)."""
    test_fraction: float = 0.2
    """Share of each label's clips held out as the test split."""
    split_seed: int = 0
    """Seed of the stratified train/test split."""

    def validate(self) -> None:
        require(self.sample_rate >= 1000, "sample_rate", "must be >= 1000")
        require(self.length >= 64, "length", "must be >= 64")
        require(0.0 < self.test_fraction < 1.0, "test_fraction", "must be in (0, 1)")
        require(self.split_seed >= 0, "split_seed", "must be >= 0")


ESPEAK_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"]


@dataclass
class SpokenDigitsConfig(AudioClipConfig):
    clips: int = 1000
    """Total clips, an equal number per digit."""
    voices: list[str] = field(default_factory=lambda: list(ESPEAK_VOICES))
    """espeak-ng voices (accents) to draw speakers from."""
    variants: list[str] = field(default_factory=lambda: list(ESPEAK_VARIANTS))
    """espeak-ng voice variants (``+m3``, ``+f2``...): speaker timbre."""
    rate: list[int] = field(default_factory=lambda: [130, 210])
    """Speaking rate range, words per minute."""
    pitch: list[int] = field(default_factory=lambda: [20, 80])
    """Pitch range [low, high] within 0..99."""
    synthesis_seed: int = 0
    """Fixes who says which digit how."""
    engine: Literal["auto", "library", "command"] = "auto"
    """library: libespeak-ng from the espeakng-loader wheel; command: the system's espeak-ng; auto: library first."""

    def validate(self) -> None:
        super().validate()
        require(self.clips >= 20, "clips", "must be >= 20")
        require(self.synthesis_seed >= 0, "synthesis_seed", "must be >= 0")
        require(len(self.voices) >= 1 and len(self.variants) >= 1, "voices", "needs at least one voice and variant")
        require(len(self.rate) == 2 and 80 <= self.rate[0] <= self.rate[1] <= 450, "rate",
                "must be [low, high] words per minute within 80..450")
        require(len(self.pitch) == 2 and 0 <= self.pitch[0] <= self.pitch[1] <= 99, "pitch",
                "must be [low, high] within 0..99")


class SpokenDigits:
    """One-second spoken digits 'zero'..'nine' synthesized offline by espeak-ng across voices, rates and pitches."""

    name = "spoken-digits"
    Config = SpokenDigitsConfig
    uses_cache_dir = True
    # Selecting this dataset alone gives an audio benchmark sized for two CPU cores (user settings win).
    defaults = {
        "run": {"encoders": ["ovqvae-spec", "vqvae-channel-spec"],
                "metrics": ["fad", "accuracy", "confidence", "isc", "rfad", "mel-distance"],
                "budgets": [0.125, 0.25, 0.5, 0.75, 1.0]},
        # One truncation index per example rather than per mini-batch: on digits this cut the ordered model's FID at
        # small budgets by about 60% at no cost at the full length (configs/ablations/per-example.toml). Half the
        # examples at full length: with none, the ordered model trains 42% of its examples at full length against
        # its twin's 100%, and Whisper recognised 0.285 of its full-length reconstructions against the twin's 0.363
        # (means over 3 training seeds); with half, 0.347 (docs/log.md; configs/ablations/
        # spoken-digits-per-example.toml keeps none).
        # Five times the spectrogram encoders' generic steps (3000 + 4500 of 64 clips), for both models: at 600 + 900
        # they were undertrained (train and test MSE alike), and Whisper recognised 0.202 of the ordered model's
        # reconstructions from a quarter of the codes; at 5x, 0.335, 0.71x the real clips' 0.47 (means over 3
        # training seeds; docs/log.md).
        "encoder": {"ovqvae-spec": {"truncation": "example", "full_length_prob": 0.5, "steps": 3000,
                                    "stage2_steps": 4500},
                    "vqvae-channel-spec": {"steps": 3000, "stage2_steps": 4500}},
        "prior": {"transformer": {"batch_size": 32}},
        # One classifier serves all five (same options, same cache entry); 400 steps reach >= 99% here.
        "metric": {name: {"classifier_steps": 400} for name in ("fad", "accuracy", "confidence", "isc", "rfad")},
    }

    def __init__(self, config: SpokenDigitsConfig, data_root: Path | None = None, cache_dir: Path | None = None):
        self.config = config
        self.cache = data_root or cache_dir or Path.home() / ".cache" / "anytime-bench"

    def plan(self) -> list[dict]:
        """Who says which digit how: fixed by ``synthesis_seed``."""
        c = self.config
        rng = np.random.default_rng(c.synthesis_seed)
        return [{"digit": i % 10, "voice": c.voices[rng.integers(len(c.voices))],
                 "variant": c.variants[rng.integers(len(c.variants))],
                 "rate": int(rng.integers(c.rate[0], c.rate[1] + 1)),
                 "pitch": int(rng.integers(c.pitch[0], c.pitch[1] + 1))} for i in range(c.clips - c.clips % 10)]

    def load(self) -> DataSplits:
        from .speech import Utterance, engine

        c = self.config
        synthesizer = engine(c.engine)
        synthesis = {k: v for k, v in asdict(c).items() if k not in ("test_fraction", "split_seed", "engine")}
        synthesis["engine"] = synthesizer.name  # different engines and versions speak differently
        key = hashlib.sha256(json.dumps(synthesis, sort_keys=True).encode()).hexdigest()[:12]
        path = contained(self.cache, "spoken-digits", f"clips-{key}.npz")
        clips = labels = None
        if path.is_file():  # built once; a cache file that is not what this code writes is built again
            try:
                stored = archives.read(path, "spoken-digits cache", keys=("clips", "labels"))
                n = len(self.plan())
                clips = archives.require_array(stored, "clips", path, dtypes=("float32",),
                                               shape=(n, c.length))
                labels = archives.require_array(stored, "labels", path, dtypes=("int64",), shape=(n,))
                if not np.isfinite(clips).all() or np.abs(clips).max() > 1 or labels.min() < 0 or labels.max() > 9:
                    raise DataError(f"{path}: cached clips out of range")
            except DataError:
                clips = labels = None
        if clips is None or labels is None:
            plan = self.plan()
            spoken = synthesizer.synthesize_all([Utterance(DIGIT_WORDS[s["digit"]], f"{s['voice']}+{s['variant']}",
                                                           s["rate"], s["pitch"]) for s in plan], c.synthesis_seed)
            clips = np.stack([prepare(wave, rate, c.sample_rate, c.length) for wave, rate in spoken])
            labels = np.array([s["digit"] for s in plan], dtype=np.int64)
            archives.write(path, {"clips": clips, "labels": labels})
        return to_splits(clips, labels, list(DIGIT_WORDS), c.test_fraction, c.split_seed, c.sample_rate,
                         {"source": "espeak-ng", "engine": synthesizer.name, "cache": str(path),
                          # the word each label is spoken as: what a speech recognizer should hear (the asr metrics)
                          "vocabulary": list(DIGIT_WORDS)})


def _audio_files(folder: Path, root: Path, seen: set[Path] | None = None) -> list[Path]:
    """The audio files under ``folder``, at any depth, in order of their paths: a folder that cannot be read, or a
    link leading out of ``root``, is refused (:func:`anytime_bench.listing`), and a folder reached twice through
    links inside ``root`` is read once."""
    seen = set() if seen is None else seen
    seen.add(folder.resolve())
    found = []
    for entry in listing(folder, root):
        if entry.is_dir():
            if entry.resolve() not in seen:
                found += _audio_files(entry, root, seen)
        elif entry.suffix.lower() in AUDIO_SUFFIXES:
            found.append(entry)
    return sorted(found)


def _load_labelled(folders: dict[str, list[Path]], c: AudioClipConfig, limit: int) -> tuple[np.ndarray, np.ndarray]:
    clips, labels = [], []
    for label, (_, files) in enumerate(sorted(folders.items())):
        for path in files[:limit or None]:
            wave, rate = read_audio(path, c.sample_rate)
            clips.append(prepare(wave, rate, c.sample_rate, c.length))
            labels.append(label)
    return np.stack(clips), np.array(labels, dtype=np.int64)


@dataclass
class WavFolderConfig(AudioClipConfig):
    per_label_limit: int = 0
    """Read at most N files per label (0: all)."""

    def validate(self) -> None:
        super().validate()
        require(self.per_label_limit >= 0, "per_label_limit", "must be >= 0")


class WavFolder:
    """Any folder of audio files (WAV, FLAC, OGG) with one sub-folder per label."""

    name = "wav-folder"
    Config = WavFolderConfig
    layout = "one sub-folder per label"
    # The audio benchmark of spoken-digits, less what needs a vocabulary (asr): without it, selecting this dataset
    # kept the image benchmark's encoders and metrics, which refuse clips. Its encoder settings are left at their
    # defaults, since spoken-digits' were measured on its own 1000 clips (user settings win).
    defaults = {"run": {key: SpokenDigits.defaults["run"][key] for key in ("encoders", "metrics", "budgets")}}

    def __init__(self, config: WavFolderConfig, data_root: Path | None):
        self.config = config
        self.root = data_root

    def labelled_files(self, root: Path) -> dict[str, list[Path]]:
        folders = {d.name: [data_file(f, self.root) for f in _audio_files(d, self.root)]  # type: ignore[arg-type]
                   for d in listing(root, self.root) if d.is_dir()}
        folders = {name: files for name, files in folders.items() if files}
        if len(folders) < 2:
            raise DataError(f"{root}: expected {self.layout} holding {'/'.join(AUDIO_SUFFIXES)} files, "
                            f"found {len(folders)} such folder(s)")
        return folders

    def load(self) -> DataSplits:
        if self.root is None or not self.root.is_dir():
            raise DataError(f"dataset {self.name} needs --data-root pointing to a folder with {self.layout}")
        folders = self.labelled_files(self.root)
        c = self.config
        clips, labels = _load_labelled(folders, c, c.per_label_limit)
        for label in range(len(folders)):
            if (labels == label).sum() < 2:
                raise DataError(f"{self.root}: label {sorted(folders)[label]!r} needs at least 2 clips to split")
        return to_splits(clips, labels, sorted(folders), c.test_fraction, c.split_seed, c.sample_rate, self.info())

    def info(self) -> dict:
        """What the splits' info records of where the clips came from."""
        return {"root": str(self.root)}


@dataclass
class VctkConfig(WavFolderConfig):
    per_label_limit: int = 100
    """Utterances read per speaker (0: all 44,000 clips, about 3 GB at 16 kHz)."""
    mic: Literal["mic1", "mic2"] = "mic1"
    """VCTK 0.92 records each utterance with two microphones (``p225_001_mic1.flac``, ``..._mic2.flac``): the one
    read. Both would count one utterance twice, and put its two recordings on both sides of the train/test split."""


class Vctk(WavFolder):
    """The VCTK corpus (wav48[_silence_trimmed]/<speaker>/*.wav or .flac), labelled by speaker."""

    name = "vctk"
    Config = VctkConfig
    layout = "VCTK's wav48/ or wav48_silence_trimmed/ folder of per-speaker folders"

    def labelled_files(self, root: Path) -> dict[str, list[Path]]:
        chosen = {speaker: [f for f in files if _mic(f) in (None, self.config.mic)]
                  for speaker, files in self._speakers(root).items()}
        # VCTK 0.92 has speakers recorded by one microphone only (p280 and p315 have no mic2): left out, by name
        self.without_mic = sorted(speaker for speaker, files in chosen.items() if not files)
        chosen = {speaker: files for speaker, files in chosen.items() if files}
        if len(chosen) < 2:
            raise DataError(f"{root}: fewer than 2 speakers have {self.config.mic} recordings")
        return chosen

    def info(self) -> dict:
        return {**super().info(), "mic": self.config.mic, "speakers_without_mic": self.without_mic}

    def _speakers(self, root: Path) -> dict[str, list[Path]]:
        for name in ("wav48_silence_trimmed", "wav48", "wav"):
            if (root / name).is_dir():
                return super().labelled_files(root / name)
        if any(d.is_dir() and d.name.startswith("p") for d in listing(root, root)):
            return super().labelled_files(root)  # --data-root pointed at the speaker folders themselves
        raise DataError(f"{root}: no wav48_silence_trimmed/ or wav48/ folder of per-speaker folders (VCTK layout; "
                        f"the corpus: https://datashare.ed.ac.uk/handle/10283/3443)")


def _mic(path: Path) -> str | None:
    """The microphone a VCTK 0.92 file name gives (``p225_001_mic1``), or None (0.80's ``p225_001.wav``)."""
    tail = path.stem.rsplit("_", 1)[-1]
    return tail if tail in ("mic1", "mic2") else None


@hookimpl
def register_datasets():
    return [SpokenDigits, WavFolder, Vctk]
