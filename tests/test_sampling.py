"""The anytime sampling API: budgets, deadlines, stop signals and progressive decoding."""


import pytest
import torch

from anytime_bench import sampling  # the public name of anytime_bench.engine.sampling's functions
from anytime_bench_plugins.transformer import TransformerConfig, TransformerPrior
from anytime_bench_plugins.vqvae import ChannelVQVAE, VQConfig

D = 12


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    encoder = ChannelVQVAE(VQConfig(code_length=D, codebook_size=16, widths=[8, 16]), (1, 8, 8)).eval()
    prior = TransformerPrior(TransformerConfig(n_layer=1, n_head=2, d_model=16, d_ff=32, dropout=0.0,
                                               sample_batch_size=7), 16, D).eval()
    return prior, encoder


def test_a_budget_or_tokens_generate_exactly_k_tokens(models):
    prior, encoder = models
    result = sampling.sample(prior, encoder, 10, tokens=5, generator=torch.Generator().manual_seed(0))
    assert result.tokens == 5 and result.codes.shape == (10, 5) and result.stopped_by == "budget"
    assert result.data.shape == (10, 1, 8, 8)
    # a budget is a fraction of the code length, as a run's budgets are
    fraction = sampling.sample(prior, encoder, 10, budget=0.5, generator=torch.Generator().manual_seed(0))
    assert fraction.tokens == D // 2 and fraction.stopped_by == "budget"
    import numpy as np  # numbers of numpy's own types are numbers

    assert sampling.sample(prior, encoder, 2, budget=np.float32(0.5), generator=torch.Generator()).tokens == D // 2
    assert sampling.sample(prior, encoder, 2, tokens=np.int64(3), generator=torch.Generator()).tokens == 3
    for wrong, message in [(dict(budget=5), "budget is a fraction k/D of the code length, a float in \\(0, 1\\], got 5"),
                           (dict(budget=1), "got 1 \\(tokens=k samples k of the"),
                           (dict(budget=np.int64(1)), "got np.int64\\(1\\)"),
                           (dict(budget=1.5), "got 1.5"),
                           (dict(tokens=D + 1), f"tokens must be an integer in 1..{D}, got {D + 1}"),
                           (dict(tokens=0.5), "got 0.5"),
                           (dict(budget=0.5, tokens=2), "not both")]:
        with pytest.raises(ValueError, match=message):
            sampling.sample(prior, encoder, 2, generator=torch.Generator().manual_seed(0), **wrong)


def test_deadline_returns_complete_decodable_samples_and_the_tokens_reached(models, monkeypatch):
    prior, encoder = models
    clock = iter(range(1000))  # a fake clock: each reading is one second later
    from anytime_bench.engine import sampling as engine_sampling  # where the clock is read

    monkeypatch.setattr(engine_sampling.time, "perf_counter", lambda: float(next(clock)))
    result = sampling.sample(prior, encoder, 6, deadline=3.0, generator=torch.Generator().manual_seed(0))
    assert result.stopped_by == "deadline"
    assert 1 <= result.tokens < D and result.codes.shape == (6, result.tokens)
    assert result.data.shape == (6, 1, 8, 8) and torch.isfinite(result.data).all()
    assert torch.equal(result.data, encoder.decode(result.codes))


def test_a_real_deadline_stops_early():
    torch.manual_seed(0)
    prior = TransformerPrior(TransformerConfig(n_layer=2, d_model=64, n_head=4, d_ff=128), 16, 256).eval()
    encoder = ChannelVQVAE(VQConfig(code_length=256, codebook_size=16, widths=[8, 16]), (1, 8, 8)).eval()
    result = sampling.sample(prior, encoder, 50, deadline=0.05, generator=torch.Generator().manual_seed(0))
    assert result.stopped_by == "deadline" and 1 <= result.tokens < 256  # it did not run to the end blindly


def test_stop_signal_interrupts_within_one_token_step(models):
    prior, encoder = models
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] >= 4  # the signal is raised while the 4th token is being generated

    result = sampling.sample(prior, encoder, 5, stop=stop, generator=torch.Generator().manual_seed(0))
    assert result.stopped_by == "stop" and result.tokens == 4
    assert result.data.shape == (5, 1, 8, 8)


def test_progressive_decoding_equals_separate_truncated_sampling(models):
    prior, _ = models
    checkpoints = [2, 5, 9, D]
    one_pass = sampling.progressive(prior, 20, checkpoints, generator=torch.Generator().manual_seed(4))
    for k in checkpoints:
        separate = prior.sample(20, k, generator=torch.Generator().manual_seed(4))
        assert torch.equal(one_pass[k], separate)


def test_cache_and_no_cache_draw_the_same_codes(models):
    prior, _ = models
    cached = torch.stack(list(prior.stream(9, D, generator=torch.Generator().manual_seed(2))), 1)
    uncached = torch.stack(list(prior.stream(9, D, generator=torch.Generator().manual_seed(2), use_cache=False)), 1)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_multinomial_draw_is_torch_multinomial_from_the_same_generator_state(dtype):
    """draw_codes' race draws what torch.multinomial draws, and leaves the generator where torch leaves it."""
    from anytime_bench.contract.conventions import multinomial_draw

    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(4000, 37, dtype=dtype) * 3, dim=-1)
    probs[::3, 20:] = 0.0  # rows cut by top-k or top-p
    probs[1::5] = 1.0 / 37  # ties everywhere
    ours, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(3):
        assert torch.equal(multinomial_draw(probs, ours), torch.multinomial(probs, 1, generator=theirs))
    assert torch.equal(ours.get_state(), theirs.get_state())
    probs[3, 2] = float("nan")
    with pytest.raises(RuntimeError, match="nan"):
        multinomial_draw(probs, ours)


def test_sampling_is_imported_by_its_public_name_as_the_package_attribute_names_it():
    import importlib

    import anytime_bench

    module = importlib.import_module("anytime_bench.sampling")  # `from anytime_bench.sampling import sample`
    assert module is anytime_bench.sampling is sampling
    assert all(hasattr(module, name) for name in module.__all__)
