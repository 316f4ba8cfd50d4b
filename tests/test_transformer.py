import pytest
import torch

from anytime_bench import RunContext
from anytime_bench_plugins.transformer import TransformerConfig, TransformerPrior


def tiny_prior(seq_len=8, vocab=11, **kw):
    cfg = TransformerConfig(n_layer=2, n_head=2, d_model=16, d_ff=32, dropout=0.0, steps=0, **kw)
    torch.manual_seed(0)
    return TransformerPrior(cfg, vocab, seq_len).eval()


VOCABULARIES = pytest.mark.parametrize("vocabulary", ["shared", "per-position"])


@VOCABULARIES
def test_cached_steps_match_the_full_forward_pass(vocabulary):
    prior = tiny_prior(vocabulary=vocabulary)
    codes = torch.randint(0, 11, (3, 8))
    inputs = prior.inputs(codes)
    full = prior(inputs)
    caches = prior.new_caches(3, torch.device("cpu"))
    steps = torch.cat([prior(inputs[:, t:t + 1], caches, start=t) for t in range(8)], dim=1)
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chunks", [[37], [3, 5, 29], [1, 17, 1, 18]])
def test_cached_chunks_of_several_codes_match_the_full_forward_pass(chunks):
    """A chunk after cached codes sees them and, within itself, only the codes before each (as a prompt would)."""
    prior = tiny_prior(seq_len=37, vocabulary="per-position")  # 37: three cache chunks, the last one partly used
    inputs = prior.inputs(torch.randint(0, 11, (3, 37)))
    caches, start, steps = prior.new_caches(3, torch.device("cpu")), 0, []
    for size in chunks:
        steps.append(prior(inputs[:, start:start + size], caches, start=start))
        start += size
    torch.testing.assert_close(torch.cat(steps, dim=1), prior(inputs), rtol=1e-4, atol=1e-5)


def test_cached_steps_never_read_the_cache_not_yet_written():
    """The cache's memory is not cleared when allocated: what a step reads beyond the keys written must not count."""
    prior = tiny_prior(seq_len=37)
    inputs = prior.inputs(torch.randint(0, 11, (2, 37)))
    caches = prior.new_caches(2, torch.device("cpu"))
    for cache in caches:
        cache["kv"].fill_(float("nan"))  # what reused memory may hold
    steps = torch.cat([prior(inputs[:, t:t + 1], caches, start=t) for t in range(37)], dim=1)
    torch.testing.assert_close(steps, prior(inputs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("vocabulary,code_vectors", [("shared", False), ("per-position", True)])
@pytest.mark.parametrize("options", [{}, {"temperature": 0.7, "top_k": 4}, {"top_p": 0.8}])
def test_cached_sampling_draws_the_codes_of_re_running_the_prefix(vocabulary, code_vectors, options):
    prior = tiny_prior(vocabulary=vocabulary, code_vectors=code_vectors)
    prior.use_code_vectors(torch.randn(8, 11, 4))
    with torch.no_grad():  # sharper than the initial weights' near-uniform logits, so draws depend on the values
        for weight in prior.parameters():
            weight.normal_(0.0, 0.5)
    cached, uncached = (torch.stack(list(prior.stream(24, 8, generator=torch.Generator().manual_seed(5),
                                                      use_cache=cache, **options)), 1) for cache in (True, False))
    assert torch.equal(cached, uncached)
    assert len(cached.unique()) > 3  # not a degenerate, constant sample


def test_streams_never_share_cache_room_and_one_stopped_early_gives_it_back():
    """The room for keys and values is reused across calls: never while a stream may still read it."""
    prior = tiny_prior(seq_len=37)
    with torch.no_grad():
        for weight in prior.parameters():
            weight.normal_(0.0, 0.5)
    def seeded(seed):
        return torch.Generator().manual_seed(seed)
    alone = [prior.sample(6, 37, generator=seeded(seed)) for seed in (1, 2)]
    together = list(zip(*(prior.stream(6, 37, generator=seeded(seed)) for seed in (1, 2)), strict=True))  # interleaved
    for i, codes in enumerate(alone):
        assert torch.equal(torch.stack([step[i] for step in together], 1), codes)
    early = prior.stream(6, 37, generator=seeded(3))
    next(early)
    early.close()
    assert torch.equal(prior.sample(6, 37, generator=seeded(1)), alone[0])
    assert not torch.equal(alone[0], alone[1])


def test_each_sampled_token_costs_one_single_token_step(monkeypatch):
    prior = tiny_prior()
    lengths = []
    original = prior.forward
    monkeypatch.setattr(prior, "forward", lambda tokens, *a, **k: (lengths.append(tokens.shape[1]),
                                                                    original(tokens, *a, **k))[1])
    prior.sample(4, 5, generator=torch.Generator().manual_seed(0))
    assert lengths == [1] * 5


def test_samples_are_in_range_and_reproducible():
    prior = tiny_prior()
    a = prior.sample(20, 8, generator=torch.Generator().manual_seed(3))
    b = prior.sample(20, 8, generator=torch.Generator().manual_seed(3))
    assert a.shape == (20, 8) and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < 11  # never the start token


@VOCABULARIES
def test_a_shorter_budget_samples_a_prefix_of_the_longer_one(vocabulary):
    prior = tiny_prior(vocabulary=vocabulary)
    full = prior.sample(16, 8, generator=torch.Generator().manual_seed(1))
    for k in (1, 3, 6):
        assert torch.equal(prior.sample(16, k, generator=torch.Generator().manual_seed(1)), full[:, :k])


def test_top_k_one_is_greedy():
    prior = tiny_prior()
    a = prior.sample(5, 8, generator=torch.Generator().manual_seed(0), top_k=1)
    b = prior.sample(5, 8, generator=torch.Generator().manual_seed(9), top_k=1)
    assert torch.equal(a, b)


def test_top_p_keeps_the_fewest_most_likely_codes_that_reach_it():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().repeat(4000, 1)
    gen = torch.Generator().manual_seed(0)
    for top_p, support in [(0.5, {0}), (0.75, {0, 1}), (0.8, {0, 1}), (0.81, {0, 1, 2}), (1.0, {0, 1, 2, 3})]:
        drawn = TransformerPrior._draw(logits, gen, 1.0, None, top_p)[:, 0]
        assert set(drawn.tolist()) == support, top_p
    kept = TransformerPrior._draw(logits, gen, 1.0, None, 0.8)[:, 0].float()
    assert abs(float((kept == 0).float().mean()) - 0.5 / 0.8) < 0.03  # renormalised within the nucleus


def test_top_p_near_zero_is_greedy_and_one_is_the_full_distribution():
    prior = tiny_prior()
    greedy = prior.sample(5, 8, generator=torch.Generator().manual_seed(0), top_k=1)
    assert torch.equal(prior.sample(5, 8, generator=torch.Generator().manual_seed(9), top_p=1e-6), greedy)
    assert torch.equal(prior.sample(5, 8, generator=torch.Generator().manual_seed(2), top_p=1.0),
                       prior.sample(5, 8, generator=torch.Generator().manual_seed(2)))


@VOCABULARIES
def test_fit_learns_a_deterministic_sequence_and_keeps_the_best_weights(vocabulary):
    codes = torch.arange(8).repeat(200, 1) % 11
    cfg = TransformerConfig(n_layer=1, n_head=2, d_model=16, d_ff=32, dropout=0.0, steps=300, lr=5e-3, warmup=10,
                            eval_every=25, vocabulary=vocabulary)
    torch.manual_seed(0)
    prior = TransformerPrior(cfg, 11, 8)
    stats = prior.fit(codes, RunContext(quiet=True))
    assert stats["val_loss"] < 0.1
    sample = prior.sample(10, 8, generator=torch.Generator().manual_seed(0))
    assert (sample == torch.arange(8)).float().mean() > 0.9


def test_a_per_position_vocabulary_embeds_each_code_once_per_position_and_never_predicts_the_start_token():
    prior = tiny_prior(vocabulary="per-position")
    assert prior.tok.num_embeddings == 8 * 11 + 1
    rows = prior._rows(torch.tensor([[11, 3, 3]]), torch.arange(3))
    assert rows.tolist() == [[8 * 11, 3, 11 + 3]]  # BOS; code 3 of position 0; code 3 of position 1
    logits = prior(prior.inputs(torch.randint(0, 11, (2, 8))))
    assert logits.shape == (2, 8, 11)
