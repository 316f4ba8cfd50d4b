"""Audio tokenizers on log-mel spectrograms, with a Griffin-Lim vocoder: the image models, applied to speech.

A one-second clip becomes a 64 x 64 log-mel "image" (64 mel bands, frames of
256 samples), the image tokenizers encode that, and decoding inverts the mel
scale and recovers a waveform with torchaudio's Griffin-Lim (phase started at
zero, so decoding is deterministic). On a CPU, in minutes, a tokenizer of
spectrograms keeps the word of a spoken digit where a tokenizer of raw
waveforms keeps little more than its loudness contour: the spectrogram throws
away the phase, which carries no word but costs most of a waveform model's
capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from anytime_bench import RunContext, hookimpl, require

from .rvq import ResidualVQ, RVQConfig
from .vqvae import ChannelVQVAE, Norm, UnorderedChannelVQVAE, VQConfig

FLOOR_DB = -80.0


@dataclass
class MelFront:
    """The fixed front end shared by every mel tokenizer of a config."""

    sample_rate: int = 16000
    n_mels: int = 64
    n_fft: int = 1024
    hop_length: int = 256
    griffin_lim_iters: int = 32


class MelCodec(nn.Module):
    """Waveforms ``[B, 1, T]`` <-> log-mel images ``[B, 1, n_mels, frames]`` in [-1, 1] (frames padded to ``pad``)."""

    def __init__(self, front: MelFront, length: int, pad: int):
        super().__init__()
        import torchaudio

        self.front, self.length = front, length
        self.mel = torchaudio.transforms.MelSpectrogram(front.sample_rate, n_fft=front.n_fft,
                                                        hop_length=front.hop_length, n_mels=front.n_mels)
        self.inverse_mel = torchaudio.transforms.InverseMelScale(front.n_fft // 2 + 1, front.n_mels,
                                                                 front.sample_rate)
        self.griffin_lim = torchaudio.transforms.GriffinLim(front.n_fft, front.griffin_lim_iters,
                                                            hop_length=front.hop_length, length=length,
                                                            rand_init=False)
        self.frames = 1 + length // front.hop_length
        self.padded = math.ceil(self.frames / pad) * pad

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return 1, self.front.n_mels, self.padded

    def to_image(self, wave: torch.Tensor) -> torch.Tensor:
        db = (10 * torch.log10(self.mel(wave.float()) + 1e-10)).clamp_min(FLOOR_DB)
        image = db / (-FLOOR_DB / 2) + 1  # [-80, 0] dB -> [-1, 1]
        return F.pad(image, (0, self.padded - self.frames), value=-1.0)

    def to_wave(self, image: torch.Tensor) -> torch.Tensor:
        db = (image[..., : self.frames].clamp(-1, 1) - 1) * (-FLOOR_DB / 2)
        power = torch.pow(10.0, db / 10)
        magnitude = self.inverse_mel(power.squeeze(1)).clamp_min(0)  # power spectrogram
        wave = self.griffin_lim(magnitude).unsqueeze(1)
        return wave.clamp(-1, 1)


@dataclass
class MelVQConfig(VQConfig):
    """A channel-wise VQ-VAE of log-mel spectrograms."""

    code_length: int = 32
    codebook_size: int = 256
    widths: list[int] = field(default_factory=lambda: [16, 32, 64])
    downsample: int = 3
    """Three halvings: a 64 x 64 spectrogram becomes 32 maps of 8 x 8 (codewords of 64)."""
    norm: Norm = "batch"
    batch_size: int = 64
    steps: int = 600
    stage2_steps: int = 900
    sample_rate: int = 16000
    """The clips' sample rate, which places the mel filters (another rate still works, warped differently)."""
    n_mels: int = 64
    """Mel bands: the spectrogram's height."""
    hop_length: int = 256
    """Samples between spectrogram frames (1 + length / hop frames, padded to a multiple of 2^downsample)."""
    n_fft: int = 1024
    """FFT size of the spectrogram and of Griffin-Lim."""
    griffin_lim_iters: int = 32
    """Griffin-Lim iterations when decoding to a waveform."""

    def validate(self) -> None:
        super().validate()
        require(self.sample_rate >= 1000 and self.n_mels >= 8 and self.hop_length >= 1, "sample_rate",
                "needs sample_rate >= 1000, n_mels >= 8 and hop_length >= 1")
        require(self.n_fft >= self.hop_length and self.griffin_lim_iters >= 1, "n_fft",
                "needs n_fft >= hop_length and griffin_lim_iters >= 1")


class _Mel(nn.Module):
    """An image tokenizer wrapped in the mel front end: waveforms in, waveforms out."""

    inner_cls: type = ChannelVQVAE

    def __init__(self, config, data_shape: tuple[int, ...]):
        super().__init__()
        if len(data_shape) != 2 or data_shape[0] != 1:
            raise ValueError(f"{self.name} expects mono waveforms [1, T], got {tuple(data_shape)}")
        self.config = config
        front = MelFront(config.sample_rate, config.n_mels, config.n_fft, config.hop_length, config.griffin_lim_iters)
        self.codec = MelCodec(front, data_shape[1], 2 ** config.downsample)
        self.inner = self.inner_cls(config, self.codec.image_shape)

    @property
    def code_length(self) -> int:
        return self.inner.code_length

    @property
    def codebook_size(self) -> int:
        return self.inner.codebook_size

    def images(self, waves: torch.Tensor, batch: int = 256) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.codec.to_image(waves[i:i + batch]) for i in range(0, len(waves), batch)])

    def fit(self, data: torch.Tensor, ctx: RunContext) -> dict[str, float]:
        self.to(ctx.device)
        images = self.images(data.to(ctx.device)).cpu()  # the fixed front end once, not once per step
        return self.inner.fit(images, ctx)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.encode(self.images(x))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codec.to_wave(self.inner.decode(codes))


class MelOVQVAE(_Mel):
    """Ordered channel-wise VQ-VAE of log-mel spectrograms (nested dropout), decoded with Griffin-Lim."""

    name = "ovqvae-mel"
    Config = MelVQConfig
    ordered = True
    inner_cls = ChannelVQVAE


class MelUnorderedVQVAE(_Mel):
    """Unordered baseline: the same mel VQ-VAE trained as long without nested dropout."""

    name = "vqvae-channel-mel"
    Config = MelVQConfig
    ordered = False
    inner_cls = UnorderedChannelVQVAE


@dataclass
class MelRVQConfig(RVQConfig):
    """Residual VQ with quantizer dropout of log-mel spectrograms."""

    code_length: int = 32
    codebook_size: int = 256
    widths: list[int] = field(default_factory=lambda: [16, 32, 64])
    downsample: int = 3
    latent_channels: int = 8
    """Channels of the 8 x 8 latent map: each stage quantizes a 512-d vector."""
    batch_size: int = 64
    steps: int = 1500
    sample_rate: int = 16000
    """The clips' sample rate, which places the mel filters (another rate still works, warped differently)."""
    n_mels: int = 64
    """Mel bands: the spectrogram's height."""
    hop_length: int = 256
    """Samples between spectrogram frames."""
    n_fft: int = 1024
    """FFT size of the spectrogram and of Griffin-Lim."""
    griffin_lim_iters: int = 32
    """Griffin-Lim iterations when decoding to a waveform."""

    def validate(self) -> None:
        super().validate()
        require(self.sample_rate >= 1000 and self.n_mels >= 8 and self.hop_length >= 1, "sample_rate",
                "needs sample_rate >= 1000, n_mels >= 8 and hop_length >= 1")
        require(self.n_fft >= self.hop_length and self.griffin_lim_iters >= 1, "n_fft",
                "needs n_fft >= hop_length and griffin_lim_iters >= 1")


class MelRVQ(_Mel):
    """Residual VQ with quantizer dropout of log-mel spectrograms, decoded with Griffin-Lim."""

    name = "rvq-mel"
    Config = MelRVQConfig
    ordered = True
    inner_cls = ResidualVQ


@hookimpl
def register_encoders():
    return [MelOVQVAE, MelUnorderedVQVAE, MelRVQ]
