"""The n-gram baseline prior: it recovers what it counts, and samples from it as the Prior contract says."""

from pathlib import Path

import pytest
import torch

from anytime_bench import CheckpointError, RunContext
from anytime_bench.contract.components import BoundPrior
from anytime_bench_plugins.ngram import NGramConfig, NGramPrior

from .conftest import TINY, assert_clean_error, run_cli

K = 4
START = torch.tensor([0.4, 0.3, 0.2, 0.1])
# Position 1 tends to keep the code before it, position 2 to move one up: a wrong context or a table shared by the
# positions is far off (0.3 or more somewhere), further than sampling noise at N = 40000 (below 0.012 per entry).
STAY = torch.stack([torch.tensor([0.7, 0.1, 0.1, 0.1]).roll(c) for c in range(K)])
MOVE = torch.stack([torch.tensor([0.1, 0.6, 0.2, 0.1]).roll(c) for c in range(K)])
TOLERANCE = 0.04


def markov_codes(n: int, seed: int = 0) -> torch.Tensor:
    """``[n, 3]`` codes of a first-order Markov chain with its own transition matrix at each position."""
    g = torch.Generator().manual_seed(seed)
    first = torch.multinomial(START.expand(n, K), 1, generator=g)[:, 0]
    second = torch.multinomial(STAY[first], 1, generator=g)[:, 0]
    third = torch.multinomial(MOVE[second], 1, generator=g)[:, 0]
    return torch.stack([first, second, third], 1)


def fitted(codes: torch.Tensor, **options) -> tuple[NGramPrior, dict]:
    prior = NGramPrior(NGramConfig(**options), K, codes.shape[1])
    return prior, prior.fit(codes, RunContext(quiet=True))


def transitions(codes: torch.Tensor) -> torch.Tensor:
    """The observed ``[3, K, K]`` table: row ``[i, c]`` the frequencies of the code at position i after code c
    (position 0: the frequencies of the first code, repeated)."""
    first = torch.bincount(codes[:, 0], minlength=K).float()
    table = [(first / first.sum()).expand(K, K)]
    for i in (1, 2):
        pairs = torch.bincount(codes[:, i - 1] * K + codes[:, i], minlength=K * K).view(K, K).float()
        table.append(pairs / pairs.sum(1, keepdim=True))
    return torch.stack(table)


def test_a_bigram_recovers_the_transition_probabilities_of_each_position():
    prior, stats = fitted(markov_codes(40000), val_fraction=0.0)
    table = prior.distribution()
    assert table.shape == (3, K + 1, K)
    assert (table[0, K] - START).abs().max() < TOLERANCE  # the first position: its unigram, from the start row
    assert (table[1, :K] - STAY).abs().max() < TOLERANCE
    assert (table[2, :K] - MOVE).abs().max() < TOLERANCE
    # what a wrong estimator gives is outside that tolerance: the unigram of the same codes, or one shared table
    marginal = fitted(markov_codes(40000), order=1, val_fraction=0.0)[0].distribution()[1, 0]
    assert (marginal - STAY).abs().max() > 0.25 and (STAY - MOVE).abs().max() > 0.25
    assert stats["codes_counted"] == 40000 * 3 and "val_loss" not in stats


def test_the_held_out_loss_is_the_chains_entropy_per_code():
    def entropy(p):
        return float(-(p * p.log()).sum(-1))

    second = START @ STAY  # the distribution of the code at position 1
    per_code = (entropy(START) + float(START @ -(STAY * STAY.log()).sum(1))
                + float(second @ -(MOVE * MOVE.log()).sum(1))) / 3
    _, stats = fitted(markov_codes(40000), val_fraction=0.25)
    assert abs(stats["val_loss"] - per_code) < 0.02, (stats, per_code)
    assert stats["codes_counted"] == 30000 * 3
    _, unigram = fitted(markov_codes(40000), order=1, val_fraction=0.25)
    assert unigram["val_loss"] > per_code + 0.2  # context is worth something on this chain


def test_smoothing_adds_alpha_to_every_count_and_temperature_sharpens_the_smoothed_distribution():
    prior, stats = fitted(torch.tensor([[0, 1], [0, 1], [2, 1]]), smoothing=0.5, val_fraction=0.0)
    table = prior.distribution()
    assert torch.allclose(table[0, K], torch.tensor([2.5, 0.5, 1.5, 0.5]) / 5)  # (count + 0.5) / (3 + 4 * 0.5)
    assert torch.allclose(table[1, 0], torch.tensor([0.5, 2.5, 0.5, 0.5]) / 4)
    assert torch.allclose(table[1, 3], torch.full((K,), 0.25))  # never seen: uniform
    expected = -(2 * torch.tensor([2.5 / 5, 2.5 / 4]).log().sum() + torch.tensor([1.5 / 5, 1.5 / 3]).log().sum()) / 6
    assert abs(stats["train_loss"] - float(expected)) < 1e-5
    codes = torch.cat(list(prior.stream(40000, 1, generator=torch.Generator().manual_seed(0), temperature=0.5)))
    sharpened = table[0, K] ** 2 / (table[0, K] ** 2).sum()  # logits / 0.5: probabilities squared, renormalised
    assert (torch.bincount(codes, minlength=K) / 40000 - sharpened).abs().max() < 0.01


def test_a_bigram_samples_its_transitions():
    prior, _ = fitted(markov_codes(40000), val_fraction=0.0)
    drawn = prior.stream(40000, 3, generator=torch.Generator().manual_seed(1))
    codes = torch.stack(list(drawn), 1)
    assert codes.dtype == torch.int64 and codes.shape == (40000, 3)
    observed, table = transitions(codes), prior.distribution()
    assert (observed[0, 0] - table[0, K]).abs().max() < TOLERANCE
    assert (observed[1:] - table[1:, :K]).abs().max() < TOLERANCE
    assert (table[1:, :K] - torch.stack([STAY, MOVE])).abs().max() < TOLERANCE  # the chain's, not a wrong one


def test_a_unigram_ignores_the_code_before():
    first = torch.randint(0, 2, (4000,), generator=torch.Generator().manual_seed(0))
    copies = torch.stack([first, first], 1)  # the second code always repeats the first
    unigram, _ = fitted(copies, order=1)
    assert unigram.distribution().shape == (2, 1, K)
    codes = torch.stack(list(unigram.stream(4000, 2, generator=torch.Generator().manual_seed(0))), 1)
    assert 0.45 < float((codes[:, 0] == codes[:, 1]).float().mean()) < 0.55  # independent draws: half agree
    bigram, _ = fitted(copies, order=2)
    codes = torch.stack(list(bigram.stream(4000, 2, generator=torch.Generator().manual_seed(0))), 1)
    assert float((codes[:, 0] == codes[:, 1]).float().mean()) > 0.99


@pytest.mark.parametrize("order", [1, 2])
def test_top_k_one_draws_the_most_likely_code_at_each_position(order):
    prior, _ = fitted(markov_codes(2000), order=order)
    table, expected, context = prior.distribution(), [], prior.contexts - 1
    for i in range(3):
        expected.append(int(table[i, context].argmax()))
        context = expected[-1] if order == 2 else context
    if order == 2:
        assert expected == [0, 0, 1]  # the chain's most likely path: start at 0, stay, then move up
    for seed in (0, 9):
        codes = torch.stack(list(prior.stream(50, 3, generator=torch.Generator().manual_seed(seed), top_k=1)), 1)
        assert codes.tolist() == [expected] * 50


def test_one_seed_draws_the_same_codes_and_one_fit_the_same_counts():
    a, _ = fitted(markov_codes(500))
    b, _ = fitted(markov_codes(500))
    assert torch.equal(a.counts, b.counts)

    def draw(prior, seed):
        return torch.stack(list(prior.stream(64, 3, generator=torch.Generator().manual_seed(seed))), 1)

    assert torch.equal(draw(a, 3), draw(b, 3))
    assert not torch.equal(draw(a, 3), draw(a, 4))


@pytest.mark.parametrize("state,problem", [
    ({"counts": -torch.ones(3, K + 1, K)}, "counts must be finite and >= 0"),
    ({"counts": torch.full((3, K + 1, K), float("inf"))}, "counts must be finite and >= 0"),
    ({"counts": torch.ones(3, 1, K)}, "counts of shape (3, 1, 4), expected (3, 5, 4)"),
    ({"weights": torch.ones(3, K + 1, K)}, "expected the key 'counts'"),
])
def test_a_checkpoint_whose_counts_do_not_fit_is_refused(plugins, state, problem):
    bound = BoundPrior.build(plugins.get("prior", "ngram"), NGramConfig(), K, 3, torch.device("cpu"))
    with pytest.raises(CheckpointError, match="does not fit prior 'ngram'") as caught:
        bound.load_saved(state, Path("prior.pt"))
    assert problem in str(caught.value)


@pytest.mark.parametrize("setting,message", [("smoothing=-1", "prior.ngram.smoothing: must be a finite number > 0"),
                                             ("smoothing=nan", "prior.ngram.smoothing: expected a finite number"),
                                             ("order=3", "prior.ngram.order: must be 1 (unigram) or 2 (bigram)")])
def test_a_bad_option_is_one_line_and_exit_2(setting, message):
    result = run_cli("config", TINY, "--set", "run.prior=ngram", "--set", f"prior.ngram.{setting}")
    assert_clean_error(result, 2, message)
