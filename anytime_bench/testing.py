"""The conformance kit: prove that a component honours the plugin contract before anyone runs it.

Plugin authors run it in their own test suite, as scikit-learn users run
``check_estimator``::

    from anytime_bench.testing import parametrize_checks

    @parametrize_checks([("encoder", MyEncoder, MyEncoder.Config(steps=5))])
    def test_conformance(check):
        check()

or call :func:`check_component` directly. Each check runs the component on
tiny data (the toy 8x8 images unless given ``data=``, your own
:class:`DataSplits` or an item shape, or ``dataset=``, a slice of a registered
dataset plugin such as ``"digits"``) through the same wrappers the core uses
(:mod:`anytime_bench.contract.components`), and fails with an :class:`AssertionError`
that names the check. Every kind is checked for determinism under a seed.

* encoder: fit, encode to ``[B, D]`` int64 in ``[0, K)``, decode every prefix
  ``1..D`` to the data shape, a state-dict round trip (through
  ``torch.save``/``torch.load(weights_only=True)``, no NaN, loaded without a
  warning) giving identical codes;
* prior: fit, ``stream`` of every length ``1..D``, stopping after any
  prefix, prefixes independent of the length asked for, ``sample`` equal to
  the stacked stream, the same codes with and without a declared KV cache;
* metric: real against real scores better than real against noise, a
  JSON-serialisable ``provenance()`` with ``implementation``;
* dataset: splits, shapes, range ``[-1, 1]``, labels in range;
* modality: storing and reading back within one quantization step, preview,
  export.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import inspect
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anytime_bench.contract.checks import check_class
from anytime_bench.contract.components import (
    BoundDataset,
    BoundEncoder,
    BoundMetric,
    BoundModality,
    BoundPrior,
    splits_problem,
)
from anytime_bench.contract.context import RunContext, seed_everything
from anytime_bench.contract.conventions import RANGE_SLACK
from anytime_bench.contract.interfaces import DataSplits, MetricInputs
from anytime_bench.contract.plugin_manager import Component, Origin, Plugins, entry_point_origins, load_plugins
from anytime_bench.contract.schema import short
from anytime_bench.errors import AnytimeBenchError, CheckpointError, ComponentError, ConfigError, DataError, first_line
from anytime_bench.files import storage

KINDS = ("dataset", "encoder", "prior", "metric", "modality")


class ConformanceError(AssertionError):
    """A component failed a check; the message names the component and the check."""


@dataclass(frozen=True)
class Check:
    """One named check of one component: call it to run it."""

    kind: str
    cls: type
    name: str
    run: Callable[[], None]

    @property
    def id(self) -> str:
        return f"{self.kind}-{getattr(self.cls, 'name', self.cls.__name__)}-{self.name}"

    def __call__(self) -> None:
        try:
            self.run()
        except ConformanceError:
            raise
        except (AssertionError, AnytimeBenchError, ComponentError) as exc:
            raise ConformanceError(f"{self.kind} {getattr(self.cls, 'name', self.cls)!r} fails {self.name!r}: "
                                   f"{exc}") from exc


# ---------------------------------------------------------------------- toy data


def toy_images(n: int = 96, size: int = 8, seed: int = 0) -> DataSplits:
    """Images ``[N, 1, size, size]`` of one bright horizontal or vertical bar; label = bar (2 x size classes)."""
    return _bars(n, 1, size, size, seed)


def _bars(n: int, channels: int, height: int, width: int, seed: int) -> DataSplits:
    """Images ``[N, channels, height, width]`` of one bar across a row or a column; label = the bar."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, height + width, (n,), generator=g)
    x = torch.full((n, channels, height, width), -1.0)
    for i, label in enumerate(labels.tolist()):
        if label < height:
            x[i, :, label, :] = 1.0
        else:
            x[i, :, :, label - height] = 1.0
    x = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    cut = n * 3 // 4
    return DataSplits(x[:cut], x[cut:], labels[:cut], labels[cut:], modality="image", num_classes=height + width)


def toy_audio(n: int = 96, length: int = 1280, rate: int = 8000, classes: int = 4, seed: int = 0) -> DataSplits:
    """Clips ``[N, 1, length]`` of a tone whose pitch is the label (``classes`` pitches), at ``rate`` Hz."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    t = torch.arange(length) / rate
    frequency = 200.0 * (1.5 ** labels.float())[:, None]
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    x = (0.6 * torch.sin(2 * math.pi * frequency * t + phase) + 0.02 * torch.randn(n, length, generator=g))
    x = x.clamp(-1, 1).unsqueeze(1)
    cut = n * 3 // 4
    return DataSplits(x[:cut], x[cut:], labels[:cut], labels[cut:], modality="audio", num_classes=classes,
                      sample_rate=rate)


def toy_data(shape: tuple[int, ...], n: int = 96, seed: int = 0) -> DataSplits:
    """Toy data at one item's shape: bars (:func:`toy_images`) for images ``(C, H, W)``, tones
    (:func:`toy_audio`, every channel alike) for time series ``(C, T)``."""
    if not _is_shape(shape) or len(shape) not in (2, 3):
        raise ValueError(f"an item shape is (C, H, W) for images or (C, T) for time series, got {short(shape)}")
    if len(shape) == 3:
        return _bars(n, *shape, seed)
    splits = toy_audio(n, length=shape[1], seed=seed)
    splits.train, splits.test = splits.train.repeat(1, shape[0], 1), splits.test.repeat(1, shape[0], 1)
    return splits


def _is_shape(value: Any) -> bool:
    return (isinstance(value, (tuple, list)) and bool(value)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in value))


@functools.cache
def _registry() -> Plugins:
    """The installed plugins, loaded once per process (a test suite may slice several datasets)."""
    return load_plugins()


def dataset_slice(name: str, train: int = 96, test: int = 32) -> DataSplits:
    """The first ``train`` and ``test`` items of the registered dataset plugin ``name`` (its default config),
    loaded as the core loads it but with no data root: only a dataset that needs no files of the user's and no
    download loads here (``digits``); any other is a :class:`ConfigError` saying so."""
    if not isinstance(name, str):
        raise TypeError(f"dataset must be the name of a registered dataset plugin, such as 'digits', got {short(name)}")
    plugins = _registry()
    component = plugins.get("dataset", name)
    try:
        dataset = BoundDataset.build(component, component.cls.Config(), None, _scratch() / "datasets")
        with dataset.blame("load data"):
            splits = dataset.obj.load()
    except DataError as exc:  # what a dataset raises for files it lacks; a failure of its code stays one
        raise ConfigError(f"dataset {name!r} does not load without a data root, which the kit does not give "
                          f"({first_line(exc, 200)}): load it yourself and pass data=splits") from None
    problem = splits_problem(splits, plugins.names("modality"))
    if problem:
        raise DataError(f"dataset {name!r} from {component.origin}: {problem}")
    labelled = splits.train_labels is not None and splits.test_labels is not None
    held_out = splits.validation is not None
    return dataclasses.replace(splits, train=splits.train[:train], test=splits.test[:test],
                               train_labels=splits.train_labels[:train] if labelled else None,
                               test_labels=splits.test_labels[:test] if labelled else None,
                               validation=splits.validation[:test] if held_out else None,
                               validation_labels=splits.validation_labels[:test] if held_out and labelled else None)


def toy_codes(n: int, length: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """Code sequences with structure a prior can learn: each code depends on the one before."""
    g = torch.Generator().manual_seed(seed)
    first = torch.randint(0, vocab, (n, 1), generator=g)
    steps = torch.randint(0, 2, (n, length - 1), generator=g)
    return torch.cat([first, first + steps.cumsum(1)], dim=1) % vocab


def _scratch() -> Path:
    """A temporary folder for caches, removed when the process ends."""
    folder = Path(tempfile.mkdtemp(prefix="anytime-bench-kit-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _context(tmp: Path, seed: int = 0) -> RunContext:
    return RunContext(device=torch.device("cpu"), seed=seed, cache_dir=tmp / "cache", quiet=True)


def _component(kind: str, cls: type) -> Component:
    return Component(kind, str(getattr(cls, "name", cls.__name__)), cls, _origin(cls))


def _origin(cls: type) -> Origin:
    """Where a class under test comes from, as a run would name it: the entry point that registers its module and
    that entry point's distribution; else its module, and the distribution that installed it, if any (a class
    checked before its package is installed has none yet)."""
    module = str(getattr(cls, "__module__", "") or "?")
    return _registered(module) or Origin(module, *(_distribution(module.split(".", 1)[0]) or ("(not installed)", "-")))


@functools.cache
def _registered(module: str) -> Origin | None:
    try:
        return next((origin for point, origin in entry_point_origins() if point.module == module), None)
    except Exception:  # noqa: BLE001 - a broken installation names no entry point, and the check goes on
        return None


@functools.cache
def _distribution(top_level: str) -> tuple[str, str] | None:
    """The installed distribution that provides the top-level package ``top_level``, and its version."""
    from importlib import metadata

    try:
        found = metadata.packages_distributions().get(top_level, [])
        return (found[0], metadata.version(found[0])) if found else None
    except Exception:  # noqa: BLE001 - a broken installation names no distribution, and the check goes on
        return None


def _data(data: Any) -> DataSplits:
    """What encoder, metric and modality checks run on: the toy 8x8 images by default, toy data of an item shape,
    or the caller's :class:`DataSplits`."""
    if data is None:
        return toy_images()
    if isinstance(data, DataSplits):
        return data
    if not _is_shape(data):
        raise TypeError(f"data must be a DataSplits or one item's shape, such as (1, 28, 28), got {short(data)}")
    return toy_data(tuple(data))


def _reload(bound: BoundEncoder | BoundPrior, saved: BoundEncoder | BoundPrior) -> None:
    """``saved``'s state into ``bound`` through the core's own checkpoint path (``save_checkpoint``,
    ``load_checkpoint``, ``load_saved``): a state the core would refuse from a file fails the check."""
    kind, name = bound.component.kind, bound.name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}.pt"
        storage.save_checkpoint(path, kind=kind, name=name, config_digest="kit", state=saved.state_dict("save"))
        try:
            bound.load_saved(storage.load_checkpoint(path, kind=kind, name=name, config_digest="kit")["state"], path)
        except CheckpointError as exc:
            raise AssertionError(f"its own state_dict() is refused as a checkpoint: {exc}") from None
    bound.weights_from = None  # the file is gone: later failures should not point at it


def _contract(kind: str, cls: type) -> None:
    problems = check_class(kind, cls)
    assert not problems, "; ".join(problems)


# ---------------------------------------------------------------------- encoders


def encoder_checks(cls: type, config: Any = None, data: DataSplits | tuple[int, ...] | None = None) -> list[Check]:
    data = _data(data)
    config = _checked_arguments("encoder", cls, config)
    state: dict[str, Any] = {}

    def trained(seed: int = 0) -> BoundEncoder:
        key = f"fit{seed}"
        if key not in state:
            with tempfile.TemporaryDirectory() as tmp:
                seed_everything(seed)
                encoder = BoundEncoder.build(_component("encoder", cls), config, data.data_shape, torch.device("cpu"))
                stats = encoder.fit(data.train, _context(Path(tmp), seed), "fit")
                json.dumps(stats)
            state[key] = encoder
        return state[key]

    def build() -> None:
        encoder = BoundEncoder.build(_component("encoder", cls), config, data.data_shape, torch.device("cpu"))
        assert isinstance(cls.ordered, bool)
        assert encoder.code_length >= 1 and encoder.codebook_size >= 2

    def encode() -> None:
        encoder = trained()
        codes = encoder.encode_all(data.test)
        assert codes.shape == (len(data.test), encoder.code_length) and codes.dtype == torch.int64
        again = encoder.encode_all(data.test)
        assert torch.equal(codes, again), "encode() gave different codes for the same input"

    def decode_every_prefix() -> None:
        encoder = trained()
        codes = encoder.encode_all(data.test[:8])
        for k in range(1, encoder.code_length + 1):
            x = encoder.decode(codes[:, :k])
            assert tuple(x.shape) == (8, *data.data_shape), f"decode of {k} codes has shape {tuple(x.shape)}"
            assert torch.isfinite(x).all(), f"decode of {k} codes is not finite"
            assert float(x.abs().max()) <= 1 + RANGE_SLACK, f"decode of {k} codes leaves [-1, 1]"

    def state_dict_round_trip() -> None:
        encoder = trained()
        fresh = BoundEncoder.build(_component("encoder", cls), config, data.data_shape, torch.device("cpu"))
        _reload(fresh, encoder)
        before, after = encoder.encode_all(data.test), fresh.encode_all(data.test)
        assert torch.equal(before, after), "codes differ after a state_dict round trip"
        assert torch.allclose(encoder.decode(before[:8]), fresh.decode(after[:8]), atol=1e-6), \
            "decoded data differ after a state_dict round trip"

    def code_vectors() -> None:
        """An encoder that gives code vectors gives [D, K, E] finite floats (checked by the core), kept in its state."""
        encoder = trained()
        vectors = encoder.code_vectors()
        if vectors is None:
            return
        fresh = BoundEncoder.build(_component("encoder", cls), config, data.data_shape, torch.device("cpu"))
        _reload(fresh, encoder)
        assert torch.equal(vectors, fresh.code_vectors()), "code_vectors() differ after a state_dict round trip"

    def deterministic() -> None:
        first = trained(0).encode_all(data.test)
        with tempfile.TemporaryDirectory() as tmp:
            seed_everything(0)
            again = BoundEncoder.build(_component("encoder", cls), config, data.data_shape, torch.device("cpu"))
            again.fit(data.train, _context(Path(tmp), 0), "fit")
        assert torch.equal(first, again.encode_all(data.test)), "two fits with the same seed give different codes"

    def members() -> None:
        """A per-budget model builds a member with exactly k codes for a budget, which trains and decodes."""
        reference = BoundEncoder.build(_component("encoder", cls), config, data.data_shape, torch.device("cpu"))
        if not reference.per_budget:
            return
        budgets = reference.covered_budgets([0.5, 1.0])
        k = max(1, reference.code_length // 2)
        member = BoundEncoder.build(_component("encoder", cls), config, data.data_shape, torch.device("cpu"),
                                    tokens=k)
        assert member.code_length == k and budgets
        with tempfile.TemporaryDirectory() as tmp:
            member.fit(data.train, _context(Path(tmp)), "fit")
        assert member.decode(member.encode_all(data.test[:4])).shape == (4, *data.data_shape)

    return _named("encoder", cls, [lambda: _contract("encoder", cls), build, encode, decode_every_prefix,
                                   state_dict_round_trip, code_vectors, deterministic, members],
                  ["contract", "build", "encode", "decode every prefix", "state_dict round trip", "code vectors",
                   "deterministic under a seed", "per-budget members"])


# ---------------------------------------------------------------------- priors


def prior_checks(cls: type, config: Any = None, vocab: int = 8, length: int = 6, n: int = 64) -> list[Check]:
    config = _checked_arguments("prior", cls, config)
    for name, value, least in (("vocab", vocab, 2), ("length", length, 1), ("n", n, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {short(value)}")
    codes = toy_codes(n, length, vocab)
    state: dict[str, Any] = {}

    def build(vectors_seed: int = 0) -> BoundPrior:
        """A prior given what an encoder with code_vectors() would: a prior that reads them is checked with them."""
        prior = BoundPrior.build(_component("prior", cls), config, vocab, length, torch.device("cpu"))
        prior.use_code_vectors(torch.randn(length, vocab, 4, generator=torch.Generator().manual_seed(vectors_seed)))
        return prior

    def fitted(seed: int = 0) -> BoundPrior:
        key = f"fit{seed}"
        if key not in state:
            with tempfile.TemporaryDirectory() as tmp:
                seed_everything(seed)
                prior = build()
                stats = prior.fit(codes, _context(Path(tmp), seed), "fit")
                json.dumps(stats)
            state[key] = prior
        return state[key]

    def draw(prior: BoundPrior, size: int, seed: int = 3, **kw: Any) -> torch.Tensor:
        return torch.stack(list(prior.stream(5, size, generator=torch.Generator().manual_seed(seed), **kw)), 1)

    def stream_every_length() -> None:
        prior = fitted()
        for size in range(1, length + 1):
            out = draw(prior, size)
            assert out.shape == (5, size), f"stream of length {size} gave {tuple(out.shape)}"

    def prefixes() -> None:
        prior = fitted()
        full = draw(prior, length)
        for size in range(1, length):
            assert torch.equal(draw(prior, size), full[:, :size]), \
                f"the first {size} codes depend on the length asked for"
            stream = prior.stream(5, length, generator=torch.Generator().manual_seed(3))
            taken = [next(stream) for _ in range(size)]
            stream.close()  # stopping early must be possible
            assert torch.equal(torch.stack(taken, 1), full[:, :size]), f"stopping after {size} codes changes them"

    def sample_matches_stream() -> None:
        prior = fitted()
        sampled = prior.sample(5, length, generator=torch.Generator().manual_seed(3))
        assert torch.equal(sampled, draw(prior, length)), "sample() and the stacked stream() differ"

    def cache() -> None:
        prior = fitted()
        if prior.kv_cache:
            assert torch.equal(draw(prior, length), draw(prior, length, use_cache=False)), \
                "sampling with and without the KV cache draws different codes"

    def seeds() -> None:
        prior = fitted()
        assert torch.equal(draw(prior, length, seed=5), draw(prior, length, seed=5)), "one seed, different codes"

    def nucleus() -> None:
        prior = fitted()
        if not prior.nucleus:
            return  # top_p is optional: such a prior is refused only when a config asks for it
        assert torch.equal(draw(prior, length, seed=3, top_p=1e-6), draw(prior, length, seed=4, top_p=1e-6)), \
            "top_p near 0 must keep only the most likely code, whatever the seed"
        sampled = prior.sample(5, length, generator=torch.Generator().manual_seed(3), top_p=0.5)
        assert torch.equal(sampled, draw(prior, length, top_p=0.5)), "sample() and the stacked stream() differ " \
                                                                       "with top_p"

    def state_dict_round_trip() -> None:
        prior = fitted()
        fresh = build(vectors_seed=1)  # other vectors: the state must carry those it was trained with
        _reload(fresh, prior)
        assert torch.equal(draw(prior, length), draw(fresh, length)), "samples differ after a state_dict round trip"

    def log_prob() -> None:
        prior = fitted()
        if not prior.has_log_prob:
            return  # optional: metrics of likelihoods refuse such a prior before any training
        scores = prior.log_prob(codes[:5])
        for size in range(1, length):
            assert torch.allclose(prior.log_prob(codes[:5, :size]), scores[:, :size], atol=1e-5), \
                f"log_prob of the first {size} codes depends on the codes after them"
        at = {}  # position -> the log-probability of every code there, the others those of one sequence
        for position in (0, length - 1):
            every = codes[:1].repeat(vocab, 1)
            every[:, position] = torch.arange(vocab)
            at[position] = prior.log_prob(every)[:, position].double()
            total = float(torch.logsumexp(at[position], 0).exp())
            assert abs(total - 1) < 1e-3, f"log_prob's probabilities at position {position} add up to {total:.4f}"
        # The distribution stream draws from: the first code's frequencies over many draws against exp(log_prob).
        draws = 4000
        first = next(prior.stream(draws, 1, generator=torch.Generator().manual_seed(7)))
        seen = torch.bincount(first, minlength=vocab).double() / draws
        expected = at[0].exp()
        gap = float((seen - expected).abs().sum()) / 2
        assert gap < 0.05, f"stream's first codes are {gap:.3f} in total variation from exp(log_prob) " \
                           f"({draws} draws): log_prob does not describe what stream draws"

    def deterministic() -> None:
        first = draw(fitted(0), length)
        with tempfile.TemporaryDirectory() as tmp:
            seed_everything(0)
            again = build()
            again.fit(codes, _context(Path(tmp), 0), "fit")
        assert torch.equal(first, draw(again, length)), "two fits with the same seed sample different codes"

    return _named("prior", cls, [lambda: _contract("prior", cls), stream_every_length, prefixes,
                                 sample_matches_stream, cache, seeds, nucleus, log_prob, state_dict_round_trip,
                                 deterministic],
                  ["contract", "stream every length", "stop after any prefix", "sample equals stream",
                   "same codes with and without cache", "same seed same codes", "nucleus sampling",
                   "log_prob describes stream", "state_dict round trip", "deterministic under a seed"])


# ---------------------------------------------------------------------- metrics


def metric_checks(cls: type, config: Any = None, data: DataSplits | tuple[int, ...] | None = None,
                  dataset: str = "toy") -> list[Check]:
    data = _data(data)
    config = _checked_arguments("metric", cls, config)
    tmp = _scratch()

    def inputs(candidate: torch.Tensor, metric: BoundMetric) -> MetricInputs:
        reference = data.train if metric.generated else data.test
        return MetricInputs(candidate, reference, dataset, "train" if metric.generated else "test", data, 0)

    def score(metric: BoundMetric, candidate: torch.Tensor | None = None) -> dict[str, float]:
        seed_everything(0)
        if candidate is None:
            candidate = sharp() if metric.likelihood else data.test
        return metric.compute(inputs(candidate, metric), _context(tmp), "compute")

    def sharp() -> torch.Tensor:
        """Log-probabilities of test codes under a prior that predicts them well (likelihood metrics' "real")."""
        g = torch.Generator().manual_seed(2)
        return math.log(0.9) - torch.rand(len(data.test), 4, generator=g) * 0.05

    def direction() -> None:
        metric = BoundMetric.build(_component("metric", cls), config)
        g = torch.Generator().manual_seed(1)
        if metric.likelihood:  # a prior sure of the right codes against one that knows nothing (8 codes)
            metric.preflight(inputs(sharp()[:2], metric), _context(tmp))
            real, fake = score(metric), score(metric, torch.full((len(data.test), 4), math.log(1 / 8)))
        else:
            metric.preflight(inputs(data.test[:2], metric), _context(tmp))
            noise = (torch.rand(data.test.shape, generator=g) * 2 - 1)
            real, fake = score(metric, data.test), score(metric, noise)
        for name in real:
            # the core records NaN and infinities as they are (a "-" in the tables); on real data they are a bug
            assert math.isfinite(real[name]) and math.isfinite(fake[name]), \
                f"{name}: compute() returned {real[name]:.4g} on real data and {fake[name]:.4g} on noise"
            better = real[name] > fake[name] if metric.higher_is_better else real[name] < fake[name]
            assert better, (f"{name}: real data scored {real[name]:.4g}, noise {fake[name]:.4g}, but "
                            f"higher_is_better is {metric.higher_is_better}")

    def provenance() -> None:
        metric = BoundMetric.build(_component("metric", cls), config)
        score(metric)
        prov = metric.provenance("provenance")
        json.dumps(prov)
        assert isinstance(prov.get("implementation"), str)

    def deterministic() -> None:
        one = score(BoundMetric.build(_component("metric", cls), config))
        two = score(BoundMetric.build(_component("metric", cls), config))
        assert one.keys() == two.keys() and all(
            math.isclose(one[k], two[k], rel_tol=1e-6, abs_tol=1e-9) or (one[k] != one[k] and two[k] != two[k])
            for k in one), f"the same inputs scored {one} and {two}"

    def floor() -> None:
        metric = BoundMetric.build(_component("metric", cls), config)
        if not metric.has_floor:
            return  # optional: summaries say the metric has none
        noise = score(metric, torch.rand(data.test.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1)
        real = data.train if metric.generated else data.test
        n = min(len(data.test), len(data.train) // 2) if metric.generated else len(data.test) // 3
        seed_everything(0)
        values = metric.floor(inputs(real, metric), _context(tmp), n, 3, "floor")
        assert values.keys() == noise.keys(), f"floor() gives {sorted(values)}, compute() {sorted(noise)}"
        for name, per_split in values.items():
            mean = sum(per_split) / len(per_split)
            better = mean > noise[name] if metric.higher_is_better else mean < noise[name]
            assert better, f"{name}: the real-versus-real floor {mean:.4g} is no better than noise's {noise[name]:.4g}"
        seed_everything(0)
        again = metric.floor(inputs(real, metric), _context(tmp), n, 3, "floor")
        assert again == values, f"the same floor twice gave {values} and {again}"

    return _named("metric", cls, [lambda: _contract("metric", cls), direction, provenance, deterministic, floor],
                  ["contract", "real scores better than noise", "provenance", "deterministic under a seed",
                   "real-versus-real floor"])


# ---------------------------------------------------------------------- datasets and modalities


def dataset_checks(cls: type, config: Any = None, data_root: Path | None = None,
                   modalities: Iterable[str] = ("image", "audio")) -> list[Check]:
    config = _checked_arguments("dataset", cls, config)
    tmp = _scratch()
    loaded: dict[str, DataSplits] = {}

    def load() -> DataSplits:
        if "splits" not in loaded:
            dataset = BoundDataset.build(_component("dataset", cls), config, data_root, tmp / "datasets")
            loaded["splits"] = dataset.load(list(modalities))
        return loaded["splits"]

    def splits() -> None:
        problem = splits_problem(load(), list(modalities))
        assert not problem, problem

    def deterministic() -> None:
        first = load()
        again = BoundDataset.build(_component("dataset", cls), config, data_root, tmp / "datasets").load(
            list(modalities))
        assert torch.equal(first.train, again.train) and torch.equal(first.test, again.test), \
            "two loads gave different data"

    return _named("dataset", cls, [lambda: _contract("dataset", cls), splits, deterministic],
                  ["contract", "splits", "deterministic"])


def modality_checks(cls: type, config: Any = None, data: DataSplits | tuple[int, ...] | None = None) -> list[Check]:
    config = _checked_arguments("modality", cls, config)
    data = _data(data)
    info = {"modality": data.modality, "data_shape": list(data.data_shape), "sample_rate": data.sample_rate}

    def round_trip() -> None:
        modality = BoundModality.build(_component("modality", cls), config)
        stored = modality.to_stored(data.test)
        back = modality.from_stored(stored, "stored toy data")
        assert back.shape == data.test.shape
        step = float((back - data.test.clamp(-1, 1)).abs().max())
        assert step <= 2 / 255 + 1e-6 or step <= 2 / (2**16 - 1) * 2, f"stored data came back {step:.3g} away"
        assert torch.equal(back, modality.from_stored(modality.to_stored(back), "twice")), "storing is not idempotent"

    def refuses_foreign_arrays() -> None:
        modality = BoundModality.build(_component("modality", cls), config)
        try:
            modality.from_stored(np.zeros((2,), dtype=object), "an object array")
        except AnytimeBenchError:
            return
        raise AssertionError("from_stored() accepted an object array instead of raising ValueError")

    def preview_and_export() -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        modality = BoundModality.build(_component("modality", cls), config)
        stored = modality.to_stored(data.test[:4])
        fig, ax = plt.subplots()
        try:
            modality.preview(ax, stored, info)
        finally:
            plt.close(fig)
        exported = modality.export(stored[0], info)
        if exported is not None:
            assert exported[0].startswith(".") and "/" in exported[1] and exported[2], "export() gave an empty file"

    return _named("modality", cls, [lambda: _contract("modality", cls), round_trip, refuses_foreign_arrays,
                                    preview_and_export],
                  ["contract", "store and read back", "refuse foreign arrays", "preview and export"])


# ---------------------------------------------------------------------- entry points


def _named(kind: str, cls: type, functions: list[Callable[[], None]], names: list[str]) -> list[Check]:
    return [Check(kind, cls, name, fn) for fn, name in zip(functions, names, strict=True)]


CHECKS: dict[str, Callable[..., list[Check]]] = {
    "dataset": dataset_checks, "encoder": encoder_checks, "prior": prior_checks, "metric": metric_checks,
    "modality": modality_checks,
}


#: The kinds whose checks run on data: they take ``data=`` (or ``dataset=``, a dataset plugin's slice of it).
_DATA_KINDS = ("encoder", "metric", "modality")


def component_checks(kind: str, cls: type, config: Any = None, *, data: DataSplits | tuple[int, ...] | None = None,
                     dataset: str | None = None, **options: Any) -> list[Check]:
    """Every check of one component class; ``config`` defaults to ``cls.Config()``.

    Encoders, metrics and modalities run on ``data``: a :class:`DataSplits` (your own data, or a slice of it), an
    item shape such as ``(3, 32, 32)`` (toy data of that shape, :func:`toy_data`), or, with ``dataset="digits"``,
    a slice of a registered dataset plugin that needs no data root (:func:`dataset_slice`); by default the toy
    8x8 images. ``options`` are those of the kind's ``*_checks`` function: ``vocab``, ``length`` and ``n`` for a
    prior (give your encoder's ``codebook_size`` and ``code_length``), ``data_root`` and ``modalities`` for a
    dataset. A wrong argument is a :class:`TypeError` or :class:`ValueError` naming it."""
    if not isinstance(kind, str) or kind not in CHECKS:
        raise ValueError(f"kind must be one of {', '.join(CHECKS)}, got {short(kind)}")
    config = _checked_arguments(kind, cls, config)
    accepted = [name for name in inspect.signature(CHECKS[kind]).parameters if name not in ("cls", "config")]
    if kind in _DATA_KINDS:
        accepted = [name for name in accepted if name not in ("data", "dataset")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(f"{name}=" for name in (["data", "dataset"] if kind in _DATA_KINDS else []) + accepted)
        raise TypeError(f"{kind} checks take {takes}; not {', '.join(f'{name}=' for name in unknown)}")
    if kind not in _DATA_KINDS:
        given = [f"{name}=" for name, value in (("data", data), ("dataset", dataset)) if value is not None]
        if given:
            runs_on = "codes: give vocab= and length= (your encoder's codebook_size and code_length)" \
                if kind == "prior" else "what its own load() returns: give data_root= if it reads files"
            raise TypeError(f"{kind} checks run on {runs_on}; {' and '.join(given)} "
                            f"{'is' if len(given) == 1 else 'are'} for {', '.join(_DATA_KINDS)} checks")
        return CHECKS[kind](cls, config, **options)
    if data is not None and dataset is not None:
        raise TypeError("give data= or dataset=, not both")
    if dataset is not None:
        data = dataset_slice(dataset)
        if kind == "metric":
            options["dataset"] = dataset  # the name a metric sees in MetricInputs.dataset
    return CHECKS[kind](cls, config, data=data, **options)


def _checked_arguments(kind: str, cls: Any, config: Any) -> Any:
    """The config to check ``cls`` with (``cls.Config()`` by default), after refusing arguments that are not a
    component class and an instance of its ``Config``."""
    if not isinstance(cls, type):
        instead = f"an instance of {type(cls).__name__}: pass the class itself" \
            if isinstance(getattr(type(cls), "name", None), str) else short(cls)
        raise TypeError(f"cls must be a component class (of kind {kind}), got {instead}")
    own = getattr(cls, "Config", None)
    if config is not None:
        label = f"{cls.__name__}.Config"
        if isinstance(config, type):
            raise TypeError(f"config must be an instance of {label}, got the class {config.__name__}: "
                            f"pass {config.__name__}() or leave it out for the defaults")
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"config must be an instance of {label} (a dataclass), got {short(config)}")
        if isinstance(own, type) and not isinstance(config, own):
            raise TypeError(f"config must be an instance of {label}, got one of {type(config).__name__}")
        return config
    try:
        return cls.Config()
    except Exception as exc:  # no Config dataclass, or one without defaults: the contract check's finding
        problems = "; ".join(check_class(kind, cls)) or f"{cls.__name__}.Config() raised {exc!r}"
        raise ConformanceError(f"{kind} {getattr(cls, 'name', cls.__name__)!r} fails 'contract': "
                               f"{problems}") from exc


def check_component(kind: str, cls: type, config: Any = None, *, data: DataSplits | tuple[int, ...] | None = None,
                    dataset: str | None = None, **options: Any) -> None:
    """Run every check of one component (arguments as :func:`component_checks`); the first failure raises
    :class:`ConformanceError`."""
    for check in component_checks(kind, cls, config, data=data, dataset=dataset, **options):
        check()


def parametrize_checks(components: Iterable[tuple[Any, ...]]):
    """A ``pytest.mark.parametrize`` over every check of every ``(kind, cls[, config[, options]])`` given, where
    ``options`` is a dict of the keywords of :func:`component_checks` (``{"dataset": "digits"}``)."""
    import pytest

    checks = []
    for entry in components:
        if not isinstance(entry, (tuple, list)) or not 2 <= len(entry) <= 4:
            raise TypeError(f"each entry is (kind, cls[, config[, options]]), got {short(entry)}")
        kind, cls, config, options = (*entry, None, None)[:4]
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"the options of entry {short(entry)} must be a dict of keywords such as "
                            f"{{'dataset': 'digits'}}, got {short(options)}")
        try:
            built = component_checks(kind, cls, config, **(options or {}))
        except ConformanceError as exc:  # no Config to build the checks with: a failing check, not a lost module
            checks.append(Check(kind, cls, "contract", functools.partial(_fail, exc)))
            continue
        if check_class(kind, cls):  # the other checks call what the contract check finds missing or wrong
            why = f"{kind} {getattr(cls, 'name', cls.__name__)!r} fails 'contract', which this check needs"
            built = [c if c.name == "contract" else dataclasses.replace(c, run=functools.partial(pytest.skip, why))
                     for c in built]
        checks += built
    return pytest.mark.parametrize("check", checks, ids=[c.id for c in checks])


def _fail(error: ConformanceError) -> None:
    raise error
