"""Residual vector quantization with quantizer dropout (SoundStream, DAC), for images and waveforms.

The encoder maps an item to one latent vector (its convolutional feature map,
flattened). Stage 1 quantizes it against its own codebook, stage 2 quantizes
what stage 1 left, and so on: D stages give D codes, and the latent is the sum
of their vectors. The token order is stage-major, so any prefix is a
coarse-to-fine approximation and a dropped tail simply contributes nothing to
the sum: the model is ordered by construction, with no channel ordering. Each
training example uses a random number of stages with probability
``quantizer_dropout`` (DAC's ablations use 0.5), else all of them.

Codebooks follow the running mean of the residuals assigned to them (k-means
with exponential decay, as in SoundStream). Learned by gradient instead, the
codes of the late stages drift: on MNIST their vectors grew to 0.5 while the
residuals they quantize shrank to 0.4, so each stage past the 13th of 32 made
the latent worse (the error rose from 0.16 to 0.33) and so did FID. Refitting
those codebooks as k-means made the latent error fall at every stage, to 0.06.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from anytime_bench import ConfigError, RunContext, check_finite, hookimpl, require

from .audio_features import spectral_loss
from .vqvae import (
    Codebook,
    Norm,
    OracleBudgets,
    PerBudgetOracle,
    WaveOptions,
    conv_decoder,
    conv_encoder,
    cosine_factor,
    downsampled_grid,
    require_group_widths,
)


@dataclass
class RVQConfig:
    code_length: int = 16
    """D: quantizer stages, one code each, coarse to fine."""
    codebook_size: int = 128
    """K: codes per stage (each stage has its own codebook)."""
    widths: list[int] = field(default_factory=lambda: [16, 32])
    """Channels of each convolution layer of the encoder (mirrored in the decoder)."""
    downsample: int = 1
    """How many of those layers halve the resolution (stride 2)."""
    latent_channels: int = 4
    """Channels of the latent map; the quantized vector is the whole map flattened."""
    norm: Norm = "batch"
    """Normalization after each convolution: batch, group or none."""
    beta: float = 1.0
    """Commitment weight."""
    quantizer_dropout: float = 0.5
    """Probability that a training example uses a drawn number of stages 1..D (``depth_distribution``) instead of
    all D."""
    depth_distribution: Literal["uniform", "log-uniform"] = "uniform"
    """How a truncated example's number of stages k is drawn: uniform over 1..D (SoundStream, DAC), or log-uniform,
    P(k) proportional to 1/k, so that each doubling of k is drawn about as often (FlexTok's powers of two, spread
    over every depth so that a decoder told the budget learns each one): with D = 32, k <= 6 in 60% of the truncated
    examples against 19% under uniform. log-uniform only with ``quantizer_dropout > 0``."""
    batch_size: int = 128
    """Items per training step."""
    steps: int = 1500
    """Training steps (the channel-wise models' two stages together)."""
    lr: float = 2e-3
    """Learning rate (Adam)."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """constant: ``lr`` throughout; cosine: decayed from ``lr`` to 0 over the steps (half a cosine), so that training
    ends at a minimum of the loss rather than wherever the last steps of a constant rate left it."""
    restart_every: int = 100
    """Steps between restarts of dead codes in each stage's codebook."""
    codebook_update: Literal["ema", "loss"] = "ema"
    """ema: codes move to the running mean of the residuals assigned to them (SoundStream); loss: learned by the
    codebook loss with Adam, as the channel-wise models' codebooks."""
    ema_decay: float = 0.99
    """Decay of those running means (ema only)."""
    ema_every_example: bool = False
    """ema only: each stage's codebook follows the residuals of every example at that stage, also those whose drawn
    depth leaves the stage out of the decoder's input (every stage's residual is computed either way). Off: only the
    examples that use the stage, so that under ``quantizer_dropout = 1`` the last of 32 stages learns from 1 example
    in 32."""
    depths_per_example: int = 1
    """Depths at which each training example is decoded in a step, each drawn as above; the reconstruction loss is
    their mean (Matryoshka representation learning's nested losses, drawn rather than all). Each one more costs a
    decoder pass: the decoder, and a decoder told the budget, see each depth that many times more often. At most
    ``code_length``; above 1 only with ``quantizer_dropout > 0``, since without it every depth drawn is all D."""
    budget_film: bool = False
    """The decoder is told how many stages it got: after each of its normalizations, a scale and a shift per channel
    learned for each number of stages (FiLM), starting at 1 and 0, so that one decoder can treat each budget apart."""
    recon_loss: Literal["mse", "l1"] = "mse"
    """The pixel (or sample) loss of a reconstruction. mse: the squared error, whose best output is the mean of what
    the codes leave possible, blurred where a pixel is uncertain; l1: the absolute error (VQGAN's pixel loss), whose
    best output is the median, sharp where pixels are mostly ink or background."""

    def validate(self) -> None:
        require(self.code_length >= 1, "code_length", "must be >= 1")
        require(self.codebook_size >= 2, "codebook_size", "must be >= 2")
        require(len(self.widths) >= 1 and all(w >= 1 for w in self.widths), "widths", "needs positive widths")
        require_group_widths(self.norm, self.widths)
        require(0 <= self.downsample <= len(self.widths), "downsample", "must be between 0 and len(widths)")
        require(self.latent_channels >= 1, "latent_channels", "must be >= 1")
        require(0.0 <= self.quantizer_dropout <= 1.0, "quantizer_dropout", "must be in [0, 1]")
        require(1 <= self.depths_per_example <= self.code_length, "depths_per_example",
                f"must be between 1 and code_length ({self.code_length}): each is one more decoder pass a step")
        # Without dropout every drawn depth is the full length: the options below would cost or change nothing.
        require(self.depths_per_example == 1 or self.quantizer_dropout > 0, "depths_per_example",
                "above 1 needs quantizer_dropout > 0 (without it every depth drawn is all the stages)")
        require(self.depth_distribution == "uniform" or self.quantizer_dropout > 0, "depth_distribution",
                "needs quantizer_dropout > 0 (without it no depth is drawn)")
        require(not self.ema_every_example or self.codebook_update == "ema", "ema_every_example",
                "needs codebook_update = \"ema\" (a codebook learned by its loss learns from the stages used)")
        require(self.beta >= 0, "beta", "must be >= 0")
        require(self.steps >= 0, "steps", "must be >= 0")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.lr > 0, "lr", "must be > 0")
        require(self.restart_every >= 1, "restart_every", "must be >= 1")
        require(0.0 < self.ema_decay < 1.0, "ema_decay", "must be in (0, 1)")

    def layer_strides(self) -> list[int]:
        return [2] * self.downsample + [1] * (len(self.widths) - self.downsample)


class EMACodebook(Codebook):
    """A codebook whose codes are running means of the vectors assigned to them, updated outside autograd."""

    def __init__(self, size: int, dim: int, decay: float):
        super().__init__(size, dim)
        self.weight.requires_grad_(False)
        self.decay = decay
        self.register_buffer("ema_count", torch.ones(size))
        self.register_buffer("ema_sum", self.weight.detach().clone())

    @torch.no_grad()
    def update(self, vectors: torch.Tensor, idx: torch.Tensor, ctx: RunContext) -> None:
        """One k-means step with decay, from this batch's ``vectors`` and their codes on every rank."""
        size = self.weight.shape[0]
        count = ctx.all_reduce_(torch.bincount(idx, minlength=size).to(vectors.dtype))
        total = ctx.all_reduce_(torch.zeros_like(self.weight).index_add_(0, idx, vectors))
        self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)
        # Laplace smoothing keeps a code that lost its vectors from dividing by zero before its restart.
        n = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (n + size * 1e-5) * n
        self.weight.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def init_from(self, vectors: torch.Tensor, generator: torch.Generator) -> None:
        super().init_from(vectors, generator)
        self.ema_sum.copy_(self.weight * self.ema_count[:, None])

    @torch.no_grad()
    def restart_dead(self, vectors: torch.Tensor, generator: torch.Generator, threshold: float = 1e-3) -> int:
        dead = self.usage < threshold
        restarted = super().restart_dead(vectors, generator, threshold)
        self.ema_count[dead] = 1.0
        self.ema_sum[dead] = self.weight[dead]
        return restarted


class BudgetFiLM(nn.Module):
    """For each number of stages 1..D, a scale and a shift per channel of one decoder layer's output.

    The decoder of quantizer dropout sees latents of every depth, and one set of weights must decode them all: on
    MNIST its reconstructions at 0.6 of the stages scored 1.66 times the rFID of a model trained for that budget at
    the same MSE. FlexTok tells its decoder the budget by mask tokens, which in a sum of stages is one learned vector
    per depth; FiLM lets the depth act at every layer, for 2 x channels parameters per depth and layer. Measured
    on MNIST (ablation-mnist-rvq-budget-film), it moves that price between budgets rather than removing it."""

    def __init__(self, depths: int, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(depths, channels))
        self.shift = nn.Parameter(torch.zeros(depths, channels))

    def forward(self, x: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        shape = (len(x), -1) + (1,) * (x.dim() - 2)
        return x * self.scale[depth - 1].view(shape) + self.shift[depth - 1].view(shape)


def _film_layers(decoder: nn.Sequential, depths: int) -> nn.ModuleDict:
    """A :class:`BudgetFiLM` for each layer of ``decoder`` that a ReLU follows (its normalization, or its
    convolution where there is none), keyed by that layer's index."""
    films, channels = {}, 0
    for i, layer in enumerate(decoder):
        channels = getattr(layer, "out_channels", channels)
        if i + 1 < len(decoder) and isinstance(decoder[i + 1], nn.ReLU):
            films[str(i)] = BudgetFiLM(depths, channels)
    return nn.ModuleDict(films)


class ResidualVQ(nn.Module):
    """Residual VQ with quantizer dropout: each of D stages quantizes what the earlier ones left."""

    name = "rvq"
    Config = RVQConfig
    ordered = True
    dims = 2

    def __init__(self, config: RVQConfig, data_shape: tuple[int, ...]):
        super().__init__()
        if len(data_shape) != self.dims + 1:
            raise ConfigError(f"encoder {self.name} expects data of {self.dims + 1} dimensions, got "
                              f"{tuple(data_shape)}")
        self.config, self.data_shape = config, tuple(data_shape)
        strides, self.grid = downsampled_grid(self.name, config, self.data_shape)
        self.encoder = conv_encoder(data_shape[0], config.widths, strides, config.latent_channels, config.norm,
                                    self.dims)
        self.decoder = conv_decoder(config.latent_channels, config.widths, strides, data_shape[0], config.norm,
                                    self.dims)
        dim = config.latent_channels * math.prod(self.grid)
        self.ema = config.codebook_update == "ema"
        self.codebooks = nn.ModuleList(
            EMACodebook(config.codebook_size, dim, config.ema_decay) if self.ema else Codebook(config.codebook_size, dim)
            for _ in range(config.code_length))
        self.films = _film_layers(self.decoder, config.code_length) if config.budget_film else None

    @property
    def code_length(self) -> int:
        return self.config.code_length

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def quantize(self, z: torch.Tensor):
        """Per stage: the residual it quantized, its codes and its vectors."""
        residual = z
        residuals, codes, vectors = [], [], []
        for codebook in self.codebooks:
            idx = codebook.lookup(residual.detach())
            q = codebook.weight[idx]
            residuals.append(residual)
            codes.append(idx)
            vectors.append(q)
            residual = residual - q.detach()
        return residuals, codes, vectors

    @staticmethod
    def latent(vectors: list[torch.Tensor], depth: torch.Tensor) -> torch.Tensor:
        """The sum of each item's vectors of its first ``depth`` stages (``vectors``: one ``[batch, dim]`` per stage)."""
        total = torch.zeros_like(vectors[0])
        for i, q in enumerate(vectors):
            total = total + q * (depth > i).float()[:, None]
        return total

    def extra_recon_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor | float:
        return 0.0

    def decode_latent(self, latent: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """The decoder's output for ``latent`` (the sum of each item's first ``depth`` stages)."""
        if self.films is None:
            return self.decoder(latent)
        x = latent
        for i, layer in enumerate(self.decoder):
            x = layer(x)
            if str(i) in self.films:
                x = self.films[str(i)](x, depth)
        return x

    def forward(self, x: torch.Tensor, depth: torch.Tensor):
        """``depth``: ``[batch]``, or ``[batch, m]`` to decode each example at m depths (``depths_per_example``)."""
        z = self.encoder(x).flatten(1)
        depths = depth[:, None] if depth.dim() == 1 else depth
        depth = self.deepest(depth)  # the stages that any decoding uses: what the codebooks and commitment see
        residuals, codes, vectors = self.quantize(z)
        total = torch.cat([self.latent(vectors, d) for d in depths.T])
        if depths.shape[1] > 1:
            z, x = z.repeat(depths.shape[1], 1), x.repeat(depths.shape[1], *([1] * (x.dim() - 1)))
        z_st = z + (total - z).detach()  # straight-through estimator
        x_hat = self.decode_latent(z_st.view(len(x), self.config.latent_channels, *self.grid), depths.T.reshape(-1))
        pixel = F.l1_loss if self.config.recon_loss == "l1" else F.mse_loss
        recon = pixel(x_hat, x) + self.extra_recon_loss(x_hat, x)
        vq = torch.zeros((), device=x.device)
        for i, (r, q) in enumerate(zip(residuals, vectors, strict=True)):
            used = (depth > i).float()[:, None]
            count = used.sum().clamp_min(1.0) * r.shape[1]
            commit = self.config.beta * (r - q.detach()) ** 2
            vq = vq + ((commit if self.ema else commit + (q - r.detach()) ** 2) * used).sum() / count
            seen = codes[i][self.learns_from(depth, i)]
            if len(seen):  # usage, for restarts, counts what the codebook learns from
                self.codebooks[i].track(seen)
        return recon + vq, recon.detach(), [r.detach() for r in residuals], codes

    @staticmethod
    def deepest(depth: torch.Tensor) -> torch.Tensor:
        """The deepest of each example's drawn depths (:meth:`draw_depth`), ``[batch]``."""
        return depth if depth.dim() == 1 else depth.max(1).values

    def learns_from(self, deepest: torch.Tensor, stage: int) -> torch.Tensor | slice:
        """Which examples stage ``stage``'s codebook learns from and counts as usage, given :meth:`deepest`: every
        one with ``ema_every_example``, else those whose decoding uses the stage."""
        return slice(None) if self.config.ema_every_example else deepest > stage

    def draw_depth(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Each example's number of stages, ``[batch]``; ``[batch, depths_per_example]`` when that is above 1."""
        if self.config.depths_per_example > 1:
            return torch.stack([self._draw_depth(batch, generator) for _ in range(self.config.depths_per_example)], 1)
        return self._draw_depth(batch, generator)

    def _draw_depth(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        D = self.code_length
        if self.config.depth_distribution == "uniform":
            depth = torch.randint(1, D + 1, (batch,), generator=generator)
        else:
            weights = 1.0 / torch.arange(1, D + 1, dtype=torch.float64)
            depth = torch.multinomial(weights, batch, replacement=True, generator=generator) + 1
        dropped = torch.rand(batch, generator=generator) < self.config.quantizer_dropout
        return torch.where(dropped, depth, torch.full_like(depth, D))

    def fit(self, data: torch.Tensor, ctx: RunContext) -> dict[str, float]:
        cfg = self.config
        generator = ctx.generator(offset=13)
        self.to(ctx.device)
        batches = ctx.batches(len(data), cfg.batch_size, generator)
        net = ctx.distribute(self)
        opt = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=cfg.lr)
        sched = None
        if cfg.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cosine_factor(step, cfg.steps))
        recon = float("nan")
        with ctx.training_loop(self.name, self, batches, lambda: {"recon": recon}) as loop:
            recon = loop.restored.get("recon", recon)
            self.train()
            for step in loop.steps(self.name, cfg.steps, opt, sched):
                batch = data[batches.next()].to(ctx.device, non_blocking=True)
                if step == 0:  # a fresh start: a resumed loop continues after its first saved step
                    self._initialise(batch, generator, ctx)
                depth = self.draw_depth(len(batch), generator).to(ctx.device)
                loss, part, residuals, codes = net(batch, depth)
                check_finite(loss.item(), self.name, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                if self.ema:
                    deepest = self.deepest(depth)
                    for i, codebook in enumerate(self.codebooks):
                        learners = self.learns_from(deepest, i)
                        codebook.update(residuals[i][learners], codes[i][learners], ctx)
                if (step + 1) % cfg.restart_every == 0:
                    for codebook, r in zip(self.codebooks, residuals, strict=True):
                        codebook.restart_dead(r, generator)
                        codebook.broadcast_(ctx)
                recon = 0.98 * recon + 0.02 * part.item() if step else part.item()
                loop.show(recon=recon)
        self.eval()
        alive = [int((c.usage > 1e-3).sum()) for c in self.codebooks]
        return {"recon": recon, "codes_alive_min": min(alive), "codes_alive_mean": sum(alive) / len(alive)}

    @torch.no_grad()
    def _initialise(self, batch: torch.Tensor, generator: torch.Generator, ctx: RunContext) -> None:
        """Each stage's codebook starts from the residuals it will quantize (of the first batch)."""
        residual = self.encoder(batch).flatten(1)
        for codebook in self.codebooks:
            codebook.init_from(residual, generator)
            codebook.broadcast_(ctx)
            residual = residual - codebook.weight[codebook.lookup(residual)]

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.eval()
        _, codes, _ = self.quantize(self.encoder(x).flatten(1))
        return torch.stack(codes, dim=1)

    @torch.no_grad()
    def code_vectors(self) -> torch.Tensor:
        """Each stage's codebook: the latent of a prefix is the sum of its codes' vectors."""
        return torch.stack([codebook.weight for codebook in self.codebooks])

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        self.eval()
        total = sum(self.codebooks[i].weight[codes[:, i]] for i in range(codes.shape[1]))
        depth = torch.full((len(codes),), codes.shape[1], dtype=torch.long, device=codes.device)
        return self.decode_latent(total.view(len(codes), self.config.latent_channels, *self.grid), depth)


@dataclass
class RVQOracleConfig(OracleBudgets, RVQConfig):
    quantizer_dropout: float = 0.0
    """Probability that a training example uses a random number of stages; 0: every example uses all k, as a model
    built for one bitrate."""


class ResidualVQOracle(PerBudgetOracle, ResidualVQ):
    """Per-budget oracle of the residual family: residual VQ with exactly k stages per budget, no quantizer dropout.

    Against it, ``rvq``'s price of anytime is the cost of quantizer dropout alone."""

    name = "rvq-oracle"
    Config = RVQOracleConfig


@dataclass
class WaveRVQConfig(WaveOptions, RVQConfig):
    """Residual VQ of waveforms: strided 1-D convolutions, then the whole latent sequence as one vector."""

    code_length: int = 32
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 128])
    latent_channels: int = 16
    norm: Norm = "group"
    """Per-clip normalization, as for the 1-D channel-wise models."""
    beta: float = 0.2
    batch_size: int = 16
    steps: int = 500


class WaveResidualVQ(ResidualVQ):
    """Residual VQ with quantizer dropout for waveforms (SoundStream/DAC-style, one latent vector per clip)."""

    name = "rvq-1d"
    Config = WaveRVQConfig
    dims = 1

    def extra_recon_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor | float:
        return spectral_loss(x_hat, x, self.config.spectral_weight, self.config.spectral_ffts)


@hookimpl
def register_encoders():
    return [ResidualVQ, WaveResidualVQ, ResidualVQOracle]
