"""A dataset plugin: 8x8 images of one horizontal or vertical bar."""

from dataclasses import dataclass

import torch

from anytime_bench import DataSplits, hookimpl, require


@dataclass
class BarsConfig:
    size: int = 400
    """Number of images (a fifth of them are the test split)."""

    def validate(self):
        require(self.size >= 20, "size", "must be >= 20")


class Bars:
    """8x8 images of one bar: label = position (0-7) + 8 if vertical."""

    name = "bars"
    Config = BarsConfig

    def __init__(self, config, data_root=None):
        self.config = config

    def load(self):
        g = torch.Generator().manual_seed(0)
        labels = torch.randint(0, 16, (self.config.size,), generator=g)
        images = torch.full((self.config.size, 1, 8, 8), -1.0)
        for i, label in enumerate(labels.tolist()):
            if label < 8:
                images[i, 0, label, :] = 1.0
            else:
                images[i, 0, :, label - 8] = 1.0
        n_test = self.config.size // 5
        return DataSplits(images[n_test:], images[:n_test], labels[n_test:], labels[:n_test],
                          modality="image", num_classes=16)


@hookimpl
def register_datasets():
    return [Bars]
