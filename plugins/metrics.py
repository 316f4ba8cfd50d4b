"""Built-in metrics: reconstruction MSE/PSNR, mel distance for audio, and FID/FAD/KID/IS/PRC through torch-fidelity.

The fidelity metrics use torch-fidelity's feature extractors and its metric
functions (Frechet distance, kernel MMD, Inception score, precision/recall),
but not its cache: torch-fidelity reloads cached files with
``torch.load(weights_only=False)``, which would run code from a crafted cache.
Reference features are cached here as plain ``.npz`` arrays, read back with
``allow_pickle=False`` and checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

import numpy as np
import torch

from anytime_bench import (
    MAX_MAGNITUDE,
    DataError,
    MetricInputs,
    RunContext,
    archives,
    contained,
    hookimpl,
    require,
    to_uint8,
    to_unit,
)

from .audio_features import LogMel, MelSettings


@dataclass
class NoOptions:
    pass


class Mse:
    """Mean squared error of test reconstructions from the first k codes (data mapped to [0, 1])."""

    name = "mse"
    Config = NoOptions
    requires = "reconstructed"
    higher_is_better = False

    def __init__(self, config: NoOptions):
        self.config = config
        self._samples = 0

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        self._samples = len(inputs.candidate)
        return float(torch.mean((to_unit(inputs.candidate) - to_unit(inputs.reference)) ** 2))

    def provenance(self) -> dict[str, Any]:
        return {"implementation": "anytime-bench", "scale": "[0, 1]", "data": "stored (8-bit or 16-bit) "
                "reconstructions", "feature_space": "data", "samples": self._samples}


class Psnr(Mse):
    """Peak signal-to-noise ratio (dB) of test reconstructions from the first k codes."""

    name = "psnr"
    higher_is_better = True

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        self._samples = len(inputs.candidate)
        per_item = torch.mean((to_unit(inputs.candidate) - to_unit(inputs.reference)) ** 2, dim=tuple(
            range(1, inputs.candidate.ndim)))
        return float(torch.mean(10 * torch.log10(1.0 / per_item.clamp_min(1e-10))))


class FidelityItems(torch.utils.data.Dataset):
    """What torch-fidelity's extractors take: uint8 ``[C, H, W]`` images, float ``[1, T]`` waveforms."""

    def __init__(self, data: torch.Tensor):
        self.data = to_uint8(data) if data.ndim == 4 else data.clamp(-1, 1).float()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i]


Extractor = Literal["auto", "classifier", "inception-v3-compat"]


@dataclass
class FidelityConfig:
    classifier_width: int = 32
    """Width of the domain classifier whose features serve small images and audio."""
    classifier_steps: int = 1000
    """Training steps of that classifier (trained once per dataset, then cached)."""
    batch_size: int = 500
    """Items per batch through the feature extractor."""
    feature_extractor: Extractor = field(default="auto", metadata={"flag": "--feature-extractor"})
    """auto: Inception for colour images of at least 32x32, else a classifier trained on the dataset."""
    feature_weights: str = field(default="", metadata={"flag": "--fid-weights", "local": True})
    """A local Inception weights file (offline use); empty: torch's hub cache, downloaded once if online. A path on
    this machine: never read back from a run folder, so the commands that reopen a run take --fid-weights again."""

    def validate(self) -> None:
        require(self.classifier_width >= 1, "classifier_width", "must be >= 1")
        require(self.classifier_steps >= 1, "classifier_steps", "must be >= 1")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")


def extractor_kind(config: FidelityConfig, inputs: MetricInputs) -> str:
    """``auto``: Inception for colour images of at least 32x32, the domain classifier otherwise."""
    if inputs.splits.modality == "audio":
        if config.feature_extractor == "inception-v3-compat":
            raise DataError("inception-v3-compat features are for images; audio uses --feature-extractor classifier")
        return "classifier"
    if config.feature_extractor != "auto":
        return config.feature_extractor
    shape = inputs.splits.data_shape
    natural = inputs.splits.modality == "image" and len(shape) == 3 and shape[0] == 3 and min(shape[1:]) >= 32
    return "inception-v3-compat" if natural else "classifier"


class _Fidelity:
    """Shared plumbing: one extractor per run, reference features cached as arrays, provenance."""

    Config = FidelityConfig
    requires = "generated"
    higher_is_better = False
    metric_key = "fid"
    """The metric whose feature layer the extractor picks (fid, kid, isc or prc)."""

    def __init__(self, config: FidelityConfig):
        self.config = config
        self._extractor: Any = None
        self._module: Any = None
        self._last: dict[str, Any] = {}
        self._announced: set[str] = set()
        # The reference set is the same tensor for every model, budget and seed: its features are computed once.
        self._reference: tuple[torch.Tensor, str, dict[str, torch.Tensor]] | None = None

    def extractor(self, inputs: MetricInputs, ctx: RunContext):
        # torch-fidelity imports torchvision's model zoo: only pay for it when a fidelity metric is computed
        from .classifier import ClassifierSpec, get_extractor
        from .inception import inception_extractor

        if self._extractor is None:
            if extractor_kind(self.config, inputs) == "inception-v3-compat":
                self._extractor = inception_extractor(self.config.feature_weights, ctx)
            else:
                spec = ClassifierSpec(width=self.config.classifier_width, steps=self.config.classifier_steps)
                self._extractor = get_extractor(inputs.dataset, inputs.splits, spec, ctx)
        return self._extractor

    def module(self, inputs: MetricInputs, ctx: RunContext):
        """The torch-fidelity feature extractor module, built once."""
        if self._module is None:
            self._module = self.extractor(inputs, ctx).build(ctx.device.type == "cuda")
        return self._module

    def preflight(self, inputs: MetricInputs, ctx: RunContext) -> None:
        """Inception weights are resolved before training: a missing file fails in seconds."""
        if extractor_kind(self.config, inputs) == "inception-v3-compat":
            self.extractor(inputs, ctx)
        elif inputs.splits.train_labels is None:
            raise DataError(f"{self.name}: dataset {inputs.dataset!r} has no labels for the classifier feature "
                            "extractor; use --feature-extractor inception-v3-compat")

    def features(self, data: torch.Tensor, inputs: MetricInputs, ctx: RunContext) -> dict[str, torch.Tensor]:
        from torch_fidelity.utils import get_featuresdict_from_dataset

        return get_featuresdict_from_dataset(FidelityItems(data), self.module(inputs, ctx), self.config.batch_size,
                                             ctx.device.type == "cuda", True, False)

    def reference_features(self, inputs: MetricInputs, ctx: RunContext) -> tuple[str, dict[str, torch.Tensor]]:
        """The reference set's key (dataset, split, size, content hash) and its features, from the cache if there."""
        from .classifier import fingerprint

        if self._reference is not None and self._reference[0] is inputs.reference:
            return self._reference[1], self._reference[2]
        extractor = self.extractor(inputs, ctx)
        key = f"{inputs.dataset}-{inputs.reference_split}-{len(inputs.reference)}-{fingerprint(inputs.reference)}"
        path = contained(ctx.cache_dir, "fidelity", f"{key}-{extractor.name}.npz")
        features = None
        if path.is_file():
            features = self._cached(path, len(inputs.reference), extractor.layers)
            if features is not None:  # of this extractor's widths, which the file cannot vouch for: one item tells
                probe = self.features(inputs.reference[:1], inputs, ctx)
                if any(features[name].shape[1:] != probe[name].shape[1:] for name in extractor.layers):
                    features = None
            if features is not None and key not in self._announced:
                ctx.log(f"{self.name}: using cached reference features of {key} ({extractor.name})")
        if features is None:
            if key not in self._announced:
                ctx.log(f"{self.name}: computing reference features of {key} ({extractor.name})")
            features = self.features(inputs.reference, inputs, ctx)
            archives.write(path, {name: value.numpy() for name, value in features.items()})
        self._announced.add(key)
        self._reference = (inputs.reference, key, features)
        return key, features

    @staticmethod
    def _cached(path, rows: int, layers: tuple[str, ...]) -> dict[str, torch.Tensor] | None:
        """Cached features, checked; None (recompute) if the file is not what this code writes."""
        try:
            arrays = archives.read(path, "feature cache", keys=layers)
            return {name: torch.from_numpy(archives.require_array(arrays, name, path, dtypes=("float32", "float64"),
                                                                  ndim=2, shape=(rows, None), finite=True))
                    for name in layers}
        except DataError:
            return None

    def floor_splits(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int, layer: str | None = None
                     ) -> tuple[str, torch.Tensor, list[torch.Tensor]]:
        """What every floor of generated samples scores: the reference set's key, its features in ``layer`` (this
        metric's by default) and ``splits`` permutations of it, split ``i`` seeded ``i``, whose first ``n`` items
        are held out."""
        key, reference = self.reference_features(inputs, ctx)
        layer = layer or self.extractor(inputs, ctx).layer_for(self.metric_key)
        rows = len(inputs.reference)
        if not 2 <= n <= rows - 2:
            raise DataError(f"{self.name}: a floor of {n} held-out items needs more than {rows} reference items")
        # What provenance() says of the floor, also when no sample was scored before it (evaluate --floors-only).
        self._last = {"reference_set": key, "reference_split": inputs.reference_split, "reference_size": rows,
                      "samples": n, "seed": inputs.seed, "feature_layer": layer}
        orders = [torch.randperm(rows, generator=torch.Generator().manual_seed(split)) for split in range(splits)]
        return key, reference[layer], orders

    def calculate(self, inputs: MetricInputs, ctx: RunContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate and reference features of this metric's layer."""
        key, reference = self.reference_features(inputs, ctx)
        candidate = self.features(inputs.candidate, inputs, ctx)
        extractor = self.extractor(inputs, ctx)
        layer = extractor.layer_for(self.metric_key)
        self._last = {"reference_set": key, "reference_split": inputs.reference_split,
                      "reference_size": len(inputs.reference), "samples": len(inputs.candidate), "seed": inputs.seed,
                      "feature_layer": layer}
        return candidate[layer], reference[layer]

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {"implementation": "torch-fidelity", "version": metadata.version("torch-fidelity")}
        if self._extractor is not None:
            out.update(feature_space=self._extractor.name, extractor=self._extractor.name,
                       extractor_sha256=self._extractor.sha256)
            if self._extractor.test_accuracy is not None:
                out["extractor_test_accuracy"] = round(self._extractor.test_accuracy, 4)
        out.update(self._last)
        return out


class _Floored(_Fidelity):
    """A fidelity metric of generated samples against the reference set, with its real-versus-real floor: real items
    scored as samples are, so that a model's distance from real data can be read (the floor lies above what a
    perfect generator would score, its two sides being smaller than a model's: see the results' floor note)."""

    def score(self, candidate: torch.Tensor, reference: torch.Tensor) -> float:
        """The metric of candidate features against reference features (the metrics with a floor define it)."""
        raise NotImplementedError

    def floor(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int) -> list[float]:
        """The real-versus-real floor: per seeded split of the reference set, ``n`` held-out items scored against
        the disjoint rest, in this metric's feature layer; cached beside the reference features."""
        key, features, orders = self.floor_splits(inputs, ctx, n, splits)
        extractor, layer = self.extractor(inputs, ctx), self._last["feature_layer"]
        path = contained(ctx.cache_dir, "fidelity", f"{key}-{extractor.name}-{layer}-{self.metric_key}-floor-n{n}-"
                                                    f"splits{splits}.npz")
        if path.is_file():
            try:
                values = archives.require_array(archives.read(path, "floor cache", keys=("values",)), "values", path,
                                                dtypes=("float64",), ndim=1, shape=(splits,), finite=True)
                if np.abs(values).max() > MAX_MAGNITUDE:
                    raise DataError(f"{path}: a floor beyond +-{MAX_MAGNITUDE:g}")
                ctx.log(f"{self.name}: using the cached real-versus-real floor of {key} ({n} items, {splits} splits)")
                return [float(v) for v in values]
            except DataError:
                pass  # not what this code writes: recomputed and replaced
        ctx.log(f"{self.name}: computing the real-versus-real floor of {key} ({n} items, {splits} splits)")
        out = [self.score(features[order[:n]], features[order[n:]]) for order in orders]
        if all(math.isfinite(v) for v in out):  # a non-finite value is reported, never cached
            archives.write(path, {"values": np.asarray(out, dtype=np.float64)})
        return out


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("nan")


class Fid(_Floored):
    """Frechet distance of generated samples (torch-fidelity), in the run's feature space."""

    name = "fid"

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        if min(len(inputs.candidate), len(inputs.reference)) < 2:  # numpy's covariance of one item is NaN
            raise DataError(f"{self.name} needs at least 2 items on each side to estimate their covariances, got "
                            f"{len(inputs.candidate)} scored against {len(inputs.reference)} of the "
                            f"{inputs.reference_split} split: a dataset this small cannot be scored by it")
        return self.score(*self.calculate(inputs, ctx))

    def score(self, candidate: torch.Tensor, reference: torch.Tensor) -> float:
        from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

        stats = fid_statistics_to_metric(fid_features_to_statistics(candidate),
                                         fid_features_to_statistics(reference.to(candidate.dtype)), False)
        return _finite(stats[KEY_METRIC_FID])


class Rfid(Fid):
    """FID of test-set reconstructions from the first k codes (tokenizer quality, no prior involved)."""

    name = "rfid"
    requires = "reconstructed"
    floor = None  # compares reconstructions with their originals: a perfect reconstruction scores 0, no floor to give


class Fad(Fid):
    """Frechet audio distance of generated clips, in the embedding of a classifier trained on the dataset."""

    name = "fad"


class Rfad(Fad):
    """FAD of test-set reconstructions from the first k codes (tokenizer quality, no prior involved)."""

    name = "rfad"
    requires = "reconstructed"
    floor = None  # as rfid


@dataclass
class RandomFeaturesConfig:
    batch_size: int = 500
    """Items per batch through the feature extractor."""

    def validate(self) -> None:
        require(self.batch_size >= 1, "batch_size", "must be >= 1")


class FidRandom(Fid):
    """FID of generated samples in the features of a fixed, untrained random CNN: a second, independent opinion."""

    name = "fid-random"
    Config = RandomFeaturesConfig

    def extractor(self, inputs: MetricInputs, ctx: RunContext):
        from .random_features import random_extractor

        if self._extractor is None:
            self._extractor = random_extractor(inputs.splits)
        return self._extractor

    def preflight(self, inputs: MetricInputs, ctx: RunContext) -> None:
        pass  # nothing to fetch or train


class Kid(_Floored):
    """Kernel distance (KID, torch-fidelity) of generated samples; subsets of up to 1000."""

    name = "kid"
    metric_key = "kid"

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        return self.score(*self.calculate(inputs, ctx))

    def score(self, candidate: torch.Tensor, reference: torch.Tensor) -> float:
        from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

        subset = min(1000, len(candidate), len(reference))
        return _finite(kid_features_to_metric(candidate, reference, kid_subset_size=subset,
                                              verbose=False)[KEY_METRIC_KID_MEAN])


class Isc(_Fidelity):
    """Inception score (torch-fidelity) of generated samples, from the extractor's logits."""

    name = "isc"
    metric_key = "isc"
    higher_is_better = True

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        candidate, _ = self.calculate(inputs, ctx)
        return self.score(candidate)

    @staticmethod
    def score(candidate: torch.Tensor) -> float:
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, isc_features_to_metric

        splits = max(1, min(10, len(candidate) // 10))
        return _finite(isc_features_to_metric(candidate, splits)[KEY_METRIC_ISC_MEAN])

    def floor(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int) -> list[float]:
        """Real reference items scored as samples: per seeded split, the score of ``n`` held-out items (the score
        reads no reference, so the rest is not used)."""
        _, features, orders = self.floor_splits(inputs, ctx, n, splits)
        return [self.score(features[order[:n]]) for order in orders]


class Prc(_Fidelity):
    """Precision and recall (torch-fidelity) of generated samples: two rows, prc_precision and prc_recall."""

    name = "prc"
    metric_key = "prc"
    higher_is_better = True

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> dict[str, float]:
        return self.score(*self.calculate(inputs, ctx))

    @staticmethod
    def score(candidate: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

        result = prc_features_to_metric(candidate, reference, save_cpu_ram=True, verbose=False)
        return {"precision": result[KEY_METRIC_PRECISION], "recall": result[KEY_METRIC_RECALL]}

    def floor(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int) -> dict[str, list[float]]:
        """The real-versus-real floor of each value: per seeded split, ``n`` held-out items against the rest."""
        _, features, orders = self.floor_splits(inputs, ctx, n, splits)
        out: dict[str, list[float]] = {"precision": [], "recall": []}
        for order in orders:
            for name, value in self.score(features[order[:n]], features[order[n:]]).items():
                out[name].append(value)
        return out


class Accuracy(_Fidelity):
    """Recognisability: the feature classifier's accuracy on test reconstructions from the first k codes."""

    name = "accuracy"
    requires = "reconstructed"
    higher_is_better = True
    metric_key = "isc"  # the logits

    def preflight(self, inputs: MetricInputs, ctx: RunContext) -> None:
        if inputs.splits.test_labels is None:
            raise DataError(f"{self.name}: dataset {inputs.dataset!r} has no labels to recognise")
        self.require_classifier(inputs)  # before training, not after it
        super().preflight(inputs, ctx)

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        self.require_classifier(inputs)
        logits = self.features(inputs.candidate, inputs, ctx)["logits"]
        self._last = {"samples": len(inputs.candidate), "reference_set": "test labels", "feature_layer": "logits"}
        return float(self.correct(logits, inputs).mean())

    def require_classifier(self, inputs: MetricInputs) -> None:
        """Classes are the dataset's, so only the dataset's own classifier can read them."""
        if extractor_kind(self.config, inputs) != "classifier":
            raise DataError(f"{self.name} needs the classifier feature extractor (its classes are the dataset's)")

    @staticmethod
    def correct(logits: torch.Tensor, inputs: MetricInputs) -> np.ndarray:
        return (logits.argmax(1) == inputs.splits.test_labels[: len(logits)]).numpy()

    def floor(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int) -> list[float]:
        """The real test items' own accuracy, what a perfect reconstruction scores, per fold: one seeded
        permutation of the test split cut into ``splits`` disjoint folds of ``n`` items."""
        self.require_classifier(inputs)
        _, features = self.reference_features(inputs, ctx)  # the test split's own features, cached
        correct = self.correct(features["logits"], inputs)
        order = torch.randperm(len(correct), generator=torch.Generator().manual_seed(0)).numpy()
        self._last = {"samples": n, "reference_set": "test labels", "feature_layer": "logits"}
        return [float(correct[order[i * n:(i + 1) * n]].mean()) for i in range(splits)]


class Confidence(Accuracy):
    """Recognisability of generated samples: the feature classifier's mean confidence in the class it picks."""

    name = "confidence"
    requires = "generated"

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        self.require_classifier(inputs)
        logits = self.features(inputs.candidate, inputs, ctx)["logits"]
        self._last = {"samples": len(inputs.candidate), "feature_layer": "logits"}
        return self.score(logits)

    @staticmethod
    def score(logits: torch.Tensor) -> float:
        return float(torch.softmax(logits.double(), 1).max(1).values.mean())

    def floor(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int) -> list[float]:
        """Real reference items scored as samples: per seeded split, the mean confidence in ``n`` held-out items
        (the score reads no reference, so the rest is not used)."""
        self.require_classifier(inputs)
        _, features, orders = self.floor_splits(inputs, ctx, n, splits, "logits")
        return [self.score(features[order[:n]]) for order in orders]


@dataclass
class MelConfig:
    n_mels: int = 64
    """Mel bands."""
    n_fft: int = 1024
    """FFT size of the spectrogram."""
    hop_length: int = 256
    """Samples between frames."""
    floor_db: float = -80.0
    """Log-mel values below this many dB are raised to it (silence is not infinitely far)."""

    def validate(self) -> None:
        require(self.n_mels >= 1, "n_mels", "must be >= 1")
        require(self.n_fft >= 16 and self.hop_length >= 1, "n_fft", "needs n_fft >= 16 and hop_length >= 1")


class MelDistance:
    """Log-mel spectral distance (mean absolute dB) of test reconstructions from the first k codes."""

    name = "mel-distance"
    Config = MelConfig
    requires = "reconstructed"
    higher_is_better = False

    def __init__(self, config: MelConfig):
        self.config = config
        self._rate: int | None = None
        self._samples = 0

    def preflight(self, inputs: MetricInputs, ctx: RunContext) -> None:
        if inputs.splits.modality != "audio" or not inputs.splits.sample_rate:
            raise DataError(f"mel-distance needs audio with a sample rate; dataset {inputs.dataset!r} is "
                            f"{inputs.splits.modality}")

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        self.preflight(inputs, ctx)
        c = self.config
        self._rate, self._samples = inputs.splits.sample_rate, len(inputs.candidate)
        db = LogMel(self._rate, MelSettings(c.n_mels, c.n_fft, c.hop_length, c.floor_db))
        total = 0.0
        for i in range(0, len(inputs.candidate), 256):
            total += float((db(inputs.candidate[i:i + 256]) - db(inputs.reference[i:i + 256])).abs().mean(
                dim=tuple(range(1, inputs.candidate.ndim + 1))).sum())
        return total / len(inputs.candidate)

    def provenance(self) -> dict[str, Any]:
        return {"implementation": "anytime-bench + torchaudio.transforms.MelSpectrogram",
                "version": metadata.version("torchaudio"), "sample_rate": self._rate, "feature_space": "log-mel",
                "samples": self._samples, **vars(self.config)}


@hookimpl
def register_metrics():
    return [Mse, Psnr, Fid, FidRandom, Rfid, Fad, Rfad, MelDistance, Kid, Isc, Prc, Accuracy, Confidence]
