"""Stage 2: draw samples from each prior at every budget, and reconstruct the test set.

At budget k the prior generates only its first k codes and the encoder decodes
that prefix. All budgets come from one progressive pass per seed, so the k-code
samples are prefixes of the full-length ones (exactly what separate truncated
runs with the same seed give) and budgets are compared sample for sample.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from anytime_bench.contract.conventions import tokens_for
from anytime_bench.engine.run import Run
from anytime_bench.engine.sampling import progressive
from anytime_bench.files import archives, storage
from anytime_bench.store.rundir import CODES, GENERATED, LOG_PROB, RECONSTRUCTED, archive_key

EXPORTED_PER_BUDGET = 4
"""Items per model and budget that a modality exports (audio clips, say), from the first training and sampling seed."""


def sample_stage(run: Run, sample_seeds: list[int] | None = None) -> None:
    started = time.perf_counter()
    cfg = run.cfg.run
    splits = run.data()
    modality = run.modality()
    info = run.data_facts().as_info()
    seeds = sample_seeds if sample_seeds is not None else cfg.sample_seed_list
    first_train = cfg.train_seed_list[0]
    for model in run.models:
        encoder = run.cfg.instance(model)
        D = run.shape_of(encoder).code_length
        budgets = [(b, tokens_for(b, D)) for b in run.budgets_of(encoder)]
        for train_seed in cfg.train_seed_list:
            per_seed: dict[int, dict[str, np.ndarray]] = {seed: {} for seed in seeds}
            for tokens in run.members(encoder):
                # An ordinary model serves every budget from prefixes of one pass; a per-budget model's member
                # serves its own budget at its full length.
                ks = sorted({k for _, k in budgets}) if tokens is None else [tokens]
                _sample_member(run, model, train_seed, tokens, ks, seeds, per_seed)
            for seed in seeds:
                archives.write(run.paths.samples(model, train_seed, seed), per_seed[seed])
            if modality.exports and train_seed == first_train:
                for budget, k in budgets:
                    for i, item in enumerate(per_seed[seeds[0]][archive_key(GENERATED, k)][:EXPORTED_PER_BUDGET]):
                        exported = modality.export(item, info)
                        if exported:
                            storage.write_bytes(run.paths.export(modality.name, model, budget, k, i, exported[0]),
                                                exported[2])
    if modality.exports:
        for i, item in enumerate(modality.to_stored(splits.test[:EXPORTED_PER_BUDGET])):
            exported = modality.export(item, info)
            if exported:
                storage.write_bytes(run.paths.export_real(modality.name, i, exported[0]), exported[2])
    run.record.update(stage_seconds={run.seconds_key("sample"): round(time.perf_counter() - started, 3)}, status="sampled",
                      data=info)


def _sample_member(run: Run, model: str, train_seed: int, tokens: int | None, ks: list[int], seeds: list[int],
                   per_seed: dict[int, dict[str, np.ndarray]]) -> None:
    """Generated samples, test reconstructions and codes at every ``k`` in ``ks`` of one trained model."""
    cfg, modality, splits = run.cfg.run, run.modality(), run.data()
    entry = run.entry(model)
    encoder, prior = run.load_trained(model, train_seed, tokens)
    test_codes = encoder.encode_all(splits.test, f"encode test split for {model}")
    reconstructed = {k: modality.to_stored(encoder.decode_all(test_codes[:, :k], f"decode {k} codes")) for k in ks}
    label = f"{model} (training seed {train_seed}" + ("" if tokens is None else f", {tokens} codes") + ")"
    # What metrics of likelihoods score: a prefix's log-probabilities are the first columns of the longest one's.
    # (The preflight refused a prior without log_prob when such a metric was asked for.)
    log_prob = (prior.log_prob_all(test_codes[:, :max(ks)], f"score the test codes of {label}").numpy()
                if run.scores_likelihood else None)
    for seed in seeds:
        # One pass: the codes at every budget are prefixes of the same sequences.
        prefixes = progressive(prior, cfg.num_samples, ks, generator=torch.Generator().manual_seed(seed),
                               **entry.sampling, stage=f"sample {label}")
        with run.ctx.progress(f"decoding {label}, sampling seed {seed}", len(ks)) as task:
            for k in ks:
                per_seed[seed][archive_key(GENERATED, k)] = modality.to_stored(
                    encoder.decode_all(prefixes[k], f"decode {k} codes"))
                per_seed[seed][archive_key(RECONSTRUCTED, k)] = reconstructed[k]
                per_seed[seed][archive_key(CODES, k)] = prefixes[k].numpy().astype(np.int32)
                if log_prob is not None:
                    per_seed[seed][archive_key(LOG_PROB, k)] = np.ascontiguousarray(log_prob[:, :k])
                task.advance(tokens=k)


def deadline_stage(run: Run, deadline: float, n: int, sample_seed: int) -> list[str]:
    """Anytime sampling against a wall-clock deadline: whatever prefix is reached, decoded and saved."""
    from anytime_bench.engine.sampling import sample

    cfg = run.cfg.run
    modality = run.modality()
    train_seed = cfg.train_seed_list[0]
    lines = []
    for model in run.models:
        if run.shape_of(run.cfg.instance(model)).per_budget:
            lines.append(f"{model}: a per-budget model has no anytime sampling (each member samples its own length)")
            continue
        encoder, prior = run.load_trained(model, train_seed)
        result = sample(prior, encoder, n, generator=torch.Generator().manual_seed(sample_seed), deadline=deadline,
                        **run.entry(model).sampling)
        path = run.paths.deadline_samples(model, train_seed, sample_seed, deadline)
        archives.write(path, {"data": modality.to_stored(result.data), "codes": result.codes.numpy().astype(np.int32),
                              "tokens": np.int32(result.tokens)})
        lines.append(f"{model}: {result.tokens}/{encoder.code_length} tokens in {result.sampling_seconds:.3f}s "
                     f"(stopped by {result.stopped_by}), decoded in {result.decode_seconds:.3f}s -> {path}")
    return lines
