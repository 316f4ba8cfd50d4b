import math
from pathlib import Path

import pytest
import torch
import torch_fidelity

from anytime_bench import MetricInputs, RunContext
from anytime_bench_plugins.datasets import Digits, DigitsConfig
from anytime_bench_plugins.metrics import Fid, FidelityConfig, FidelityItems, Isc, Kid, Mse, NoOptions, Prc, Psnr, Rfid

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def digits():
    return Digits(DigitsConfig()).load()


def inputs(candidate, reference, splits):
    return MetricInputs(candidate, reference, "digits", "test", splits, seed=0)


def test_mse_and_psnr_on_a_known_error(digits):
    ctx = RunContext(quiet=True)
    ref = torch.zeros(4, 1, 8, 8)
    cand = torch.full((4, 1, 8, 8), 0.2)  # 0.1 apart on the [0, 1] scale
    assert math.isclose(Mse(NoOptions()).compute(inputs(cand, ref, digits), ctx), 0.01, rel_tol=1e-5)
    assert math.isclose(Psnr(NoOptions()).compute(inputs(cand, ref, digits), ctx), 20.0, rel_tol=1e-5)


def test_fid_and_kid_equal_torch_fidelity_on_the_same_images(digits, tmp_path):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    fid = Fid(FidelityConfig(classifier_width=8, classifier_steps=40))
    kid = Kid(FidelityConfig(classifier_width=8, classifier_steps=40))
    noisy = (digits.test + 0.3 * torch.randn(digits.test.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    ours_fid = fid.compute(inputs(noisy, digits.train, digits), ctx)
    torch.manual_seed(0)  # KID draws random subsets from the global stream, as the harness seeds it
    ours_kid = kid.compute(inputs(noisy, digits.train, digits), ctx)
    extractor = fid.extractor(inputs(noisy, digits.train, digits), ctx)
    torch.manual_seed(0)
    direct = torch_fidelity.calculate_metrics(
        input1=FidelityItems(noisy), input2=FidelityItems(digits.train), fid=True, kid=True, cuda=False,
        save_cpu_ram=True, verbose=False, feature_extractor=extractor.name,
        feature_extractor_weights_path=str(extractor.path), kid_subset_size=len(noisy),
    )
    assert ours_fid > 0 and ours_kid > 0
    assert math.isclose(ours_fid, direct["frechet_inception_distance"], rel_tol=1e-4)
    assert math.isclose(ours_kid, direct["kernel_inception_distance_mean"], rel_tol=1e-4)
    # identical sets score (numerically) zero; the cached reference statistics are reused
    assert fid.compute(inputs(digits.train, digits.train, digits), ctx) < 1e-3
    assert any((tmp_path / "fidelity").iterdir())


def test_fid_orders_noise_levels(digits, tmp_path):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    fid = Fid(FidelityConfig(classifier_width=8, classifier_steps=40))
    g = torch.Generator().manual_seed(0)
    values = [fid.compute(inputs((digits.test + s * torch.randn(digits.test.shape, generator=g)).clamp(-1, 1),
                                 digits.train, digits), ctx) for s in (0.1, 0.5, 1.0)]
    assert values[0] < values[1] < values[2]


def test_classifier_is_cached_and_provenance_names_its_hash(digits, tmp_path):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    config = FidelityConfig(classifier_width=8, classifier_steps=20)
    first = Fid(config).extractor(inputs(digits.test, digits.train, digits), ctx)
    mtime = first.path.stat().st_mtime_ns
    fid = Fid(FidelityConfig(classifier_width=8, classifier_steps=20))
    second = fid.extractor(inputs(digits.test, digits.train, digits), ctx)
    assert second.path == first.path and second.sha256 == first.sha256 and first.path.stat().st_mtime_ns == mtime
    fid.compute(inputs(digits.test, digits.train, digits), ctx)
    prov = fid.provenance()
    assert prov["implementation"] == "torch-fidelity" and prov["extractor_sha256"] == first.sha256
    assert prov["samples"] == len(digits.test) and prov["reference_set"].startswith("digits-test-")
    assert prov["feature_space"] == first.name


def test_the_feature_classifier_trains_to_the_same_weights_on_every_try(digits, tmp_path, monkeypatch):
    """Its weights name the feature space: two caches of one dataset must share it (on two threads they did not)."""
    import anytime_bench_plugins.classifier as classifier

    threads = []
    train = classifier._train
    monkeypatch.setattr(classifier, "_train", lambda *a: threads.append(torch.get_num_threads()) or train(*a))
    before = torch.get_num_threads()
    config = FidelityConfig(classifier_width=8, classifier_steps=60)
    names = [Fid(config).extractor(inputs(digits.test, digits.train, digits),
                                   RunContext(quiet=True, cache_dir=tmp_path / str(i))).name for i in range(2)]
    assert names[0] == names[1] and threads == [1, 1] and torch.get_num_threads() == before


def test_a_classifier_cached_by_an_earlier_recipe_is_trained_again(digits, tmp_path):
    """A cache trained on several threads (recipe 1) holds weights no new training gives: it is not used."""
    from anytime_bench_plugins.classifier import RECIPE

    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    config = FidelityConfig(classifier_width=8, classifier_steps=20)
    first = Fid(config).extractor(inputs(digits.test, digits.train, digits), ctx)
    assert first.path.name.endswith(f"-r{RECIPE}.pt")
    earlier = first.path.with_name(first.path.name.replace(f"-r{RECIPE}.pt", ".pt"))
    first.path.rename(earlier)
    second = Fid(config).extractor(inputs(digits.test, digits.train, digits), ctx)
    assert second.path == first.path and second.path.is_file() and earlier.is_file()


def test_a_shipped_classifier_is_used_before_any_cache_and_not_trained(digits, tmp_path, monkeypatch):
    """Another CPU trains other weights: where the package ships a run's classifier, every machine scores in it."""
    import anytime_bench_plugins.classifier as classifier

    config = FidelityConfig(classifier_width=8, classifier_steps=20)
    first = Fid(config).extractor(inputs(digits.test, digits.train, digits), RunContext(quiet=True, cache_dir=tmp_path / "a"))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / first.path.name).write_bytes(first.path.read_bytes())
    monkeypatch.setattr(classifier, "SHIPPED", shipped)
    monkeypatch.setattr(classifier, "_train", lambda *a: pytest.fail("a shipped classifier was trained again"))
    other = tmp_path / "b"
    second = Fid(config).extractor(inputs(digits.test, digits.train, digits), RunContext(quiet=True, cache_dir=other))
    assert second.path == shipped / first.path.name and second.name == first.name
    assert not (other / "extractors").exists()


def test_the_shipped_digits_classifier_is_the_one_the_default_benchmark_scores_in(digits):
    """The default run's data (digits, default options) and fid spec name the file the package ships."""
    from anytime_bench_plugins.classifier import SHIPPED, ClassifierSpec, file_name, read_payload

    defaults = FidelityConfig()
    path = SHIPPED / file_name("digits", digits, ClassifierSpec(width=defaults.classifier_width,
                                                                 steps=defaults.classifier_steps))
    assert path.is_file(), f"no shipped classifier {path.name}"
    assert read_payload(path)["test_accuracy"] > 0.95


def test_the_shipped_mnist_classifier_is_the_one_the_mnist_configs_score_in(mnist_root):
    """configs/mnist.toml's data and fid spec name the file the package ships, and it loads without running code."""
    import tomllib

    from anytime_bench_plugins.classifier import SHIPPED, ClassifierSpec, file_name, read_payload
    from anytime_bench_plugins.datasets import Mnist, MnistConfig

    config = tomllib.loads((ROOT / "configs" / "mnist.toml").read_text())
    splits = Mnist(MnistConfig(**config["dataset"]["mnist"]), mnist_root).load()
    defaults = FidelityConfig()
    path = SHIPPED / file_name("mnist", splits, ClassifierSpec(width=defaults.classifier_width,
                                                                steps=defaults.classifier_steps))
    assert path.is_file(), f"no shipped classifier {path.name}"
    assert read_payload(path)["test_accuracy"] > 0.98


def test_isc_prc_and_rfid(digits, tmp_path):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    config = FidelityConfig(classifier_width=8, classifier_steps=40)
    real = inputs(digits.test, digits.train, digits)
    noise = inputs(torch.rand(digits.test.shape) * 2 - 1, digits.train, digits)
    assert Isc(config).compute(real, ctx) > Isc(config).compute(noise, ctx)
    prc = Prc(config).compute(real, ctx)
    assert set(prc) == {"precision", "recall"} and prc["precision"] > 0.5
    assert Prc(config).compute(noise, ctx)["precision"] < prc["precision"]
    assert Rfid.requires == "reconstructed" and Rfid(config).compute(real, ctx) < Fid(config).compute(noise, ctx)


def test_inception_without_weights_or_network_names_the_file(digits, tmp_path, monkeypatch):
    import urllib.error

    from anytime_bench.errors import DataError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(
        urllib.error.URLError("no network")))
    fid = Fid(FidelityConfig(feature_extractor="inception-v3-compat"))
    request = MetricInputs(digits.test, digits.train, "digits", "train", digits, 0)
    with pytest.raises(DataError, match=r"download https://.*weights-inception-2015-12-05-6726825d.pth and pass "
                                        r"--fid-weights PATH, or put the file at .*torch/hub/checkpoints/"):
        fid.compute(request, RunContext(quiet=True, cache_dir=tmp_path))
    missing = FidelityConfig(feature_extractor="inception-v3-compat", feature_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(DataError, match="--fid-weights .*missing.pth does not exist"):
        Fid(missing).compute(request, RunContext(quiet=True, cache_dir=tmp_path))
    unsafe = tmp_path / "unsafe.pth"
    import pickle
    unsafe.write_bytes(pickle.dumps(type("X", (), {"__reduce__": lambda self: (print, ("boom",))})()))
    config = FidelityConfig(feature_extractor="inception-v3-compat", feature_weights=str(unsafe))
    with pytest.raises(DataError, match="is not a plain Inception state dict that loads safely"):
        Fid(config).compute(request, RunContext(quiet=True, cache_dir=tmp_path))
