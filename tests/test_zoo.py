"""The method zoo: residual VQ with quantizer dropout, the 1-D tail-drop tokenizer, and per-budget oracles."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from anytime_bench import ConfigError, RunContext
from anytime_bench_plugins.datasets import Digits, DigitsConfig
from anytime_bench_plugins.rvq import EMACodebook, ResidualVQ, ResidualVQOracle, RVQConfig, RVQOracleConfig
from anytime_bench_plugins.tail_drop import FSQ, TailDropConfig, TailDropOracle, TailDropOracleConfig, TailDropTokenizer
from anytime_bench_plugins.vqvae import Oracle, OracleConfig

from .conftest import TINY, run_cli


@pytest.fixture(scope="module")
def digits():
    return Digits(DigitsConfig()).load()


def quick_bench(run, synthetic_length: int) -> None:
    """``bench`` on a finished run at its smallest (one batch size, one repeat): every model must get through."""
    bench = run_cli("bench", run, "--batch-sizes", "2", "--repeats", "1", "--min-seconds", "0",
                    "--synthetic-length", str(synthetic_length), "--quiet")
    assert bench.code == 0, bench.err


def prefix_errors(model, data) -> list[float]:
    codes = model.encode(data)
    return [float(((model.decode(codes[:, :k]) - data) ** 2).mean()) for k in range(1, model.code_length + 1)]


def test_residual_vq_is_coarse_to_fine(digits):
    torch.manual_seed(0)
    model = ResidualVQ(RVQConfig(code_length=6, codebook_size=32, steps=250, batch_size=64), digits.data_shape)
    stats = model.fit(digits.train, RunContext(quiet=True))
    errors = prefix_errors(model, digits.test[:200])
    assert errors[-1] < errors[0] * 0.7, errors  # later stages add detail
    assert sum(b <= a * 1.02 for a, b in zip(errors, errors[1:], strict=False)) >= 4, errors  # mostly monotone
    assert stats["codes_alive_min"] >= 8
    with torch.no_grad():
        z = model.encoder(digits.test[:200]).flatten(1)
        codes = model.encode(digits.test[:200])
        vectors = [model.codebooks[i].weight[codes[:, i]] for i in range(model.code_length)]
        latent = [float(((sum(vectors[:k]) - z) ** 2).sum(1).mean()) for k in range(1, model.code_length + 1)]
    assert all(b < a for a, b in zip(latent, latent[1:], strict=False)), latent  # no stage undoes the earlier ones


def test_rvq_code_vectors_are_what_a_prefix_decodes_from(digits):
    model = ResidualVQ(RVQConfig(code_length=4, codebook_size=16, widths=[4, 8]), digits.data_shape)
    model.eval()
    codes = model.encode(digits.test[:16])
    vectors = model.code_vectors()
    assert vectors.shape == (4, 16, 4 * 4 * 4)  # stages, codes, the 4 x 4 x 4 latent map
    for k in (1, 3):
        latent = sum(vectors[i, codes[:, i]] for i in range(k)).view(16, 4, 4, 4)
        with torch.no_grad():
            assert torch.allclose(model.decode(codes[:, :k]), model.decoder(latent))


def test_rvq_budget_film_starts_as_the_plain_decoder_and_learns_one_modulation_per_depth(digits):
    torch.manual_seed(0)
    config = RVQConfig(code_length=4, codebook_size=16, widths=[4, 8], steps=40, batch_size=32, budget_film=True)
    model = ResidualVQ(config, digits.data_shape)
    assert {key: film.scale.shape for key, film in model.films.items()} == {"1": (4, 8), "4": (4, 4)}
    model.eval()
    codes = model.encode(digits.test[:16])
    with torch.no_grad():
        latent = sum(model.code_vectors()[i, codes[:, i]] for i in range(2)).view(16, 4, 4, 4)
        assert torch.allclose(model.decode(codes[:, :2]), model.decoder(latent))  # scale 1, shift 0: no change yet
    model.fit(digits.train, RunContext(quiet=True))
    with torch.no_grad():
        latent = sum(model.code_vectors()[i, codes[:, i]] for i in range(2)).view(16, 4, 4, 4)
        told = [model.decode_latent(latent, torch.full((16,), d)) for d in (2, 4)]
        assert torch.allclose(model.decode(codes[:, :2]), told[0])  # a prefix of 2 codes is decoded as depth 2
        assert not torch.allclose(told[0], told[1], atol=1e-4)  # the depth it is told changes the image
    for film in model.films.values():  # every depth was drawn, so every row learned
        assert bool(((film.scale - 1).abs().sum(1) > 0).all()) and bool((film.shift.abs().sum(1) > 0).all())


@pytest.mark.parametrize("recon_loss,pixel", [("mse", F.mse_loss), ("l1", F.l1_loss)])
def test_rvq_reconstruction_loss_is_the_pixel_loss_it_names(digits, recon_loss, pixel):
    torch.manual_seed(0)
    model = ResidualVQ(RVQConfig(code_length=4, codebook_size=16, widths=[4, 8], recon_loss=recon_loss),
                       digits.data_shape).eval()
    x, depth = digits.test[:16], torch.full((16,), 3)
    _, recon, _, codes = model(x, depth)
    with torch.no_grad():
        latent = sum(model.code_vectors()[i, codes[i]] for i in range(3)).view(16, 4, 4, 4)
        expected = pixel(model.decoder(latent), x)
    assert torch.allclose(recon, expected, atol=1e-6), (recon, expected)
    assert not torch.allclose(recon, (F.l1_loss if pixel is F.mse_loss else F.mse_loss)(model.decoder(latent), x))


def test_ema_codebook_codes_become_the_means_of_the_vectors_assigned_to_them():
    book = EMACodebook(2, 2, decay=0.5)
    vectors = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 10.0], [0.0, 12.0]])
    idx = torch.tensor([0, 0, 1, 1])
    for _ in range(40):
        book.update(vectors, idx, RunContext(quiet=True))
    assert torch.allclose(book.weight, torch.tensor([[2.0, 0.0], [0.0, 11.0]]), atol=1e-3), book.weight
    assert not book.weight.requires_grad  # updated outside autograd, never by the optimizer


def test_quantizer_dropout_truncates_the_share_it_says():
    model = ResidualVQ(RVQConfig(code_length=8, quantizer_dropout=0.5), (1, 8, 8))
    depth = model.draw_depth(4000, torch.Generator().manual_seed(0))
    full = float((depth == 8).float().mean())
    assert 0.5 < full < 0.62  # 0.5 never dropped + 0.5 / 8 drawn at full depth
    assert int(depth.min()) == 1


def test_log_uniform_depths_draw_each_doubling_about_as_often():
    config = RVQConfig(code_length=32, quantizer_dropout=1.0, depth_distribution="log-uniform")
    depth = ResidualVQ(config, (1, 8, 8)).draw_depth(20000, torch.Generator().manual_seed(0))
    assert int(depth.min()) == 1 and int(depth.max()) == 32
    harmonic = sum(1 / k for k in range(1, 33))
    for lo, hi in ((1, 1), (2, 3), (4, 7), (8, 15), (16, 32)):
        share = float(((depth >= lo) & (depth <= hi)).float().mean())
        expected = sum(1 / k for k in range(lo, hi + 1)) / harmonic
        assert abs(share - expected) < 0.015, (lo, hi, share, expected)
    uniform = ResidualVQ(RVQConfig(code_length=32, quantizer_dropout=1.0), (1, 8, 8))
    assert float((uniform.draw_depth(20000, torch.Generator().manual_seed(0)) <= 6).float().mean()) < 0.21


def test_fsq_codes_round_trip():
    fsq = FSQ([8, 5, 4])
    values, codes = fsq(torch.randn(500, 3) * 2)
    assert fsq.size == 160 and int(codes.min()) >= 0 and int(codes.max()) < 160
    assert torch.allclose(fsq.values(codes), values)


def test_tail_drop_tokenizer_orders_its_tokens(digits):
    torch.manual_seed(0)
    config = TailDropConfig(code_length=8, width=32, heads=2, encoder_layers=1, decoder_layers=1, steps=250,
                            batch_size=64)
    model = TailDropTokenizer(config, digits.data_shape)
    model.fit(digits.train, RunContext(quiet=True))
    errors = prefix_errors(model, digits.test[:200])
    assert errors[-1] < errors[0], errors
    assert model.codebook_size == 128


def test_tail_drop_with_a_conv_stem_and_pixel_decoder_reads_and_paints_the_patch_grid():
    torch.manual_seed(0)
    config = TailDropConfig(code_length=6, levels=[3, 3], patch=4, width=16, heads=2, encoder_layers=1,
                            decoder_layers=1, stem="conv", pixel_decoder="conv", conv_widths=[4, 8])
    config.validate()
    model = TailDropTokenizer(config, (1, 8, 8))
    assert not hasattr(model, "embed_patch") and not hasattr(model, "to_patch")
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    codes = model.encode(x)
    assert codes.shape == (5, 6) and int(codes.max()) < 9
    for k in (1, 3, 6):
        out = model.decode(codes[:, :k])
        assert out.shape == (5, 1, 8, 8) and float(out.abs().max()) <= 1.0
    # the tail is the mask token whatever the dropped codes were: a prefix decodes as any code with that prefix
    other = torch.cat([codes[:, :3], (codes[:, 3:] + 1) % 9], dim=1)
    keep = torch.full((5,), 3)
    assert torch.allclose(model._decode(model.fsq.values(codes), keep), model._decode(model.fsq.values(other), keep))


def test_tail_drop_token_grid_starts_as_the_plain_decoder_and_learns_to_use_the_tokens(digits):
    """The linear map of the D tokens to the patch grid starts at zero (the plain decoder's output, checkpoints
    without it unchanged), and trained, it orders the tokens as the plain decoder does."""
    torch.manual_seed(0)
    options = dict(code_length=8, width=32, heads=2, encoder_layers=1, decoder_layers=1, steps=250, batch_size=64)
    plain = TailDropTokenizer(TailDropConfig(**options), digits.data_shape)
    model = TailDropTokenizer(TailDropConfig(**options, token_grid=True), digits.data_shape)
    missing = model.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["token_grid.bias", "token_grid.weight"]
    codes = plain.encode(digits.test[:16])
    for k in (1, 4, 8):
        assert torch.equal(model.decode(codes[:, :k]), plain.decode(codes[:, :k]))
    model.fit(digits.train, RunContext(quiet=True))
    assert model.token_grid.weight.abs().sum() > 0
    errors = prefix_errors(model, digits.test[:200])
    assert errors[-1] < errors[0], errors


@pytest.mark.parametrize("attention, earlier_tokens_move", [("causal", False), ("full", True)])
def test_causal_registers_are_computed_from_the_patches_and_the_tokens_before_them(attention, earlier_tokens_move):
    """FlexTok's causal register mask: a token is not computed from the tokens after it, which a prefix drops."""
    torch.manual_seed(0)
    config = TailDropConfig(code_length=4, width=16, heads=2, register_attention=attention)
    model = TailDropTokenizer(config, (1, 8, 8)).eval()
    outputs = []
    model.to_code.register_forward_hook(lambda module, args, out: outputs.append(out.detach().clone()))
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        model._encode(x)
        model.latents[-1] += torch.randn(config.width)  # the last latent token's learned input (not a constant: layer norm)
        model._encode(x)
    before, after = outputs
    assert not torch.allclose(before[:, -1], after[:, -1])
    assert torch.allclose(before[:, :-1], after[:, :-1]) is not earlier_tokens_move


@pytest.mark.parametrize("options, field", [
    (dict(patch=3, stem="conv", conv_widths=[4]), "patch"),
    (dict(patch=4, pixel_decoder="conv", conv_widths=[4]), "conv_widths"),
    (dict(patch=4, stem="conv", conv_widths=[4, 0]), "conv_widths"),
    # group normalization splits a layer of more than 8 channels into 8 groups: 12 or 20 failed when building
    (dict(patch=2, pixel_decoder="conv", conv_widths=[12]), "conv_widths"),
    (dict(patch=4, stem="conv", conv_widths=[8, 20]), "conv_widths"),
    (dict(patch=0), "patch"),
    (dict(levels=[2] * 64), "levels"),  # 2**64 codes overflowed the int64 codes into negative ones
])
def test_tail_drop_refuses_conv_layers_that_do_not_fit_its_patches(options, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        TailDropConfig(**options).validate()


def test_tail_drop_patches_that_do_not_tile_the_images_are_bad_input_told_before_any_training(tmp_path):
    from .conftest import assert_clean_error

    for patch, stem in ((3, "linear"), (16, "conv")):  # digits are 8x8
        result = run_cli("run", TINY, "--encoders", "ovqvae,tail-drop", "--metrics", "mse", "--out", tmp_path,
                         "--run-id", f"p{patch}", "--set", f"encoder.tail-drop.patch={patch}",
                         "--set", f"encoder.tail-drop.stem={stem}", "--set", "encoder.tail-drop.conv_widths=[4,4,4,4]",
                         "--quiet")
        assert_clean_error(result, 2, f"encoder.tail-drop.patch: {patch} does not divide", "8x8")
        assert not list(tmp_path.glob(f"p{patch}/checkpoints/**/*.pt"))  # ovqvae, before it, was not trained



@pytest.mark.parametrize("encoder,options,message", [
    ("ovqvae", ["encoder.ovqvae.widths=[4,4,4,4]", "encoder.ovqvae.downsample=4"],
     "encoder.ovqvae.downsample: data of shape (1, 8, 8) cannot be downsampled by 16"),
    ("rvq", ["encoder.rvq.widths=[4,4,4,4]", "encoder.rvq.downsample=4"],
     "encoder.rvq.downsample: data of shape (1, 8, 8) cannot be downsampled by 16"),
    ("ovqvae-1d", [], "encoder ovqvae-1d expects waveforms [C, T], got data of shape (1, 8, 8)"),
    ("rvq-1d", [], "encoder rvq-1d expects data of 2 dimensions"),
    ("ovqvae-spec", [], "encoder ovqvae-spec expects mono waveforms [1, T]"),
])
def test_encoders_whose_layers_do_not_fit_the_data_are_bad_input_told_before_any_training(tmp_path, encoder,
                                                                                           options, message):
    from .conftest import assert_clean_error

    sets = [a for option in options for a in ("--set", option)]
    result = run_cli("run", TINY, "--encoders", encoder, "--metrics", "mse", "--out", tmp_path, "--run-id", "r",
                     *sets, "--quiet")
    assert_clean_error(result, 2, message)
    assert not list(tmp_path.glob("r/checkpoints/**/*.pt"))

def test_oracle_members_have_exactly_the_budgets_codes():
    config = OracleConfig(code_length=16, codebook_size=16, widths=[4, 8], budgets=[0.25, 0.5])
    reference = Oracle(config, (1, 8, 8))
    assert reference.code_length == 16 and reference.covered_budgets([0.125, 0.25, 0.5, 1.0]) == [0.25, 0.5]
    assert Oracle(config, (1, 8, 8), tokens=4).code_length == 4
    assert Oracle(OracleConfig(code_length=16), (1, 8, 8)).covered_budgets([0.5, 1.0]) == [0.5, 1.0]


def test_rvq_oracle_members_have_the_budgets_stages_and_no_quantizer_dropout():
    config = RVQOracleConfig(code_length=16, codebook_size=8, widths=[4, 8], budgets=[0.25])
    assert ResidualVQOracle(config, (1, 8, 8)).covered_budgets([0.25, 0.5, 1.0]) == [0.25]
    member = ResidualVQOracle(config, (1, 8, 8), tokens=4)
    assert member.code_length == 4 and len(member.codebooks) == 4
    assert bool((member.draw_depth(500, torch.Generator().manual_seed(0)) == 4).all())  # trained at its depth only
    assert RVQConfig().quantizer_dropout > 0 and not ResidualVQOracle.ordered and ResidualVQOracle.per_budget


def test_tail_drop_oracle_members_have_the_budgets_tokens_and_no_tail_drop():
    config = TailDropOracleConfig(code_length=8, levels=[3, 3], width=16, heads=2, budgets=[0.5])
    assert TailDropOracle(config, (1, 8, 8)).covered_budgets([0.25, 0.5, 1.0]) == [0.5]
    member = TailDropOracle(config, (1, 8, 8), tokens=4)
    assert member.code_length == 4 and member.latents.shape[0] == 4
    assert bool((member.draw_keep(500, torch.Generator().manual_seed(0)) == 4).all())  # trained at its length only
    assert TailDropConfig().full_length_prob < 1 and not TailDropOracle.ordered and TailDropOracle.per_budget
    codes = member.encode(torch.rand(3, 1, 8, 8) * 2 - 1)
    assert codes.shape == (3, 4) and member.decode(codes).shape == (3, 1, 8, 8)


def test_a_run_with_an_oracle_reports_the_price_of_anytime(tmp_path, shared_cache):
    result = run_cli("run", TINY, "--encoders", "ovqvae,oracle,rvq-oracle", "--metrics", "fid,mse", "--out", tmp_path,
                     "--run-id", "o", "--cache-dir", shared_cache, "--set", "encoder.oracle.budgets=[0.25,1.0]",
                     "--set", "encoder.oracle.widths=[8,16]", "--set", "encoder.oracle.steps=20",
                     "--set", "encoder.oracle.stage2_steps=20", "--set", "encoder.rvq-oracle.budgets=[0.25]",
                     "--set", "encoder.rvq-oracle.widths=[4,8]", "--set", "encoder.rvq-oracle.steps=20", "--quiet")
    assert result.code == 0, result.err
    run = tmp_path / "o"
    metrics = pd.read_csv(run / "metrics.csv")
    oracle = metrics[metrics.model == "oracle"]
    assert sorted(oracle.budget.unique()) == [0.25, 1.0] and oracle.per_budget.all() and not oracle.ordered.any()
    assert sorted(oracle.tokens.unique()) == [4, 16]
    assert (run / "checkpoints" / "oracle" / "train0-k4.encoder.pt").is_file()
    summary = (run / "summary.md").read_text()
    assert "## The price of anytime: fid, ordered over per-budget oracle" in summary
    assert "| ovqvae / oracle |" in summary and "oracle (per-budget oracle)" in summary
    assert "| ovqvae / rvq-oracle |" in summary and sorted(metrics[metrics.model == "rvq-oracle"].tokens.unique()) == [4]
    scores = summary.split("## Anytime scores", 1)[1]
    # the oracle of 0.25 alone: a score over that budget, and no full-budget value to set it against
    assert "| fid | rvq-oracle (per-budget oracle) |" in scores
    row = next(line for line in scores.splitlines() if line.startswith("| fid | rvq-oracle"))
    assert "(budgets 0.25) | - |" in row, row
    row = next(line for line in scores.splitlines() if line.startswith("| fid | oracle"))
    assert "(budgets" not in row and "| - |" not in row, row  # 0.25 and 1: the run's range
    quick_bench(run, synthetic_length=0)
    cost = pd.read_csv(run / "cost.csv")
    assert sorted(cost[cost.model == "oracle"].tokens.unique()) == [4, 16]


def test_a_prior_reads_rvq_codes_as_vectors_and_refuses_an_encoder_without_them(tmp_path, shared_cache):
    flags = ("--set", "prior.transformer.code_vectors=true", "--set", "prior.transformer.vocabulary=per-position",
             "--metrics", "fid", "--out", tmp_path, "--cache-dir", shared_cache, "--quiet")
    refused = run_cli("run", TINY, "--encoders", "rvq,ovqvae", "--run-id", "no", *flags)
    assert refused.code == 2 and len(refused.err.strip().splitlines()) == 1, refused.err
    assert "prior.transformer.code_vectors" in refused.err and "'ovqvae'" in refused.err
    assert not (tmp_path / "no").exists()  # refused before any training
    result = run_cli("run", TINY, "--encoders", "rvq", "--run-id", "yes", *flags)
    assert result.code == 0, result.err
    run = tmp_path / "yes"
    prior = torch.load(run / "checkpoints" / "rvq" / "train0.prior.pt", weights_only=True)["state"]
    encoder = torch.load(run / "checkpoints" / "rvq" / "train0.encoder.pt", weights_only=True)["state"]
    books = torch.stack([encoder[f"codebooks.{i}.weight"] for i in range(8)])
    assert torch.equal(prior["reader.vectors"], books)  # the trained encoder's, kept with the prior
    again = run_cli("sample", run, "--quiet")  # a reopened run samples from the checkpoints alone
    assert again.code == 0, again.err
    quick_bench(run, synthetic_length=8)


def test_every_method_of_the_zoo_runs_on_a_grey_image_folder_and_through_bench(tmp_path, shared_cache):
    from .fixtures import write_image_folder

    root = write_image_folder(tmp_path / "glyphs", per_class=12, mode="L")
    zoo = ["ovqvae", "rvq", "tail-drop", "oracle", "vqvae-channel", "vqvae-spatial"]
    result = run_cli("run", TINY, "--dataset", "image-folder", "--data-root", root, "--set", "dataset.image-folder.size=8",
                     "--encoders", ",".join(zoo), "--metrics", "fid,mse", "--out", tmp_path, "--run-id", "zoo",
                     "--cache-dir", shared_cache, "--set", "encoder.oracle.budgets=[0.5]",
                     "--set", "encoder.oracle.widths=[8,16]", "--set", "encoder.oracle.steps=10",
                     "--set", "encoder.oracle.stage2_steps=10", "--set", "encoder.tail-drop.steps=10",
                     "--set", "encoder.tail-drop.width=16", "--set", "encoder.tail-drop.heads=2", "--quiet")
    assert result.code == 0, result.err
    run = tmp_path / "zoo"
    record = json.loads((run / "run.json").read_text())
    assert record["data"]["data_shape"] == [1, 8, 8]  # grey stays grey
    assert "classifier" in record["metrics_provenance"]["fid"]["feature_space"]  # MNIST's kind, not Inception's
    assert set(pd.read_csv(run / "metrics.csv").model) == set(zoo)
    quick_bench(run, synthetic_length=0)
    assert set(pd.read_csv(run / "cost.csv").model) == set(zoo)


def test_rvq_options_change_what_they_say(monkeypatch):
    """A cosine schedule ends training at a learning rate near 0; ``ema_every_example`` feeds every example's
    residual to each stage's codebook, where by default a stage learns only from the examples that use it."""
    data = torch.rand(64, 1, 8, 8) * 2 - 1
    base = dict(code_length=4, codebook_size=8, widths=[4, 8], batch_size=16, steps=6, quantizer_dropout=1.0)
    rates, counts = [], []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (rates.append(self.param_groups[0]["lr"]),
                                                                          step(self, *a, **k))[1])
    update = EMACodebook.update
    monkeypatch.setattr(EMACodebook, "update", lambda self, v, idx, ctx: (counts.append(len(idx)),
                                                                          update(self, v, idx, ctx))[1])
    ResidualVQ(RVQConfig(**base, lr_schedule="cosine"), (1, 8, 8)).fit(data, RunContext(quiet=True))
    assert rates[0] == pytest.approx(2e-3) and rates[-1] < 0.1 * rates[0] and rates == sorted(rates, reverse=True)
    assert min(counts) < 16  # by default a late stage sees only the examples whose drawn depth reaches it
    rates.clear(), counts.clear()
    ResidualVQ(RVQConfig(**base, ema_every_example=True), (1, 8, 8)).fit(data, RunContext(quiet=True))
    assert set(rates) == {2e-3} and set(counts) == {16}


def test_rvq_decodes_each_example_at_the_depths_it_draws(monkeypatch):
    model = ResidualVQ(RVQConfig(code_length=4, codebook_size=8, widths=[4, 8], batch_size=16, steps=3,
                                 quantizer_dropout=1.0, depths_per_example=3, budget_film=True), (1, 8, 8))
    depth = model.draw_depth(16, torch.Generator().manual_seed(0))
    assert depth.shape == (16, 3) and int(depth.min()) >= 1 and int(depth.max()) <= 4
    seen = []
    decode = ResidualVQ.decode_latent
    monkeypatch.setattr(ResidualVQ, "decode_latent", lambda self, z, d: (seen.append(d), decode(self, z, d))[1])
    model.fit(torch.rand(64, 1, 8, 8) * 2 - 1, RunContext(quiet=True))
    assert [len(d) for d in seen] == [48] * 3  # every example, three times, each at its own drawn depth
    with pytest.raises(ConfigError, match="depths_per_example"):
        RVQConfig(depths_per_example=0).validate()
    with pytest.raises(ConfigError, match="ema_every_example"):
        RVQConfig(ema_every_example=True, codebook_update="loss").validate()
