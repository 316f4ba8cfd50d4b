"""Speech synthesis with espeak-ng, for the spoken-digits dataset.

The default engine is the espeak-ng library shipped in the ``espeakng-loader``
wheel (library and voice data, installed by pip with anytime-bench), driven
through its C API with ctypes (:mod:`anytime_bench_plugins.speech_worker`):
synchronous synthesis into a callback, about a millisecond per word. Where that wheel does not exist (Linux on ARM), the
``espeak-ng`` command of the system (Debian's package, Homebrew's formula) is
the alternative. Each engine names itself and its version, which go into the
dataset's cache key and provenance, since the two produce different audio.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from anytime_bench import DataError


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str
    """An espeak-ng voice and variant, as ``en-us+m3``."""
    rate: int
    """Words per minute."""
    pitch: int
    """0..99."""


class LibraryEngine:
    """libespeak-ng from the ``espeakng-loader`` wheel, driven through ctypes in a fresh worker process.

    The library keeps state between utterances (pitch-flutter phase, random
    stream), so all clips of a dataset are made in one new process with its
    random stream seeded: reproducible, about a millisecond per word.
    """

    def __init__(self):
        from importlib import metadata

        import espeakng_loader  # noqa: F401  (present, or ImportError for the caller)

        self.version = metadata.version("espeakng-loader")
        self.name = f"espeak-ng library (espeakng-loader {self.version})"

    def synthesize_all(self, utterances: list[Utterance], seed: int) -> list[tuple[np.ndarray, int]]:
        request = {"seed": seed, "utterances": [[u.text, u.voice, u.rate, u.pitch] for u in utterances]}
        done = subprocess.run([sys.executable, "-m", "anytime_bench_plugins.speech_worker"],
                              input=json.dumps(request).encode(), capture_output=True, check=False)
        if done.returncode != 0:
            raise DataError(f"espeak-ng (espeakng-loader) failed: "
                            f"{done.stderr.decode(errors='replace').strip()[-300:] or 'no output'}")
        with np.load(io.BytesIO(done.stdout), allow_pickle=False) as out:
            waves, lengths, rate = out["waves"], out["lengths"], int(out["sample_rate"])
            self.library_version = str(out["version"])
        ends = np.cumsum(lengths)
        return [(waves[end - n:end].astype(np.float32) / 32768, rate) for end, n in zip(ends, lengths, strict=True)]


class CommandEngine:
    """The system's ``espeak-ng`` command (a process per utterance)."""

    def __init__(self, path: str):
        self.path = path
        self.version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
        self.name = f"{self.version} (command {path})"

    def synthesize_all(self, utterances: list[Utterance], seed: int) -> list[tuple[np.ndarray, int]]:
        return [self.synthesize(u) for u in utterances]

    def synthesize(self, u: Utterance) -> tuple[np.ndarray, int]:
        import soundfile as sf

        command = [self.path, "-v", u.voice, "-s", str(u.rate), "-p", str(u.pitch), "--stdout", u.text]
        done = subprocess.run(command, capture_output=True, check=False)
        if done.returncode != 0 or not done.stdout:
            raise DataError(f"espeak-ng failed for voice {u.voice}: "
                            f"{done.stderr.decode(errors='replace').strip() or 'no audio'}")
        wave, rate = sf.read(io.BytesIO(done.stdout), dtype="float32")
        return wave, int(rate)


_ENGINES: dict[str, LibraryEngine | CommandEngine] = {}


def engine(choice: str = "auto") -> LibraryEngine | CommandEngine:
    """The synthesizer: ``library`` (the wheel), ``command`` (the system's espeak-ng) or ``auto`` (library first)."""
    if choice in _ENGINES:
        return _ENGINES[choice]
    found: LibraryEngine | CommandEngine | None = None
    if choice in ("auto", "library"):
        try:
            found = LibraryEngine()
        except ImportError:
            if choice == "library":
                raise DataError("speech synthesis needs the espeakng-loader wheel: pip install espeakng-loader") \
                    from None
        except OSError as exc:
            if choice == "library":
                raise DataError(f"libespeak-ng from espeakng-loader cannot be loaded: {exc}") from None
    if found is None and choice in ("auto", "command"):
        path = shutil.which("espeak-ng")
        if path:
            found = CommandEngine(path)
    if found is None and choice == "command":  # the wheel may be there: it was not asked for
        raise DataError("engine = \"command\" needs the system's espeak-ng on the PATH (apt-get install espeak-ng, brew "
                        "install espeak-ng), or engine = \"auto\" or \"library\" for the espeakng-loader wheel")
    if found is None:
        raise DataError("speech synthesis needs espeak-ng: pip install espeakng-loader (Linux x86-64, Apple-silicon macOS, "
                        "Windows), or the system's package (apt-get install espeak-ng, brew install espeak-ng)")
    _ENGINES[choice] = found
    return found
