"""The log-mel and log-spectrogram front ends shared by the audio classifier, the audio metrics and the 1-D
VQ-VAE's spectral loss: one place for their constants."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MelSettings:
    n_mels: int = 64
    n_fft: int = 1024
    hop_length: int = 256
    floor_db: float = -80.0


class LogMel(nn.Module):
    """Waveforms ``[B, 1, T]`` -> log-mel power in dB ``[B, 1, n_mels, frames]``, floored at ``floor_db``."""

    def __init__(self, sample_rate: int, settings: MelSettings = MelSettings()):
        super().__init__()
        import torchaudio

        self.settings = settings
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=settings.n_fft,
                                                        hop_length=settings.hop_length, n_mels=settings.n_mels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (10 * torch.log10(self.mel(x.clamp(-1, 1).float()) + 1e-10)).clamp_min(self.settings.floor_db)


def log_spectrogram(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Log power of the STFT (hop n_fft/4, Hann window) of waveforms ``[..., T]``."""
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(x.flatten(0, -2), n_fft, hop_length=n_fft // 4, window=window, return_complex=True)
    return torch.log(spec.abs().pow(2) + 1e-5)


def spectral_loss(x_hat: torch.Tensor, x: torch.Tensor, weight: float, ffts: list[int]) -> torch.Tensor | float:
    """Mean L1 distance of log-magnitude spectra at several resolutions, times ``weight`` (0: no term).

    Waveform MSE alone asks for the exact phase and, at a CPU model's size, learns little more than silence;
    log-magnitude spectra at several resolutions reward the right sound.
    """
    if not weight:
        return 0.0
    return weight * sum(F.l1_loss(log_spectrogram(x_hat, n), log_spectrogram(x, n)) for n in ffts) / len(ffts)
