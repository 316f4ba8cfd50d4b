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
:mod:`anytime_bench.contract.components`, which names the plugin and the stage when a
call raises. :mod:`anytime_bench.testing` runs the same contract against a
component on tiny data, for plugin authors' own test suites.

Members marked *optional* have the default given here, applied in one place
(:mod:`anytime_bench.contract.components`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from anytime_bench.contract.context import RunContext
from anytime_bench.store.rundir import COMPARABILITY_KEYS, PROVENANCE_KEYS  # noqa: F401  (part of the Metric contract)


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
    """Free-form facts about the data (its source, class names) that metrics may read (``asr`` reads
    ``vocabulary``): a dict with string keys, checked with the splits; not recorded with the run."""
    validation: torch.Tensor | None = None
    """Held-out items that neither training nor the test metrics read, ``[N, *data_shape]`` in ``[-1, 1]``, or
    ``None``: the real data of ``run.reference_split = "validation"``, for choosing settings (how a prior is sampled)
    on other data than the results are reported on."""
    validation_labels: torch.Tensor | None = None
    """Labels of ``validation`` (int64 ``[N]``), given exactly when the other splits have labels."""

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

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """Optional. The natural log of the probability of each code of ``codes`` (int64 ``[B, L]``, ``1 <= L <=
        seq_len``, on the prior's device) given the codes before it, in the distribution ``stream`` draws from at
        temperature 1 with no top-k or top-p: float ``[B, L]``, finite and at most 0. Position ``i`` depends on
        codes ``0..i`` only, so the first ``k`` columns are those of ``codes[:, :k]``. The core scores the test
        split's codes with it for metrics that require ``"likelihood"`` (``nll``); a prior without it cannot be
        scored by them (refused before any training)."""

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
    """Generated or reconstructed data, ``[N, *data_shape]`` in ``[-1, 1]`` as stored (8-bit images...); for a
    metric that requires ``"likelihood"``, the prior's log-probabilities of the test split's first ``k`` codes,
    float ``[N, k]`` (natural log, at most 0; :meth:`Prior.log_prob`)."""
    reference: torch.Tensor
    """Real data: the test split for reconstructions and likelihoods, the configured reference split for generated
    samples."""
    dataset: str
    reference_split: str
    splits: DataSplits
    seed: int
    """The sampling seed of ``candidate`` (reconstructions: the run's seed)."""




@runtime_checkable
class Metric(Protocol):
    """Constructed as ``cls(config)``, once per run; ``compute`` is then called at every (model, budget, training
    seed), and for ``requires = "generated"`` at every sampling seed too (the others score data that no sampling seed
    changes: their value is recorded for each)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    requires: ClassVar[Literal["generated", "reconstructed", "likelihood"]]
    """Required. ``"generated"``: samples of the prior decoded from their first ``k`` codes, compared with the
    reference split; ``"reconstructed"``: the test split encoded and decoded from its first ``k`` codes,
    compared with the test split; ``"likelihood"``: the prior's log-probabilities of the test split's first ``k``
    codes (every model's prior must have :meth:`Prior.log_prob`); ``floor`` is not called for these."""
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

    def floor(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int) -> list[float] | dict[str, list[float]]:
        """Optional: what real data scores, read beside every model. ``requires = "generated"``: the real-versus-real
        floor: for each of ``splits`` seeded random splits of ``inputs.reference`` into ``n`` held-out items and
        the disjoint rest, the metric's value of the held-out items against the rest, as ``compute`` would score
        ``n`` generated items (``candidate`` is not read). The core picks ``n`` (the run's sample count, capped at
        half the reference set). Both sides are smaller than a model's (its samples against the whole reference
        set), so for a score that falls with the counts, as FID does, the floor lies above what a perfect generator
        would score. ``requires = "reconstructed"``: the real
        test items' own score, what a perfect reconstruction scores (a recognizer's accuracy on the real clips; a
        metric comparing each reconstruction with its original has no use for it): ``inputs.reference`` is the test
        split, cut by one permutation seeded 0 into ``splits`` disjoint folds of ``n`` items, and each fold's real
        items are scored as ``compute`` scores reconstructions. The core calls it once per evaluation, after
        ``compute``, so that ``provenance()`` names the feature space; cache the values with the reference
        statistics. A dict, as from ``compute``, gives each value's floor. Default: no floor (summaries and reports
        say so)."""


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


class Member(NamedTuple):
    """One member of the contract: what the core checks (``name``, ``what``, ``required``) and what a plugin author
    needs to write it (the rest, shown as the plugin guide's method tables by ``docs/gen.py``, so that the guide
    cannot drift from what is checked). The descriptive fields are Markdown, one line each."""

    name: str
    what: str
    """``"class"`` for a class attribute checked when plugins load, ``"instance"`` for a value checked once a
    component is built, or the call the core makes (its signature is checked when plugins load)."""
    required: bool
    arguments: str = ""
    """Each argument of the call with its type and shape; empty for an attribute or a call without arguments."""
    returns: str = ""
    """What the call returns, or the attribute's value, with its type and shape."""
    raises: str = ""
    """The errors to raise and when (each importable from :mod:`anytime_bench`); empty when none is expected."""
    default: str = ""
    """Optional members only: what the core does when the member is absent."""


_NAME = Member("name", "class", True, returns="`str`: what users type, 1-64 lower-case letters, digits, `.`, `_` or "
                                             "`-` (it appears in file names), unique per kind")
_CONFIG = Member("Config", "class", True,
                 returns="a dataclass of options, each with a default; the constructor gets an instance",
                 raises="`ConfigError` from `Config.validate()` (through `anytime_bench.require`) for an option out "
                        "of range")
_DEVICE = Member("to", "to(device)", False, arguments="`device`: `torch.device`",
                 returns="anything (ignored); the core then passes inputs on that device",
                 default="the component gets CPU tensors only")
_STATE_DICT = Member("state_dict", "state_dict()", True,
                     returns="`dict[str, Any]` of tensors and plain values (saved with `torch.save`, loaded with "
                             "`weights_only=True`: no custom classes), holding no NaN")
_LOAD_STATE_DICT = Member("load_state_dict", "load_state_dict(state)", True,
                          arguments="`state`: a dict as `state_dict()` returns, read from a checkpoint file that may "
                                    "come from someone else",
                          returns="anything (ignored); afterwards the component behaves exactly as when it was saved",
                          raises="any exception (or warning) for a state that does not fit: the core reports the file "
                                 "as not fitting (`CheckpointError`, exit 2); its own `state_dict()` must load "
                                 "silently")
_CTX = "`ctx`: `anytime_bench.RunContext` (device, seeded generators, progress, mini-batches, DDP, checkpoints)"
_STATS = "`dict[str, float]` of statistics to record with the run (JSON numbers), or None"
_LOSS = ("`NonFiniteLossError`, through `check_finite(loss, stage, step)` before each step, when the loss becomes "
         "NaN or infinite")

#: Every member the core uses, per kind, with what it is, whether it is required and (for the plugin guide) its
#: arguments, returns, errors and default. :mod:`anytime_bench.contract.checks` checks classes against it when plugins
#: load; ``docs/gen.py`` writes the guide's method tables from it.
CONTRACT: dict[str, list[Member]] = {
    "dataset": [
        _NAME,
        _CONFIG,
        Member("load", "load()", True,
               returns="`DataSplits`: `train`/`test` float `[N, *data_shape]` in [-1, 1], labels int64 `[N]` in "
                       "`0..num_classes-1` or None, `modality` a registered modality's name",
               raises="`DataError` naming the file that is missing or malformed (or the missing `--data-root`)"),
        Member("uses_cache_dir", "class", False,
               returns="`bool`; True: the constructor also gets `cache_dir=` (a `pathlib.Path`, "
                       "`<cache-dir>/datasets`) for data built or converted once", default="False"),
        Member("defaults", "class", False,
               returns="`dict`: a partial config (`{\"run\": {...}, \"encoder\": {\"<name>\": {...}}}`) merged "
                       "beneath the user's, so that `--dataset <name>` alone picks fitting models and metrics",
               default="`{}`"),
    ],
    "encoder": [
        _NAME,
        _CONFIG,
        Member("ordered", "class", True,
               returns="`bool`: True when training puts the most important codes first; reports mark the others "
                       "as unordered baselines"),
        Member("code_length", "instance", True, returns="D: an `int` >= 1 (an attribute or a property)"),
        Member("codebook_size", "instance", True, returns="K: an `int` >= 2; codes are in `[0, K)`"),
        Member("fit", "fit(data, ctx)", True,
               arguments="`data`: the training split, float `[N, *data_shape]` in [-1, 1], on the CPU; " + _CTX,
               returns=_STATS, raises=_LOSS),
        Member("encode", "encode(x)", True,
               arguments="`x`: float `[B, *data_shape]` in [-1, 1], on the encoder's device",
               returns="int64 `[B, D]` in `[0, K)`, the same for the same input; also untrained (the preflight "
                       "encodes two real examples before any training)"),
        Member("decode", "decode(codes)", True,
               arguments="`codes`: int64 `[B, k]`, a prefix, any `1 <= k <= D`, on the encoder's device",
               returns="finite float `[B, *data_shape]` in [-1, 1], the missing tail filled the way training "
                       "defined; also untrained"),
        _STATE_DICT,
        _LOAD_STATE_DICT,
        _DEVICE,
        Member("per_budget", "class", False,
               returns="`bool`; True: a per-budget oracle, built once per budget as `cls(config, data_shape, "
                       "tokens=k)` with exactly the k codes the budget allows", default="False"),
        Member("covered_budgets", "covered_budgets(budgets)", False,
               arguments="`budgets`: the run's budgets, `list[float]` in (0, 1]",
               returns="a non-empty sub-list of `budgets` to train a member for (per-budget models only)",
               default="all of them"),
        Member("code_vectors", "code_vectors()", False,
               returns="finite float `[D, K, E]`: the latent vector of code k at position d, a prefix's latent "
                       "being the sum of its codes' vectors", default="no vectors: priors get None"),
    ],
    "prior": [
        _NAME,
        _CONFIG,
        Member("fit", "fit(train_codes, ctx)", True,
               arguments="`train_codes`: int64 `[N, D]` in `[0, vocab_size)`, on the CPU (hold out what early "
                         "stopping needs from them, never the test set); " + _CTX,
               returns=_STATS, raises=_LOSS),
        Member("stream", "stream(n, length, *, generator, temperature, top_k)", True,
               arguments="`n`: `int` >= 1 sequences; `length`: `int` in `1..seq_len`; `generator`: a seeded CPU "
                         "`torch.Generator`; `temperature`: `float` > 0; `top_k`: `int` > 0, or None for the full "
                         "distribution; `top_p`: `float` in (0, 1), only if declared in `sampling_options`; "
                         "`use_cache=False`, only if `kv_cache` is True",
               returns="an iterator yielding `length` int64 `[n]` tensors in `[0, vocab_size)`, one per position, "
                       "one incremental step each (any device); the caller may stop iterating at any point"),
        Member("sample", "sample(n, length, *, generator, temperature, top_k)", False,
               arguments="as `stream`", returns="int64 `[n, length]`, equal to the stacked `stream`",
               default="the stacked `stream`"),
        Member("use_code_vectors", "use_code_vectors(vectors)", False,
               arguments="`vectors`: the encoder's `code_vectors()`, float `[seq_len, vocab_size, E]` on the CPU, "
                         "or None; called once, before `fit`, `load_state_dict` or `stream`",
               returns="None; a prior that reads them keeps them in its `state_dict`",
               raises="`ConfigError` on None when its options need them (exit 2, before any training)",
               default="not called"),
        _STATE_DICT,
        _LOAD_STATE_DICT,
        _DEVICE,
        Member("log_prob", "log_prob(codes)", False,
               arguments="`codes`: int64 `[B, L]` in `[0, vocab_size)`, `1 <= L <= seq_len`, on the prior's device",
               returns="float `[B, L]`, finite and at most 0: the natural log of the probability of each code given "
                       "those before it, as `stream` draws at temperature 1 with no top-k or top-p (position `i` "
                       "depends on codes `0..i` only); over the vocabulary the probabilities at a position add up "
                       "to 1",
               default="metrics that require `\"likelihood\"` (`nll`) cannot score the prior: a run that asks "
                       "for them is refused before any training"),
        Member("kv_cache", "class", False,
               returns="`bool`; True: `stream` keeps a key/value cache and also accepts `use_cache=False`, drawing "
                       "the same codes (`bench` times both)", default="False"),
        Member("sampling_options", "class", False,
               returns="`tuple[str, ...]` of the sampling settings a config may set for it, out of "
                       + ", ".join(f"`{name}`" for name in SAMPLING_OPTIONS) + " (`SAMPLING_OPTIONS`)",
               default=f"`{DEFAULT_SAMPLING_OPTIONS!r}`".replace("'", '"')),
    ],
    "metric": [
        _NAME,
        _CONFIG,
        Member("requires", "class", True,
               returns="`\"generated\"` (samples of the prior, against the reference split), "
                       "`\"reconstructed\"` (the test split encoded and decoded, against itself) or "
                       "`\"likelihood\"` (the prior's log-probabilities of the test split's codes, `[N, k]`, as "
                       "`candidate`; no floor)"),
        Member("higher_is_better", "class", True, returns="`bool`: orients plots, verdicts and anytime scores"),
        Member("compute", "compute(inputs, ctx)", True,
               arguments="`inputs`: `MetricInputs` (`candidate` and `reference` float `[N, *data_shape]` in [-1, 1] "
                         "as stored, `dataset`, `reference_split`, `splits`, `seed`); " + _CTX,
               returns="a `float`, or a `dict[str, float]` recorded as metrics `<name>_<key>`; deterministic given "
                       "the global random state, which the core seeds; NaN or an infinity is recorded as it is, shown "
                       "as `-` and left out of every statistic (the kit refuses one on real data)",
               raises="`DataError` when the data cannot be scored (wrong modality, no labels)"),
        Member("provenance", "provenance()", True,
               returns="a JSON-serialisable `dict` (no NaN or infinity) with the keys of `PROVENANCE_KEYS` that "
                       "apply, "
                       "`implementation` always: how to recompute the last number"),
        Member("preflight", "preflight(inputs, ctx)", False,
               arguments="as `compute`, with a few real test items (not quantized) as `candidate`; called once "
                         "before any training",
               returns="None", raises="`DataError` when a resource is missing (weights, labels)",
               default="nothing to check"),
        Member("floor", "floor(inputs, ctx, n, splits)", False,
               arguments="`inputs` and `ctx` as for `compute` (`candidate` is not read); `n`: `int` >= 2 items per "
                         "split (generated: the run's sample count capped at half the reference set; reconstructed: "
                         "the test split's size over `splits`); `splits`: `int` >= 2 seeded splits (folds)",
               returns="what real data scores, as `list[float]` of `splits` values (a `dict[str, list[float]]` when "
                       "`compute` returns a dict): for `requires = \"generated\"`, the real-versus-real floor, per "
                       "split the value of `n` reference items held out against the disjoint rest; for "
                       "`requires = \"reconstructed\"`, the real test items' own score, per fold of `n` items "
                       "(one permutation seeded 0, disjoint folds) scored as reconstructions; cached with the "
                       "reference statistics; called after `compute`",
               default="no floor (also `floor = None`, which gives up an inherited one): summaries and reports say "
                       "the metric has none"),
    ],
    "modality": [
        _NAME,
        _CONFIG,
        Member("to_stored", "to_stored(x)", True,
               arguments="`x`: float `[N, *data_shape]` in [-1, 1], up to `RANGE_SLACK` beyond (the core does not "
                         "clip: the modality does)",
               returns="a compact `numpy.ndarray` of the same shape (8-bit images, 16-bit PCM audio), as saved in "
                       "samples archives, shown and scored"),
        Member("from_stored", "from_stored(a)", True, arguments="`a`: a `numpy.ndarray` read from a samples archive",
               returns="float32 `torch.Tensor` `[N, *data_shape]` in [-1, 1], the inverse of `to_stored`",
               raises="`ValueError` for an array this modality never stores (wrong dtype or rank): the core names "
                      "the file (`DataError`, exit 2)"),
        Member("preview", "preview(ax, stored, splits_info)", True,
               arguments="`ax`: a matplotlib `Axes` (one cell of the sample grid); `stored`: a few stored items "
                         "`[n, *data_shape]`; `splits_info`: a `dict` with `modality`, `data_shape` (a list) and "
                         "`sample_rate`",
               returns="None: it draws into `ax`"),
        Member("export", "export(item, splits_info)", False,
               arguments="`item`: one stored item `[*data_shape]`; `splits_info`: as `preview`",
               returns="`(suffix, mime type, bytes)`, e.g. `(\".wav\", \"audio/wav\", ...)` (the suffix a dot "
                       "and 1-8 letters or digits: it names files), a file a person can "
                       "open, or None", default="None: nothing exported"),
        Member("preview_size", "class", False,
               returns="`tuple[float, float]`: width and height in inches of one cell of the sample grid",
               default="`(1.3, 1.4)`"),
    ],
}

#: The protocol class of each kind, for ``isinstance`` checks and documentation.
PROTOCOLS: dict[str, type] = {"dataset": Dataset, "encoder": Encoder, "prior": Prior, "metric": Metric,
                              "modality": Modality}

#: How each kind's class is constructed (documentation; :mod:`anytime_bench.contract.components` does it).
CONSTRUCTORS: dict[str, str] = {
    "dataset": "cls(config, data_root[, cache_dir=...])",
    "encoder": "cls(config, data_shape), plus tokens=k for per-budget models",
    "prior": "cls(config, vocab_size, seq_len)",
    "metric": "cls(config)",
    "modality": "cls(config)",
}
