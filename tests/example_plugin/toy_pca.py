"""An encoder plugin: PCA coefficients, each quantized into K bins, ordered by explained variance."""

from dataclasses import dataclass

import torch

from anytime_bench import hookimpl, require


@dataclass
class PcaConfig:
    code_length: int = 16
    """D: principal components kept, one code each, the largest first."""
    codebook_size: int = 32
    """K: quantile bins per component."""

    def validate(self):
        require(self.code_length >= 1, "code_length", "must be >= 1")
        require(self.codebook_size >= 2, "codebook_size", "must be >= 2")


class PcaEncoder:
    """Ordered by construction: code i is the i-th principal component of the data, quantized."""

    name = "pca-ordered"
    Config = PcaConfig
    ordered = True

    def __init__(self, config, data_shape):
        self.shape = tuple(data_shape)
        self.code_length, self.codebook_size = config.code_length, config.codebook_size
        size = torch.Size(self.shape).numel()
        self.mean = torch.zeros(size)
        self.axes = torch.zeros(config.code_length, size)
        self.edges = torch.zeros(config.code_length, config.codebook_size - 1)
        self.centres = torch.zeros(config.code_length, config.codebook_size)

    def fit(self, data, ctx):
        flat = data.flatten(1)
        self.mean = flat.mean(0)
        _, _, vt = torch.linalg.svd(flat - self.mean, full_matrices=False)
        self.axes = vt[: self.code_length]  # sorted by singular value: the ordering
        coefficients = (flat - self.mean) @ self.axes.T
        levels = torch.linspace(0, 1, 2 * self.codebook_size + 1)
        quantiles = torch.quantile(coefficients, levels, dim=0).T
        self.edges = quantiles[:, 2:-1:2].contiguous()  # K - 1 inner bin edges per component
        self.centres = quantiles[:, 1::2].contiguous()  # the median of each bin
        return {"explained_variance": float(coefficients.var(0).sum() / flat.var(0).sum())}

    def encode(self, x):
        coefficients = (x.flatten(1) - self.mean) @ self.axes.T
        codes = [torch.bucketize(coefficients[:, i].contiguous(), self.edges[i]) for i in range(self.code_length)]
        return torch.stack(codes, dim=1)

    def decode(self, codes):
        k = codes.shape[1]
        coefficients = torch.gather(self.centres[:k].expand(len(codes), -1, -1), 2, codes.unsqueeze(2)).squeeze(2)
        flat = self.mean + coefficients @ self.axes[:k]  # the missing tail is the mean: zero coefficients
        return flat.view(len(codes), *self.shape).clamp(-1, 1)

    def state_dict(self):
        return {"mean": self.mean, "axes": self.axes, "edges": self.edges, "centres": self.centres}

    def load_state_dict(self, state):
        self.mean, self.axes, self.edges, self.centres = (state[k] for k in ("mean", "axes", "edges", "centres"))


@hookimpl
def register_encoders():
    return [PcaEncoder]
