"""A 1-D tail-drop transformer tokenizer (the FlexTok / One-D-Piece family), sized for a CPU.

A small ViT-style encoder reads the image's patches together with D learned
latent tokens; the latent tokens' outputs are quantized with finite scalar
quantization (FSQ: each of a few dimensions rounded to a handful of levels,
K = the product of the levels, no codebook to collapse). Tail drop replaces the
tokens k+1..D with a learned mask token before the decoder, k drawn per
example (uniform over 1..D, or a power of two); a transformer decoder reads the
D tokens with one learned query per patch (optionally started from a linear map of
all D tokens to the patch grid, ``token_grid``) and paints the patches. Dropping the
tail in training is what orders the tokens: the first ones must carry the most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from anytime_bench import ConfigError, RunContext, check_finite, hookimpl, require

from .vqvae import OracleBudgets, PerBudgetOracle, conv_decoder, conv_encoder, cosine_factor, norm_groups


@dataclass
class TailDropConfig:
    code_length: int = 16
    """D: latent tokens, one code each."""
    levels: list[int] = field(default_factory=lambda: [8, 4, 4])
    """FSQ levels per dimension; the codebook size K is their product (128 by default)."""
    patch: int = 2
    """Side of the square image patches the encoder reads (8x8 images: 16 patches of 2x2)."""
    width: int = 48
    """Width of the transformer layers."""
    encoder_layers: int = 2
    """Transformer layers reading the patches and the latent tokens."""
    decoder_layers: int = 2
    """Transformer layers painting the patches from the tokens."""
    heads: int = 4
    """Attention heads per layer."""
    truncation_distribution: Literal["uniform", "pow2"] = "uniform"
    """How the number of kept tokens is drawn per example: uniform over 1..D (One-D-Piece), or a power of two up to
    D (FlexTok's pow2)."""
    full_length_prob: float = 0.0
    """Probability that an example keeps all D tokens."""
    register_attention: Literal["full", "causal"] = "full"
    """What each latent token sees in the encoder. full: every patch and every latent token (TiTok); causal: the
    patches and the latent tokens before it (FlexTok's causal mask over its registers), while the patches see only
    each other, so that no later token reaches an earlier one through them: no token is computed from the ones a
    shorter prefix drops."""
    batch_size: int = 64
    """Images per training step."""
    steps: int = 1500
    """Training steps."""
    lr: float = 1e-3
    """Peak learning rate (AdamW), after a linear warm-up of ``warmup`` steps, then cosine decay."""
    warmup: int = 100
    """Linear warm-up steps of the learning rate."""
    stem: Literal["linear", "conv"] = "linear"
    """What turns pixels into the encoder's patch tokens. linear: one linear map per patch (ViT, TiTok); conv: strided
    convolutions down to the patch grid (the VQ-VAEs' encoder; "early convolutions" for small ViTs). Needs a
    power-of-two patch."""
    pixel_decoder: Literal["linear", "conv"] = "linear"
    """What paints the pixels from the decoder's per-patch outputs. linear: one linear map per patch (ViT, TiTok's
    single-stage form); conv: the outputs laid out as the patch grid, then transposed convolutions (the mirror of
    the conv stem), as FlexTok and TiTok end in a convolutional VAE or VQGAN decoder. Needs a power-of-two patch."""
    token_grid: bool = False
    """Start each patch query of the decoder from a learned linear map of all D tokens (the dropped ones as the mask
    token) to the patch grid, rather than from a learned constant alone: every token reaches every patch directly,
    as the codes of a spatial VQ-VAE reach its decoder, and attention refines from there. Off by default (the
    checkpoints and digests of earlier runs)."""
    conv_widths: list[int] = field(default_factory=lambda: [16, 32])
    """Channels of the conv stem and the conv pixel decoder, finest first: one stride-2 layer per halving of the
    patch, so log2(patch) widths (at least one), each at most 8 or a multiple of 8 (group normalization)."""

    def conv_strides(self) -> list[int]:
        """The conv stem's and pixel decoder's strides: 2 per halving of the patch, or one layer of stride 1."""
        return [2] * (self.patch.bit_length() - 1) or [1]

    def validate(self) -> None:
        require(self.code_length >= 1, "code_length", "must be >= 1")
        require(len(self.levels) >= 1 and all(level >= 2 for level in self.levels), "levels", "needs levels >= 2")
        require(math.prod(self.levels) < 2**63, "levels", "their product, the codebook size, must fit int64 codes")
        require(self.patch >= 1, "patch", "must be >= 1")
        require(self.width >= 8 and self.heads >= 1 and self.width % self.heads == 0, "width",
                "needs width >= 8 and heads dividing width")
        require(self.encoder_layers >= 1 and self.decoder_layers >= 1, "encoder_layers", "must be >= 1")
        require(0.0 <= self.full_length_prob <= 1.0, "full_length_prob", "must be in [0, 1]")
        if "conv" in (self.stem, self.pixel_decoder):
            require(self.patch & (self.patch - 1) == 0, "patch", "must be a power of two with a conv stem or decoder")
            require(len(self.conv_widths) == len(self.conv_strides())
                    and all(w >= 1 for w in self.conv_widths), "conv_widths",
                    "needs one positive width per halving of the patch (log2(patch), at least 1)")
            require(all(w % norm_groups(w) == 0 for w in self.conv_widths), "conv_widths",
                    "needs widths of at most 8 or multiples of 8 (group normalization in 8 groups)")
        require(self.steps >= 0 and self.batch_size >= 1 and self.lr > 0 and self.warmup >= 0, "steps",
                "needs steps >= 0, batch_size >= 1, lr > 0 and warmup >= 0")


class FSQ(nn.Module):
    """Finite scalar quantization (Mentzer et al. 2023) with a straight-through rounding."""

    def __init__(self, levels: list[int]):
        super().__init__()
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        self.register_buffer("radix", torch.cumprod(torch.tensor([1] + levels[:-1]), 0), persistent=False)

    @property
    def size(self) -> int:
        return int(self.levels.prod())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantized values in [-1, 1] (with straight-through gradients) and the integer codes."""
        half = (self.levels - 1) / 2
        bounded = torch.tanh(z) * half
        offset = (self.levels % 2 == 0).float() * 0.5  # even level counts sit between the integers
        rounded = torch.round(bounded - offset) + offset
        rounded = bounded + (rounded - bounded).detach()
        digits = (rounded.detach() + half).round().long()
        return rounded / half, (digits * self.radix).sum(-1)

    def values(self, codes: torch.Tensor) -> torch.Tensor:
        half = (self.levels - 1) / 2
        digits = (codes[..., None] // self.radix) % self.levels.long()
        return (digits.float() - half) / half


class TailDropTokenizer(nn.Module):
    """1-D tail-drop transformer tokenizer (FlexTok / One-D-Piece family): D ordered tokens, FSQ, learned mask."""

    name = "tail-drop"
    Config = TailDropConfig
    ordered = True

    def __init__(self, config: TailDropConfig, data_shape: tuple[int, ...]):
        super().__init__()
        # the data's shape is the dataset's, known only here: options that do not fit it are bad input (exit 2),
        # told when the run builds its encoders, before any training
        if len(data_shape) != 3:
            raise ConfigError(f"encoder {self.name} expects images [C, H, W], got data of shape {tuple(data_shape)}")
        if data_shape[1] % config.patch or data_shape[2] % config.patch:
            raise ConfigError(f"encoder.{self.name}.patch: {config.patch} does not divide the images' sides "
                              f"({data_shape[1]}x{data_shape[2]})")
        self.config, self.data_shape = config, tuple(data_shape)
        c, h, w = data_shape
        self.grid = (h // config.patch, w // config.patch)
        self.patches = self.grid[0] * self.grid[1]
        patch_dim = c * config.patch**2
        W, D = config.width, config.code_length
        strides = config.conv_strides()
        if config.stem == "conv":
            self.conv_stem = conv_encoder(c, list(config.conv_widths), strides, W, "group")
        else:
            self.embed_patch = nn.Linear(patch_dim, W)
        self.patch_position = nn.Parameter(torch.randn(self.patches, W) * 0.02)
        self.latents = nn.Parameter(torch.randn(D, W) * 0.02)
        # not saved: derived from the options, so checkpoints hold what they held before the option existed
        self.register_buffer("encoder_mask", self._encoder_mask(), persistent=False)
        self.encoder = self._stack(config.encoder_layers)
        self.fsq = FSQ(list(config.levels))
        self.to_code = nn.Linear(W, len(config.levels))
        self.from_code = nn.Linear(len(config.levels), W)
        self.token_position = nn.Parameter(torch.randn(D, W) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(W))
        self.queries = nn.Parameter(torch.randn(self.patches, W) * 0.02)
        if config.token_grid:  # starts at zero: the decoder starts as the one without it
            self.token_grid = nn.Linear(D * W, self.patches * W)
            nn.init.zeros_(self.token_grid.weight)
            nn.init.zeros_(self.token_grid.bias)
        self.decoder = self._stack(config.decoder_layers)
        if config.pixel_decoder == "conv":
            self.to_pixels = conv_decoder(W, list(config.conv_widths), strides, c, "group")
        else:
            self.to_patch = nn.Linear(W, patch_dim)

    def _stack(self, layers: int) -> nn.TransformerEncoder:
        c = self.config
        layer = nn.TransformerEncoderLayer(c.width, c.heads, 4 * c.width, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    @property
    def code_length(self) -> int:
        return self.config.code_length

    @property
    def codebook_size(self) -> int:
        return self.fsq.size

    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.patch
        return F.unfold(x, p, stride=p).transpose(1, 2)  # [B, patches, C*p*p]

    def _unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        c, h, w = self.data_shape
        p = self.config.patch
        return F.fold(patches.transpose(1, 2), (h, w), p, stride=p)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.stem == "conv":
            patches = self.conv_stem(x).flatten(2).transpose(1, 2)  # [B, patches, W], row-major as unfold
        else:
            patches = self.embed_patch(self._patchify(x))
        tokens = torch.cat([patches + self.patch_position,
                            self.latents.expand(len(x), -1, -1)], dim=1)
        latent = self.encoder(tokens, mask=self.encoder_mask)[:, self.patches:]
        return self.fsq(self.to_code(latent))

    def _encoder_mask(self) -> torch.Tensor | None:
        """None (full attention), or the causal register mask: True where a query (row) may not see a key."""
        if self.config.register_attention == "full":
            return None
        P, D = self.patches, self.code_length
        blocked = torch.ones(P + D, P + D, dtype=torch.bool).triu(1)  # latents: the ones before
        blocked[:, :P] = False  # every token sees every patch
        blocked[:P, P:] = True  # patches do not see the latents
        return blocked

    def _decode(self, values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        tokens = self.from_code(values) + self.token_position[: values.shape[1]]
        D = self.code_length
        if tokens.shape[1] < D:  # a prefix: the tail is the mask token
            tokens = torch.cat([tokens, self.mask_token.expand(len(values), D - tokens.shape[1], -1)], dim=1)
        dropped = torch.arange(D, device=values.device)[None] >= keep[:, None]
        tokens = torch.where(dropped[..., None], self.mask_token.expand_as(tokens), tokens)
        queries = self.queries.expand(len(values), -1, -1)
        if self.config.token_grid:
            queries = queries + self.token_grid(tokens.flatten(1)).view(len(values), self.patches, -1)
        out = self.decoder(torch.cat([tokens, queries], dim=1))[:, D:]
        if self.config.pixel_decoder == "conv":
            return self.to_pixels(out.transpose(1, 2).reshape(len(out), -1, *self.grid))
        return torch.tanh(self._unpatchify(self.to_patch(out)))

    def draw_keep(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        c, D = self.config, self.code_length
        if c.truncation_distribution == "uniform":
            keep = torch.randint(1, D + 1, (batch,), generator=generator)
        else:
            choices = torch.tensor(sorted({2**i for i in range(D.bit_length()) if 2**i <= D} | {D}))
            keep = choices[torch.randint(len(choices), (batch,), generator=generator)]
        if c.full_length_prob > 0:
            keep = torch.where(torch.rand(batch, generator=generator) < c.full_length_prob, torch.full_like(keep, D),
                               keep)
        return keep

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, _ = self._encode(x)
        x_hat = self._decode(values, keep)
        loss = F.mse_loss(x_hat, x)
        return loss, loss.detach()

    def fit(self, data: torch.Tensor, ctx: RunContext) -> dict[str, float]:
        cfg = self.config
        generator = ctx.generator(offset=17)
        self.to(ctx.device)
        batches = ctx.batches(len(data), cfg.batch_size, generator)
        net = ctx.distribute(self)
        opt = torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cosine_factor(step, cfg.steps, cfg.warmup))
        recon = float("nan")
        with ctx.training_loop(self.name, self, batches, lambda: {"recon": recon}) as loop:
            recon = loop.restored.get("recon", recon)
            self.train()
            for step in loop.steps(self.name, cfg.steps, opt, sched):
                batch = data[batches.next()].to(ctx.device, non_blocking=True)
                loss, part = net(batch, self.draw_keep(len(batch), generator).to(ctx.device))
                check_finite(loss.item(), self.name, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.parameters(), 1.0)
                opt.step()
                sched.step()
                recon = 0.98 * recon + 0.02 * part.item() if step else part.item()
                loop.show(recon=recon)
        self.eval()
        return {"recon": recon}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self._encode(x)[1]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        self.eval()
        keep = torch.full((len(codes),), codes.shape[1], device=codes.device)
        return self._decode(self.fsq.values(codes), keep)


@dataclass
class TailDropOracleConfig(OracleBudgets, TailDropConfig):
    full_length_prob: float = 1.0
    """Probability that an example keeps all its tokens; 1: none is ever dropped, as a tokenizer built for one
    length (a fixed-length 1-D tokenizer, as TiTok, against which One-D-Piece measures its tail drop)."""


class TailDropOracle(PerBudgetOracle, TailDropTokenizer):
    """Per-budget oracle of the 1-D tail-drop family: for each budget, the tokenizer with exactly k tokens, trained as
    long, with no tail drop.

    Against it, ``tail-drop``'s price of anytime is the cost of nested dropout alone."""

    name = "tail-drop-oracle"
    Config = TailDropOracleConfig


@hookimpl
def register_encoders():
    return [TailDropTokenizer, TailDropOracle]
