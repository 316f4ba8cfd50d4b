"""Stage 2: draw samples from each prior at every budget, and reconstruct the test set.

At budget k the prior generates only its first k codes and the encoder decodes
that prefix. All budgets come from one progressive pass per seed, so the k-code
samples are prefixes of the full-length ones (exactly what separate truncated
runs with the same seed give) and budgets are compared sample for sample.
"""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

import numpy as np
import torch

from .. import storage
from ..config import BenchConfig
from ..context import RunContext
from ..errors import DataError
from ..interfaces import DataSplits
from ..plugin_manager import Plugins
from ..rundir import RunDir
from ..sampling import progressive
from .common import blame, decode_all, encode_all, load_dataset, tokens_for
from .loading import load_trained


def to_stored(x: torch.Tensor) -> np.ndarray:
    """Data in [-1, 1] as it is saved, shown and scored: 8-bit images, 16-bit PCM waveforms ``[N, 1, T]``."""
    x = x.clamp(-1, 1)
    if x.ndim == 3:
        return (x * 32767).round().to(torch.int16).numpy()
    return ((x + 1) * 127.5).round().to(torch.uint8).numpy()


def from_stored(a: np.ndarray) -> torch.Tensor:
    if a.dtype == np.int16:
        return torch.from_numpy(a.astype(np.float32)) / 32767
    return torch.from_numpy(a.astype(np.float32)) / 127.5 - 1


def write_wav(path, clip: np.ndarray, sample_rate: int) -> None:
    """One int16 clip ``[1, T]`` as a 16-bit PCM WAV file."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, clip.reshape(-1), sample_rate, subtype="PCM_16", format="WAV")
    storage.write_bytes(path, buffer.getvalue())


def write_listening_set(run_dir: RunDir, model: str, arrays: dict[str, np.ndarray], budgets: list[tuple[float, int]],
                        sample_rate: int, clips: int = 4) -> None:
    """A few generated clips per budget under ``audio/<model>/``: the same samples at every budget."""
    for budget, k in budgets:
        for i in range(min(clips, len(arrays[f"generated_k{k}"]))):
            write_wav(run_dir.audio(model, f"budget{budget:g}-tokens{k}-{i}"), arrays[f"generated_k{k}"][i], sample_rate)


def sample_stage(cfg: BenchConfig, plugins: Plugins, run_dir: RunDir, ctx: RunContext,
                 seeds: list[int] | None = None, splits: DataSplits | None = None) -> None:
    started = time.perf_counter()
    splits = splits if splits is not None else load_dataset(cfg, plugins)
    seeds = seeds if seeds is not None else cfg.run.sample_seeds
    for model in cfg.run.encoders:
        component = plugins.get("encoder", model)
        prior_component = plugins.get("prior", cfg.run.prior)
        encoder, prior = load_trained(cfg, plugins, run_dir, model, ctx, splits.data_shape)
        D = int(encoder.code_length)
        with blame(component, "encode test set"):
            test_codes = encode_all(encoder, splits.test, ctx.device)
        budgets = [(b, tokens_for(b, D)) for b in cfg.run.budgets]
        for seed in seeds:
            arrays: dict[str, np.ndarray] = {}
            ks = sorted({k for _, k in budgets})
            # One pass: the codes at every budget are prefixes of the same sequences.
            with blame(prior_component, f"sample {model}"):
                prefixes = progressive(prior, cfg.run.num_samples, ks, generator=torch.Generator().manual_seed(seed),
                                       temperature=cfg.run.temperature, top_k=cfg.run.top_k or None)
            with ctx.progress(f"decoding {model} (seed {seed})", len(ks)) as task:
                for k in ks:
                    with blame(component, f"decode {k} tokens"):
                        arrays[f"generated_k{k}"] = to_stored(decode_all(encoder, prefixes[k], ctx.device))
                        arrays[f"reconstructed_k{k}"] = to_stored(decode_all(encoder, test_codes[:, :k], ctx.device))
                    arrays[f"codes_k{k}"] = prefixes[k].numpy().astype(np.int32)
                    task.advance(tokens=k)
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            storage.write_bytes(run_dir.samples(model, seed), buffer.getvalue())
            if splits.modality == "audio" and seed == seeds[0]:
                write_listening_set(run_dir, model, arrays, budgets, int(splits.sample_rate))
    if splits.modality == "audio":
        for i, clip in enumerate(to_stored(splits.test[:4])):
            write_wav(run_dir.audio("real-test", str(i)), clip, int(splits.sample_rate))
    seconds = time.perf_counter() - started
    run_dir.update_state(stage_seconds={"sample": round(seconds, 3)}, sample_seeds=seeds, status="sampled",
                         data={"modality": splits.modality, "sample_rate": splits.sample_rate})


def load_samples(run_dir: RunDir, model: str, seed: int) -> dict[str, Any]:
    path = run_dir.samples(model, seed)
    if not path.is_file():
        raise DataError(f"{path} is missing: run `anytime-bench sample {run_dir.root}` first")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable samples file: {exc}") from None
