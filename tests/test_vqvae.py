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
        monkeypatch.setattr(model, "forward", lambda x, keep, original=original, keeps=keeps: (keeps.append(keep),
                                                                                              original(x, keep))[1])
        model.fit(torch.rand(64, 1, 8, 8) * 2 - 1, RunContext(quiet=True))
        seen[cls.name] = keeps
    assert set(seen["vqvae-channel"]) == {6}
    assert len(set(seen["ovqvae"])) > 2 and min(seen["ovqvae"]) >= 1 and max(seen["ovqvae"]) <= 6


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
