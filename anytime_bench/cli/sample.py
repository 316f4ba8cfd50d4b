"""``anytime-bench sample``: sample a trained run at every budget, or against a deadline."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError


@click.command("sample")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--seeds", default=None, help="Comma-separated sampling seeds (default: the run's seed).")
@click.option("--deadline", type=float, default=None,
              help="Instead of the budgets: generate until this many seconds have passed, then decode what was reached.")
@click.option("-n", "--num-samples", type=click.IntRange(1), default=16, show_default=True,
              help="Samples per model with --deadline.")
@click.option("--device", default=None, help="Override the run's device.")
@click.option("--quiet", is_flag=True)
@click.pass_obj
def command(plugins, run_dir, seeds, deadline, num_samples, device, quiet):
    """Sample every model of RUN_DIR at every budget from its saved checkpoints."""
    from ..runner import open_run, run_stage
    from ..stages import sample_stage

    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise ConfigError(f"--seeds: {seeds!r} is not a comma-separated list of integers") from None
    if deadline is not None and not deadline > 0:
        raise ConfigError(f"--deadline: {deadline} is not a positive number of seconds")
    cfg, run, ctx = open_run(run_dir, plugins, quiet, device)
    if deadline is not None:
        _sample_by_deadline(cfg, plugins, run, ctx, deadline, num_samples, (seed_list or [cfg.run.seed])[0])
        return
    run_stage(run, "sample", lambda: sample_stage(cfg, plugins, run, ctx, seed_list))
    click.echo(f"sampled: {run.root / 'samples'}/; next: anytime-bench evaluate {run.root}")


def _sample_by_deadline(cfg, plugins, run, ctx, deadline: float, n: int, seed: int) -> None:
    import io

    import numpy as np
    import torch

    from .. import sampling, storage
    from ..stages.loading import load_trained
    from ..stages.sample import to_stored

    for model in cfg.run.encoders:
        encoder, prior = load_trained(cfg, plugins, run, model, ctx)
        result = sampling.sample(prior, encoder, n, generator=torch.Generator().manual_seed(seed), deadline=deadline,
                                 temperature=cfg.run.temperature, top_k=cfg.run.top_k or None)
        path = run.root / "samples" / model / f"deadline-{deadline:g}s-seed{seed}.npz"
        buffer = io.BytesIO()
        np.savez_compressed(buffer, data=to_stored(result.data), codes=result.codes.numpy().astype(np.int32),
                            tokens=np.int32(result.tokens))
        storage.write_bytes(path, buffer.getvalue())
        click.echo(f"{model}: {result.tokens}/{encoder.code_length} tokens in {result.sampling_seconds:.3f}s "
                   f"(stopped by {result.stopped_by}), decoded in {result.decode_seconds:.3f}s -> {path}")
