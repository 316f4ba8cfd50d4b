"""A decoder-only causal Transformer prior over code sequences, with a key/value cache.

Input ``[BOS, c_1 .. c_{D-1}]``, targets ``[c_1 .. c_D]``; learned positions,
tied input/output embeddings. Sampling runs one incremental step per token over
cached keys and values, so stopping after k tokens costs k steps.

With ``vocabulary = "per-position"`` each position has its own embedding of
each code, for encoders whose positions draw on different codebooks (the
stages of residual VQ): code 5 of stage 1 and code 5 of stage 20 are unrelated
vectors, and one shared, tied embedding would have to stand for both. Priors
over several codebooks do the same (MusicGen: one embedding table and one
output head per codebook).

With ``code_vectors = true`` the prior also reads each code as the encoder's
vector for it. A learned embedding of a late residual stage sees each code a
few hundred times in MNIST's training set, too few to learn where the code
lies; the vectors say so directly. Each position sees the sum of the vectors
drawn so far (the latent decoded so far, as the RQ-Transformer's inputs) and
the last one, and scores each candidate code by how well its vector matches
a residual it predicts, ``r . v - b |v|^2 / 2``, beside the tied embedding's
logit. Each stage's vectors are scaled to unit mean square, since the late
stages' are ten times shorter than the first's.
"""

from __future__ import annotations

import copy
import math
import mmap
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from anytime_bench import ConfigError, RunContext, check_finite, draw_codes, hookimpl, require


@dataclass
class TransformerConfig:
    REMOVED: ClassVar[dict[str, str]] = {"schedule": "inverse-sqrt"}
    """A cosine learning-rate schedule was an option for a day (2026-11-29); run folders of then still reopen."""

    n_layer: int = 2
    """Transformer blocks (6 in the paper)."""
    n_head: int = 4
    """Attention heads per block."""
    d_model: int = 128
    """Width of the residual stream (512 in the paper)."""
    d_ff: int = 256
    """Width of each block's feed-forward layer."""
    dropout: float = 0.1
    """Dropout in attention and feed-forward layers while training."""
    batch_size: int = 64
    """Code sequences per training step."""
    steps: int = 600
    """Most training steps (early stopping may end sooner)."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, betas 0.9/0.98)."""
    warmup: int = 100
    """Linear warm-up steps, then inverse square-root decay (as in the paper's fairseq setup)."""
    weight_decay: float = 0.1
    """Decoupled weight decay of the weight matrices."""
    val_fraction: float = 0.1
    """Training codes held out for early stopping (never the test set)."""
    eval_every: int = 50
    """Training steps between evaluations of the held-out codes."""
    patience: int = 4
    """Stop after this many evaluations without improvement (0: never stop early); the best weights are kept."""
    sample_batch_size: int = 1000
    """Sequences per batch of sampling; larger counts are split into batches of this size, which advance together
    position by position (their key/value caches are all held at once: memory grows with the count)."""
    vocabulary: Literal["shared", "per-position"] = "shared"
    """shared: one embedding per code at every position; per-position: one per code and position (D x K embeddings),
    for codes whose positions use different codebooks (residual VQ)."""
    code_vectors: bool = False
    """Also read each code as the vector the encoder gives for it (encoders with code_vectors(), such as rvq): the
    running sum of those vectors enters each position, and candidates are scored against a predicted residual."""

    def validate(self) -> None:
        require(self.n_layer >= 1, "n_layer", "must be >= 1")
        require(self.n_head >= 1 and self.d_model % self.n_head == 0, "n_head", "must divide d_model")
        require(self.d_ff >= 1, "d_ff", "must be >= 1")
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        require(self.steps >= 0, "steps", "must be >= 0")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.lr > 0, "lr", "must be > 0")
        require(self.warmup >= 0, "warmup", "must be >= 0")
        require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        require(0.0 <= self.val_fraction < 1.0, "val_fraction", "must be in [0, 1)")
        require(self.eval_every >= 1, "eval_every", "must be >= 1")
        require(self.patience >= 0, "patience", "must be >= 0")
        require(self.sample_batch_size >= 1, "sample_batch_size", "must be >= 1")


CACHE_CHUNK = 16
"""Positions per chunk of the key/value cache. On the CPU, batched products of 16 positions ran at about memory
speed, of 8 at a third of it; a step reads up to CACHE_CHUNK - 1 positions not yet written."""


def kv_buffer(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Room for a key/value cache (contents undefined). On a Linux CPU, anonymous memory that the kernel is asked
    to back with 2 MiB pages: every sampling step streams the whole cache, and a cached drain of 1000 sequences
    of 64 codes (131 MB of cache) ran about 5% faster on them than on 4 KiB pages on this project's 2-core
    machine (issue #38). Worth it only for room that is reused (:meth:`TransformerPrior.new_caches`): the kernel
    may have to gather the huge pages on first touch."""
    size = math.prod(shape) * dtype.itemsize
    if device.type != "cpu" or not hasattr(mmap, "MADV_HUGEPAGE") or not size:
        return torch.empty(shape, device=device, dtype=dtype)
    room = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    room.madvise(mmap.MADV_HUGEPAGE)
    return torch.frombuffer(room, dtype=dtype).view(shape)  # the tensor keeps the mapping alive


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        b, t, c = x.shape
        h, d = self.n_head, c // self.n_head
        qkv = self.qkv(x)
        q = qkv[..., :c].view(b, t, h, d).transpose(1, 2)
        if cache is None:
            k, v = (a.view(b, t, h, d).transpose(1, 2) for a in qkv[..., c:].split(c, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:
            y = self._cached(q, qkv[..., c:].view(b, t, 2, h, d), cache)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))

    @staticmethod
    def _cached(q: torch.Tensor, new: torch.Tensor, cache: dict) -> torch.Tensor:
        """Incremental decoding: the ``t`` new queries ``[b, h, t, d]`` over the cached keys and values and their
        own (``new``: ``[b, t, 2, h, d]``), each query seeing the keys up to its own position.

        The cache (:meth:`TransformerPrior.new_caches`) holds chunks of ``CACHE_CHUNK`` positions: a step reads
        the chunks written so far, each contiguous. A slice of the first positions of one ``[b, h, seq_len, d]``
        buffer reads no more, but batched products over it (its batches not contiguous) ran about three times
        slower per byte on the CPU; scaled_dot_product_attention's CPU kernel costs about as much at 2 cached
        keys as at 60 for one query (issue #38).
        """
        kv, pos = cache["kv"], cache["pos"]  # [2, chunks, b, h, size, d]
        b, t, _, h, d = new.shape
        size = kv.shape[4]
        for chunk in range(-(-pos // size), (pos + t - 1) // size + 1):
            kv[:, chunk].zero_()  # entered now: its room not yet written gets weight 0, times a finite 0
        for i in range(t):  # one position per copy, keys and values at once (t is 1 when sampling)
            kv[:, (pos + i) // size, :, :, (pos + i) % size] = new[:, i].transpose(0, 1)
        n = (pos + t - 1) // size + 1
        keys, values = kv[0, :n], kv[1, :n]  # [n, b, h, size, d]
        if t == 1:  # one query sees every key written: the room not yet written is masked
            # Chunk by chunk: one product over all chunks would copy the query once per chunk.
            q = q * d ** -0.5
            scores = torch.cat([q @ keys[i].transpose(2, 3) for i in range(n)], dim=-1)  # [b, h, 1, n * size]
            scores[..., pos + 1:] = float("-inf")
            weights = torch.softmax(scores, dim=-1).view(b * h, 1, n * size)
            y = torch.bmm(weights[..., :size], values[0].view(b * h, size, d))
            for i in range(1, n):  # accumulated in place: no sum per chunk in a new tensor
                y.baddbmm_(weights[..., i * size:(i + 1) * size], values[i].view(b * h, size, d))
            return y.view(b, h, 1, d)
        keys, values = (a.permute(1, 2, 0, 3, 4).reshape(b, h, n * size, d) for a in (keys, values))
        mask = torch.ones(t, n * size, dtype=torch.bool, device=q.device).tril(pos)
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cache))
        return x + self.drop(self.mlp(self.ln2(x)))


class CodeVectors(nn.Module):
    """Reads codes as the encoder's vectors ``[D, K, E]``: what enters each position, and a score per candidate."""

    def __init__(self, vectors: torch.Tensor, d_model: int):
        super().__init__()
        scale = vectors.pow(2).sum(-1).mean(-1).sqrt().clamp_min(1e-8)  # per position: unit mean square
        self.register_buffer("vectors", vectors.float().clone())
        self.register_buffer("scale", scale)
        dim = vectors.shape[-1]
        self.sum_in = nn.Linear(dim, d_model)
        self.last_in = nn.Linear(dim, d_model)
        self.residual_out = nn.Linear(d_model, dim)
        self.length_weight = nn.Parameter(torch.zeros(vectors.shape[0]))

    def read(self, tokens: torch.Tensor, drawn_at: torch.Tensor, bos: int, cache: dict | None) -> torch.Tensor:
        """The running sum of the vectors read so far and the last one (scaled), for each input position;
        ``drawn_at`` is the position each input code was drawn at."""
        drawn_at = drawn_at[None].expand_as(tokens)
        is_code = tokens != bos
        last = self.vectors[drawn_at, torch.where(is_code, tokens, 0)] * is_code[..., None]
        total = last.cumsum(1)
        if cache is not None:  # incremental decoding: carry the sum of the codes already fed
            if cache["sum"] is not None:
                total = total + cache["sum"][:, None]
            cache["sum"] = total[:, -1]
        return self.sum_in(total / self.scale[0]) + self.last_in(last / self.scale[drawn_at][..., None])

    def score(self, h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``r . v - b |v|^2 / 2`` for every candidate ``v`` of each position (scaled), ``r`` predicted from ``h``."""
        table = self.vectors[positions] / self.scale[positions][:, None, None]
        weight = F.softplus(self.length_weight[positions])
        return (torch.einsum("btd,tkd->btk", self.residual_out(h), table)
                - 0.5 * weight[None, :, None] * table.pow(2).sum(-1)[None])


class TransformerPrior(nn.Module):
    """Decoder-only causal Transformer over codes, KV-cached ancestral sampling."""

    name = "transformer"
    Config = TransformerConfig
    kv_cache = True
    sampling_options = ("temperature", "top_k", "top_p")

    def __init__(self, config: TransformerConfig, vocab_size: int, seq_len: int):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.bos = vocab_size  # the start token is one extra id beyond the codebook
        self.per_position = config.vocabulary == "per-position"
        rows = vocab_size * seq_len if self.per_position else vocab_size
        self.tok = nn.Embedding(rows + 1, config.d_model)  # the last row embeds BOS
        self.pos = nn.Embedding(seq_len, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.apply(self._init)
        self.reader: CodeVectors | None = None
        self._free_kv: dict[tuple, list[torch.Tensor]] = {}  # see new_caches

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, caches: list[dict] | None = None, start: int = 0) -> torch.Tensor:
        t = tokens.shape[1]
        positions = torch.arange(start, start + t, device=tokens.device)
        x = self.tok(self._rows(tokens, positions)) + self.pos(positions)
        if self.reader is not None:
            x = x + self.reader.read(tokens, self._drawn_at(positions), self.bos, None if caches is None else caches[0])
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        h = self.ln_f(x)
        # tied embeddings; BOS is never a target
        if self.per_position:
            table = self.tok.weight[:-1].view(self.seq_len, self.vocab_size, -1)[positions]
            logits = torch.einsum("btd,tkd->btk", h, table)
        else:
            logits = h @ self.tok.weight[: self.vocab_size].t()
        if self.reader is not None:
            logits = logits + self.reader.score(h, positions)
        if caches is not None:
            for cache in caches:
                cache["pos"] = start + t
        return logits

    def use_code_vectors(self, vectors: torch.Tensor | None) -> None:
        if not self.config.code_vectors:
            return
        if vectors is None:
            raise ConfigError("prior.transformer.code_vectors: the encoder gives no code vectors (code_vectors()); "
                              "use an encoder that does, such as rvq, or set it to false")
        self.reader = CodeVectors(vectors, self.config.d_model).to(self.tok.weight.device)
        self.reader.apply(self._init)

    @staticmethod
    def _drawn_at(positions: torch.Tensor) -> torch.Tensor:
        """The position each input's code was drawn at: the code read at position p was drawn at p - 1 (BOS: 0)."""
        return (positions - 1).clamp_min(0)

    def _rows(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Embedding rows of ``tokens`` at ``positions``."""
        if not self.per_position:
            return tokens
        drawn_at = self._drawn_at(positions)[None]
        return torch.where(tokens == self.bos, self.tok.num_embeddings - 1, tokens + drawn_at * self.vocab_size)

    def inputs(self, codes: torch.Tensor) -> torch.Tensor:
        bos = torch.full((len(codes), 1), self.bos, dtype=torch.long, device=codes.device)
        return torch.cat([bos, codes[:, :-1]], dim=1)

    def loss(self, codes: torch.Tensor, forward=None) -> torch.Tensor:
        """Next-code cross-entropy; ``forward`` is the DDP wrapper while training under torchrun."""
        logits = (forward or self)(self.inputs(codes))
        return F.cross_entropy(logits.float().reshape(-1, self.vocab_size), codes.reshape(-1))

    @torch.no_grad()
    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """Log-probability of each code of ``[B, L]`` given those before it (the contract's ``log_prob``): the
        distribution ``stream`` draws from at temperature 1."""
        was_training = self.training
        self.eval()
        try:
            logits = self(self.inputs(codes.long()))
        finally:
            self.train(was_training)
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, codes.long()[..., None])[..., 0]

    def _optimizer(self) -> torch.optim.Optimizer:
        decay = [p for n, p in self.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": self.config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.config.lr, betas=(0.9, 0.98), eps=1e-6)

    def _lr_factor(self, step: int) -> float:
        warmup = max(1, self.config.warmup)
        return min((step + 1) / warmup, math.sqrt(warmup / (step + 1)))

    @torch.no_grad()
    def _eval_loss(self, codes: torch.Tensor) -> float:
        self.eval()
        losses = [self.loss(codes[i:i + 1024]).item() * len(codes[i:i + 1024]) for i in range(0, len(codes), 1024)]
        self.train()
        return sum(losses) / len(codes)

    def fit(self, train_codes: torch.Tensor, ctx: RunContext) -> dict[str, float]:
        cfg = self.config
        generator = ctx.generator(offset=23)  # the same on every rank: the held-out split agrees
        self.to(ctx.device)
        codes = train_codes.long().to(ctx.device)  # dumped once, kept on the device
        perm = torch.randperm(len(codes), generator=generator).to(ctx.device)
        n_val = int(len(codes) * cfg.val_fraction)
        val, train = codes[perm[:n_val]], codes[perm[n_val:]]
        opt = self._optimizer()
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor)
        batches = ctx.batches(len(train), cfg.batch_size, generator)
        net = ctx.distribute(self)
        best, best_state, best_step, bad, train_loss = float("inf"), None, 0, 0, float("nan")

        def state() -> dict:
            return {"best": best, "best_state": best_state, "best_step": best_step, "bad": bad, "train_loss": train_loss}

        with ctx.training_loop(self.name, self, batches, state) as loop:
            if loop.resumed:
                r = loop.restored
                best, best_state, best_step, bad = r["best"], r["best_state"], r["best_step"], r["bad"]
                train_loss = r["train_loss"]
            self.train()
            for step in loop.steps(f"{self.name} prior", cfg.steps, opt, sched):
                batch = train[batches.next().to(ctx.device)]
                with ctx.autocast():
                    loss = self.loss(batch, net)
                check_finite(loss.item(), f"{self.name} prior", step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.parameters(), 1.0)
                opt.step()
                sched.step()
                train_loss = 0.95 * train_loss + 0.05 * loss.item() if step else loss.item()
                if n_val and ((step + 1) % cfg.eval_every == 0 or step == cfg.steps - 1):
                    # Rank 0's figure on every rank: equal weights give equal losses on equal devices, but GPUs of
                    # two kinds may round apart, and a rank that stopped alone would leave the others waiting.
                    val_loss = self._eval_loss(val)
                    if ctx.topology.world_size > 1:
                        val_loss = float(ctx.broadcast_(torch.tensor([val_loss], dtype=torch.float64,
                                                                     device=ctx.device)))
                    if val_loss < best:
                        best, best_step, bad = val_loss, step + 1, 0
                        best_state = copy.deepcopy(self.state_dict())
                    else:
                        bad += 1
                        if cfg.patience and bad >= cfg.patience:
                            break  # this step is not saved: a resumed fit stops here again
                loop.show(loss=train_loss, val=best)
        steps_run = loop.step + 1
        if best_state is not None:
            self.load_state_dict(best_state)
        self.eval()
        return {"train_loss": train_loss, "val_loss": best, "best_step": best_step, "steps_run": steps_run}

    @torch.no_grad()
    def sample(self, n: int, length: int, *, generator: torch.Generator, temperature: float = 1.0,
               top_k: int | None = None, top_p: float = 1.0) -> torch.Tensor:
        return torch.stack(list(self.stream(n, length, generator=generator, temperature=temperature, top_k=top_k,
                                            top_p=top_p)), dim=1)

    @torch.no_grad()
    def stream(self, n: int, length: int, *, generator: torch.Generator, temperature: float = 1.0,
               top_k: int | None = None, top_p: float = 1.0, use_cache: bool = True):
        """Yield the ``n`` codes of each position in turn (``[n]`` on the CPU); stop iterating to stop sampling.

        With ``use_cache=False`` every step re-runs the whole prefix (the cost a
        cache avoids; kept for benchmarks). Both draw the same codes.
        """
        if not 1 <= length <= self.seq_len:
            raise ValueError(f"length must be in 1..{self.seq_len}, got {length}")
        self.eval()
        device = self.tok.weight.device
        # On a GPU, draws from a generator of its own, seeded by one draw of the caller's (which it advances): a
        # run is reproducible on its device, without B x K uniforms made on the CPU and copied over at every step.
        gen = generator if device.type == "cpu" else torch.Generator(device).manual_seed(
            int(torch.randint(2**62, (1,), generator=generator)))
        batches = [min(self.config.sample_batch_size, n - s) for s in range(0, n, self.config.sample_batch_size)]
        caches = [self.new_caches(b, device) if use_cache else None for b in batches]
        prefixes = [torch.full((b, 1), self.bos, dtype=torch.long, device=device) for b in batches]
        try:
            for t in range(length):
                column = []
                for i in range(len(batches)):
                    if use_cache:
                        logits = self(prefixes[i][:, -1:], caches[i], start=t)[:, -1]
                    else:
                        logits = self(prefixes[i])[:, -1]
                    token = self._draw(logits, gen, temperature, top_k, top_p)
                    # the cache holds the past: only the last token is fed back
                    prefixes[i] = token if use_cache else torch.cat([prefixes[i], token], dim=1)
                    column.append(token[:, 0])
                yield torch.cat(column).cpu()
        finally:  # also when the caller stops early
            for cache in caches:
                if cache is not None:
                    self.release_caches(cache)

    def new_caches(self, batch: int, device: torch.device) -> list[dict]:
        """Per block: keys and values in chunks of ``CACHE_CHUNK`` positions (``kv``: [2, chunks, batch, heads,
        CACHE_CHUNK, d], each chunk zeroed when a step enters it), the positions cached (``pos``) and the sum of
        the code vectors read so far (``sum``).

        On the CPU, the room for keys and values is that of an earlier call's caches of the same shape once
        :meth:`release_caches` has given it back: fresh room costs a page fault per page on its first touch, and
        sampling at every budget asks for caches of one shape again and again. The room kept is at most one set
        per shape; on other devices the framework's allocator already reuses memory, so none is kept."""
        size = min(CACHE_CHUNK, self.seq_len)
        shape = (2, -(-self.seq_len // size), batch, self.config.n_head, size, self.config.d_model // self.config.n_head)
        dtype = self.tok.weight.dtype
        free = self._free_kv.pop((shape, torch.device(device), dtype), [])
        return [{"kv": free.pop() if free else kv_buffer(shape, device, dtype), "pos": 0, "sum": None}
                for _ in self.blocks]

    def release_caches(self, caches: list[dict]) -> None:
        """Give back the room of caches from :meth:`new_caches` that no step will read again."""
        kvs = [cache["kv"] for cache in caches]
        if kvs and kvs[0].device.type == "cpu":  # the one place that decides what is kept (new_caches)
            self._free_kv[tuple(kvs[0].shape), kvs[0].device, kvs[0].dtype] = kvs

    @staticmethod
    def _draw(logits: torch.Tensor, gen: torch.Generator, temperature: float, top_k: int | None,
              top_p: float = 1.0) -> torch.Tensor:
        return draw_codes(logits, gen, temperature, top_k, top_p)

@hookimpl
def register_priors():
    return [TransformerPrior]
