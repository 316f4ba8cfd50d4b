"""Synthesize a list of utterances with libespeak-ng in a fresh process: ``python -m anytime_bench_plugins.speech_worker``.

libespeak-ng keeps state between utterances in one process (the phase of its
pitch flutter, its random stream), so the same utterance sounds slightly
different the second time. A dataset is therefore built in a process of its
own: a fresh library, its random stream seeded, the utterances in a fixed
order, which makes the clips reproducible. This module imports nothing heavy:
JSON in on stdin (``{"seed": int, "utterances": [[text, voice, rate, pitch], ...]}``),
an ``.npz`` out on stdout (``waves``, all clips end to end as int16, ``lengths``,
``sample_rate``, ``version``).
"""

from __future__ import annotations

import ctypes
import io
import json
import sys
from pathlib import Path

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_RATE, ESPEAK_PITCH = 1, 3


def languages(data: Path) -> dict[str, str]:
    """Voice files by the language they speak first (``en-gb`` -> ``gmw/en``), for names the library's
    ``espeak_SetVoiceByName`` does not take but the ``espeak-ng -v`` command does."""
    out: dict[str, str] = {}
    for path in sorted((data / "lang").rglob("*")):
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "language":
                out.setdefault(parts[1].lower(), path.relative_to(data / "lang").as_posix())
                break
    return out


def synthesize(seed: int, utterances: list[list]) -> dict[str, np.ndarray]:
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    data = Path(espeakng_loader.get_data_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data.parent).encode(), 0)
    if rate <= 0:
        raise RuntimeError(f"libespeak-ng could not start with its data in {data}")
    chunks: list[np.ndarray] = []

    def collect(wave, count, events) -> int:
        if wave and count > 0:
            chunks.append(np.ctypeslib.as_array(wave, shape=(count,)).copy())
        return 0

    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)(collect)
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_ng_SetRandSeed(seed)
    waves, lengths = [], []
    files: dict[str, str] | None = None
    variants = data / "voices" / "!v"
    for text, voice, words_per_minute, pitch in utterances:
        # a variant the library does not find leaves the plain voice speaking, without a word: refused instead
        variant = str(voice).partition("+")[2]
        if variant and (Path(variant).name != variant or not (variants / variant).is_file()):
            raise RuntimeError(f"espeak-ng has no voice variant {variant!r} (the files of {variants})")
        if lib.espeak_SetVoiceByName(str(voice).encode()) != 0:
            files = files if files is not None else languages(data)
            language, _, variant = str(voice).partition("+")
            known = files.get(language.lower())
            if known is None or lib.espeak_SetVoiceByName(f"{known}+{variant}".rstrip("+").encode()) != 0:
                raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(ESPEAK_RATE, int(words_per_minute), 0)
        lib.espeak_SetParameter(ESPEAK_PITCH, int(pitch), 0)
        chunks.clear()
        encoded = str(text).encode() + b"\0"
        if lib.espeak_Synth(encoded, len(encoded), 0, POS_CHARACTER, 0, 0, None, None) != 0:
            raise RuntimeError(f"espeak-ng failed to speak {text!r} with voice {voice!r}")
        lib.espeak_Synchronize()
        if not chunks:
            raise RuntimeError(f"espeak-ng produced no audio for {text!r} with voice {voice!r}")
        wave = np.concatenate(chunks)
        waves.append(wave)
        lengths.append(len(wave))
    return {"waves": np.concatenate(waves).astype(np.int16), "lengths": np.array(lengths, dtype=np.int64),
            "sample_rate": np.array(rate), "version": np.array(lib.espeak_Info(None).decode())}


def main() -> None:
    request = json.loads(sys.stdin.read())
    try:
        arrays = synthesize(int(request["seed"]), request["utterances"])
    except Exception as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        sys.exit(1)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    sys.stdout.buffer.write(buffer.getvalue())


if __name__ == "__main__":
    main()
