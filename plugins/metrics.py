"""Built-in metrics: reconstruction MSE/PSNR and FID through torch-fidelity."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import torch

from anytime_bench import MetricInputs, RunContext, hookimpl, require


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(-1, 1) + 1) / 2


@dataclass
class NoOptions:
    pass


class Mse:
    """Mean squared error of test reconstructions from the first k codes (pixels in [0, 1])."""

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


class UInt8Images(torch.utils.data.Dataset):
    """The input torch-fidelity expects: one uint8 ``[C, H, W]`` tensor per item."""

    def __init__(self, data: torch.Tensor):
        self.data = ((data.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i]


@dataclass
class FidConfig:
    classifier_width: int = 32
    classifier_steps: int = 600
    batch_size: int = 500

    def validate(self) -> None:
        require(self.classifier_width >= 1, "classifier_width", "must be >= 1")
        require(self.classifier_steps >= 1, "classifier_steps", "must be >= 1")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")


class Fid:
    """Frechet distance of generated samples (torch-fidelity) in a domain classifier's feature space."""

    name = "fid"
    Config = FidConfig
    requires = "generated"
    higher_is_better = False

    def __init__(self, config: FidConfig):
        self.config = config
        self._extractor: Any = None
        self._last: dict[str, Any] = {}

    def extractor(self, inputs: MetricInputs, ctx: RunContext):
        # torch-fidelity imports torchvision's model zoo: only pay for it when FID is computed
        from .classifier import ClassifierSpec, get_extractor

        if self._extractor is None:
            spec = ClassifierSpec(width=self.config.classifier_width, steps=self.config.classifier_steps)
            self._extractor = get_extractor(inputs.dataset, inputs.splits, spec, ctx)
        return self._extractor

    def fidelity_kwargs(self, inputs: MetricInputs, ctx: RunContext) -> dict[str, Any]:
        from .classifier import fingerprint

        extractor = self.extractor(inputs, ctx)
        reference_key = f"{inputs.dataset}-{inputs.reference_split}-{len(inputs.reference)}-{fingerprint(inputs.reference)}"
        self._last = {"reference": reference_key, "samples": len(inputs.candidate)}
        return dict(
            input1=UInt8Images(inputs.candidate),
            input2=UInt8Images(inputs.reference),
            feature_extractor=extractor.name,
            feature_extractor_weights_path=str(extractor.path),
            cuda=ctx.device.type == "cuda",
            save_cpu_ram=True,
            verbose=False,
            batch_size=self.config.batch_size,
            cache=True,
            cache_root=str(ctx.cache_dir / "fidelity"),
            input2_cache_name=reference_key,
        )

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float:
        import torch_fidelity

        result = torch_fidelity.calculate_metrics(fid=True, **self.fidelity_kwargs(inputs, ctx))
        value = float(result["frechet_inception_distance"])
        return value if math.isfinite(value) else float("nan")

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {"implementation": "torch-fidelity", "version": metadata.version("torch-fidelity")}
        if self._extractor is not None:
            out.update(extractor=self._extractor.name, extractor_sha256=self._extractor.sha256,
                       extractor_test_accuracy=round(self._extractor.test_accuracy, 4))
        out.update(self._last)
        return out


@hookimpl
def register_metrics():
    return [Mse, Psnr, Fid]
