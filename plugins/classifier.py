"""A small domain classifier used as torch-fidelity's feature extractor for small images and for audio.

Inception features mean little on 8x8 digits or 28x28 MNIST, none exist for
spoken digits, and their weights are downloaded at run time. Instead a CNN (on
log-mel spectrograms for audio) is trained on the dataset's training
split, saved with a content hash, cached and registered with torch-fidelity, so
that every model of every run on that dataset is scored in the same feature
space, offline.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from anytime_bench import (
    DataError,
    DataSplits,
    RunContext,
    atomic_write,
    contained,
    first_line,
    from_uint8,
    load_untrusted,
    nonfinite_entry,
)

from .audio_features import LogMel


@dataclass
class ClassifierSpec:
    width: int = 64
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0


class ScaledLogMel(nn.Module):
    """Waveforms ``[B, 1, T]`` -> log-mel spectrograms ``[B, 1, 64, frames]`` scaled to about [-1, 1]."""

    def __init__(self, sample_rate: int):
        super().__init__()
        self.db = LogMel(sample_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.db(x) / 40 + 1


class ClassifierNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, width: int, sample_rate: int | None = None):
        super().__init__()
        if sample_rate:
            # Audio: convolutions over time with the 64 mel bands as channels (cheap, and enough for words).
            self.front = nn.Sequential(ScaledLogMel(sample_rate), nn.Flatten(1, 2))
            self.features = nn.Sequential(
                nn.Conv1d(64, 2 * width, 5, 1, 2), nn.BatchNorm1d(2 * width), nn.ReLU(),
                nn.Conv1d(2 * width, 2 * width, 5, 2, 2), nn.BatchNorm1d(2 * width), nn.ReLU(),
                nn.Conv1d(2 * width, 4 * width, 3, 2, 1), nn.BatchNorm1d(4 * width), nn.ReLU(),
                nn.AdaptiveAvgPool1d(1), nn.Flatten(),
            )
        else:
            self.front = nn.Identity()
            self.features = nn.Sequential(
                nn.Conv2d(channels, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
                nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
                nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.BatchNorm2d(4 * width), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(self.front(x))
        return features, self.head(features)

    @classmethod
    def from_payload(cls, payload: dict) -> ClassifierNet:
        net = cls(payload["channels"], payload["num_classes"], payload["spec"]["width"], payload.get("sample_rate"))
        net.load_state_dict(payload["state"])
        return net.eval()


def shift(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random shifts make the features robust to the slight misalignments of generated samples."""
    if batch.ndim == 3:  # log-mel frames of audio: up to a tenth of the clip either way
        reach = max(1, batch.shape[-1] // 10)
        return torch.roll(batch, int(torch.randint(-reach, reach + 1, (1,), generator=generator)), dims=2)
    return torch.roll(batch, shifts=torch.randint(-1, 2, (2,), generator=generator).tolist(), dims=(2, 3))


class LocalExtractor(FeatureExtractorBase):
    """What the extractors built here share: not compiled by torch-fidelity, uint8 images or float waveforms in."""

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 8, 8, dtype=torch.uint8)

    @staticmethod
    def as_float(x: torch.Tensor) -> torch.Tensor:
        return from_uint8(x) if x.dtype == torch.uint8 else x


class ClassifierExtractor(LocalExtractor):
    """torch-fidelity extractor over a cached :class:`ClassifierNet`.

    Inputs are uint8 images ``[B, C, H, W]`` or float waveforms ``[B, 1, T]`` in [-1, 1].
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        # torch-fidelity passes every calculate_metrics keyword to the constructor.
        super().__init__(name, features_list)
        self.net = ClassifierNet.from_payload(read_payload(Path(feature_extractor_weights_path)))

    @staticmethod
    def get_provided_features_list():
        return ("penultimate", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits"}.get(metric, "penultimate")

    def forward(self, x: torch.Tensor):
        features, logits = self.net(self.as_float(x))
        available = {"penultimate": features, "logits": logits}
        return tuple(available[name] for name in self.features_list)


def fingerprint(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Extractor:
    """A feature space: a torch-fidelity extractor registered under a name that embeds its weights' hash."""

    name: str
    """Registered torch-fidelity name; it embeds the weights hash so cached features follow the weights."""
    path: Path | None
    sha256: str
    test_accuracy: float | None
    cls: Any = None
    """The torch-fidelity extractor class."""

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.cls.get_provided_features_list())

    def layer_for(self, metric: str) -> str:
        return self.cls.get_default_feature_layer_for_metric(metric)

    def build(self, cuda: bool):
        from torch_fidelity.utils import create_feature_extractor

        return create_feature_extractor(self.name, list(self.layers), cuda=cuda, verbose=False,
                                        feature_extractor_weights_path=str(self.path) if self.path else None)


def _train_reproducibly(splits: DataSplits, spec: ClassifierSpec, ctx: RunContext) -> tuple[ClassifierNet, float]:
    """:func:`_train` on one CPU thread. The classifier's weights name the feature space, and FIDs in different
    feature spaces are never ranked together: trained on two threads, the same data and seed gave other weights on
    each try (the order of the threads' sums in the convolutions' gradients), so that no two users, nor one user's
    two caches, shared a feature space. On one thread, the weights are the same on every try on one machine (a few
    minutes, once per dataset: the classifier is cached); another CPU may give other ones. Also where the run has a
    GPU: its convolutions' gradients are summed in no fixed order either, and the cache's recipe says one CPU thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(splits, spec, ctx, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)


def _train(splits: DataSplits, spec: ClassifierSpec, ctx: RunContext,
           device: torch.device) -> tuple[ClassifierNet, float]:
    if splits.train_labels is None or splits.num_classes is None:
        raise DataError("the classifier feature extractor needs a labelled dataset")
    torch.manual_seed(spec.seed)
    generator = torch.Generator().manual_seed(spec.seed)
    channels = 1 if splits.modality == "audio" else splits.train.shape[1]
    net = ClassifierNet(channels, splits.num_classes, spec.width, splits.sample_rate).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=max(1, spec.steps))
    y = splits.train_labels
    with torch.no_grad():  # the fixed front end (log-mel for audio) once, not once per step
        x = torch.cat([net.front(splits.train[i:i + 256].to(device)).cpu() for i in range(0, len(splits.train), 256)])
    net.train()
    with ctx.progress("classifier for Frechet-distance features", spec.steps) as task:
        for _ in range(spec.steps):
            idx = torch.randint(len(x), (spec.batch_size,), generator=generator)
            batch = shift(x[idx], generator).to(device)
            loss = F.cross_entropy(net.head(net.features(batch)), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            task.advance(loss=loss.item())
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(splits.test), 1000):
            logits = net(splits.test[i:i + 1000].to(device))[1]
            correct += int((logits.argmax(1).cpu() == splits.test_labels[i:i + 1000]).sum())
    return net, correct / len(splits.test)


def read_payload(path: Path, expected: dict[str, Any] | None = None) -> dict[str, Any]:
    """A cached classifier, loaded without running code and checked; a DataError naming the file otherwise.

    ``expected`` holds the sizes this run would train it with (``channels``, ``num_classes``, ``sample_rate``,
    ``spec``): a cache file from elsewhere could otherwise make the net as large as it declares.
    """
    try:
        payload = load_untrusted(path)
        if not isinstance(payload, dict) or not isinstance(payload.get("state"), dict):
            raise ValueError("not a classifier payload")
        for key, value in (expected or {}).items():
            if payload.get(key) != value:
                raise ValueError(f"its {key} is not this run's")
        if nonfinite_entry(payload["state"]) is not None:
            raise ValueError("NaN or infinite weights")
        ClassifierNet.from_payload(payload)
        accuracy = payload.get("test_accuracy")
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
            raise ValueError("its test accuracy is not a number in [0, 1]")
    except Exception as exc:
        raise DataError(f"{path}: not a cached feature classifier that loads safely ({type(exc).__name__}: "
                        f"{first_line(exc, 160)}); delete it to train it again") from None
    return payload


RECIPE = 2
"""How the classifier is trained, in the cache key beside the data and the spec: a cache trained another way is not
this one. 2: on one CPU thread (:func:`_train_reproducibly`); a cache of recipe 1, trained on several threads, holds
weights that no new training gives, and would keep its user's FIDs in a feature space of their own."""

SHIPPED = Path(__file__).resolve().parent / "classifiers"
"""Feature classifiers that ship with the package, each named as the cache would name it. One thread gives the same
weights on every try on one machine, but not on another CPU (its vector kernels round differently: an AVX-512
machine and the one before it trained two digits classifiers apart), so a classifier trained on first use puts each
machine's FIDs in a feature space of its own. Where the package ships the classifier of a run's data and spec, every
machine scores in that one, and it is used before any cache."""


def file_name(dataset: str, splits: DataSplits, spec: ClassifierSpec) -> str:
    """The classifier's file name, in the cache and in :data:`SHIPPED`: the data it learns from, its spec and
    :data:`RECIPE`."""
    key = fingerprint(splits.train, splits.train_labels, splits.test) + "-" + hashlib.sha256(
        repr(sorted(asdict(spec).items())).encode()).hexdigest()[:8] + f"-r{RECIPE}"
    safe_dataset = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)[:60]
    return f"{safe_dataset}-classifier-{key}.pt"


def get_extractor(dataset: str, splits: DataSplits, spec: ClassifierSpec, ctx: RunContext) -> Extractor:
    """The classifier for this data, spec and :data:`RECIPE`: the package's own (:data:`SHIPPED`), else the cache's,
    trained on first use."""
    filename = file_name(dataset, splits, spec)
    shipped = SHIPPED / filename
    path = shipped if shipped.is_file() else contained(ctx.cache_dir, "extractors", filename)
    expected = {"channels": 1 if splits.modality == "audio" else int(splits.train.shape[1]),
                "num_classes": int(splits.num_classes), "sample_rate": splits.sample_rate, "spec": asdict(spec)}
    if path.is_file():
        payload = read_payload(path, expected)
        ctx.log(f"using {'the feature classifier shipped as' if path == shipped else 'cached feature classifier'} "
                f"{path} (test accuracy {payload['test_accuracy']:.4f})")
    else:
        ctx.log(f"training the feature classifier for {dataset} (cached afterwards in {path.parent})")
        net, accuracy = _train_reproducibly(splits, spec, ctx)
        payload = {**expected, "state": {k: v.cpu() for k, v in net.state_dict().items()}, "test_accuracy": accuracy}
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write(path, lambda fh: fh.write(buffer.getvalue()))
        ctx.log(f"feature classifier test accuracy {accuracy:.4f}")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    name = f"anytime-bench-classifier-{sha[:16]}"
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, ClassifierExtractor)
    return Extractor(name, path, sha, float(payload["test_accuracy"]), ClassifierExtractor)
