"""An independent feature space: a fixed, randomly initialised CNN that is trained on nothing.

The classifier features behind ``fid`` are learnt from the dataset the run
uses, which makes them sensitive to what matters for that data but ties every
number to one learnt extractor. The Frechet distance in the features of an
untrained network (weights drawn once from a fixed seed, the same on every
machine) is a second opinion that no training can bias: a conclusion that holds
in both spaces does not rest on one extractor. Random convolutional features
are a known baseline for comparing image distributions; they are blunter than
learnt ones, so they are a check on direction, not a replacement.
"""

from __future__ import annotations

import hashlib
import io

import torch
from torch import nn
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from anytime_bench import DataSplits

from .audio_features import LogMel
from .classifier import Extractor, LocalExtractor

SEED = 20210504
WIDTH = 64


def random_net(channels: int, sample_rate: int | None) -> nn.Module:
    """The untrained network: convolutions with weights drawn from SEED, ReLU, pooled to a 2x2 grid."""
    generator = torch.Generator().manual_seed(SEED)
    if sample_rate:
        layers: list[nn.Module] = [LogMel(sample_rate), nn.Flatten(1, 2), nn.Conv1d(64, WIDTH, 5, 2, 2), nn.ReLU(),
                                   nn.Conv1d(WIDTH, WIDTH, 5, 2, 2), nn.ReLU(), nn.AdaptiveAvgPool1d(4), nn.Flatten()]
    else:
        layers = [nn.Conv2d(channels, WIDTH, 3, 1, 1), nn.ReLU(), nn.Conv2d(WIDTH, WIDTH, 3, 2, 1), nn.ReLU(),
                  nn.Conv2d(WIDTH, WIDTH, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                module.bias.zero_()
    return net.eval()


def _weights_digest(net: nn.Module) -> str:
    buffer = io.BytesIO()
    for key, value in sorted(net.state_dict().items()):
        buffer.write(key.encode())
        buffer.write(value.detach().contiguous().numpy().tobytes())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


class RandomFeatureExtractor(LocalExtractor):
    """torch-fidelity extractor over :func:`random_net`; the spec (channels, sample rate) is in its name."""

    spec: dict[str, tuple[int, int | None]] = {}

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        channels, sample_rate = self.spec[name]
        self.net = random_net(channels, sample_rate)

    @staticmethod
    def get_provided_features_list():
        return ("features",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "features"

    def forward(self, x: torch.Tensor):
        return (self.net(self.as_float(x)),)


def random_extractor(splits: DataSplits) -> Extractor:
    """The random feature space for this data's kind (image channels, or audio at its sample rate)."""
    channels = 1 if splits.modality == "audio" else int(splits.train.shape[1])
    rate = splits.sample_rate if splits.modality == "audio" else None
    sha = _weights_digest(random_net(channels, rate))
    name = f"anytime-bench-random-{sha[:16]}"
    RandomFeatureExtractor.spec[name] = (channels, rate)
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, RandomFeatureExtractor)
    return Extractor(name, None, sha, None, RandomFeatureExtractor)
