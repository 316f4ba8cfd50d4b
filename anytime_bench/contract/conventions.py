"""Numeric conventions shared by the core and plugins, written once.

Data in memory is float in ``[-1, 1]``. Stored, shown and scored, images are
8-bit and audio 16-bit PCM: these helpers are the only conversions. What
the sampling settings of ``[run]`` mean for a prior's next-code distribution
(temperature, top-k, nucleus) is written here too, for every prior to share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PCM16_SCALE = 32767

RANGE_SLACK = 1e-4
"""How far past ``[-1, 1]`` data in memory may reach (float rounding of a bounded result) before a dataset's splits or
an encoder's ``decode`` are refused: stored as 8-bit or 16-bit, anything beyond would be clipped without a word, and a
decoder that overshoots would be scored as if it did not."""


def tokens_for(budget: float, code_length: int) -> int:
    """The number of codes a budget (a fraction of D) allows; never below one, never above D."""
    return max(1, min(code_length, round(budget * code_length)))


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` floats to 8-bit values (clipped, rounded): how images are stored and scored."""
    import torch

    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """8-bit values to ``[-1, 1]`` float32."""
    import torch

    x = torch.from_numpy(np.asarray(x, dtype=np.float32)) if isinstance(x, np.ndarray) else x.float()
    return x / 127.5 - 1.0


def to_pcm16(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` floats to 16-bit PCM (clipped, rounded): how audio is stored."""
    import torch

    return (x.clamp(-1, 1) * PCM16_SCALE).round().to(torch.int16)


def from_pcm16(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """16-bit PCM to ``[-1, 1]`` float32."""
    import torch

    x = torch.from_numpy(np.asarray(x, dtype=np.float32)) if isinstance(x, np.ndarray) else x.float()
    return x / PCM16_SCALE


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` to ``[0, 1]`` (clipped): the scale of MSE and PSNR."""
    return (x.clamp(-1, 1) + 1) / 2


def draw_codes(logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0, top_k: int | None = None,
               top_p: float = 1.0) -> torch.Tensor:
    """One code per row of next-code ``logits`` ``[B, K]``, drawn with the run's sampling settings: ``[B, 1]`` int64.

    ``logits`` are divided by ``temperature``; a positive ``top_k`` keeps the
    ``top_k`` highest (ties at the k-th kept); ``top_p < 1`` then keeps the
    fewest most likely codes whose probabilities add up to at least ``top_p``
    (the most likely always stays), renormalised. ``generator`` is the run's
    CPU generator whatever the device of ``logits`` (or one on that device);
    each draw is what one ``torch.multinomial`` call on the CPU draws
    (:func:`multinomial_draw`), so a seeded generator gives the same codes.
    """
    import torch

    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        # The nucleus: codes in order of probability until their sum reaches top_p (the most likely always stays).
        ranked, order = probs.sort(dim=-1, descending=True)
        ranked = ranked.masked_fill(ranked.cumsum(-1) - ranked >= top_p, 0.0)
        return order.gather(-1, multinomial_draw(ranked, generator))
    return multinomial_draw(probs, generator)


def multinomial_draw(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``torch.multinomial(probs, 1, generator=generator)`` for rows of probabilities ``[B, K]``: the same draws
    from the same generator state, and the same state after.

    For one draw per row torch runs the exponential race, ``argmax(probs / q)``
    with ``q`` from ``exponential_``, whose CPU kernel makes each ``q`` in turn
    from a uniform double ``u`` as ``-log1p(-u)``. Here the uniforms are drawn
    from the CPU generator in one call and transformed in one vectorised pass:
    the same bits (a test checks it against torch), about three times faster,
    which is a tenth of a KV-cached sampling step (issue #38). Rows on another
    device (a GPU) race against the same ``q``, moved there: the run's CPU
    generator serves them as it is (torch would refuse it), and a model draws
    the codes it draws on the CPU wherever its probabilities agree. What torch
    checks of ``probs`` on every call (no NaN, infinity or negative value, no
    row of zeros) holds for rows of a softmax unless they hold NaN, which then
    wins its row's race and raises torch's error here. Elsewhere (a generator
    on the rows' own device, other dtypes or layouts) torch draws.
    """
    import torch

    exact = (torch.float32, torch.float64)
    if generator.device.type != "cpu" or probs.dim() != 2 or not probs.is_floating_point() \
            or (probs.device.type == "cpu" and (probs.dtype not in exact or not probs.is_contiguous())):
        return torch.multinomial(probs, 1, generator=generator)
    probs = probs if probs.dtype in exact else probs.float()  # a GPU's half-precision rows race in float32
    noise = torch.empty(probs.shape, dtype=torch.float64).uniform_(generator=generator)
    race = probs / noise.neg_().log1p_().neg_().to(probs.dtype).to(probs.device)
    drawn = race.argmax(dim=-1, keepdim=True)
    if race.gather(-1, drawn).isnan().any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    return drawn
