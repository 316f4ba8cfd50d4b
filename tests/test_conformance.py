"""The conformance kit over every built-in component, and proof that it catches a broken one of each kind."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from anytime_bench import DataSplits
from anytime_bench.testing import ConformanceError, check_component, component_checks, toy_audio, toy_images

from .fixtures import write_celeba, write_cifar, write_image_folder, write_vctk, write_wav_folder

SMALL_VQ = dict(widths=[4, 8], codebook_size=8, steps=4, stage2_steps=4, batch_size=16)
SMALL_WAVE = dict(widths=[4, 8], strides=[4, 4], code_length=4, codebook_size=8, steps=3, stage2_steps=3,
                  batch_size=8)
SMALL_CLASSIFIER = dict(classifier_width=8, classifier_steps=60)
SMALL_SPEC = dict(code_length=4, codebook_size=8, widths=[4, 8], downsample=2, steps=4, stage2_steps=4, batch_size=16,
                  sample_rate=8000, n_mels=16, n_fft=256, hop_length=64, griffin_lim_iters=4)


def _config(plugins, kind, name, **options):
    cls = plugins.get(kind, name).cls
    return cls, cls.Config(**options)


def _every(plugins, kind):
    return plugins.names(kind)


BUILTIN = {
    "encoder": {
        "ovqvae": (dict(code_length=4, **SMALL_VQ), "images"),
        "vqvae-channel": (dict(code_length=4, **SMALL_VQ), "images"),
        "vqvae-spatial": (dict(SMALL_VQ, downsample=1, embed_dim=4), "images"),
        "ovqvae-1d": (SMALL_WAVE, "audio"),
        "vqvae-channel-1d": (SMALL_WAVE, "audio"),
        "oracle": (dict(code_length=4, budgets=[0.5, 1.0], **SMALL_VQ), "images"),
        "rvq": (dict(code_length=4, codebook_size=8, widths=[4, 8], steps=8, batch_size=16), "images"),
        "rvq-oracle": (dict(code_length=4, codebook_size=8, widths=[4, 8], steps=8, batch_size=16, budgets=[0.5]),
                       "images"),
        "rvq-1d": (dict(code_length=4, codebook_size=8, widths=[4, 8], strides=[4, 4], latent_channels=2, steps=5,
                        batch_size=8), "audio"),
        "tail-drop": (dict(code_length=4, levels=[3, 3], width=16, heads=2, encoder_layers=1, decoder_layers=1,
                           steps=8, batch_size=16), "images"),
        "ovqvae-spec": (SMALL_SPEC, "audio"),
        "vqvae-channel-spec": ({**SMALL_SPEC, "scale": "linear"}, "audio"),
        "rvq-spec": (dict(code_length=4, codebook_size=8, widths=[4, 8], downsample=2, latent_channels=2, steps=5,
                          batch_size=16, sample_rate=8000, n_mels=16, n_fft=256, hop_length=64, griffin_lim_iters=4),
                     "audio"),
    },
    "prior": {"transformer": (dict(n_layer=1, n_head=2, d_model=16, d_ff=32, steps=30, eval_every=10, dropout=0.0),
                              None),
              "ngram": ({}, None)},
    "metric": {
        "mse": ({}, "images"), "psnr": ({}, "images"),
        **{name: (SMALL_CLASSIFIER, "images") for name in ("fid", "rfid", "kid", "isc", "prc")},
        "fid-random": ({}, "images"),
        "accuracy": (SMALL_CLASSIFIER, "images"), "confidence": (SMALL_CLASSIFIER, "images"),
        **{name: (SMALL_CLASSIFIER, "audio") for name in ("fad", "rfad")},
        "mel-distance": ({}, "audio"),
    },
    "modality": {"image": ({}, "images"), "audio": ({}, "audio")},
}


def test_every_builtin_component_is_covered(plugins):
    for kind in ("encoder", "prior", "metric", "modality"):
        assert set(plugins.names(kind)) == set(BUILTIN[kind]), f"a built-in {kind} has no conformance test"


@pytest.mark.parametrize("kind,name", [(k, n) for k, names in BUILTIN.items() for n in names])
def test_builtin_component_conforms(plugins, kind, name):
    options, data = BUILTIN[kind][name]
    cls, config = _config(plugins, kind, name, **options)
    toy = {} if data is None else {"data": toy_images() if data == "images" else toy_audio()}
    check_component(kind, cls, config, **toy)


def test_the_transformer_reading_code_vectors_conforms(plugins):
    options, _ = BUILTIN["prior"]["transformer"]
    cls, config = _config(plugins, "prior", "transformer", **options, vocabulary="per-position", code_vectors=True)
    check_component("prior", cls, config)


def test_the_unigram_ngram_prior_conforms(plugins):
    cls, config = _config(plugins, "prior", "ngram", order=1)
    check_component("prior", cls, config)


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory, mnist_idx):
    root = tmp_path_factory.mktemp("roots")
    write_cifar(root / "cifar")
    return {"cifar10": root / "cifar", "celeba": write_celeba(root / "celeba"),
            "image-folder": write_image_folder(root / "folder"), "wav-folder": write_wav_folder(root / "wavs"),
            "vctk": write_vctk(root / "vctk"), "mnist": mnist_idx}


DATASETS = {
    "digits": {}, "mnist": dict(train_limit=200, test_limit=50, download=False), "cifar10": dict(download=False),
    "celeba": dict(size=16), "image-folder": dict(size=8), "wav-folder": dict(length=4000),
    "vctk": dict(length=4000, test_fraction=0.34), "spoken-digits": dict(clips=40, sample_rate=8000, length=2000),
}


def test_every_builtin_dataset_is_covered(plugins):
    assert set(plugins.names("dataset")) == set(DATASETS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_builtin_dataset_conforms(plugins, data_roots, name, tmp_path):
    cls, config = _config(plugins, "dataset", name, **DATASETS[name])
    check_component("dataset", cls, config, data_root=data_roots.get(name, tmp_path if name == "spoken-digits"
                                                                            else None))


# ---------------------------------------------------------------------- the kit can fail


@dataclasses.dataclass
class _NoOptions:
    pass


class BadEncoder:
    """Decodes a prefix to the wrong shape."""

    name = "bad-encoder"
    Config = _NoOptions
    ordered = True
    code_length, codebook_size = 4, 8

    def __init__(self, config, data_shape):
        self.shape = data_shape

    def fit(self, data, ctx):
        return {}

    def encode(self, x):
        return torch.zeros(len(x), 4, dtype=torch.long)

    def decode(self, codes):
        return torch.zeros(len(codes), *self.shape[:-1], self.shape[-1] + 1)  # one column too many

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class BadPrior:
    """Its first codes change with the length asked for."""

    name = "bad-prior"
    Config = _NoOptions

    def __init__(self, config, vocab_size, seq_len):
        self.vocab = vocab_size

    def fit(self, codes, ctx):
        return None

    def stream(self, n, length, *, generator, temperature=1.0, top_k=None):
        for t in range(length):
            yield torch.full((n,), (length + t) % self.vocab, dtype=torch.long)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class BadMetric:
    """Claims lower is better but scores similarity."""

    name = "bad-metric"
    Config = _NoOptions
    requires = "reconstructed"
    higher_is_better = False

    def __init__(self, config):
        pass

    def compute(self, inputs, ctx):
        return -float(((inputs.candidate - inputs.reference) ** 2).mean())

    def provenance(self):
        return {"implementation": "test"}


class BadDataset:
    """Labels outside its classes."""

    name = "bad-dataset"
    Config = _NoOptions

    def __init__(self, config, data_root=None):
        pass

    def load(self):
        x = torch.zeros(8, 1, 4, 4)
        y = torch.full((8,), 5, dtype=torch.long)
        return DataSplits(x, x, y, y, num_classes=3)


class BadModality:
    """Stores images at lower precision than it claims to read back."""

    name = "bad-modality"
    Config = _NoOptions

    def __init__(self, config):
        pass

    def to_stored(self, x):
        return (x > 0).numpy().astype("uint8")

    def from_stored(self, a):
        return torch.from_numpy(a).float() * 2 - 1

    def preview(self, ax, stored, info):
        pass


class MissingStream:
    """A prior with no stream(): refused by the contract check before anything runs."""

    name = "no-stream"
    Config = _NoOptions

    def __init__(self, config, vocab_size, seq_len):
        pass

    def fit(self, codes, ctx):
        return None

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class NanStateEncoder(BadEncoder):
    """Saves NaN in its state, which the core refuses in a checkpoint as corrupt."""

    name = "nan-state-encoder"

    def decode(self, codes):
        return torch.zeros(len(codes), *self.shape)

    def state_dict(self):
        return {"scale": torch.tensor([1.0, float("nan")])}


class FlatVectorsEncoder(NanStateEncoder):
    """Gives one vector per code, not one per code and position: code_vectors() must be [D, K, E]."""

    name = "flat-vectors-encoder"

    def state_dict(self):
        return {}

    def code_vectors(self):
        return torch.zeros(8, 3)


class WarningPrior(BadPrior):
    """Warns while loading its own state: the core refuses a checkpoint whose load warns."""

    name = "warning-prior"

    def load_state_dict(self, state):
        warnings.warn("this state is from an older version", UserWarning, stacklevel=2)


@pytest.mark.parametrize("kind,cls,failing", [
    ("encoder", BadEncoder, "decode every prefix"),
    ("encoder", NanStateEncoder, "state_dict round trip"),
    ("encoder", FlatVectorsEncoder, "code vectors"),
    ("prior", WarningPrior, "state_dict round trip"),
    ("prior", BadPrior, "stop after any prefix"),
    ("prior", MissingStream, "contract"),
    ("metric", BadMetric, "real scores better than noise"),
    ("dataset", BadDataset, "splits"),
    ("modality", BadModality, "store and read back"),
])
def test_the_kit_catches_a_broken_component_of_each_kind(kind, cls, failing):
    results = {}
    for check in component_checks(kind, cls):
        try:
            check()
            results[check.name] = "pass"
        except ConformanceError as exc:
            results[check.name] = str(exc)
    assert results[failing] != "pass", f"{failing!r} did not catch {cls.__doc__}"
    assert cls.name in results[failing] and failing in results[failing]
    with pytest.raises(ConformanceError):
        check_component(kind, cls)
