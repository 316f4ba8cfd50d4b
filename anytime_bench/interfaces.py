"""The whole plugin contract: every member the core uses on a component, with its exact meaning.

Data flows one way: dataset -> encoder -> codes -> prior -> samples -> metrics,
and a *modality* says how the data of one kind (images, audio...) is stored,
previewed and exported. Components are duck-typed: a plugin class satisfies a
protocol by having its members; it need not inherit from anything in the core
and need not be a ``torch.nn.Module``.

The core calls nothing on a component that is not declared here. Each member
is listed in :data:`CONTRACT` with the way the core calls it; when plugins are
loaded every registered class is checked against it (a missing or malformed
required member stops the program before any work, naming the plugin, its
distribution and the member), and every call goes through
:mod:`anytime_bench.components`, which names the plugin and the stage when a
call raises. :mod:`anytime_bench.testing` runs the same contract against a
component on tiny data, for plugin authors' own test suites.

Members marked *optional* have the default given here, applied in one place
(:mod:`anytime_bench.components`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from .context import RunContext
from .rundir import COMPARABILITY_KEYS, PROVENANCE_KEYS  # noqa: F401  (part of the Metric contract)


@dataclass
class DataSplits:
    """A dataset in memory.

    ``train``/``test`` are float tensors ``[N, *data_shape]`` scaled to
    ``[-1, 1]`` (images ``[N, C, H, W]``, audio ``[N, 1, T]``); labels are int64
    ``[N]`` in ``0..num_classes-1``, or ``None`` when the dataset has none.
    """

    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    modality: str = "image"
    """The name of a registered :class:`Modality` (built in: ``image``, ``audio``)."""
    num_classes: int | None = None
    sample_rate: int | None = None
    """Time series only (audio): samples per second along the last axis."""
    info: dict[str, Any] = field(default_factory=dict)
    """Free-form facts recorded with the run (source files, versions); JSON-serialisable."""

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])


@runtime_checkable
class Dataset(Protocol):
    """Constructed as ``cls(config, data_root)``, plus ``cache_dir=`` when ``uses_cache_dir`` is true."""

    name: ClassVar[str]
    Config: ClassVar[type]
    uses_cache_dir: ClassVar[bool]
    """Optional, default False. True: the constructor also receives ``cache_dir`` (a :class:`pathlib.Path`,
    ``<cache-dir>/datasets``) for data built or converted once."""
    defaults: ClassVar[dict[str, Any]]
    """Optional, default ``{}``: a partial config (``{"run": {...}, "encoder": {"<name>": {...}}}``) merged
    beneath the user's file and options, so that ``--dataset <name>`` alone picks fitting models and metrics."""

    def load(self) -> DataSplits:
        """Read (or build) the data. A missing or malformed file raises :class:`anytime_bench.DataError` naming it."""


@runtime_checkable
class Encoder(Protocol):
    """Constructed as ``cls(config, data_shape)``; ``data_shape`` is one item's shape (``(C, H, W)`` for images)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    ordered: ClassVar[bool]
    """Required. True when training puts the most important codes first (nested dropout, quantizer dropout...);
    reports mark ``ordered = False`` models as unordered baselines."""

    per_budget: ClassVar[bool]
    """Optional, default False. True: a *per-budget* model (an oracle): instead of one encoder whose prefixes serve
    every budget, the core builds one instance per budget, ``cls(config, data_shape, tokens=k)`` with the k codes
    the budget allows out of the D of ``cls(config, data_shape)``, trains each with its own prior, and samples each
    at its full length k. Reports show it as one model, against which the price of anytime is measured."""

    code_length: int
    """D, the number of codes per item; an int >= 1 once constructed (an attribute or a property)."""
    codebook_size: int
    """K: codes are integers in ``[0, K)``; an int >= 2 once constructed."""

    def fit(self, data: torch.Tensor, ctx: RunContext) -> dict[str, float] | None:
        """Train on ``data`` (the training split, ``[N, *data_shape]`` in ``[-1, 1]``, on the CPU).

        Returns statistics to record with the run (JSON numbers), or None. Use
        ``ctx`` for the device, seeded generators, progress, mini-batches,
        DDP and mid-stage checkpoints (see :class:`anytime_bench.RunContext`).
        """

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes ``[B, D]`` (int64, in ``[0, K)``) of a batch ``[B, *data_shape]`` on the encoder's device.

        Deterministic: the same input gives the same codes. Called in inference mode (``torch.no_grad``). Also
        called once on an untrained instance, before any training, with two real examples (the core's preflight
        checks shapes and ranges there): it must work, whatever codes it gives.
        """

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Finite data ``[B, *data_shape]`` in ``[-1, 1]`` from a code *prefix* ``[B, k]``, any ``1 <= k <= D``.

        The missing tail is filled the way training defined (zeros, a learned
        vector...); this is what makes anytime sampling possible. Called in
        inference mode; inputs are on the encoder's device.
        """

    def state_dict(self) -> dict[str, Any]:
        """Everything ``load_state_dict`` needs, as tensors and plain values (saved with ``torch.save`` and loaded
        with ``weights_only=True``, so no custom classes), and no NaN: a checkpoint holding NaN is refused as
        corrupt (infinities, as in a mask buffer, are allowed, but not in a learned parameter)."""

    def load_state_dict(self, state: dict[str, Any]) -> Any:
        """Restore a ``state_dict``; afterwards ``encode``/``decode`` behave exactly as before it was saved.

        It takes its own ``state_dict`` without raising or warning; when it raises or warns on a checkpoint file,
        or the file holds a tensor of another kind (boolean, integer, floating-point, complex) than the same key
        of the component's own ``state_dict()``, the core reports that the file does not fit the component (bad
        input, not a plugin failure)."""

    def to(self, device: torch.device) -> Any:
        """Optional. Move to ``device``; the core then passes inputs on that device. Without ``to`` the component
        is given CPU tensors only."""

    def covered_budgets(self, budgets: list[float]) -> list[float]:
        """Optional, per-budget models only; called on the instance built without ``tokens``: which of the run's
        budgets to train a member for (training one model per budget is costly). Default: all of them."""

    def code_vectors(self) -> torch.Tensor:
        """Optional. What each code stands for in the latent the decoder reads: a finite float tensor ``[D, K, E]``
        whose row ``[d, k]`` is the vector of code ``k`` at position ``d``, such that the latent decoded from a
        prefix is the sum of its codes' vectors (residual VQ: each stage's codebook). Called on the trained (or
        restored) encoder; a prior may read codes through it (:meth:`Prior.use_code_vectors`)."""


@runtime_checkable
class Prior(Protocol):
    """Constructed as ``cls(config, vocab_size, seq_len)``: codes are in ``[0, vocab_size)``, sequences have
    ``seq_len`` (= D) codes."""

    name: ClassVar[str]
    Config: ClassVar[type]
    kv_cache: ClassVar[bool]
    """Optional, default False. True: ``stream`` keeps a key/value cache and also accepts ``use_cache=False``, which
    re-runs the whole prefix at every step and draws the same codes (``bench`` times both, and ``cost.csv``'s
    ``cache`` column reports this declaration)."""
    sampling_options: ClassVar[tuple[str, ...]]
    """Optional, default ``("temperature", "top_k")``: the sampling settings of :data:`SAMPLING_OPTIONS` that a
    config may set for this prior. ``"top_p"`` declares nucleus sampling: ``stream`` (and ``sample``) then accept a
    ``top_p`` keyword, checked when plugins load. A config that sets a setting the prior does not declare away from
    its default is refused when it is read (exit 2, naming the prior and the setting)."""

    def fit(self, train_codes: torch.Tensor, ctx: RunContext) -> dict[str, float] | None:
        """Train on code sequences ``[N, D]`` (int64, on the CPU). Hold out what early stopping needs from them,
        never the test set. Returns statistics to record, or None."""

    def stream(self, n: int, length: int, *, generator: torch.Generator, temperature: float = 1.0,
               top_k: int | None = None) -> Iterator[torch.Tensor]:
        """Yield ``length`` tensors, one per position: the ``[n]`` int64 codes drawn at that position for each of
        the ``n`` sequences (on any device; the core moves them to the CPU).

        One incremental step per token, so that stopping after ``k`` tokens
        costs about ``k`` steps. The caller stops sampling by no longer
        iterating (the generator is closed): nothing may depend on the
        iteration finishing. ``generator`` is a seeded CPU
        :class:`torch.Generator`: the same seed gives the same codes, and a
        prefix of the stream does not depend on ``length``. ``top_k=None``
        samples from the full distribution; a positive ``top_k`` keeps the
        ``k`` most likely codes. ``1 <= length <= seq_len``.

        Optional keyword ``top_p`` (nucleus sampling): keep, at each position,
        the fewest most likely codes whose probabilities add up to at least
        ``top_p``. The core passes it only when ``run.top_p`` is below 1, to
        ``sample`` as well; a config that sets it for a prior whose ``stream``
        (or ``sample``) does not accept it is refused before any training.
        """

    def sample(self, n: int, length: int, *, generator: torch.Generator, temperature: float = 1.0,
               top_k: int | None = None) -> torch.Tensor:
        """Optional. ``[n, length]`` codes, equal to stacking ``stream`` with the same arguments. Default: exactly
        that stacking."""

    def use_code_vectors(self, vectors: torch.Tensor | None) -> None:
        """Optional. Called once right after construction, before ``fit``, ``load_state_dict`` or ``stream``, with
        the encoder's :meth:`Encoder.code_vectors` (``[seq_len, vocab_size, E]`` float on the CPU), or None when
        the encoder has none. A prior that reads them keeps them in its ``state_dict``, so that its checkpoint
        samples without the encoder; one whose options need them raises :class:`anytime_bench.ConfigError` on
        None (one line, exit 2, before any training)."""

    def state_dict(self) -> dict[str, Any]:
        """As :meth:`Encoder.state_dict`."""

    def load_state_dict(self, state: dict[str, Any]) -> Any:
        """As :meth:`Encoder.load_state_dict`."""

    def to(self, device: torch.device) -> Any:
        """Optional. As :meth:`Encoder.to`."""


SAMPLING_OPTIONS: dict[str, tuple[str, float]] = {
    "temperature": ("a sampling temperature", 1.0),
    "top_k": ("top-k sampling", 0),
    "top_p": ("nucleus sampling", 1.0),
}
"""Every sampling setting the core knows: what it is, and the default that draws from the model's own distribution
(the core passes ``top_p`` only away from it)."""

DEFAULT_SAMPLING_OPTIONS = ("temperature", "top_k")
"""What a prior that declares no ``sampling_options`` accepts: the keywords ``stream`` must take."""


@dataclass
class MetricInputs:
    """What a metric sees at one (model, budget, seed)."""

    candidate: torch.Tensor
    """Generated or reconstructed data, ``[N, *data_shape]`` in ``[-1, 1]`` as stored (8-bit images...)."""
    reference: torch.Tensor
    """Real data: the test split for reconstructions, the configured reference split for generated samples."""
    dataset: str
    reference_split: str
    splits: DataSplits
    seed: int
    """The sampling seed of ``candidate`` (reconstructions: the run's seed)."""




@runtime_checkable
class Metric(Protocol):
    """Constructed as ``cls(config)``, once per run; ``compute`` is then called at every (model, budget, seed)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    requires: ClassVar[Literal["generated", "reconstructed"]]
    """Required. ``"generated"``: samples of the prior decoded from their first ``k`` codes, compared with the
    reference split; ``"reconstructed"``: the test split encoded and decoded from its first ``k`` codes,
    compared with the test split."""
    higher_is_better: ClassVar[bool]
    """Required. Orients plots, verdicts and anytime scores."""

    def compute(self, inputs: MetricInputs, ctx: RunContext) -> float | dict[str, float]:
        """Score ``inputs.candidate`` against ``inputs.reference``.

        A dict gives several values (``prc`` -> precision and recall), recorded
        as metrics ``<name>_<key>``. Deterministic given the global random
        state, which the core seeds before every call.
        """

    def provenance(self) -> dict[str, Any]:
        """What is needed to recompute the last number: a JSON-serialisable dict with the keys of
        :data:`PROVENANCE_KEYS` that apply (``implementation`` always)."""

    def preflight(self, inputs: MetricInputs, ctx: RunContext) -> None:
        """Optional. Called once before any training with a few test items as ``candidate``: raise
        :class:`anytime_bench.DataError` if a resource is missing (weights, labels), so that the run stops in
        seconds rather than after training. Default: nothing to check."""


@runtime_checkable
class Modality(Protocol):
    """How data of one kind is stored, previewed and exported. Constructed as ``cls(config)``.

    A dataset names its modality in ``DataSplits.modality``; a new kind of data
    (video, text...) is a new modality plugin, with no change to the core.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    preview_size: ClassVar[tuple[float, float]]
    """Optional, default ``(1.3, 1.4)``: width and height in inches of one cell of the sample grid."""

    def to_stored(self, x: torch.Tensor) -> np.ndarray:
        """Data ``[N, *data_shape]`` in ``[-1, 1]`` as saved in samples archives, shown and scored: a compact
        numpy array of the same shape (8-bit images, 16-bit PCM audio...). Values outside ``[-1, 1]`` are clipped."""

    def from_stored(self, a: np.ndarray) -> torch.Tensor:
        """The inverse of ``to_stored``: float32 ``[N, *data_shape]`` in ``[-1, 1]``. Raises ``ValueError`` for an
        array this modality never stores (wrong dtype or rank)."""

    def preview(self, ax: Any, stored: np.ndarray, splits_info: dict[str, Any]) -> None:
        """Draw a few stored items into one matplotlib ``ax`` (a cell of the sample grid: a mosaic of images, a
        spectrogram of clips...). ``splits_info`` holds ``sample_rate`` and ``data_shape``."""

    def export(self, item: np.ndarray, splits_info: dict[str, Any]) -> tuple[str, str, bytes] | None:
        """Optional. One stored item as a file a person can open: ``(suffix, mime type, bytes)``, e.g.
        ``(".wav", "audio/wav", ...)``. The core writes a few per model and budget under ``<modality>/<model>/``
        and embeds them in HTML reports. Default: None (nothing exported)."""


#: Every member the core uses, per kind: ``(member, what it is, required)``. ``what`` is ``"class"`` for a
#: class attribute checked when plugins load, ``"instance"`` for a value checked once a component is built, or
#: the call the core makes (its signature is checked when plugins load).
CONTRACT: dict[str, list[tuple[str, str, bool]]] = {
    "dataset": [
        ("name", "class", True),
        ("Config", "class", True),
        ("load", "load()", True),
        ("uses_cache_dir", "class", False),
        ("defaults", "class", False),
    ],
    "encoder": [
        ("name", "class", True),
        ("Config", "class", True),
        ("ordered", "class", True),
        ("code_length", "instance", True),
        ("codebook_size", "instance", True),
        ("fit", "fit(data, ctx)", True),
        ("encode", "encode(x)", True),
        ("decode", "decode(codes)", True),
        ("state_dict", "state_dict()", True),
        ("load_state_dict", "load_state_dict(state)", True),
        ("to", "to(device)", False),
        ("per_budget", "class", False),
        ("covered_budgets", "covered_budgets(budgets)", False),
        ("code_vectors", "code_vectors()", False),
    ],
    "prior": [
        ("name", "class", True),
        ("Config", "class", True),
        ("fit", "fit(train_codes, ctx)", True),
        ("stream", "stream(n, length, *, generator, temperature, top_k)", True),
        ("sample", "sample(n, length, *, generator, temperature, top_k)", False),
        ("use_code_vectors", "use_code_vectors(vectors)", False),
        ("state_dict", "state_dict()", True),
        ("load_state_dict", "load_state_dict(state)", True),
        ("to", "to(device)", False),
        ("kv_cache", "class", False),
        ("sampling_options", "class", False),
    ],
    "metric": [
        ("name", "class", True),
        ("Config", "class", True),
        ("requires", "class", True),
        ("higher_is_better", "class", True),
        ("compute", "compute(inputs, ctx)", True),
        ("provenance", "provenance()", True),
        ("preflight", "preflight(inputs, ctx)", False),
    ],
    "modality": [
        ("name", "class", True),
        ("Config", "class", True),
        ("to_stored", "to_stored(x)", True),
        ("from_stored", "from_stored(a)", True),
        ("preview", "preview(ax, stored, splits_info)", True),
        ("export", "export(item, splits_info)", False),
        ("preview_size", "class", False),
    ],
}

#: The protocol class of each kind, for ``isinstance`` checks and documentation.
PROTOCOLS: dict[str, type] = {"dataset": Dataset, "encoder": Encoder, "prior": Prior, "metric": Metric,
                              "modality": Modality}

#: How each kind's class is constructed (documentation; :mod:`anytime_bench.components` does it).
CONSTRUCTORS: dict[str, str] = {
    "dataset": "cls(config, data_root[, cache_dir=...])",
    "encoder": "cls(config, data_shape), plus tokens=k for per-budget models",
    "prior": "cls(config, vocab_size, seq_len)",
    "metric": "cls(config)",
    "modality": "cls(config)",
}
