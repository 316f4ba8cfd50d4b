"""Built-in modalities: images (8-bit, previewed as a mosaic) and audio (16-bit PCM, spectrograms, WAV files)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from anytime_bench import from_pcm16, from_uint8, hookimpl, to_pcm16, to_uint8


@dataclass
class NoOptions:
    pass


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """[N, C, H, W] uint8 -> one [rows*H, columns*W, C] mosaic."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    canvas = np.zeros((rows * h, columns * w, c), dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * h:(r + 1) * h, col * w:(col + 1) * w] = img.transpose(1, 2, 0)
    return canvas


class Image:
    """Images [C, H, W]: stored as 8-bit, previewed as a mosaic."""

    name = "image"
    Config = NoOptions

    def __init__(self, config: NoOptions):
        self.config = config

    def to_stored(self, x: torch.Tensor) -> np.ndarray:
        return to_uint8(x).numpy()

    def from_stored(self, a: np.ndarray) -> torch.Tensor:
        if a.dtype != np.uint8 or a.ndim != 4:
            raise ValueError(f"images are stored as uint8 [N, C, H, W], got {a.dtype} with {a.ndim} dimensions")
        return from_uint8(a)

    def preview(self, ax: Any, stored: np.ndarray, splits_info: dict[str, Any]) -> None:
        images = stored[:16]
        mosaic = tile(images, int(np.ceil(np.sqrt(len(images)))))
        ax.imshow(mosaic.squeeze(-1) if mosaic.shape[-1] == 1 else mosaic, cmap="gray", vmin=0, vmax=255)


class Audio:
    """Mono waveforms [1, T]: stored as 16-bit PCM, previewed as spectrograms, exported as FLAC files."""

    name = "audio"
    Config = NoOptions
    preview_size = (2.2, 1.6)

    def __init__(self, config: NoOptions):
        self.config = config

    def to_stored(self, x: torch.Tensor) -> np.ndarray:
        return to_pcm16(x).numpy()

    def from_stored(self, a: np.ndarray) -> torch.Tensor:
        if a.dtype != np.int16 or a.ndim != 3:
            raise ValueError(f"audio is stored as int16 [N, 1, T], got {a.dtype} with {a.ndim} dimensions")
        return from_pcm16(a)

    def preview(self, ax: Any, stored: np.ndarray, splits_info: dict[str, Any]) -> None:
        # the spectrogram of the first three clips, end to end
        wave = from_pcm16(stored[:3].reshape(-1)).numpy()
        # A floor of noise rather than of DC: a silent clip (an undertrained model's) has no power to take a log of
        # outside DC, and matplotlib warned of a division by zero on every run that drew one.
        wave = wave + np.random.default_rng(0).normal(0.0, 1e-6, wave.shape).astype(np.float32)
        ax.specgram(wave, NFFT=512, Fs=int(splits_info["sample_rate"]), noverlap=384, cmap="magma",
                    vmin=-120, vmax=-20)

    def export(self, item: np.ndarray, splits_info: dict[str, Any]) -> tuple[str, str, bytes]:
        """One clip as a 16-bit FLAC file: the stored samples exactly, in about a third of a WAV's bytes (committed runs
        and the report, which embeds a few per model, stay light); browsers play it."""
        import soundfile as sf

        buffer = io.BytesIO()
        sf.write(buffer, item.reshape(-1), int(splits_info["sample_rate"]), subtype="PCM_16", format="FLAC")
        return ".flac", "audio/flac", buffer.getvalue()


@hookimpl
def register_modalities():
    return [Image, Audio]
