"""Stage 1: for every encoder and training seed, train the encoder, dump its codes once, train each prior on them.

The model entries that share an encoder share its training; those that also
share a prior and its options share the prior. A component whose checkpoint
already matches the config is loaded, not retrained, so that re-running an
interrupted run picks up where it stopped; every (encoder, training seed) pair
resumes on its own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from anytime_bench.contract.components import Bound
from anytime_bench.contract.context import Ledger, seed_everything
from anytime_bench.contract.distributed import gather_objects, weights_digest
from anytime_bench.engine.run import Run
from anytime_bench.engine.workers import JobSpec, run_jobs, training_threads, worker_count
from anytime_bench.errors import CheckpointError, ComponentError, NonFiniteLossError
from anytime_bench.files import archives, storage


def train_stage(run: Run) -> None:
    started = time.perf_counter()
    splits = run.data()
    run.ctx.log(f"dataset {run.cfg.run.dataset}: {len(splits.train)} train, {len(splits.test)} test, "
                f"shape {tuple(splits.data_shape)}")
    run.record.update(data=run.data_facts().recorded())
    jobs = [(encoder, seed, tokens) for encoder in run.encoders for seed in run.cfg.run.train_seed_list
            for tokens in run.members(encoder)]

    def record(encoder: str, train_seed: int, tokens: int | None, infos: dict[str, dict[str, Any]]) -> None:
        shape = run.shape_of(encoder)
        run.record.update(models={label: {"encoder": run.entry(label).encoder, "prior": run.entry(label).prior,
                                          "ordered": shape.ordered, "per_budget": shape.per_budget,
                                          "code_length": shape.code_length, "codebook_size": shape.codebook_size,
                                          "train_seeds": {_key(train_seed, tokens): info}}
                                  for label, info in infos.items()})

    workers = worker_count(run.cfg.run.workers, len(jobs), run.ctx.device, run.ctx.topology.world_size,
                           run.in_process_plugins())
    if workers == 1:
        with training_threads(run.ctx.device):  # as in a worker: the same weights on every try
            for encoder, train_seed, tokens in jobs:
                record(encoder, train_seed, tokens, _train_encoder(run, encoder, train_seed, tokens))
    else:
        run.ctx.log(f"training {len(jobs)} encoders and their priors in {workers} worker processes")
        with run.ctx.progress("training (encoders x training seeds)", len(jobs)) as task:
            def done(encoder: str, train_seed: int, tokens: int | None, infos: dict[str, dict[str, Any]]) -> None:
                seconds = max(_seconds(info, "encoder") + _seconds(info, "prior") for info in infos.values())
                run.ctx.log(f"trained {_label(encoder, train_seed, tokens)} in {seconds:.1f}s"
                            + _resumed_note(infos.values()))
                record(encoder, train_seed, tokens, infos)
                task.advance(model=encoder, seed=train_seed)

            run_jobs(JobSpec(run.cfg.to_dict(), str(run.paths.root), str(run.ctx.device), run.cfg.baseline), jobs, workers,
                     _train_encoder, done)
    run.record.update(stage_seconds={"train": round(time.perf_counter() - started, 3)}, status="trained",
                      train_workers=workers)


def _key(train_seed: int, tokens: int | None) -> str:
    """How the record names one trained model: its training seed, and a per-budget member's token count."""
    return str(train_seed) if tokens is None else f"{train_seed}-k{tokens}"


def _label(model: str, train_seed: int, tokens: int | None) -> str:
    return f"{model} (training seed {train_seed}" + ("" if tokens is None else f", {tokens} codes") + ")"


def _train_encoder(run: Run, name: str, train_seed: int, tokens: int | None = None) -> dict[str, dict[str, Any]]:
    """Train one encoder (or one member of a per-budget model) with one training seed, and every prior on its
    codes; what to record of each model entry that uses it (label -> its encoder's and its prior's statistics)."""
    splits = run.data()
    # Initial weights come from the global stream: seed it here, not wherever earlier work left it.
    seed_everything(train_seed)
    encoder = run.encoder(name, tokens=tokens)
    label = _label(name, train_seed, tokens)
    info = _fit_or_resume(run, name, train_seed, tokens, "encoder", encoder,
                          run.encoder_digest(name, train_seed, tokens),
                          lambda ctx: encoder.fit(splits.train, ctx, f"train encoder {label}"))
    info["code_length"] = encoder.code_length

    codes = encoder.encode_all(splits.train, f"encode training split for {label}")
    if run.writes:
        archives.write(run.paths.codes(name, train_seed, tokens), {"codes": codes.numpy().astype(np.int32)})
    info["codes_used"] = int(codes.unique().numel())

    by_slot: dict[str, dict[str, Any]] = {}
    for slot, entry in run.priors_of(name).items():
        # Every prior starts from the same seeded stream, whichever entries come before it.
        seed_everything(train_seed + 1)
        prior = run.prior(encoder, entry)
        what = f"prior {entry.prior}" + (f" ({entry.label})" if slot and entry.prior_options else "")
        by_slot[slot] = _fit_or_resume(run, name, train_seed, tokens, "prior", prior,
                                       run.prior_digest(entry, train_seed, tokens),
                                       lambda ctx, p=prior, w=what: p.fit(codes, ctx, f"train {w} for {label}"),
                                       slot)
        run.ctx.log(f"trained {label} with {what} (D={encoder.code_length}, K={encoder.codebook_size}, "
                    f"{info['codes_used']} codes used) in "
                    f"{_seconds(info, 'encoder') + _seconds(by_slot[slot], 'prior'):.1f}s")
    return {entry.label: {**info, **by_slot[run.slot(entry)]} for entry in run.entries_of(name)}


def _fit_or_resume(run: Run, name: str, train_seed: int, tokens: int | None, kind: str, bound: Bound, digest: str,
                   fit: Callable[[Any], dict[str, Any]], slot: str = "") -> dict[str, Any]:
    """Load ``bound`` from a checkpoint of the same config, or train it and save one; report what happened."""
    started = time.perf_counter()
    path = run.paths.checkpoint(name, train_seed, kind, tokens, slot)
    info: dict[str, Any] = {}
    if _try_resume(run, path, kind, name, digest, bound):
        info[f"{kind}_resumed"] = True
    else:
        seed_everything(train_seed if kind == "encoder" else train_seed + 1)
        ledger = Ledger()
        ctx = run.fit_context(name, train_seed, kind, digest, ledger, tokens, slot)
        try:
            with _keep_last_good(run, name, train_seed, tokens, kind, bound, slot):
                stats = fit(ctx)
        except ComponentError as exc:
            if not ledger.resumed:
                raise
            raise _after_resuming(exc, ledger) from exc
        if run.writes:
            storage.save_checkpoint(path, kind=kind, name=name, config_digest=digest,
                                    state=bound.saved_state(f"save {kind} checkpoint"))
            _remove_if_empty(ctx.checkpoints.folder, run.paths.inside("checkpoints", "partial"))
        info[f"{kind}_fit"] = stats
        if ledger.resumed:  # also said where a worker trained it, whose log lines are not shown
            info[f"{kind}_resumed_after"] = ledger.resumed
        if ctx.topology.world_size > 1:
            info[f"{kind}_ranks"] = _rank_records(run, bound, ledger)
    # A checkpoint reused keeps the training time recorded when it was trained (the record is merged key by key):
    # the seconds spent loading it go under a key of their own.
    info[f"{kind}_load_seconds" if info.get(f"{kind}_resumed") else f"{kind}_seconds"] = round(
        time.perf_counter() - started, 3)
    return info


def _resumed_note(infos: Any) -> str:
    """What of a job was not trained in this pass: checkpoints loaded, loops continued after a step."""
    said: dict[str, str] = {}
    for info in infos:
        for kind in ("encoder", "prior"):
            if info.get(f"{kind}_resumed"):
                said[kind] = f"{kind} loaded from its checkpoint"
            for loop, step in (info.get(f"{kind}_resumed_after") or {}).items():
                said[f"{kind} {loop}"] = f"{kind} loop {loop} resumed after step {step}"
    return f" ({'; '.join(said.values())})" if said else ""


def _seconds(info: dict[str, Any], kind: str) -> float:
    """What training ``kind`` took in this process (or loading it, when its checkpoint was reused)."""
    return info.get(f"{kind}_seconds", info.get(f"{kind}_load_seconds", 0.0))


def _remove_if_empty(folder: Path | None, partial: Path) -> None:
    """The mid-stage checkpoint folder of a finished loop, and the folders above it up to ``partial/`` when it was
    the last (the loops discard their files; an empty folder would read as a fit still in progress)."""
    path = folder
    while path is not None and (path == partial or partial in path.parents):
        if path.is_symlink() or not path.is_dir():
            return
        try:
            path.rmdir()  # only an empty folder goes
        except OSError:
            return
        path = path.parent


def _rank_records(run: Run, bound: Bound, ledger: Ledger) -> list[dict[str, Any]]:
    """What each torchrun process saw and ended with: different data, the same weights."""
    import torch

    module = bound.obj
    if isinstance(module, torch.nn.Module):
        # DDP broadcasts buffers (batch-norm statistics, code usage) from rank 0 before each forward; the last
        # forward's updates are rank 0's too. Parameters are compared as trained.
        for buffer in module.buffers():
            run.ctx.broadcast_(buffer)
    mine = {"rank": run.ctx.topology.rank, "items_seen": ledger.items_seen, "data_digest": ledger.digest,
            "weights_digest": weights_digest(bound.state_dict("digest weights"))}
    return gather_objects(mine)


@contextlib.contextmanager
def _keep_last_good(run: Run, name: str, train_seed: int, tokens: int | None, kind: str,
                    bound: Bound, slot: str = "") -> Iterator[None]:
    """On a NaN/inf loss, save the last good weights beside the checkpoints and say where."""
    try:
        yield
    except NonFiniteLossError as cause:
        path = run.paths.last_good(name, train_seed, kind, tokens, slot)
        if run.writes:
            storage.save_checkpoint(path, kind=kind, name=name, config_digest="last-good",
                                    state=bound.saved_state("save last good weights"),
                                    extra={"stage": cause.stage, "step": cause.step})
        kept = f"; the last good weights are in {path}" if run.writes else ""  # under torchrun rank 0 writes
        raise ComponentError(f"training {kind} {name!r} (training seed {train_seed}) stopped: {cause}{kept}") \
            from cause


def _after_resuming(exc: ComponentError, ledger: Ledger) -> ComponentError:
    """A fit that failed after continuing from a loop checkpoint: what the checkpoint held (a plugin's own loop
    values, say) may be the cause, which neither the core nor the plugin can tell; the message names the file."""
    loops = "; ".join(f"{loop.path} (after step {loop.restored_step})" for loop in ledger.resumed_loops)
    said = ComponentError(f"{exc}; it had resumed from {loops}: if that file came from elsewhere, remove it to train "
                          f"that loop from its start")
    if hasattr(exc, "component"):  # who is blamed stays who it was (run.py sets a model aside by it)
        said.component = exc.component  # type: ignore[attr-defined]
    return said


def _try_resume(run: Run, path, kind: str, model: str, digest: str, bound: Bound) -> bool:
    if not path.is_file():
        return False
    try:
        payload = storage.load_checkpoint(path, kind=kind, name=model, config_digest=digest)
    except CheckpointError as exc:
        run.ctx.warn(f"not resuming {kind} {model}: {exc}; training again")
        return False
    # A state of the right config that does not fit is refused rather than trained over: a failed load_state_dict
    # may have copied part of it, so training from here would not be the fresh training the config promises.
    try:
        bound.load_saved(payload["state"], path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; remove it to train it again") from None
    run.ctx.log(f"resumed {kind} {model} from {path}")
    return True
