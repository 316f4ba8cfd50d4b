"""Metrics check what they need before any training: a missing extractor file fails in seconds."""

from .conftest import TINY, assert_clean_error, plugin_of, run_cli


def test_missing_inception_weights_stop_the_run_before_training(tmp_path):
    result = run_cli("run", "--feature-extractor", "inception-v3-compat", "--fid-weights",
                     tmp_path / "weights-inception.pth", "--out", tmp_path / "results", "--run-id", "r")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"--fid-weights {tmp_path / 'weights-inception.pth'} does not exist" in result.stderr
    assert not (tmp_path / "results" / "r").exists()  # stopped before anything was trained or written


def test_unlabelled_data_cannot_use_the_classifier_extractor(tmp_path):
    from PIL import Image

    images = tmp_path / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (20, 24), (i * 40, 0, 0)).save(images / f"{i:06d}.jpg")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000000.jpg 0\n000001.jpg 0\n000002.jpg 2\n000003.jpg 2\n")
    result = run_cli("run", "--dataset", "celeba", "--data-root", tmp_path, "--feature-extractor", "classifier",
                     "--out", tmp_path / "results")
    assert result.returncode == 2, result.stderr
    assert "has no labels for the classifier feature extractor" in result.stderr


def _with(cli_plugins, kind, cls):
    """The plugins with ``cls`` registered in this process as a ``kind`` (prior, metric), as a third party's."""
    cli_plugins(("mine", plugin_of(kind, cls)))


def test_a_prior_streaming_the_wrong_shape_fails_at_preflight_before_training(cli_plugins, tmp_path):
    import torch

    from anytime_bench_plugins.transformer import TransformerPrior

    class Wide(TransformerPrior):
        """A Transformer whose stream yields one column too many."""

        name = "wide"

        def stream(self, n, length, *, generator, temperature=1.0, top_k=None, top_p=1.0, use_cache=True):
            for column in super().stream(n, length, generator=generator, temperature=temperature, top_k=top_k):
                yield torch.cat([column, column[:1]])

    _with(cli_plugins, "prior", Wide)
    result = run_cli("run", TINY, "--encoders", "ovqvae", "--prior", "wide", "--out", tmp_path / "results",
                     "--run-id", "r")
    assert_clean_error(result, 2, "stage 'preflight': prior 'wide'", "stream() yielded (3,) of torch.int64 at position 0, "
                       "expected integer codes [2]", "model 'ovqvae', checked before any training")
    assert not (tmp_path / "results" / "r").exists()  # nothing trained, nothing written


def test_a_prior_whose_own_sample_gives_the_wrong_shape_fails_at_preflight_before_training(cli_plugins, tmp_path):
    from anytime_bench_plugins.transformer import TransformerPrior

    class Short(TransformerPrior):
        """A Transformer whose sample() drops its last column (bench calls it; runs stream)."""

        name = "short"

        def sample(self, n, length, *, generator, temperature=1.0, top_k=None, top_p=1.0):
            return super().sample(n, length, generator=generator, temperature=temperature, top_k=top_k)[:, :-1]

    _with(cli_plugins, "prior", Short)
    result = run_cli("run", TINY, "--encoders", "ovqvae", "--prior", "short", "--out", tmp_path / "results",
                     "--run-id", "r")
    assert_clean_error(result, 2, "stage 'preflight': prior 'short'", "sample() returned (2, 15) of torch.int64, "
                       "expected integer codes [2, 16]", "model 'ovqvae', checked before any training")
    assert not (tmp_path / "results" / "r").exists()


def test_a_sampling_setting_the_prior_does_not_declare_is_refused_when_the_config_is_read(cli_plugins, tmp_path):
    from anytime_bench_plugins.transformer import TransformerPrior

    class Plain(TransformerPrior):
        """A Transformer that declares the default sampling settings only."""

        name = "plain"
        sampling_options = ("temperature", "top_k")

    _with(cli_plugins, "prior", Plain)
    for key, value in (("top_p", "0.9"), ("top_p", "0.5")):
        result = run_cli("config", TINY, "--prior", "plain", "--set", f"run.{key}={value}")
        assert_clean_error(result, 2, f"run.{key}: prior 'plain' does not accept {key} (nucleus sampling); set "
                                      f"run.{key} = 1 or choose a prior that does")
    assert run_cli("config", TINY, "--prior", "plain", "--set", "run.temperature=0.9").code == 0


def test_a_declared_sampling_option_the_stream_does_not_take_breaks_the_contract():
    from anytime_bench.contract.checks import check_class
    from anytime_bench_plugins.transformer import TransformerPrior

    class Boasting(TransformerPrior):
        name = "boasting"

        def stream(self, n, length, *, generator, temperature=1.0, top_k=None):
            yield from super().stream(n, length, generator=generator, temperature=temperature, top_k=top_k)

        def sample(self, n, length, *, generator, temperature=1.0, top_k=None):
            return super().sample(n, length, generator=generator, temperature=temperature, top_k=top_k)

    assert check_class("prior", Boasting) == [
        "member 'stream' must accept use_cache=False when kv_cache is True",
        "member 'stream' must accept the declared sampling options temperature, top_k, top_p",
        "member 'sample' must accept the declared sampling options temperature, top_k, top_p"]


def test_a_metric_that_returns_no_number_fails_at_preflight_before_training(cli_plugins, tmp_path):
    from anytime_bench_plugins.metrics import Mse

    class Wordy(Mse):
        """A metric of reconstructions that answers in words."""

        name = "wordy"

        def compute(self, inputs, ctx):
            assert len(inputs.candidate) == len(inputs.reference)  # paired with the whole test split, as evaluate does
            return "low"

    _with(cli_plugins, "metric", Wordy)
    result = run_cli("run", TINY, "--encoders", "ovqvae", "--metrics", "mse,wordy", "--out", tmp_path / "results",
                     "--run-id", "r")
    assert_clean_error(result, 2, "stage 'preflight': metric 'wordy'", "compute() returned 'low' for wordy, expected a "
                                  "number", "before any training")
    assert not (tmp_path / "results" / "r").exists()


def test_an_encoder_whose_state_no_checkpoint_can_hold_fails_at_preflight_before_training(cli_plugins, tmp_path):
    from anytime_bench_plugins.vqvae import ChannelVQVAE

    class Keeps(ChannelVQVAE):
        """A channel-wise VQ-VAE that saves its config object beside its weights."""

        name = "keeps"

        def state_dict(self, *args, **kwargs):
            return {**super().state_dict(*args, **kwargs), "config": self.config}

    _with(cli_plugins, "encoder", Keeps)
    result = run_cli("run", TINY, "--encoders", "keeps", "--out", tmp_path / "results", "--run-id", "r")
    assert_clean_error(result, 2, "stage 'preflight': encoder 'keeps'", "state_dict() holds what a checkpoint cannot "
                       "(tensors and plain values only)", "VQConfig", "checked before any training")
    assert not (tmp_path / "results" / "r").exists()  # nothing trained, nothing written


def test_two_metrics_recording_one_measurement_name_fail_at_preflight_before_training(cli_plugins, tmp_path):
    from anytime_bench_plugins.metrics import Mse

    class Split(Mse):
        """A metric of reconstructions in two parts."""

        name = "mse-parts"

        def compute(self, inputs, ctx):
            value = super().compute(inputs, ctx)
            return {"low": value, "high": value}

    class Low(Mse):
        """A metric whose name is one of the other's measurements."""

        name = "mse-parts_low"

    cli_plugins(("mine", plugin_of("metric", Split, Low)))
    result = run_cli("run", TINY, "--encoders", "ovqvae", "--metrics", "mse-parts,mse-parts_low", "--out",
                     tmp_path / "results", "--run-id", "r")
    assert_clean_error(result, 2, "metrics 'mse-parts' and 'mse-parts_low' both record a measurement named "
                                  "'mse-parts_low'")
    assert not (tmp_path / "results" / "r").exists()
