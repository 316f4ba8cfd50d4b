"""Channel-wise (ordered and unordered) and spatial VQ-VAEs for images, and 1-D channel-wise ones for audio.

The ordered VQ-VAE of Xu et al. (ICLR 2021): the encoder's output z_e has D
channels; each channel's HxW map, flattened, is one vector quantized against a
single shared codebook, so a data point becomes D codes. Nested dropout (a
truncation index drawn per mini-batch, later channels replaced by zeros before
the decoder) makes the first codes carry the most information. Stage 1 trains
without truncation; stage 2 fine-tunes with it. The same network trained for the
same number of steps without stage 2's truncation is the unordered baseline.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from anytime_bench import ConfigError, RunContext, check_finite, hookimpl, require

from .audio_features import spectral_loss

Norm = Literal["batch", "group", "none"]


def norm_layer(kind: Norm, channels: int, dims: int = 2) -> nn.Module:
    # Without normalization a ReLU/Tanh autoencoder collapses to a constant image on MNIST within ~50 steps.
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if kind == "group":
        return nn.GroupNorm(norm_groups(channels), channels)
    return nn.Identity()


def downsampled_grid(name: str, config: Any, data_shape: tuple[int, ...]) -> tuple[list[int], tuple[int, ...]]:
    """The layers' strides (``config.layer_strides()``) and the latent grid they leave of ``data_shape``; a scale
    the data's sides do not divide is bad input (exit 2), named by the option that sets it (``strides`` for
    waveforms, else ``downsample``). The data's shape is the dataset's, known only when the encoder is built."""
    strides = config.layer_strides()
    scale = math.prod(strides)
    if any(n % scale for n in data_shape[1:]):
        option = "strides" if hasattr(config, "strides") else "downsample"
        raise ConfigError(f"encoder.{name}.{option}: data of shape {tuple(data_shape)} cannot be downsampled by "
                          f"{scale} (strides {strides})")
    return strides, tuple(n // scale for n in data_shape[1:])


def require_group_widths(norm: str, widths: list[int]) -> None:
    """With ``norm = "group"``, widths that :func:`norm_groups` splits evenly (a config's ``validate``)."""
    require(norm != "group" or all(w % norm_groups(w) == 0 for w in widths), "widths",
            "needs widths of at most 8 or multiples of 8 with norm = 'group' (group normalization in 8 groups)")


def norm_groups(channels: int) -> int:
    """Group normalization's groups for a layer: 8, or one per channel below 8; so a layer of more than 8 channels
    needs a multiple of 8 (what a config with ``norm = "group"`` checks)."""
    return min(8, channels)


def cosine_factor(step: int, steps: int, warmup: int = 0) -> float:
    """The learning rate's factor at ``step`` of ``steps``: a linear warm-up over ``warmup`` steps, then half a cosine
    from 1 down to 0 at the last step."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _kernel(stride: int) -> tuple[int, int]:
    # kernel 2s (+1 for odd s) with padding ceil(s/2) divides (or, transposed, multiplies) lengths by s exactly;
    # s=2 gives the usual k4 s2 p1 of image VQ-VAEs
    return 2 * stride + stride % 2, (stride + 1) // 2


def _down(ch: int, width: int, stride: int, dims: int) -> nn.Module:
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    if stride == 1:
        return conv(ch, width, 3, 1, 1)
    kernel, padding = _kernel(stride)
    return conv(ch, width, kernel, stride, padding)


def _up(ch: int, width: int, stride: int, dims: int) -> nn.Module:
    if stride == 1:
        return _down(ch, width, 1, dims)
    kernel, padding = _kernel(stride)
    return (nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose1d)(ch, width, kernel, stride, padding)


def conv_encoder(in_ch: int, widths: list[int], strides: list[int], out_ch: int, norm: Norm,
                 dims: int = 2) -> nn.Sequential:
    """One conv + norm + ReLU per width (strided where ``strides`` says), then a k3 projection to ``out_ch``."""
    layers: list[nn.Module] = []
    ch = in_ch
    for width, stride in zip(widths, strides, strict=True):
        layers += [_down(ch, width, stride, dims), norm_layer(norm, width, dims), nn.ReLU()]
        ch = width
    layers.append(_down(ch, out_ch, 1, dims))
    return nn.Sequential(*layers)


def conv_decoder(in_ch: int, widths: list[int], strides: list[int], out_ch: int, norm: Norm,
                 dims: int = 2) -> nn.Sequential:
    """The mirror of :func:`conv_encoder`, transposed convolutions where it strided, then Tanh."""
    layers: list[nn.Module] = [_down(in_ch, widths[-1], 1, dims), norm_layer(norm, widths[-1], dims), nn.ReLU()]
    for i in reversed(range(len(widths))):
        target = widths[i - 1] if i > 0 else out_ch
        layers.append(_up(widths[i], target, strides[i], dims))
        if i > 0:
            layers += [norm_layer(norm, target, dims), nn.ReLU()]
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

    def broadcast_(self, ctx: RunContext) -> None:
        """Rank 0's copy of all the codebook holds, after it changed outside autograd (initialisation, restarts)."""
        for tensor in self.state_dict().values():  # they share storage with the codebook's own tensors
            ctx.broadcast_(tensor)

    @torch.no_grad()
    def restart_dead(self, vectors: torch.Tensor, generator: torch.Generator, threshold: float = 1e-3) -> int:
        dead = (self.usage < threshold).nonzero().flatten()
        # Always K draws, so that the generator advances alike on every rank whatever each found dead.
        pick = torch.randint(len(vectors), (self.weight.shape[0],), generator=generator).to(vectors.device)
        if len(dead):
            self.weight.data[dead] = vectors[pick[:len(dead)]]
            self.usage[dead] = 1.0
        return int(len(dead))


@dataclass
class VQConfig:
    RENAMED: ClassVar[dict[str, str]] = {"ordered_steps": "stage2_steps", "ordered_lr": "stage2_lr"}
    """Old option names, refused with a line naming the new one."""

    code_length: int = 16
    """D: channels (channel-wise models); spatial models have one code per grid position instead."""
    codebook_size: int = 128
    """K: codes per codebook."""
    widths: list[int] = field(default_factory=lambda: [16, 32])
    """Channels of each convolution layer of the encoder (mirrored in the decoder)."""
    downsample: int = 1
    """How many of those layers halve the resolution (stride 2)."""
    norm: Norm = "batch"
    """Normalization after each convolution: batch (the reference code's), group or none."""
    beta: float = 1.0
    """Commitment weight (1.0 for images, 0.2 for audio in the paper)."""
    batch_size: int = 128
    """Images (or clips) per training step."""
    steps: int = 600
    """Stage 1 training steps: full-length codes, for every model."""
    lr: float = 2e-3
    """Stage 1 learning rate (Adam)."""
    stage2_steps: int = 900
    """Stage 2 training steps, for every model: nested dropout for ordered models; unordered baselines keep training
    at full length for as many steps, so that both get the same compute."""
    stage2_lr: float = 1e-3
    """Stage 2 learning rate (Adam), for every model."""
    min_keep: int = 1
    """Smallest truncation index drawn by nested dropout."""
    truncation: Literal["batch", "example"] = "batch"
    """Nested dropout draws one truncation index per mini-batch (the paper) or one per example."""
    truncation_distribution: Literal["uniform", "geometric", "pow2"] = "uniform"
    """How the truncation index k is drawn: uniform over min_keep..D (the paper), geometric (min_keep plus a
    geometric number of codes, favouring short prefixes) or pow2 (uniform over the powers of two up to D, and D)."""
    geometric_p: float = 0.1
    """The geometric distribution's success probability (mean min_keep + (1 - p) / p)."""
    full_length_prob: float = 0.0
    """Probability that an example (or a batch, per ``truncation``) trains at full length instead (0: the paper)."""
    tail_fill: Literal["zeros", "learned"] = "zeros"
    """What replaces the dropped codes: zeros (the paper), or a learned per-position vector used both in training
    and in decoding a prefix."""
    embed_dim: int = 16
    """Spatial VQ-VAE only: size of each position's vector."""
    data_init: bool = True
    """Initialise the codebook from encoder outputs and restart dead codes (else uniform(-1/K, 1/K) only)."""
    restart_every: int = 100
    """Steps between restarts of dead codes (with data_init)."""

    def validate(self) -> None:
        require(self.code_length >= 1, "code_length", "must be >= 1")
        require(self.codebook_size >= 2, "codebook_size", "must be >= 2")
        require(len(self.widths) >= 1 and all(w >= 1 for w in self.widths), "widths", "needs positive widths")
        require_group_widths(self.norm, self.widths)
        require(0 <= self.downsample <= len(self.widths), "downsample", "must be between 0 and len(widths)")
        require(self.steps >= 0 and self.stage2_steps >= 0, "steps", "must be >= 0")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.lr > 0 and self.stage2_lr > 0, "lr", "must be > 0")
        require(1 <= self.min_keep <= self.code_length, "min_keep", "must be in 1..code_length")
        require(0.0 < self.geometric_p <= 1.0, "geometric_p", "must be in (0, 1]")
        require(0.0 <= self.full_length_prob <= 1.0, "full_length_prob", "must be in [0, 1]")
        require(self.beta >= 0, "beta", "must be >= 0")
        require(self.embed_dim >= 1, "embed_dim", "must be >= 1")
        require(self.restart_every >= 1, "restart_every", "must be >= 1")

    def layer_strides(self) -> list[int]:
        return [2] * self.downsample + [1] * (len(self.widths) - self.downsample)



class _VQBase(nn.Module):
    ordered = False
    Config = VQConfig

    dims = 2
    """Spatial dimensions of the data: 2 for images ``[C, H, W]``, 1 for audio ``[C, T]``."""

    def __init__(self, config: VQConfig, data_shape: tuple[int, ...]):
        super().__init__()
        kind = "images [C, H, W]" if self.dims == 2 else "waveforms [C, T]"
        # The data's shape is the dataset's, known only here: options that do not fit it are bad input (exit 2),
        # told when the run builds its encoders, before any training.
        if len(data_shape) != self.dims + 1:
            raise ConfigError(f"encoder {self.name} expects {kind}, got data of shape {tuple(data_shape)}")
        self.config = config
        self.data_shape = tuple(data_shape)
        self.strides, self.grid = downsampled_grid(self.name, config, self.data_shape)

    def build(self, channels: int) -> None:
        c, cfg = self.data_shape[0], self.config
        self.encoder = conv_encoder(c, cfg.widths, self.strides, channels, cfg.norm, self.dims)
        self.decoder = conv_decoder(channels, cfg.widths, self.strides, c, cfg.norm, self.dims)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    # The subclasses define: quantize(z_e) -> (z_q, idx, vectors), code_mask(keep, z) -> a 0/1 mask shaped to
    # broadcast over z (1 where a code is kept), fill(z, mask) and embed(codes) -> z_q.

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training loss with the first ``keep[b]`` codes of each example, its reconstruction part, and the
        quantizer's inputs."""
        z_e = self.encoder(x)
        z_q, idx, vectors = self.quantize(z_e)
        z_st = z_e + (z_q - z_e).detach()  # straight-through estimator
        mask = self.code_mask(keep.to(x.device), z_e)
        x_hat = self.decoder(self.fill(z_st, mask))
        recon = F.mse_loss(x_hat, x) + self.extra_recon_loss(x_hat, x)
        # Only the kept codes enter the codebook and commitment terms.
        kept = mask.expand_as(z_e).sum().clamp_min(1.0)
        codebook = ((z_q - z_e.detach()) ** 2 * mask).sum() / kept
        commit = ((z_e - z_q.detach()) ** 2 * mask).sum() / kept
        self.codebook.track(idx)
        return recon + codebook + self.config.beta * commit, recon.detach(), vectors.detach()

    def fill(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Dropped codes replaced by zeros (the paper), or by the learned tail where the model has one."""
        tail = getattr(self, "tail", None)
        return z * mask if tail is None else z * mask + tail.unsqueeze(0) * (1 - mask)

    def draw_keep(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Nested dropout's truncation indices for one mini-batch, ``[batch]``, drawn as the config says."""
        cfg, D = self.config, self.code_length
        n = batch if cfg.truncation == "example" else 1
        if cfg.truncation_distribution == "uniform":
            k = torch.randint(cfg.min_keep, D + 1, (n,), generator=generator)
        elif cfg.truncation_distribution == "geometric":
            u = torch.rand(n, generator=generator).clamp_min(1e-12)
            extra = torch.zeros(n) if cfg.geometric_p >= 1 else torch.floor(torch.log(u) / math.log(1 - cfg.geometric_p))
            k = (cfg.min_keep + extra).clamp(max=D).long()
        else:
            choices = sorted({2**i for i in range(D.bit_length()) if cfg.min_keep <= 2**i <= D} | {D})
            k = torch.tensor(choices)[torch.randint(len(choices), (n,), generator=generator)]
        if cfg.full_length_prob > 0:
            k = torch.where(torch.rand(n, generator=generator) < cfg.full_length_prob, torch.full_like(k, D), k)
        return k.expand(batch) if n == 1 else k

    def extra_recon_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor | float:
        return 0.0

    def fit(self, data: torch.Tensor, ctx: RunContext) -> dict[str, float]:
        """Stage 1 (full-length codes), then stage 2 (nested dropout if ordered); resumable mid-stage."""
        cfg, D = self.config, self.code_length
        generator = ctx.generator(offset=11)  # the same on every rank: truncation indices and shuffles agree
        self.to(ctx.device)
        stages = [("stage 1", cfg.steps, cfg.lr, False),
                  ("nested dropout" if self.ordered else "stage 1, continued", cfg.stage2_steps, cfg.stage2_lr,
                   self.ordered)]
        batches = ctx.batches(len(data), cfg.batch_size, generator)
        net = ctx.distribute(self)
        stats: dict[str, float] = {}
        recon = float("nan")
        with ctx.training_loop(self.name, self, batches, lambda: {"recon": recon, "stats": stats}) as loop:
            stats = dict(loop.restored.get("stats", stats))
            recon = loop.restored.get("recon", recon)
            self.train()
            for s, (label, steps, lr, truncate) in enumerate(stages):
                opt = torch.optim.Adam(self.parameters(), lr=lr)
                for step in loop.steps(f"{self.name}: {label}", steps, opt):
                    batch = data[batches.next()].to(ctx.device, non_blocking=True)
                    keep = self.draw_keep(len(batch), generator) if truncate else torch.full((len(batch),), D)
                    if cfg.data_init and not bool(self.codebook.initialised):
                        with torch.no_grad():
                            self.codebook.init_from(self.quantize_inputs(self.encoder(batch)), generator)
                        self.codebook.broadcast_(ctx)
                    loss, part, vectors = net(batch, keep)
                    check_finite(loss.item(), f"{self.name} {label}", step)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if cfg.data_init and (step + 1) % cfg.restart_every == 0:
                        self.codebook.restart_dead(vectors, generator)
                        self.codebook.broadcast_(ctx)
                    recon = 0.98 * recon + 0.02 * part.item() if step else part.item()
                    stats[f"stage{s + 1}_recon"] = recon
                    loop.show(recon=recon)
                stats.setdefault(f"stage{s + 1}_recon", float("nan"))
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
        self.build(config.code_length)
        self.codebook = Codebook(config.codebook_size, math.prod(self.grid))
        if self.ordered and config.tail_fill == "learned":
            self.tail = nn.Parameter(torch.zeros(config.code_length, *self.grid))

    @property
    def code_length(self) -> int:
        return self.config.code_length

    def code_mask(self, keep: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(z.shape[1], device=z.device)[None] < keep[:, None]).to(z.dtype)
        return mask.view(*mask.shape, *([1] * (z.ndim - 2)))

    def quantize_inputs(self, z_e: torch.Tensor) -> torch.Tensor:
        return z_e.flatten(2).flatten(0, 1)  # one row per channel map

    def quantize(self, z_e: torch.Tensor):
        vectors = self.quantize_inputs(z_e)
        idx = self.codebook.lookup(vectors)
        return self.codebook.weight[idx].view_as(z_e), idx, vectors

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        b, k = codes.shape
        z = torch.zeros(b, self.code_length, math.prod(self.grid), device=codes.device)
        z[:, :k] = self.codebook.weight[codes]
        z = z.view(b, self.code_length, *self.grid)
        return self.fill(z, self.code_mask(torch.full((b,), k, device=codes.device), z))


class UnorderedChannelVQVAE(ChannelVQVAE):
    """Unordered baseline: the same channel-wise VQ-VAE trained as long, without nested dropout."""

    name = "vqvae-channel"
    ordered = False


@dataclass
class OracleBudgets:
    """The option every per-budget oracle shares: which of the run's budgets get a model of their own."""

    budgets: list[float] = field(default_factory=list)
    """The run's budgets to train a model for (empty: every budget); each costs as much as one model of the family."""

    def validate(self) -> None:
        super().validate()  # the family's own options: this class comes first among a config's bases
        require(all(0 < b <= 1 for b in self.budgets), "budgets", "must be in (0, 1]")

    def covered(self, budgets: list[float]) -> list[float]:
        return [b for b in budgets if not self.budgets or any(abs(b - c) < 1e-9 for c in self.budgets)]


@dataclass
class OracleConfig(OracleBudgets, VQConfig):
    """The channel-wise VQ-VAE's options, and the budgets to train a member for."""


class PerBudgetOracle:
    """Makes a family's model a per-budget oracle: one member per budget, built with exactly the codes it allows
    (its config has a ``code_length`` and the ``budgets`` of :class:`OracleBudgets`). Put it first among the bases."""

    ordered = False
    per_budget = True

    def __init__(self, config, data_shape: tuple[int, ...], tokens: int | None = None):
        super().__init__(dataclasses.replace(config, code_length=tokens) if tokens else config, data_shape)

    def covered_budgets(self, budgets: list[float]) -> list[float]:
        return self.config.covered(budgets)


class Oracle(PerBudgetOracle, UnorderedChannelVQVAE):
    """Per-budget oracle: for each budget, the channel-wise VQ-VAE trained with exactly that many codes."""

    name = "oracle"
    Config = OracleConfig


class SpatialVQVAE(_VQBase):
    """Unordered baseline: a standard spatial VQ-VAE, one code per grid position in raster order."""

    name = "vqvae-spatial"
    ordered = False

    def __init__(self, config: VQConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        self.build(config.embed_dim)
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

    def code_mask(self, keep: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(self.code_length, device=z.device)  # raster order
        return (positions[None] < keep[:, None]).to(z.dtype).view(len(keep), 1, *self.grid)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        b, k = codes.shape
        z = torch.zeros(b, self.code_length, self.config.embed_dim, device=codes.device)
        z[:, :k] = self.codebook.weight[codes]
        return z.view(b, *self.grid, -1).permute(0, 3, 1, 2)


@dataclass
class WaveOptions:
    """The options every waveform tokenizer shares: strided 1-D layers and the spectral term of its loss."""

    strides: list[int] = field(default_factory=lambda: [5, 4, 4, 4, 2])
    """Downsampling factor of each layer: 16000 samples -> 25 steps with the default."""
    spectral_weight: float = 0.1
    """Weight of the multi-resolution log-spectrogram L1 loss added to the waveform MSE (0: MSE only)."""
    spectral_ffts: list[int] = field(default_factory=lambda: [512])
    """FFT sizes of the log-spectrogram loss (one term per size)."""

    def validate(self) -> None:
        super().validate()  # the family's own options: this class comes first among a config's bases
        require(len(self.strides) == len(self.widths), "strides", "needs one stride per width")
        require(all(s >= 1 for s in self.strides), "strides", "must be >= 1")
        require(self.spectral_weight >= 0, "spectral_weight", "must be >= 0")
        require(all(n >= 16 for n in self.spectral_ffts), "spectral_ffts", "must be >= 16")

    def layer_strides(self) -> list[int]:
        return list(self.strides)


@dataclass
class WaveVQConfig(WaveOptions, VQConfig):
    """1-D channel-wise VQ-VAE for waveforms: strided convolutions take T samples to D channels x T/prod(strides)."""

    code_length: int = 32
    codebook_size: int = 128
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 128])
    norm: Norm = "group"
    """Per-clip normalization: batch statistics mixed over truncation indices made full-length decoding worse."""
    beta: float = 0.2
    batch_size: int = 16
    steps: int = 200
    stage2_steps: int = 300


class WaveChannelVQVAE(ChannelVQVAE):
    """Ordered 1-D channel-wise VQ-VAE for audio: each channel's time series is one code; nested dropout."""

    name = "ovqvae-1d"
    Config = WaveVQConfig
    dims = 1

    def extra_recon_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor | float:
        return spectral_loss(x_hat, x, self.config.spectral_weight, self.config.spectral_ffts)


class UnorderedWaveChannelVQVAE(WaveChannelVQVAE):
    """Unordered audio baseline: the same 1-D channel-wise VQ-VAE trained as long, without nested dropout."""

    name = "vqvae-channel-1d"
    ordered = False


@hookimpl
def register_encoders():
    return [ChannelVQVAE, UnorderedChannelVQVAE, Oracle, SpatialVQVAE, WaveChannelVQVAE, UnorderedWaveChannelVQVAE]
