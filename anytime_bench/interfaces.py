"""The four kinds of component and the data that flows between them.

dataset -> encoder -> codes -> prior -> samples -> metrics. Components are
duck-typed: a plugin class satisfies a protocol by having its members; it need
not inherit from anything in the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch

from .context import RunContext

Modality = Literal["image", "audio"]


@dataclass
class DataSplits:
    """A dataset in memory.

    ``train``/``test`` are float tensors ``[N, C, H, W]`` (images) or
    ``[N, C, T]`` (audio) scaled to ``[-1, 1]``; labels are int64 ``[N]`` or
    ``None`` when the dataset has none.
    """

    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    modality: Modality = "image"
    num_classes: int | None = None
    sample_rate: int | None = None
    """Audio only: samples per second of every clip."""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])


@runtime_checkable
class Dataset(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type]

    def load(self) -> DataSplits:
        """Read (or build) the data; raise DataError naming any bad file."""


@runtime_checkable
class Encoder(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type]
    ordered: ClassVar[bool]

    @property
    def code_length(self) -> int:
        """D: the number of codes per data point."""

    @property
    def codebook_size(self) -> int:
        """K: codes are integers in ``[0, K)``."""

    def fit(self, data: torch.Tensor, ctx: RunContext) -> dict[str, float]:
        """Train on ``data`` (``[N, ...]`` in ``[-1, 1]``); return statistics to record."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes ``[B, D]`` (int64) of a batch."""

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Data from a code prefix ``[B, k]``, ``1 <= k <= D``."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...

    def to(self, device: torch.device) -> Any: ...


@runtime_checkable
class Prior(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type]

    def fit(self, train_codes: torch.Tensor, ctx: RunContext) -> dict[str, float]:
        """Train on code sequences ``[N, D]``; hold out what early stopping needs from them."""

    def sample(
        self,
        n: int,
        length: int,
        *,
        generator: torch.Generator,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """``n`` sequences of ``length`` codes ``[n, length]``, one cached step per token."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...

    def to(self, device: torch.device) -> Any: ...


@dataclass
class MetricInputs:
    """What a metric sees at one (model, budget, seed)."""

    candidate: torch.Tensor
    """Generated or reconstructed data, same layout and scale as ``reference``."""
    reference: torch.Tensor
    """Real data: the test split for reconstructions, the configured reference split for samples."""
    dataset: str
    reference_split: str
    splits: DataSplits
    seed: int
    feature_extractor: str = "auto"
    """Feature space of fidelity metrics: ``auto``, ``classifier`` or ``inception-v3-compat``."""
    feature_weights: str = ""
    """A local weights file for the feature extractor (offline Inception)."""


@runtime_checkable
class Metric(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type]
    requires: ClassVar[Literal["generated", "reconstructed"]]
    higher_is_better: ClassVar[bool]

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float | dict[str, float]:
        """Score ``inputs.candidate`` against ``inputs.reference``.

        A dict gives several values (``prc`` -> precision and recall), recorded
        as metrics ``<name>_<key>``.
        """

    def provenance(self) -> dict[str, Any]:
        """What is needed to recompute the number (implementation, version, extractor hash...)."""
