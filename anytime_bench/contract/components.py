"""Every call the core makes into a plugin's component, in one place.

A component is built from its registered class and wrapped: each wrapper
calls only the members declared in :mod:`anytime_bench.contract.interfaces`, applies the
defaults of optional ones, checks what comes back (shapes, dtypes, ranges) and
turns any exception raised inside plugin code into one line naming the
component, its plugin and distribution, and the stage
(:class:`ComponentError`, exit code 1). Bad input that a plugin reports
(:class:`AnytimeBenchError`) passes through unchanged, and so does Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from anytime_bench.contract.checks import is_component_name, sampling_options_of
from anytime_bench.contract.context import RunContext
from anytime_bench.contract.conventions import RANGE_SLACK
from anytime_bench.contract.distributed import peer_lost
from anytime_bench.contract.interfaces import DataSplits, MetricInputs
from anytime_bench.contract.plugin_manager import Component
from anytime_bench.errors import (
    AnytimeBenchError,
    CheckpointMismatchError,
    ComponentError,
    ConfigError,
    DataError,
    PeerLost,
    first_line,
    short,
)
from anytime_bench.files.storage import cannot_write, weights_only_problem
from anytime_bench.store.rundir import safe_suffix

E = TypeVar("E", bound=BaseException)


@contextlib.contextmanager
def blame(component: Component, stage: str, note: str = "") -> Iterator[None]:
    """Attribute an exception raised inside a component to it, its plugin and the stage (and ``note``, which
    says where its weights came from).

    ``SystemExit`` and other ``BaseException``\\ s from plugin code are failures
    too: a plugin cannot end the program with a success code. Ctrl-C
    (``KeyboardInterrupt``) is left to the CLI, which reports it and exits 130.
    """
    try:
        yield
    except ConfigError as exc:
        # ``require(ok, "option", ...)`` raised by the component itself (its constructor checks an option against the
        # data's shape, say): named as the config names it, as Config.validate()'s are
        config = getattr(component.cls, "Config", None)
        options = {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else set()
        if str(exc).split(":", 1)[0] in options:
            raise of(component, ConfigError(f"{component.kind}.{component.name}.{exc}")) from None
        raise
    except (AnytimeBenchError, ComponentError, KeyboardInterrupt):
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise _blamed(component, stage, exc, note) from exc
        # a full disk or a read-only file system is the machine's, whoever was writing: one line naming the file
        raise cannot_write(exc.filename or Path(f"(a file of {component.kind} {component.name!r})"), exc) from None
    except (MemoryError, torch.OutOfMemoryError):
        raise  # the machine's, whichever component asked for the memory: the command says so in one line
    except BaseException as exc:
        lost = peer_lost(exc)
        if lost is not None:  # under torchrun another process went away mid-collective: not this component's fault
            raise PeerLost(lost) from exc
        raise _blamed(component, stage, exc, note) from exc


def _blamed(component: Component, stage: str, exc: BaseException, note: str) -> ComponentError:
    text = first_line(exc)
    return of(component, ComponentError(f"stage {stage!r} failed in {component.kind} {component.name!r} from "
                                        f"{component.origin}: {type(exc).__name__}" + (f": {text}" if text else "")
                                        + note))



def _fault(component: Component, stage: str, problem: str) -> ComponentError:
    return of(component, ComponentError(f"stage {stage!r}: {component.kind} {component.name!r} from "
                                        f"{component.origin} {problem}"))


def of(component: Component, exc: E) -> E:
    """``exc`` with the component it blames as ``exc.component`` (``(kind, name)``): who set a model aside, for the
    line that says so. An attribute, not an argument, so that the exception still crosses from a worker process."""
    exc.component = (component.kind, component.name)  # type: ignore[attr-defined]
    return exc


def _record(component: Component, stage: str, stats: Any) -> dict[str, Any]:
    """Statistics a component returns for the run's record: a JSON-serialisable dict, or nothing."""
    if stats is None:
        return {}
    if not isinstance(stats, dict) or not all(isinstance(k, str) for k in stats):
        raise _fault(component, stage, f"returned {type(stats).__name__}, expected a dict of statistics or None")
    try:
        json.dumps(stats, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise _fault(component, stage, f"returned statistics that are not JSON-serialisable ({exc})") from None
    return stats


class Bound:
    """A built component together with the registry entry (plugin, distribution) it came from."""

    def __init__(self, component: Component, obj: Any, device: torch.device | None = None):
        self.component = component
        self.obj = obj
        self.device = device or torch.device("cpu")
        self.weights_from: Path | None = None

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def _note(self) -> str:
        # Weights that pass every check on loading may still be extreme enough to overflow: name the file.
        return f" (its weights were loaded from {self.weights_from})" if self.weights_from is not None else ""

    def blame(self, stage: str):
        return blame(self.component, stage, self._note)

    def fault(self, stage: str, problem: str) -> ComponentError:
        return _fault(self.component, stage, problem + self._note)

    def _place(self, device: torch.device, stage: str) -> None:
        """``to(device)`` when the component has it; otherwise it works on the CPU."""
        if hasattr(self.obj, "to"):
            with self.blame(stage):
                self.obj.to(device)
            self.device = device
        else:
            self.device = torch.device("cpu")

    def state_dict(self, stage: str) -> dict[str, Any]:
        with self.blame(stage):
            state = self.obj.state_dict()
        if not isinstance(state, dict):
            raise self.fault(stage, f"state_dict() returned {type(state).__name__}, expected a dict")
        return state

    def saved_state(self, stage: str) -> dict[str, Any]:
        """``state_dict()`` as a checkpoint holds it: one that a weights-only load would refuse (every checkpoint is
        read back that way) is the plugin's fault, named before a file no run can read is written."""
        state = self.state_dict(stage)
        self._check_saveable(state, stage)
        return state

    def check_untrained_state(self, stage: str) -> None:
        """Before any training (``run``'s preflight): the untrained component's state is one a checkpoint can hold,
        where it has one yet (a model built in ``fit`` may have none: it is checked when it is saved)."""
        try:
            state = self.obj.state_dict()
        except Exception:  # noqa: BLE001 - the contract asks for a state after fit or load, not before
            return
        lazy = torch.nn.parameter.UninitializedTensorMixin  # a lazy layer's weights are sized in fit
        if isinstance(state, dict) and not any(isinstance(value, lazy) for value in state.values()):
            self._check_saveable(state, stage)

    def _check_saveable(self, state: dict[str, Any], stage: str) -> None:
        problem = weights_only_problem(state)
        if problem:
            raise self.fault(stage, f"state_dict() holds what a checkpoint cannot (tensors and plain values only): "
                                    f"{problem}")

    def load_saved(self, state: dict[str, Any], path: Path) -> None:
        """Weights from a checkpoint file, which may come from elsewhere.

        The conformance kit makes every component load its own ``state_dict``
        silently, so a state that raises or warns here does not fit: the file is
        at fault, not the plugin (a torch warning, such as a complex tensor cast
        to real, would otherwise be a second line of output and a silent change).
        """
        problem = self._state_problem(state)
        if problem:
            raise of(self.component, CheckpointMismatchError(
                f"checkpoint {path} does not fit {self.component.kind} {self.name!r} from {self.component.origin}: "
                f"{problem}"))
        always = torch.is_warn_always_enabled()
        torch.set_warn_always(True)  # torch warns of some casts only once per process, which would let a second pass
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                self.obj.load_state_dict(state)
        except (KeyboardInterrupt, MemoryError, torch.OutOfMemoryError):
            raise  # the machine's, not the file's
        except Exception as exc:
            detail = " ".join(str(exc).split())  # torch lists each mismatched key on a line of its own
            if len(detail) > 300:
                detail = detail[:297] + "..."
            raise of(self.component, CheckpointMismatchError(
                f"checkpoint {path} does not fit {self.component.kind} {self.name!r} from {self.component.origin}: "
                f"{type(exc).__name__}: {detail}")) from None
        finally:
            torch.set_warn_always(always)
        self.weights_from = path

    def _state_problem(self, state: dict[str, Any]) -> str:
        """What ``load_state_dict`` would pass over in silence: a value of another kind than the component keeps
        (integers or flags cast to weights, or weights truncated to integers), and an infinite learned weight
        (an infinity is a valid mask in a buffer, never a trained parameter). Empty when the state fits."""
        try:
            own = self.obj.state_dict()
        except Exception:  # nothing to compare with; a state_dict() that fails is named where the core saves one
            return ""
        params = {name for name, _ in self.obj.named_parameters()} if isinstance(self.obj, torch.nn.Module) else set()
        for key, value in state.items():
            mine = own.get(key) if isinstance(own, dict) else None
            if not isinstance(value, torch.Tensor) or not isinstance(mine, torch.Tensor):
                continue
            if _dtype_kind(value.dtype) != _dtype_kind(mine.dtype):
                return (f"{key!r} holds {_dtype_kind(value.dtype)} values ({value.dtype}), where it keeps "
                        f"{_dtype_kind(mine.dtype)} values ({mine.dtype})")
            if key in params and value.is_floating_point() and bool(torch.isinf(value).any()):
                return f"the learned weight {key!r} holds infinite values"
        return ""


def _dtype_kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "boolean"
    if dtype.is_complex:
        return "complex"
    return "floating-point" if dtype.is_floating_point else "integer"


class BoundDataset(Bound):
    @classmethod
    def build(cls, component: Component, config: Any, data_root: Path | None, cache_dir: Path) -> BoundDataset:
        extra = {"cache_dir": cache_dir} if getattr(component.cls, "uses_cache_dir", False) else {}
        with blame(component, "load data"):
            return cls(component, component.cls(config, data_root, **extra))

    def load(self, modalities: list[str]) -> DataSplits:
        with self.blame("load data"):
            splits = self.obj.load()
        problem = splits_problem(splits, modalities)
        if problem:
            raise DataError(f"dataset {self.name!r} from {self.component.origin}: {problem}")
        return splits


def splits_problem(splits: Any, modalities: list[str]) -> str:
    """What is wrong with a dataset's ``load()`` result, or an empty string."""
    if not isinstance(splits, DataSplits):
        return f"load() returned {type(splits).__name__}, expected DataSplits"
    named = [("train", splits.train), ("test", splits.test)]
    if splits.validation is not None:
        named.append(("validation", splits.validation))
    for label, x in named:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
            return f"the {label} split must be a float tensor [N, ...]"
        if len(x) < 1:
            return f"the {label} split is empty"
    for label, x in named[1:]:
        if x.shape[1:] != splits.train.shape[1:]:
            return f"train items {tuple(splits.train.shape[1:])} and {label} items {tuple(x.shape[1:])} differ"
    for label, x in named:
        if not bool(torch.isfinite(x).all()):
            return f"the {label} split holds NaN or infinite values"
        low, high = float(x.min()), float(x.max())
        if low < -1 - RANGE_SLACK or high > 1 + RANGE_SLACK:
            return f"the {label} split spans [{low:.4g}, {high:.4g}], outside [-1, 1]"
    if not isinstance(splits.info, dict) or not all(isinstance(k, str) for k in splits.info):
        return "info must be a dict with string keys"  # metrics read it by key (asr: vocabulary)
    if splits.modality not in modalities:
        return f"modality {splits.modality!r} is not registered (available: {', '.join(modalities)})"
    if splits.sample_rate is not None and (not isinstance(splits.sample_rate, int) or splits.sample_rate < 1):
        return f"sample_rate must be a positive integer, got {splits.sample_rate!r}"
    labels = [("train", splits.train_labels, splits.train), ("test", splits.test_labels, splits.test)]
    if splits.validation is not None:
        labels.append(("validation", splits.validation_labels, splits.validation))
    elif splits.validation_labels is not None:
        return "has validation labels but no validation split"
    labelled = [y is not None for _, y, _ in labels]
    if any(labelled):
        if not all(labelled):
            return "has labels for some splits only"
        if not isinstance(splits.num_classes, int) or splits.num_classes < 1:
            return f"has labels but num_classes is {splits.num_classes!r}"
        for label, y, x in labels:
            if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (len(x),):
                return f"{label} labels must be an int64 tensor of shape [{len(x)}]"
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= splits.num_classes):
                return (f"{label} labels span {int(y.min())}..{int(y.max())}, outside 0..{splits.num_classes - 1} "
                        f"(num_classes {splits.num_classes})")
    return ""


class BoundEncoder(Bound):
    code_length: int
    codebook_size: int
    data_shape: tuple[int, ...] | None = None

    @classmethod
    def build(cls, component: Component, config: Any, data_shape: tuple[int, ...], device: torch.device,
              stage: str = "build encoder", tokens: int | None = None) -> BoundEncoder:
        extra = {"tokens": tokens} if getattr(component.cls, "per_budget", False) is True else {}
        with blame(component, stage):
            obj = component.cls(config, tuple(data_shape), **extra)
        bound = cls(component, obj)
        bound.data_shape = tuple(data_shape)
        bound._place(device, stage)
        with bound.blame(stage):
            missing = [member for member in ("code_length", "codebook_size") if not hasattr(obj, member)]
            if missing:  # an instance member: the class's check at load cannot see it
                raise bound.fault(stage, f"has no {missing[0]} once built (a required member of the encoder contract)")
            D, K = obj.code_length, obj.codebook_size
        for member, value, least in (("code_length", D, 1), ("codebook_size", K, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise bound.fault(stage, f"has {member} = {value!r}, expected an int >= {least}")
        if tokens is not None and D != tokens:
            raise bound.fault(stage, f"was built for {tokens} tokens but has code_length {D}")
        bound.code_length, bound.codebook_size = D, K
        return bound

    @property
    def ordered(self) -> bool:
        return bool(self.component.cls.ordered)

    @property
    def per_budget(self) -> bool:
        return getattr(self.component.cls, "per_budget", False) is True

    def covered_budgets(self, budgets: list[float]) -> list[float]:
        """The budgets a per-budget model trains a member for (all of them unless it says otherwise)."""
        if not hasattr(self.obj, "covered_budgets"):
            return list(budgets)
        with self.blame("choose budgets"):
            chosen = self.obj.covered_budgets(list(budgets))
        if not isinstance(chosen, (list, tuple)) or not set(chosen) <= set(budgets) or not chosen:
            raise self.fault("choose budgets", f"covered_budgets() returned {chosen!r}, expected a non-empty subset "
                                               f"of {budgets}")
        return [b for b in budgets if b in chosen]

    def fit(self, data: torch.Tensor, ctx: RunContext, stage: str) -> dict[str, Any]:
        with self.blame(stage):
            stats = self.obj.fit(data, ctx)
        return _record(self.component, stage, stats)

    def code_vectors(self, stage: str = "code vectors") -> torch.Tensor | None:
        """The encoder's code vectors ``[D, K, E]`` (float32, on the CPU), checked; None when it has none."""
        if not hasattr(self.obj, "code_vectors"):
            return None
        with self.blame(stage), torch.no_grad():
            vectors = self.obj.code_vectors()
        D, K = self.code_length, self.codebook_size
        if not isinstance(vectors, torch.Tensor) or vectors.dim() != 3 or tuple(vectors.shape[:2]) != (D, K):
            shape = tuple(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
            raise self.fault(stage, f"code_vectors() returned {shape}, expected a tensor [{D}, {K}, E]")
        if not vectors.is_floating_point():
            raise self.fault(stage, f"code_vectors() returned {vectors.dtype}, expected floats")
        if not bool(torch.isfinite(vectors).all()):
            raise self.fault(stage, "code_vectors() returned NaN or infinite values")
        return vectors.detach().float().cpu().clone()

    def encode(self, x: torch.Tensor, stage: str = "encode") -> torch.Tensor:
        with self.blame(stage), torch.no_grad():
            codes = self.obj.encode(x.to(self.device))
        if not isinstance(codes, torch.Tensor) or codes.shape != (len(x), self.code_length):
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise self.fault(stage, f"encode() returned {shape}, expected a tensor [{len(x)}, {self.code_length}]")
        if not _integers(codes):
            raise self.fault(stage, f"encode() returned {codes.dtype}, expected integer codes")
        codes = codes.long().cpu()
        if len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise self.fault(stage, f"encode() returned codes in {int(codes.min())}..{int(codes.max())}, outside "
                                    f"[0, {self.codebook_size})")
        return codes

    def encode_all(self, data: torch.Tensor, stage: str = "encode", batch_size: int = 512) -> torch.Tensor:
        return in_batches(lambda part: self.encode(part, stage), data, batch_size,
                          torch.zeros(0, self.code_length, dtype=torch.long))

    def decode(self, codes: torch.Tensor, stage: str = "decode") -> torch.Tensor:
        k = codes.shape[1]
        if not 1 <= k <= self.code_length:
            raise ValueError(f"decode needs 1..{self.code_length} codes, got {k}")
        with self.blame(stage), torch.no_grad():
            data = self.obj.decode(codes.to(self.device))
        expected = (len(codes), *self.data_shape) if self.data_shape is not None else None
        if not isinstance(data, torch.Tensor) or (expected is not None and tuple(data.shape) != expected):
            shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise self.fault(stage, f"decode() of {k} codes returned {shape}, expected {list(expected or [])}")
        if not data.is_floating_point():
            raise self.fault(stage, f"decode() returned {data.dtype}, expected floats in [-1, 1]")
        data = data.float().cpu()
        if not bool(torch.isfinite(data).all()):  # stored as 8-bit or 16-bit, NaN would become a plausible value
            raise self.fault(stage, f"decode() of {k} codes returned NaN or infinite values")
        peak = float(data.abs().max()) if data.numel() else 0.0
        if peak > 1 + RANGE_SLACK:  # stored, it would be clipped: an overshooting decoder scored as if it did not
            raise self.fault(stage, f"decode() of {k} codes returned values up to {peak:.4g} in magnitude, outside "
                                    "[-1, 1]: bound its output (a tanh, or a clamp in decode)")
        return data

    def decode_all(self, codes: torch.Tensor, stage: str = "decode", batch_size: int = 512) -> torch.Tensor:
        return in_batches(lambda part: self.decode(part, stage), codes, batch_size,
                          torch.zeros(0, *(self.data_shape or ())))


def _integers(codes: torch.Tensor) -> bool:
    """Whether a tensor holds integer codes: not floats, complex numbers or booleans (which index as 0 and 1)."""
    return not (codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool)


def in_batches(call: Callable[[torch.Tensor], torch.Tensor], items: torch.Tensor, batch_size: int,
               empty: torch.Tensor) -> torch.Tensor:
    """``call`` over ``items`` in slices of ``batch_size``, concatenated; ``empty`` when there are no items (a
    component is never called on an empty batch)."""
    chunks = [call(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    return torch.cat(chunks) if chunks else empty


LOG_PROB_SLACK = 1e-4
"""How far above 0 a log-probability may come out of floating-point rounding before it is a fault."""


class BoundPrior(Bound):
    vocab_size: int | None = None
    seq_len: int | None = None
    @classmethod
    def build(cls, component: Component, config: Any, vocab_size: int, seq_len: int, device: torch.device,
              stage: str = "build prior") -> BoundPrior:
        with blame(component, stage):
            obj = component.cls(config, vocab_size, seq_len)
        bound = cls(component, obj)
        bound.vocab_size, bound.seq_len = vocab_size, seq_len
        bound._place(device, stage)
        return bound

    @property
    def kv_cache(self) -> bool:
        return bool(getattr(self.component.cls, "kv_cache", False))

    def use_code_vectors(self, vectors: torch.Tensor | None, stage: str = "build prior") -> None:
        """Hand the prior its encoder's code vectors (or None) if it reads them; before fit, load or stream."""
        if hasattr(self.obj, "use_code_vectors"):
            with self.blame(stage):
                self.obj.use_code_vectors(vectors)

    def fit(self, codes: torch.Tensor, ctx: RunContext, stage: str) -> dict[str, Any]:
        with self.blame(stage):
            stats = self.obj.fit(codes, ctx)
        return _record(self.component, stage, stats)

    @property
    def sampling_options(self) -> tuple[str, ...]:
        """The sampling settings the prior declares (the contract checked, when plugins loaded, that it takes them)."""
        return sampling_options_of(self.component.cls)

    @property
    def nucleus(self) -> bool:
        """Whether the prior declares nucleus sampling (``top_p``)."""
        return "top_p" in self.sampling_options

    def _draws(self, generator: torch.Generator, temperature: float, top_k: int | None,
               top_p: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"generator": generator, "temperature": temperature, "top_k": top_k or None}
        if top_p < 1.0:  # only then: a prior written before top_p existed keeps working at the default
            if not self.nucleus:
                raise ValueError(f"prior {self.name!r} does not accept top_p (nucleus sampling)")
            kwargs["top_p"] = top_p
        return kwargs

    def stream(self, n: int, length: int, *, generator: torch.Generator, temperature: float = 1.0,
               top_k: int | None = None, top_p: float = 1.0, use_cache: bool = True,
               stage: str = "sample") -> Iterator[torch.Tensor]:
        """The prior's stream, column by column on the CPU, checked; closing it closes the prior's stream."""
        if length < 1 or (self.seq_len is not None and length > self.seq_len):
            raise ValueError(f"length must be in 1..{self.seq_len}, got {length}")
        kwargs = self._draws(generator, temperature, top_k, top_p)
        if not use_cache:
            if not self.kv_cache:
                raise ValueError(f"prior {self.name!r} declares no key/value cache to switch off")
            kwargs["use_cache"] = False
        with self.blame(stage):
            columns = iter(self.obj.stream(n, length, **kwargs))
        try:
            for position in range(length):
                try:
                    with self.blame(stage):
                        column = next(columns)
                except StopIteration:
                    raise self.fault(stage, f"stream() ended after {position} of {length} positions") from None
                if not isinstance(column, torch.Tensor) or column.shape != (n,) or not _integers(column):
                    shape = f"{tuple(column.shape)} of {column.dtype}" if isinstance(column, torch.Tensor) \
                        else type(column).__name__
                    raise self.fault(stage, f"stream() yielded {shape} at position {position}, expected integer "
                                            f"codes [{n}]")
                yield self._codes(column, stage, "stream() yielded", position)
        finally:
            close = getattr(columns, "close", None)
            if close is not None:
                with self.blame(stage):
                    close()

    def _codes(self, codes: torch.Tensor, stage: str, given: str, position: int | None = None) -> torch.Tensor:
        """Integer codes of the prior's, as the core keeps them (int64 on the CPU), refused when outside the
        vocabulary: the decoder would index its codebook with them and be blamed."""
        codes = codes.long().cpu()
        if codes.numel() and (int(codes.min()) < 0 or (self.vocab_size is not None
                                                       and int(codes.max()) >= self.vocab_size)):
            where = "" if position is None else f" at position {position}"
            raise self.fault(stage, f"{given} codes outside [0, {self.vocab_size}){where}")
        return codes

    @property
    def has_sample(self) -> bool:
        """Whether the prior has a ``sample`` of its own (:meth:`sample` otherwise stacks the stream)."""
        return hasattr(self.obj, "sample")

    @property
    def has_log_prob(self) -> bool:
        """Whether the prior scores codes (:meth:`Prior.log_prob`), which metrics of likelihoods need."""
        return hasattr(self.obj, "log_prob")

    def log_prob(self, codes: torch.Tensor, stage: str = "score codes") -> torch.Tensor:
        """The prior's log-probabilities of ``codes`` ``[B, L]``, checked: float32 ``[B, L]`` on the CPU, at most 0."""
        if not self.has_log_prob:  # a run asked for it when the prior had it, and an upgrade took it away
            raise ConfigError(f"{stage}: prior {self.name!r} gives no log-probabilities (no log_prob), which the "
                              "run's metrics of likelihoods score")
        with self.blame(stage), torch.no_grad():
            scores = self.obj.log_prob(codes.to(self.device))
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != tuple(codes.shape):
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise self.fault(stage, f"log_prob() returned {shape}, expected a tensor {list(codes.shape)}")
        if not scores.is_floating_point():
            raise self.fault(stage, f"log_prob() returned {scores.dtype}, expected floats")
        scores = scores.float().cpu()
        if not bool(torch.isfinite(scores).all()):
            raise self.fault(stage, "log_prob() returned NaN or infinite values (a code of probability 0?)")
        if len(scores) and float(scores.max()) > LOG_PROB_SLACK:
            raise self.fault(stage, f"log_prob() returned {float(scores.max()):.3g}, above 0: not a log-probability")
        return scores.clamp(max=0.0)  # rounding of a log-softmax can leave +1e-7

    def log_prob_all(self, codes: torch.Tensor, stage: str = "score codes", batch_size: int = 512) -> torch.Tensor:
        return in_batches(lambda part: self.log_prob(part, stage), codes, batch_size,
                          torch.zeros(codes.shape, dtype=torch.float32))

    def sample(self, n: int, length: int, *, generator: torch.Generator, temperature: float = 1.0,
               top_k: int | None = None, top_p: float = 1.0, stage: str = "sample") -> torch.Tensor:
        """``[n, length]`` codes: the prior's own ``sample`` if it has one, else the stacked stream."""
        if not self.has_sample:
            return torch.stack(list(self.stream(n, length, generator=generator, temperature=temperature, top_k=top_k,
                                                top_p=top_p, stage=stage)), dim=1)
        kwargs = self._draws(generator, temperature, top_k, top_p)
        with self.blame(stage):
            codes = self.obj.sample(n, length, **kwargs)
        if not isinstance(codes, torch.Tensor) or codes.shape != (n, length) or not _integers(codes):
            shape = f"{tuple(codes.shape)} of {codes.dtype}" if isinstance(codes, torch.Tensor) \
                else type(codes).__name__
            raise self.fault(stage, f"sample() returned {shape}, expected integer codes [{n}, {length}]")
        return self._codes(codes, stage, "sample() returned")


class BoundMetric(Bound):
    @classmethod
    def build(cls, component: Component, config: Any) -> BoundMetric:
        with blame(component, "build metric"):
            return cls(component, component.cls(config))

    @property
    def requires(self) -> str:
        return self.component.cls.requires

    @property
    def generated(self) -> bool:
        return self.requires == "generated"

    @property
    def likelihood(self) -> bool:
        """Whether the metric scores the prior's log-probabilities of the test codes (no data, no floor)."""
        return self.requires == "likelihood"

    @property
    def higher_is_better(self) -> bool:
        return bool(self.component.cls.higher_is_better)

    def preflight(self, inputs: MetricInputs, ctx: RunContext) -> None:
        if hasattr(self.obj, "preflight"):
            with self.blame("preflight"):
                self.obj.preflight(inputs, ctx)

    def compute(self, inputs: MetricInputs, ctx: RunContext, stage: str) -> dict[str, float]:
        """``{metric name: value}``: one entry, or ``<name>_<key>`` for each key of a dict result."""
        with self.blame(stage):
            result = self.obj.compute(inputs, ctx)
        out = {}
        for name, value in self._named(result, "compute", stage).items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise self.fault(stage, f"compute() returned {short(value)} for {name}, expected a number")
            out[name] = self._measured(float(value), name, "compute", stage)
        return out

    def _named(self, result: Any, method: str, stage: str) -> dict[str, Any]:
        """A result by the names of its measurements: the metric's own, or ``<name>_<key>`` for each key of a dict.
        A key is held to a component name's form: the name heads tables, summaries and file names."""
        if not isinstance(result, dict):
            return {self.name: result}
        for key in result:
            if not is_component_name(key):
                raise self.fault(stage, f"{method}() returned a dict with the key {short(key)}: keys must be 1-64 "
                                        "lower-case letters, digits, '.', '_' or '-'")
        return {f"{self.name}_{key}": value for key, value in result.items()}

    def _measured(self, value: float, name: str, method: str, stage: str) -> float:
        from anytime_bench.store.tables import MAX_MAGNITUDE  # the tables' convention (pandas: imported here)

        if math.isfinite(value) and abs(value) > MAX_MAGNITUDE:
            # nan and inf are recorded as what they are; a finite value this large is no measurement, and the
            # tables' statistics, which square it, would overflow on reading it back
            raise self.fault(stage, f"{method}() returned {value:g} for {name}, beyond +-{MAX_MAGNITUDE:g}")
        return value

    @property
    def has_floor(self) -> bool:
        """Whether the metric gives the real data's own score (it declares ``floor``): the real-versus-real floor of a
        metric of generated samples, the real test items' score for a metric of reconstructions. A subclass sets
        ``floor = None`` to give none (a reconstruction metric built on a generated-sample one)."""
        return not self.likelihood and callable(getattr(self.obj, "floor", None))

    def floor(self, inputs: MetricInputs, ctx: RunContext, n: int, splits: int, stage: str) -> dict[str, list[float]]:
        """``{metric name: [value per split]}``, named as :meth:`compute` names its values."""
        with self.blame(stage):
            result = self.obj.floor(inputs, ctx, n, splits)
        out = {}
        for name, per_split in self._named(result, "floor", stage).items():
            if not isinstance(per_split, (list, tuple)) or len(per_split) != splits or not all(
                    isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in per_split):
                raise self.fault(stage, f"floor() returned {short(per_split)} for {name}, expected a list of "
                                        f"{splits} numbers (one per split)")
            out[name] = [self._measured(float(v), name, "floor", stage) for v in per_split]
        return out

    def provenance(self, stage: str) -> dict[str, Any]:
        with self.blame(stage):
            prov = self.obj.provenance()
        if not isinstance(prov, dict) or "implementation" not in prov:
            raise self.fault(stage, "provenance() must return a dict with at least 'implementation'")
        try:
            json.dumps(prov, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise self.fault(stage, f"provenance() is not JSON-serialisable ({exc})") from None
        return prov


class BoundModality(Bound):
    @classmethod
    def build(cls, component: Component, config: Any) -> BoundModality:
        with blame(component, "build modality"):
            return cls(component, component.cls(config))

    def to_stored(self, x: torch.Tensor) -> np.ndarray:
        with self.blame("store samples"):
            a = self.obj.to_stored(x)
        if not isinstance(a, np.ndarray) or a.shape != tuple(x.shape) or a.dtype == object:
            raise self.fault("store samples", f"to_stored() returned {getattr(a, 'shape', type(a).__name__)}, "
                                              f"expected a numpy array of shape {tuple(x.shape)}")
        return a

    def from_stored(self, a: np.ndarray, where: Path | str) -> torch.Tensor:
        """Stored items back in ``[-1, 1]``; an array this modality does not store is bad input naming ``where``."""
        try:
            with self.blame("read samples"):
                x = self.obj.from_stored(a)
        except ComponentError as exc:
            if isinstance(exc.__cause__, (ValueError, TypeError)):
                raise DataError(f"{where}: not {self.name} data as stored ({exc.__cause__})") from None
            raise
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != a.shape or not x.is_floating_point():
            raise self.fault("read samples", f"from_stored() returned {getattr(x, 'shape', type(x).__name__)}, "
                                             f"expected floats of shape {a.shape}")
        return x.float()

    @property
    def preview_size(self) -> tuple[float, float]:
        size = getattr(self.component.cls, "preview_size", (1.3, 1.4))
        return float(size[0]), float(size[1])

    def preview(self, ax: Any, stored: np.ndarray, info: dict[str, Any]) -> None:
        with self.blame("draw samples"):
            self.obj.preview(ax, stored, info)

    @property
    def exports(self) -> bool:
        return hasattr(self.obj, "export")

    def export(self, item: np.ndarray, info: dict[str, Any]) -> tuple[str, str, bytes] | None:
        if not self.exports:
            return None
        with self.blame("export samples"):
            out = self.obj.export(item, info)
        if out is None:
            return None
        if (not isinstance(out, tuple) or len(out) != 3 or not isinstance(out[0], str) or not isinstance(out[1], str)
                or not isinstance(out[2], bytes)):
            raise self.fault("export samples", "export() must return (suffix, mime type, bytes) or None")
        try:
            safe_suffix(out[0])  # it names files: refused here, where the plugin can be named
        except ValueError as exc:
            raise self.fault("export samples", f"export() returned the suffix {first_line(exc, 80)}") from None
        return out

