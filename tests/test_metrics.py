import math

import pytest
import torch
import torch_fidelity

from anytime_bench import MetricInputs, RunContext
from anytime_bench_plugins.datasets import Digits, DigitsConfig
from anytime_bench_plugins.metrics import Fid, FidConfig, Mse, NoOptions, Psnr, UInt8Images


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


def test_fid_equals_torch_fidelity_on_the_same_images(digits, tmp_path):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    fid = Fid(FidConfig(classifier_width=8, classifier_steps=40))
    noisy = (digits.test + 0.3 * torch.randn(digits.test.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    ours = fid.compute(inputs(noisy, digits.train, digits), ctx)
    extractor = fid.extractor(inputs(noisy, digits.train, digits), ctx)
    direct = torch_fidelity.calculate_metrics(
        input1=UInt8Images(noisy), input2=UInt8Images(digits.train), fid=True, cuda=False, save_cpu_ram=True,
        verbose=False, feature_extractor=extractor.name, feature_extractor_weights_path=str(extractor.path),
    )["frechet_inception_distance"]
    assert ours > 0
    assert math.isclose(ours, direct, rel_tol=1e-4)
    # identical sets score (numerically) zero; the cached reference statistics are reused
    assert fid.compute(inputs(digits.train, digits.train, digits), ctx) < 1e-3
    assert any((tmp_path / "fidelity").iterdir())


def test_fid_orders_noise_levels(digits, tmp_path):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    fid = Fid(FidConfig(classifier_width=8, classifier_steps=40))
    g = torch.Generator().manual_seed(0)
    values = [fid.compute(inputs((digits.test + s * torch.randn(digits.test.shape, generator=g)).clamp(-1, 1),
                                 digits.train, digits), ctx) for s in (0.1, 0.5, 1.0)]
    assert values[0] < values[1] < values[2]


def test_classifier_is_cached_and_provenance_names_its_hash(digits, tmp_path):
    ctx = RunContext(quiet=True, cache_dir=tmp_path)
    first = Fid(FidConfig(classifier_width=8, classifier_steps=20)).extractor(inputs(digits.test, digits.train, digits), ctx)
    mtime = first.path.stat().st_mtime_ns
    fid = Fid(FidConfig(classifier_width=8, classifier_steps=20))
    second = fid.extractor(inputs(digits.test, digits.train, digits), ctx)
    assert second.path == first.path and second.sha256 == first.sha256 and first.path.stat().st_mtime_ns == mtime
    fid.compute(inputs(digits.test, digits.train, digits), ctx)
    prov = fid.provenance()
    assert prov["implementation"] == "torch-fidelity" and prov["extractor_sha256"] == first.sha256
    assert prov["samples"] == len(digits.test) and prov["reference"].startswith("digits-test-")
