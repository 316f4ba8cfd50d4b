import pytest
import torch

from anytime_bench import RunContext
from anytime_bench_plugins.vqvae import ChannelVQVAE, SpatialVQVAE, UnorderedChannelVQVAE, VQConfig


def tiny(**kw):
    base = dict(code_length=6, codebook_size=16, widths=[8, 16], downsample=1, steps=5, stage2_steps=5,
                batch_size=16)
    base.update(kw)
    return VQConfig(**base)


@pytest.mark.parametrize("cls", [ChannelVQVAE, UnorderedChannelVQVAE, SpatialVQVAE])
def test_codes_have_shape_B_by_D_and_any_prefix_decodes(cls):
    model = cls(tiny(), (1, 8, 8))
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    codes = model.encode(x)
    D = model.code_length
    assert codes.shape == (5, D) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < model.codebook_size
    for k in range(1, D + 1):
        out = model.decode(codes[:, :k])
        assert out.shape == x.shape and out.abs().max() <= 1
    with pytest.raises(ValueError):
        model.decode(codes[:, :0])


def test_channel_wise_quantization_uses_one_codebook_of_HW_vectors():
    model = ChannelVQVAE(tiny(), (1, 8, 8))
    assert model.code_length == 6  # D = channels
    assert model.codebook.weight.shape == (16, 4 * 4)  # K vectors of size H*W of the 4x4 maps
    z_e = torch.randn(2, 6, 4, 4)
    z_q, idx, _ = model.quantize(z_e)
    nearest = ((z_e.flatten(2)[..., None, :] - model.codebook.weight) ** 2).sum(-1).argmin(-1)
    assert torch.equal(idx.view(2, 6), nearest)
    assert torch.equal(z_q.flatten(2), model.codebook.weight[nearest])


def test_decoding_a_prefix_fills_the_tail_with_zeros():
    model = ChannelVQVAE(tiny(), (1, 8, 8)).eval()
    codes = torch.randint(0, 16, (3, 6))
    z = model.embed(codes[:, :2])
    assert torch.equal(z[:, 2:], torch.zeros_like(z[:, 2:]))
    assert torch.equal(z[:, :2].flatten(2), model.codebook.weight[codes[:, :2]])


def test_spatial_codes_are_the_grid_in_raster_order():
    model = SpatialVQVAE(tiny(embed_dim=4), (1, 8, 8)).eval()
    assert model.code_length == 16
    z = model.embed(torch.randint(0, 16, (2, 3)))
    flat = z.flatten(2)  # [B, E, positions]
    assert flat[:, :, 3:].abs().sum() == 0 and flat[:, :, :3].abs().sum() > 0


def test_nested_dropout_only_in_the_ordered_model(monkeypatch):
    seen = {}
    for cls in (ChannelVQVAE, UnorderedChannelVQVAE):
        model = cls(tiny(steps=0, stage2_steps=20), (1, 8, 8))
        keeps = []
        original = model.forward
        monkeypatch.setattr(model, "forward", lambda x, keep, original=original, keeps=keeps: (
            keeps.append(keep.tolist()), original(x, keep))[1])
        model.fit(torch.rand(64, 1, 8, 8) * 2 - 1, RunContext(quiet=True))
        seen[cls.name] = keeps
    assert {k for batch in seen["vqvae-channel"] for k in batch} == {6}
    per_batch = [set(batch) for batch in seen["ovqvae"]]
    assert all(len(ks) == 1 for ks in per_batch)  # the paper: one index per mini-batch
    values = [next(iter(ks)) for ks in per_batch]
    assert len(set(values)) > 2 and min(values) >= 1 and max(values) <= 6


@pytest.mark.parametrize("options,check", [
    (dict(truncation="example"), lambda ks: len(set(ks)) > 3),
    (dict(truncation="example", truncation_distribution="pow2"), lambda ks: set(ks) <= {1, 2, 4, 8, 12}),
    (dict(truncation="example", truncation_distribution="geometric", geometric_p=0.5),
     lambda ks: sum(k <= 3 for k in ks) > 0.7 * len(ks)),
    (dict(truncation="example", full_length_prob=0.5), lambda ks: 0.35 < sum(k == 12 for k in ks) / len(ks) < 0.75),
])
def test_truncation_options_draw_what_they_say(options, check):
    model = ChannelVQVAE(tiny(code_length=12, **options), (1, 8, 8))
    keeps = model.draw_keep(400, torch.Generator().manual_seed(0)).tolist()
    assert len(keeps) == 400 and min(keeps) >= 1 and max(keeps) <= 12 and check(keeps)


def test_a_learned_tail_is_trained_and_used_when_decoding_a_prefix():
    torch.manual_seed(0)
    data = torch.rand(64, 1, 8, 8) * 2 - 1
    model = ChannelVQVAE(tiny(steps=0, stage2_steps=30, tail_fill="learned"), (1, 8, 8))
    assert "tail" in model.state_dict() and float(model.tail.detach().abs().sum()) == 0
    model.fit(data, RunContext(quiet=True))
    assert float(model.tail.detach().abs().sum()) > 0  # trained
    codes = model.encode(data[:4])
    zeros = ChannelVQVAE(tiny(steps=0, stage2_steps=30), (1, 8, 8))
    zeros.load_state_dict({k: v for k, v in model.state_dict().items() if k != "tail"})
    assert not torch.allclose(model.decode(codes[:, :2]), zeros.decode(codes[:, :2]))  # the tail fills the prefix
    assert torch.allclose(model.decode(codes), zeros.decode(codes))  # nothing to fill at full length


def test_training_reduces_the_reconstruction_error():
    from anytime_bench_plugins.datasets import Digits, DigitsConfig

    torch.manual_seed(0)
    data = Digits(DigitsConfig()).load().train[:256]
    model = ChannelVQVAE(tiny(steps=80, stage2_steps=0), (1, 8, 8))
    before = torch.mean((model.decode(model.encode(data)) - data) ** 2)
    model.fit(data, RunContext(quiet=True))
    after = torch.mean((model.decode(model.encode(data)) - data) ** 2)
    assert after < before * 0.8


def test_same_seed_same_weights():
    data = torch.rand(64, 1, 8, 8) * 2 - 1
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = ChannelVQVAE(tiny(), (1, 8, 8))
        model.fit(data, RunContext(quiet=True, seed=1))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
