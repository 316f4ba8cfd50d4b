"""Channel-wise (ordered and unordered) and spatial VQ-VAEs for images.

The ordered VQ-VAE of Xu et al. (ICLR 2021): the encoder's output z_e has D
channels; each channel's HxW map, flattened, is one vector quantized against a
single shared codebook, so a data point becomes D codes. Nested dropout (a
truncation index drawn per mini-batch, later channels replaced by zeros before
the decoder) makes the first codes carry the most information. Stage 1 trains
without truncation; stage 2 fine-tunes with it. The same network trained for the
same number of steps without stage 2's truncation is the unordered baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from anytime_bench import RunContext, check_finite, hookimpl, require

Norm = Literal["batch", "group", "none"]


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    # Without normalization a ReLU/Tanh autoencoder collapses to a constant image on MNIST within ~50 steps.
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


def conv_encoder(in_ch: int, widths: list[int], downsample: int, out_ch: int, norm: Norm) -> nn.Sequential:
    """Strided k4 convolutions for the first ``downsample`` layers, k3 after, a k3 projection to ``out_ch``."""
    layers: list[nn.Module] = []
    ch = in_ch
    for i, width in enumerate(widths):
        conv = nn.Conv2d(ch, width, 4, 2, 1) if i < downsample else nn.Conv2d(ch, width, 3, 1, 1)
        layers += [conv, norm_layer(norm, width), nn.ReLU()]
        ch = width
    layers.append(nn.Conv2d(ch, out_ch, 3, 1, 1))
    return nn.Sequential(*layers)


def conv_decoder(in_ch: int, widths: list[int], downsample: int, out_ch: int, norm: Norm) -> nn.Sequential:
    """The mirror of :func:`conv_encoder`, transposed convolutions where it strided, then Tanh."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, widths[-1], 3, 1, 1), norm_layer(norm, widths[-1]), nn.ReLU()]
    for i in reversed(range(len(widths))):
        target = widths[i - 1] if i > 0 else out_ch
        conv = nn.ConvTranspose2d(widths[i], target, 4, 2, 1) if i < downsample else nn.Conv2d(widths[i], target, 3, 1, 1)
        layers.append(conv)
        if i > 0:
            layers += [norm_layer(norm, target), nn.ReLU()]
    layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class Codebook(nn.Module):
    """K vectors, nearest-neighbour lookup, dead-code restarts from recent inputs."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(size, dim).uniform_(-1.0 / size, 1.0 / size))
        self.register_buffer("usage", torch.zeros(size))
        self.register_buffer("initialised", torch.tensor(False))

    def lookup(self, vectors: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared distance) for each row of ``vectors [N, dim]``."""
        w = self.weight
        distance = vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ w.t() + w.pow(2).sum(1)[None]
        return distance.argmin(1)

    @torch.no_grad()
    def init_from(self, vectors: torch.Tensor, generator: torch.Generator) -> None:
        pick = torch.randint(len(vectors), (self.weight.shape[0],), generator=generator).to(vectors.device)
        self.weight.data.copy_(vectors[pick] + 1e-3 * torch.randn_like(self.weight))
        self.initialised.fill_(True)

    @torch.no_grad()
    def track(self, idx: torch.Tensor) -> None:
        counts = torch.bincount(idx, minlength=self.weight.shape[0]).float()
        self.usage.mul_(0.9).add_(counts, alpha=0.1)

    @torch.no_grad()
    def restart_dead(self, vectors: torch.Tensor, generator: torch.Generator, threshold: float = 1e-3) -> int:
        dead = (self.usage < threshold).nonzero().flatten()
        if len(dead):
            pick = torch.randint(len(vectors), (len(dead),), generator=generator).to(vectors.device)
            self.weight.data[dead] = vectors[pick]
            self.usage[dead] = 1.0
        return int(len(dead))


@dataclass
class VQConfig:
    code_length: int = 16
    """D: channels (channel-wise) or grid positions (spatial, set by the architecture)."""
    codebook_size: int = 128
    widths: list[int] = field(default_factory=lambda: [32, 64])
    downsample: int = 1
    norm: Norm = "batch"
    beta: float = 1.0
    batch_size: int = 128
    steps: int = 600
    """Stage 1: full-length codes."""
    lr: float = 2e-3
    ordered_steps: int = 900
    """Stage 2: nested dropout for the ordered model; more full-length steps for its baselines."""
    ordered_lr: float = 1e-3
    min_keep: int = 1
    """Smallest truncation index drawn by nested dropout (uniform over min_keep..D)."""
    embed_dim: int = 16
    """Spatial VQ-VAE only: size of each position's vector."""
    data_init: bool = True
    """Initialise the codebook from encoder outputs and restart dead codes (else uniform(-1/K, 1/K) only)."""
    restart_every: int = 100

    def validate(self) -> None:
        require(self.code_length >= 1, "code_length", "must be >= 1")
        require(self.codebook_size >= 2, "codebook_size", "must be >= 2")
        require(len(self.widths) >= 1 and all(w >= 1 for w in self.widths), "widths", "needs positive widths")
        require(0 <= self.downsample <= len(self.widths), "downsample", "must be between 0 and len(widths)")
        require(self.steps >= 0 and self.ordered_steps >= 0, "steps", "must be >= 0")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.lr > 0 and self.ordered_lr > 0, "lr", "must be > 0")
        require(1 <= self.min_keep <= self.code_length, "min_keep", "must be in 1..code_length")
        require(self.beta >= 0, "beta", "must be >= 0")
        require(self.embed_dim >= 1, "embed_dim", "must be >= 1")
        require(self.restart_every >= 1, "restart_every", "must be >= 1")


class _VQBase(nn.Module):
    ordered = False
    Config = VQConfig

    def __init__(self, config: VQConfig, data_shape: tuple[int, ...]):
        super().__init__()
        if len(data_shape) != 3:
            raise ValueError(f"{self.name} expects images [C, H, W], got data of shape {data_shape}")
        self.config = config
        self.data_shape = tuple(data_shape)
        c, h, w = data_shape
        scale = 2 ** config.downsample
        if h % scale or w % scale:
            raise ValueError(f"{h}x{w} images cannot be downsampled {config.downsample} times by 2")
        self.grid = (h // scale, w // scale)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    # The subclasses define: quantize(z_e) -> (z_q, idx, vectors), zero_tail(z, keep), embed(codes) -> z_q.

    def _loss(self, x: torch.Tensor, keep: int) -> tuple[torch.Tensor, dict[str, float]]:
        z_e = self.encoder(x)
        z_q, idx, vectors = self.quantize(z_e)
        z_st = z_e + (z_q - z_e).detach()  # straight-through estimator
        x_hat = self.decoder(self.zero_tail(z_st, keep))
        # Only the kept codes enter the codebook and commitment terms.
        kept_q, kept_e = self.zero_tail(z_q, keep, crop=True), self.zero_tail(z_e, keep, crop=True)
        recon = F.mse_loss(x_hat, x)
        codebook = F.mse_loss(kept_q, kept_e.detach())
        commit = F.mse_loss(kept_e, kept_q.detach())
        self.codebook.track(idx)
        return recon + codebook + self.config.beta * commit, {"recon": recon.item(), "vectors": vectors}

    def _run(self, data: torch.Tensor, ctx: RunContext, steps: int, lr: float, truncate: bool, stage: str,
             generator: torch.Generator) -> float:
        if steps == 0:
            return float("nan")
        device = ctx.device
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        D = self.code_length
        order = torch.randperm(len(data), generator=generator)
        cursor, recon = 0, float("nan")
        self.train()
        with ctx.progress(f"{self.name}: {stage}", steps) as task:
            for step in range(steps):
                if cursor + self.config.batch_size > len(order):
                    order, cursor = torch.randperm(len(data), generator=generator), 0
                batch = data[order[cursor:cursor + self.config.batch_size]].to(device, non_blocking=True)
                cursor += self.config.batch_size
                keep = D
                if truncate:
                    keep = int(torch.randint(self.config.min_keep, D + 1, (1,), generator=generator))
                if self.config.data_init and not bool(self.codebook.initialised):
                    with torch.no_grad():
                        self.codebook.init_from(self.quantize_inputs(self.encoder(batch)), generator)
                loss, info = self._loss(batch, keep)
                check_finite(loss.item(), f"{self.name} {stage}", step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if self.config.data_init and (step + 1) % self.config.restart_every == 0:
                    self.codebook.restart_dead(info["vectors"].detach(), generator)
                recon = 0.98 * recon + 0.02 * info["recon"] if step else info["recon"]
                task.advance(recon=recon)
        return recon

    def fit(self, data: torch.Tensor, ctx: RunContext) -> dict[str, float]:
        generator = ctx.generator(offset=11)
        self.to(ctx.device)
        stats = {"stage1_recon": self._run(data, ctx, self.config.steps, self.config.lr, False, "stage 1", generator)}
        stage2 = "nested dropout" if self.ordered else "stage 1, continued"
        stats["stage2_recon"] = self._run(data, ctx, self.config.ordered_steps, self.config.ordered_lr,
                                          self.ordered, stage2, generator)
        stats["codes_alive"] = int((self.codebook.usage > 1e-3).sum())
        self.eval()
        return stats

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.eval()
        _, idx, _ = self.quantize(self.encoder(x))
        return idx.view(len(x), self.code_length)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        self.eval()
        if not 1 <= codes.shape[1] <= self.code_length:
            raise ValueError(f"decode needs 1..{self.code_length} codes, got {codes.shape[1]}")
        return self.decoder(self.embed(codes))


class ChannelVQVAE(_VQBase):
    """Ordered channel-wise VQ-VAE (Xu et al. 2021): nested dropout sorts the D codes by importance."""

    name = "ovqvae"
    ordered = True

    def __init__(self, config: VQConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        c = data_shape[0]
        self.encoder = conv_encoder(c, config.widths, config.downsample, config.code_length, config.norm)
        self.decoder = conv_decoder(config.code_length, config.widths, config.downsample, c, config.norm)
        self.codebook = Codebook(config.codebook_size, self.grid[0] * self.grid[1])

    @property
    def code_length(self) -> int:
        return self.config.code_length

    def quantize_inputs(self, z_e: torch.Tensor) -> torch.Tensor:
        return z_e.flatten(2).flatten(0, 1)  # one row per channel map

    def quantize(self, z_e: torch.Tensor):
        vectors = self.quantize_inputs(z_e)
        idx = self.codebook.lookup(vectors)
        return self.codebook.weight[idx].view_as(z_e), idx, vectors

    def zero_tail(self, z: torch.Tensor, keep: int, crop: bool = False) -> torch.Tensor:
        if crop:
            return z[:, :keep]
        if keep >= z.shape[1]:
            return z
        return torch.cat([z[:, :keep], torch.zeros_like(z[:, keep:])], dim=1)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        b, k = codes.shape
        z = torch.zeros(b, self.code_length, self.grid[0] * self.grid[1], device=codes.device)
        z[:, :k] = self.codebook.weight[codes]
        return z.view(b, self.code_length, *self.grid)


class UnorderedChannelVQVAE(ChannelVQVAE):
    """Unordered baseline: the same channel-wise VQ-VAE trained as long, without nested dropout."""

    name = "vqvae-channel"
    ordered = False


class SpatialVQVAE(_VQBase):
    """Unordered baseline: a standard spatial VQ-VAE, one code per grid position in raster order."""

    name = "vqvae-spatial"
    ordered = False

    def __init__(self, config: VQConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        c = data_shape[0]
        self.encoder = conv_encoder(c, config.widths, config.downsample, config.embed_dim, config.norm)
        self.decoder = conv_decoder(config.embed_dim, config.widths, config.downsample, c, config.norm)
        self.codebook = Codebook(config.codebook_size, config.embed_dim)

    @property
    def code_length(self) -> int:
        return self.grid[0] * self.grid[1]

    def quantize_inputs(self, z_e: torch.Tensor) -> torch.Tensor:
        return z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])  # one row per position, raster order

    def quantize(self, z_e: torch.Tensor):
        vectors = self.quantize_inputs(z_e)
        idx = self.codebook.lookup(vectors)
        z_q = self.codebook.weight[idx].view(z_e.shape[0], *self.grid, -1).permute(0, 3, 1, 2)
        return z_q, idx, vectors

    def zero_tail(self, z: torch.Tensor, keep: int, crop: bool = False) -> torch.Tensor:
        flat = z.flatten(2)  # positions in raster order
        if crop:
            return flat[:, :, :keep]
        if keep >= flat.shape[2]:
            return z
        return torch.cat([flat[:, :, :keep], torch.zeros_like(flat[:, :, keep:])], dim=2).view_as(z)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        b, k = codes.shape
        z = torch.zeros(b, self.code_length, self.config.embed_dim, device=codes.device)
        z[:, :k] = self.codebook.weight[codes]
        return z.view(b, *self.grid, -1).permute(0, 3, 1, 2)


@hookimpl
def register_encoders():
    return [ChannelVQVAE, UnorderedChannelVQVAE, SpatialVQVAE]
