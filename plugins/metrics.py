"""Built-in metrics: reconstruction MSE/PSNR, mel distance for audio, and FID/FAD/KID/IS/PRC through torch-fidelity."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import torch

from anytime_bench import DataError, MetricInputs, RunContext, hookimpl, require


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(-1, 1) + 1) / 2


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

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        return float(torch.mean((to_unit(inputs.candidate) - to_unit(inputs.reference)) ** 2))

    def provenance(self) -> dict[str, Any]:
        return {"implementation": "anytime-bench", "scale": "[0, 1]", "data": "8-bit reconstructions"}


class Psnr(Mse):
    """Peak signal-to-noise ratio (dB) of test reconstructions from the first k codes."""

    name = "psnr"
    higher_is_better = True

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        per_item = torch.mean((to_unit(inputs.candidate) - to_unit(inputs.reference)) ** 2, dim=tuple(
            range(1, inputs.candidate.ndim)))
        return float(torch.mean(10 * torch.log10(1.0 / per_item.clamp_min(1e-10))))


class FidelityItems(torch.utils.data.Dataset):
    """What torch-fidelity's extractors take: uint8 ``[C, H, W]`` images, float ``[1, T]`` waveforms."""

    def __init__(self, data: torch.Tensor):
        clipped = data.clamp(-1, 1)
        self.data = ((clipped + 1) * 127.5).round().to(torch.uint8) if data.ndim == 4 else clipped.float()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i]


@dataclass
class FidelityConfig:
    classifier_width: int = 32
    classifier_steps: int = 1000
    batch_size: int = 500

    def validate(self) -> None:
        require(self.classifier_width >= 1, "classifier_width", "must be >= 1")
        require(self.classifier_steps >= 1, "classifier_steps", "must be >= 1")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")


def _extractor_kind(inputs: MetricInputs) -> str:
    """``auto``: Inception for colour images of at least 32x32, the domain classifier otherwise."""
    if inputs.splits.modality == "audio":
        if inputs.feature_extractor == "inception-v3-compat":
            raise DataError("inception-v3-compat features are for images; audio uses --feature-extractor classifier")
        return "classifier"
    if inputs.feature_extractor != "auto":
        return inputs.feature_extractor
    shape = inputs.splits.data_shape
    natural = inputs.splits.modality == "image" and len(shape) == 3 and shape[0] == 3 and min(shape[1:]) >= 32
    return "inception-v3-compat" if natural else "classifier"


class _Fidelity:
    """Shared torch-fidelity plumbing: one extractor per run, cached reference statistics, provenance."""

    Config = FidelityConfig
    requires = "generated"
    higher_is_better = False
    flags: dict[str, Any] = {}

    def __init__(self, config: FidelityConfig):
        self.config = config
        self._extractor: Any = None
        self._last: dict[str, Any] = {}
        self._announced: set[str] = set()
        # The reference set is the same tensor for every model, budget and seed: hash and convert it once.
        self._reference: tuple[torch.Tensor, str, FidelityItems] | None = None

    def extractor(self, inputs: MetricInputs, ctx: RunContext):
        # torch-fidelity imports torchvision's model zoo: only pay for it when a fidelity metric is computed
        from .classifier import ClassifierSpec, get_extractor
        from .inception import inception_extractor

        if self._extractor is None:
            if _extractor_kind(inputs) == "inception-v3-compat":
                self._extractor = inception_extractor(inputs.feature_weights, ctx)
            else:
                spec = ClassifierSpec(width=self.config.classifier_width, steps=self.config.classifier_steps)
                self._extractor = get_extractor(inputs.dataset, inputs.splits, spec, ctx)
        return self._extractor

    def preflight(self, inputs: MetricInputs, ctx: RunContext) -> None:
        """Inception weights are resolved before training: a missing file fails in seconds."""
        if _extractor_kind(inputs) == "inception-v3-compat":
            self.extractor(inputs, ctx)
        elif inputs.splits.train_labels is None:
            raise DataError(f"{self.name}: dataset {inputs.dataset!r} has no labels for the classifier feature "
                            "extractor; use --feature-extractor inception-v3-compat")

    def reference(self, inputs: MetricInputs) -> tuple[str, FidelityItems]:
        """The reference set's cache key (split, size, content hash) and its uint8 images."""
        from .classifier import fingerprint

        if self._reference is None or self._reference[0] is not inputs.reference:
            key = f"{inputs.dataset}-{inputs.reference_split}-{len(inputs.reference)}-{fingerprint(inputs.reference)}"
            self._reference = (inputs.reference, key, FidelityItems(inputs.reference))
        return self._reference[1], self._reference[2]

    def fidelity_kwargs(self, inputs: MetricInputs, ctx: RunContext) -> dict[str, Any]:
        extractor = self.extractor(inputs, ctx)
        reference_key, reference_images = self.reference(inputs)
        cache_root = ctx.cache_dir / "fidelity"
        if reference_key not in self._announced:
            self._announced.add(reference_key)
            cached = cache_root.is_dir() and any(cache_root.glob(f"{reference_key}-{extractor.name}-*"))
            ctx.log(f"{self.name}: {'using cached' if cached else 'computing'} reference statistics of "
                    f"{reference_key} ({extractor.name})")
        self._last = {"reference": reference_key, "reference_split": inputs.reference_split,
                      "reference_size": len(inputs.reference), "samples": len(inputs.candidate), "seed": inputs.seed}
        return dict(
            input1=FidelityItems(inputs.candidate),
            input2=reference_images,
            feature_extractor=extractor.name,
            feature_extractor_weights_path=str(extractor.path) if extractor.path else None,
            cuda=ctx.device.type == "cuda",
            save_cpu_ram=True,
            verbose=False,
            batch_size=self.config.batch_size,
            cache=True,
            cache_root=str(cache_root),
            input2_cache_name=reference_key,
            **self.flags,
        )

    def calculate(self, inputs: MetricInputs, ctx: RunContext, **extra: Any) -> dict[str, float]:
        import torch_fidelity

        kwargs = self.fidelity_kwargs(inputs, ctx)
        kwargs.update(extra)
        return {k: float(v) for k, v in torch_fidelity.calculate_metrics(**kwargs).items()}

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {"implementation": "torch-fidelity", "version": metadata.version("torch-fidelity")}
        if self._extractor is not None:
            out.update(extractor=self._extractor.name, extractor_sha256=self._extractor.sha256)
            if self._extractor.test_accuracy is not None:
                out["extractor_test_accuracy"] = round(self._extractor.test_accuracy, 4)
        out.update(self._last)
        return out


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("nan")


class Fid(_Fidelity):
    """Frechet distance of generated samples (torch-fidelity), in the run's feature space."""

    name = "fid"
    flags = {"fid": True}

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        return _finite(self.calculate(inputs, ctx)["frechet_inception_distance"])


class Rfid(Fid):
    """FID of test-set reconstructions from the first k codes (tokenizer quality, no prior involved)."""

    name = "rfid"
    requires = "reconstructed"


class Fad(Fid):
    """Frechet audio distance of generated clips, in the embedding of a classifier trained on the dataset."""

    name = "fad"


class Rfad(Fad):
    """FAD of test-set reconstructions from the first k codes (tokenizer quality, no prior involved)."""

    name = "rfad"
    requires = "reconstructed"


@dataclass
class MelConfig:
    n_mels: int = 64
    n_fft: int = 1024
    hop_length: int = 256
    floor_db: float = -80.0

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

    def preflight(self, inputs: MetricInputs, ctx: RunContext) -> None:
        if inputs.splits.modality != "audio" or not inputs.splits.sample_rate:
            raise DataError(f"mel-distance needs audio with a sample rate; dataset {inputs.dataset!r} is "
                            f"{inputs.splits.modality}")

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        import torchaudio

        self.preflight(inputs, ctx)
        c = self.config
        self._rate = inputs.splits.sample_rate
        mel = torchaudio.transforms.MelSpectrogram(self._rate, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels)

        def db(x: torch.Tensor) -> torch.Tensor:
            return (10 * torch.log10(mel(x.clamp(-1, 1).float()) + 1e-10)).clamp_min(c.floor_db)

        total = 0.0
        for i in range(0, len(inputs.candidate), 256):
            total += float((db(inputs.candidate[i:i + 256]) - db(inputs.reference[i:i + 256])).abs().mean(
                dim=tuple(range(1, inputs.candidate.ndim + 1))).sum())
        return total / len(inputs.candidate)

    def provenance(self) -> dict[str, Any]:
        return {"implementation": "anytime-bench + torchaudio.transforms.MelSpectrogram",
                "torchaudio": metadata.version("torchaudio"), "sample_rate": self._rate, **vars(self.config)}


class Kid(_Fidelity):
    """Kernel distance (KID, torch-fidelity) of generated samples; subsets of up to 1000."""

    name = "kid"
    flags = {"kid": True}

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        subset = min(1000, len(inputs.candidate), len(inputs.reference))
        return _finite(self.calculate(inputs, ctx, kid_subset_size=subset)["kernel_inception_distance_mean"])


class Isc(_Fidelity):
    """Inception score (torch-fidelity) of generated samples, from the extractor's logits."""

    name = "isc"
    flags = {"isc": True}
    higher_is_better = True

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        splits = max(1, min(10, len(inputs.candidate) // 10))
        return _finite(self.calculate(inputs, ctx, isc_splits=splits)["inception_score_mean"])


class Prc(_Fidelity):
    """Precision and recall (torch-fidelity) of generated samples: two rows, prc_precision and prc_recall."""

    name = "prc"
    flags = {"prc": True}
    higher_is_better = True

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> dict[str, float]:
        result = self.calculate(inputs, ctx)
        return {"precision": result["precision"], "recall": result["recall"]}


@hookimpl
def register_metrics():
    return [Mse, Psnr, Fid, Rfid, Fad, Rfad, MelDistance, Kid, Isc, Prc]
