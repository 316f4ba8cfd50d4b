"""Run configuration: defaults, TOML file, CLI overrides, validated before work starts.

A config file has a ``[run]`` table (:class:`RunConfig`), the models it
compares, and one table per component whose options differ from its defaults::

    [run]
    dataset = "digits"
    budgets = [0.25, 0.5, 1.0]

    [[model]]                 # an encoder, the prior trained on its codes, how it is sampled
    encoder = "ovqvae"

    [[model]]
    label = "rvq-p95"
    encoder = "rvq"
    top_p = 0.95

    [encoder.ovqvae]
    code_length = 16

Without ``[[model]]`` entries, ``run.encoders`` lists the models: one entry per
encoder, each with ``run.prior`` and the run's sampling settings (the form
every config had before entries). Component tables are checked against the
component's own ``Config`` dataclass. ``anytime-bench config`` prints the fully
resolved config of a run as TOML, its entries included.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from anytime_bench.contract.checks import is_component_name, sampling_options_of
from anytime_bench.contract.interfaces import SAMPLING_OPTIONS
from anytime_bench.contract.plugin_manager import KINDS, Plugins
from anytime_bench.contract.schema import (
    flag_of,
    from_dict,
    local_options,
    reading_record,
    recorded_values,
    require,
    short,
    to_dict,
)
from anytime_bench.errors import ConfigError, PluginError, first_line
from anytime_bench.files.configfiles import entries_over_encoders, merge, read_config
from anytime_bench.store import identity
from anytime_bench.store.identity import LOCAL_KEYS
from anytime_bench.store.rundir import ENTRY_COLUMNS

DEFAULT_BUDGETS = [i / 8 for i in range(1, 9)]
MAX_SEED = 2**31 - 1
MAX_SEEDS = 100
MIN_TOP_P = 1e-6
"""The smallest ``run.top_p``: the most likely code alone, and a number every float type compares exactly enough."""
MAX_COMPONENT_NAME = 100
"""A component name longer than this is no installed one: refused without quoting it whole."""

#: Tables of a config file: ``[run]``, the ``[[model]]`` entries, and one per component kind (modalities have no
#: per-run options).
TABLES = ("run", "model", "dataset", "encoder", "prior", "metric", "modality")
COMPONENT_TABLES = TABLES[2:]
MAX_MODELS = 64
"""A config compares at most this many model entries."""

#: Keys that were renamed: the old spelling is refused with a line naming the new one.
RENAMED = {"seeds": "sample_seeds (sampling seeds; training seeds are train_seeds)"}

def data_root_path(value: str, where: str = "run.data_root:") -> Path | None:
    """The one check of a data root: empty means none; anything else must be a folder on this machine. ``where``
    names what gave it (``--data-root`` or ``run.data_root:``)."""
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{where} {value} is not a folder")
    return path


@dataclass
class RunConfig:
    """The ``[run]`` table: what to benchmark and how."""

    dataset: str = "digits"
    """The dataset plugin (``anytime-bench plugins`` lists them)."""
    encoders: list[str] = field(default_factory=lambda: ["ovqvae", "vqvae-channel", "vqvae-spatial"])
    """The models compared: one encoder plugin each, each with its own prior."""
    prior: str = "transformer"
    """The prior plugin trained on every encoder's codes."""
    metrics: list[str] = field(default_factory=lambda: ["fid", "fid-random", "rfid", "mse", "psnr"])
    """Metric plugins, each scored at every model, budget and seed."""
    headline_metric: str = ""
    """The metric of summary tables and the final line; empty means the first of ``metrics``."""
    budgets: list[float] = field(default_factory=lambda: list(DEFAULT_BUDGETS))
    """Fractions of the code length D in (0, 1]: at budget b a model uses its first round(b*D) codes."""
    seed: int = 0
    """Base seed: training and sampling seeds given as a count start here."""
    train_seeds: int | list[int] = 1
    """Training seeds: a count (seed, seed+1, ...) or a list. Every model is trained once per training seed, and
    summaries give means over training seeds with 95% intervals."""
    sample_seeds: int | list[int] = 1
    """Sampling seeds per trained model: a count (seed, seed+1, ...) or a list; nested inside training seeds."""
    device: str = "auto"
    """auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps."""
    num_samples: int = 1000
    """Generated samples per (model, budget, seed) scored by ``generated`` metrics."""
    reference_split: Literal["train", "test", "validation"] = "train"
    """Real data that generated samples are compared with: ``validation`` (held-out items that the dataset keeps from
    training and from the test metrics, where it has them) is for choosing settings, such as how a prior is sampled,
    on other data than the reported results."""
    temperature: float = 1.0
    """Sampling temperature of the prior (1: the model's distribution, as in the paper)."""
    top_k: int = 0
    """0 samples from the full distribution, as the paper does; k > 0 keeps the k most likely codes."""
    top_p: float = 1.0
    """Nucleus sampling: 1 samples from the full distribution, as the paper does; p < 1 keeps the fewest most likely
    codes whose probabilities add up to at least p, at each position (needs a prior whose stream accepts top_p)."""
    data_root: str = ""
    """Folder holding the dataset's files (machine-local: not part of the config digest)."""
    cache_dir: str = ""
    """Feature extractors, reference statistics and built datasets; empty means ~/.cache/anytime-bench
    (machine-local)."""
    checkpoint_every: int = 100
    """Training steps between mid-stage checkpoints (0: only at the end of each stage; machine-local)."""
    workers: int = 0
    """Training processes: 0 runs one per core on a CPU (at most one per model and training seed), and one on a
    GPU; N > 1 runs N, also sharing one GPU, whose small kernels leave it idle most of the time; 1 trains in this
    process. On a CPU every job trains on one thread, wherever it runs, so the weights are the same whatever the
    count. Machine-local."""
    precision: Literal["auto", "fp32"] = "auto"
    """auto: bf16 autocast for the prior on CUDA (fp32 on CPU); fp32: never autocast."""

    def _seeds(self, value: int | list[int]) -> list[int]:
        return [self.seed + i for i in range(value)] if isinstance(value, int) else list(value)

    @property
    def train_seed_list(self) -> list[int]:
        return self._seeds(self.train_seeds)

    @property
    def sample_seed_list(self) -> list[int]:
        return self._seeds(self.sample_seeds)

    @property
    def headline(self) -> str:
        return self.headline_metric or self.metrics[0]

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else Path.home() / ".cache" / "anytime-bench"

    def validate(self) -> None:
        require(len(self.budgets) > 0, "budgets", "needs at least one budget")
        for b in self.budgets:
            require(0.0 < b <= 1.0, "budgets", f"{b} is outside (0, 1]")
        require(len(set(self.budgets)) == len(self.budgets), "budgets", "has duplicates")
        require(len(self.encoders) > 0, "encoders", "needs at least one encoder")
        require(len(set(self.encoders)) == len(self.encoders), "encoders", "has duplicates")
        require(len(self.metrics) > 0, "metrics", "needs at least one metric")
        require(len(set(self.metrics)) == len(self.metrics), "metrics", "has duplicates")
        require(self.headline_metric in ("", *self.metrics), "headline_metric",
                f"{short(self.headline_metric)} is not in metrics")
        require(1 <= self.num_samples <= 10_000_000, "num_samples", "must be in 1..10000000")
        check_sampling_ranges(self)
        require(0 <= self.seed <= MAX_SEED, "seed", f"must be in 0..{MAX_SEED}")
        for key in ("train_seeds", "sample_seeds"):
            value = getattr(self, key)
            if isinstance(value, int):
                require(1 <= value <= MAX_SEEDS, key, f"a count must be in 1..{MAX_SEEDS}")
                require(self.seed + value - 1 <= MAX_SEED, key, f"seed + count must stay within {MAX_SEED}")
            else:
                require(1 <= len(value) <= MAX_SEEDS, key, f"needs 1..{MAX_SEEDS} seeds")
                require(len(set(value)) == len(value), key, "has duplicates")
                require(all(0 <= s <= MAX_SEED for s in value), key, f"seeds must be in 0..{MAX_SEED}")
        require(0 <= self.checkpoint_every <= 10**9, "checkpoint_every", "must be in 0..1000000000")
        require(0 <= self.workers <= 256, "workers", "must be in 0..256")
        require(len(self.device) <= 40 and re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,3})?", self.device) is not None,
                "device", f"{self.device[:40]!r} is not auto, cpu, cuda[:N] or mps")


def check_sampling_ranges(settings: Any) -> None:
    """The ranges of the sampling settings (``temperature``, ``top_k``, ``top_p``) of ``[run]`` or of an entry."""
    require(1e-3 <= settings.temperature <= 1e3, "temperature", "must be in [0.001, 1000]")
    require(0 <= settings.top_k <= 2**31 - 1, "top_k", "must be in 0..2147483647 (0: no limit)")
    # A smaller p is the most likely code alone anyway; below float32's range, p would compare as 0 with the
    # probabilities and leave no code to draw: bounded so that every accepted value samples.
    require(MIN_TOP_P <= settings.top_p <= 1.0, "top_p", f"must be in (0, 1], at least {MIN_TOP_P:g}")


@dataclass
class ModelEntry:
    """One ``[[model]]`` entry: a model is an encoder, the prior trained on its codes, and how that prior is
    sampled. What an entry leaves out comes from ``[run]`` (``prior``, ``temperature``, ``top_k``, ``top_p``)."""

    encoder: str = ""
    """The encoder plugin (required)."""
    label: str = ""
    """The entry's name in tables, plots and folders; empty: made from the rest (``rvq``, ``rvq-ngram``,
    ``rvq-p95`` for top_p = 0.95), unique in the config."""
    prior: str = ""
    """The prior plugin trained on the encoder's codes; empty: ``run.prior``."""
    temperature: float = 1.0
    """Sampling temperature of the prior (default: ``run.temperature``)."""
    top_k: int = 0
    """0 samples from the full distribution; k > 0 keeps the k most likely codes (default: ``run.top_k``)."""
    top_p: float = 1.0
    """Nucleus sampling: 1 samples from the full distribution (default: ``run.top_p``)."""
    prior_options: dict = field(default_factory=dict)
    """Options of this entry's prior over its ``[prior.NAME]`` table, for this entry only (``{ n_layer = 4 }``).
    A prior is trained once per encoder, prior, prior options and training seed, and shared by the entries that
    agree on all four."""
    encoder_options: dict = field(default_factory=dict)
    """Options of this entry's encoder over its ``[encoder.NAME]`` table, for this entry only
    (``{ recon_loss = "l1" }``): two variants of one encoder side by side in one run. An encoder is trained once
    per encoder, encoder options and training seed, and shared by the entries that agree on all three."""

    def validate(self) -> None:
        require(bool(self.encoder), "encoder", "is required: the encoder plugin of this model")
        check_sampling_ranges(self)

    def columns(self) -> dict[str, Any]:
        """The entry as the columns of results tables describe it (:data:`.rundir.ENTRY_COLUMNS`)."""
        options = {key: json.dumps(getattr(self, key), sort_keys=True) if getattr(self, key) else ""
                   for key in OPTION_COLUMNS}
        return {column: options.get(column, getattr(self, column, None)) for column in ENTRY_COLUMNS}

    @property
    def sampling(self) -> dict[str, Any]:
        """The entry's sampling settings, as ``stream`` takes them."""
        return {"temperature": self.temperature, "top_k": self.top_k or None, "top_p": self.top_p}

    def to_table(self) -> dict[str, Any]:
        """The entry as a config file writes it: every setting resolved, its own options only when given."""
        out = {k: v for k, v in to_dict(self).items() if k not in OPTION_COLUMNS}
        return {**out, **{key: dict(getattr(self, key)) for key in OPTION_COLUMNS if getattr(self, key)}}


OPTION_COLUMNS = ("prior_options", "encoder_options")
"""An entry's own options of its components: tables in a config, JSON text in results tables (empty: none)."""


@dataclass(frozen=True)
class EncoderInstance:
    """One trained encoder of a run: a plugin with its table's options and, from model entries, options of its
    own. Entries whose options resolve to the same ``Config`` share it (``{ beta = 1 }`` is ``{ beta = 1.0 }``, and
    an option at its table's value changes nothing)."""

    name: str
    """The encoder plugin."""
    config: Any
    """Its resolved ``Config``."""
    changes: dict[str, Any]
    """The resolved options in which it differs from ``[encoder.NAME]``'s (its entries' ``encoder_options``); empty
    for the table's own encoder."""

    def key(self, changes: dict[str, Any] | None = None) -> str:
        """How the run keys it (its checkpoints, codes and digests): the name, or with changes the name, '+' and a
        digest of them (``changes``: :attr:`changes` as the run's identity spells them,
        :meth:`BenchConfig.spelled`). No component name holds a '+', so a key never names another encoder."""
        changes = self.changes if changes is None else changes
        return self.name if not changes else f"{self.name}+{identity.digest(changes)[:8]}"


@dataclass
class BenchConfig:
    """A validated run config with every selected component's options resolved."""

    run: RunConfig
    options: dict[str, dict[str, Any]]
    """kind -> component name -> Config instance, for every selected component."""

    def component_config(self, kind: str, name: str) -> Any:
        return self.options[kind][name]

    baseline: dict[str, Any] | None = None
    """The canonical form recorded by the run this config resumes or reopens (:mod:`.identity`): its defaults in
    force decide what counts as set. None for a new run: today's defaults."""

    models: list[ModelEntry] = field(default_factory=list)
    """The models compared, resolved: labels made, ``[run]`` defaults filled in."""

    explicit_models: bool = False
    """Whether the models were given as ``[[model]]`` entries (else they are ``run.encoders``, the old form, and
    the config is written without entries, so that its identity is what it always was)."""

    prior_configs: dict[str, Any] = field(default_factory=dict)
    """label -> the ``Config`` of the entry's prior, its ``prior_options`` applied."""

    instances: dict[str, EncoderInstance] = field(default_factory=dict)
    """label -> the trained encoder the entry uses (:class:`EncoderInstance`)."""

    set_aside: dict[str, str] = field(default_factory=dict)
    """label -> why: models of a reopened run folder left out because a component they use cannot be loaded here
    (:func:`config_from_record`). Not part of the config: the run folder still holds them."""

    metrics_set_aside: dict[str, str] = field(default_factory=dict)
    """name -> why: metrics left out likewise, by commands that score nothing (``sample``, ``bench``)."""

    left_out: list[str] = field(default_factory=list)
    """Models of a reopened run folder that a command leaves out because it was told to (``--models``): like those
    set aside, not worked on, and what the folder holds of them is kept."""

    @property
    def not_worked_on(self) -> list[str]:
        """The models set aside and those left out: what the run folder holds of them is kept as it is."""
        return list(self.set_aside) + self.left_out

    def without(self, aside: dict[str, str] | list[str]) -> BenchConfig:
        """This config with the models ``aside`` set aside (label -> why), as :func:`config_from_record` sets aside
        those whose plugin cannot be loaded, or left out (a list of labels): its identity, and so its digests, are
        those of the models kept."""
        models = [entry for entry in self.models if entry.label not in aside]
        run = self.run if self.explicit_models else dataclasses.replace(self.run, encoders=[m.encoder for m in models])
        told = isinstance(aside, list)
        return dataclasses.replace(
            self, run=run, models=models, set_aside=self.set_aside if told else {**self.set_aside, **aside},
            left_out=self.left_out + aside if told else self.left_out,
            prior_configs={k: v for k, v in self.prior_configs.items() if k not in aside},
            instances={k: v for k, v in self.instances.items() if k not in aside})

    def model(self, label: str) -> ModelEntry:
        for entry in self.models:
            if entry.label == label:
                return entry
        raise KeyError(label)

    def instance(self, entry: ModelEntry | str) -> str:
        """The key of the trained encoder that an entry (or its label) uses (:meth:`EncoderInstance.key`)."""
        found = self.instances[entry if isinstance(entry, str) else entry.label]
        return found.key(self.spelled("encoder", found.name, found.changes))

    def encoder_of(self, key: str) -> EncoderInstance:
        """The trained encoder an entry uses, by its key."""
        for label, instance in self.instances.items():
            if self.instance(label) == key:
                return instance
        raise KeyError(key)

    @property
    def recorded(self) -> tuple[dict[tuple[str, str], dict[str, str]], dict[tuple[str, str], dict[str, Any]]]:
        """What the identity this config is reckoned against (:attr:`baseline`, the run being reopened or resumed)
        holds that its components have changed since: per (kind, component), options recorded under a name
        renamed since (``{new: old}``, from ``Config.RENAMED``), and options removed since with their recorded
        values (from ``Config.REMOVED``). The identity keeps both as recorded, so that every digest of the run and
        of its checkpoints stays what it was, in this process and in its workers alike; none for a new run."""
        if self.baseline is None:
            return {}, {}
        cached = getattr(self, "_recorded", None)
        if cached is None or cached[0] is not self.baseline:
            cached = (self.baseline, recorded_spelling(self.baseline, self.config_class))
            self._recorded = cached
        return cached[1]

    def config_class(self, kind: str, name: Any) -> type | None:
        """The ``Config`` class of a selected component, or None."""
        found = self.options.get(kind, {}).get(name) if isinstance(name, str) else None
        return None if found is None else type(found)

    def spelled(self, kind: str, name: str, options: Any) -> Any:
        """``options`` of component ``name`` of ``kind`` as the run's identity spells them (:attr:`recorded`)."""
        back = self.recorded[0].get((kind, name))
        return {back.get(k, k): v for k, v in options.items()} if back and isinstance(options, dict) else options

    def columns(self, entry: ModelEntry) -> dict[str, Any]:
        """The entry as results tables describe it (:meth:`ModelEntry.columns`), its own options spelled as the
        run's identity spells them: one run folder names an option one way in every row."""
        out = entry.columns()
        for kind in ("encoder", "prior"):
            options = getattr(entry, f"{kind}_options")
            if options:
                out[f"{kind}_options"] = json.dumps(self.spelled(kind, getattr(entry, kind), options), sort_keys=True)
        return out

    def recorded_table(self, kind: str, name: str, table: dict[str, Any]) -> dict[str, Any]:
        """A component's table of options as the run's identity holds it: spelled as recorded, removed options
        kept (:attr:`recorded`)."""
        return {**self.recorded[1].get((kind, name), {}), **self.spelled(kind, name, table)}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run": to_dict(self.run)}
        if self.explicit_models:  # the entries list the models: run.encoders would be a second list
            del out["run"]["encoders"]
            out["model"] = [entry.to_table() for entry in self.models]
        for kind, by_name in self.options.items():
            if by_name:
                out[kind] = {name: to_dict(cfg) for name, cfg in by_name.items()}
        return out

    def defaults(self) -> dict[str, Any]:
        """The defaults of every table of :meth:`to_dict`, as the code in use fills them."""
        out: dict[str, Any] = {"run": to_dict(RunConfig())}
        for kind, by_name in self.options.items():
            if by_name:
                out[kind] = {name: to_dict(type(cfg)()) for name, cfg in by_name.items()}
        return out

    def canonical(self) -> dict[str, Any]:
        """The canonical form of this config (what was set, the defaults in force), machine-local keys left out.
        Entries are tables keyed by label, their defaults those of :class:`ModelEntry`: a field added to entries
        later, at its default, leaves the identity of a run with entries as it was."""
        values, defaults = self.to_dict(), self.defaults()
        for tables in (values, defaults):
            for kind in COMPONENT_TABLES:
                for name, table in (tables.get(kind) or {}).items():
                    tables[kind][name] = self.recorded_table(kind, name, table)
        for entry in values.get("model", []):
            for kind in ("encoder", "prior"):
                if entry.get(f"{kind}_options"):
                    entry[f"{kind}_options"] = self.spelled(kind, entry[kind], entry[f"{kind}_options"])
        if "model" in values:
            entry_defaults = {k: v for k, v in to_dict(ModelEntry()).items() if k not in ("label", "encoder")}
            values["model"] = {e["label"]: {k: v for k, v in e.items() if k != "label"} for e in values["model"]}
            defaults["model"] = dict.fromkeys(values["model"], entry_defaults)
        for tables in (values, defaults):
            tables["run"] = {k: v for k, v in tables["run"].items() if k not in LOCAL_KEYS}
        return identity.canonical(values, defaults, self.baseline)

    def digest(self) -> str:
        """The run's identity (:func:`.identity.run_digest`): what was set, machine-local keys excluded."""
        return identity.run_digest(self.canonical())

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def flag_fields(plugins: Plugins) -> dict[str, list[tuple[str, str, dataclasses.Field]]]:
    """Options that components expose as CLI flags (``metadata={"flag": "--x"}``): flag -> (kind, name, field)."""
    out: dict[str, list[tuple[str, str, dataclasses.Field]]] = {}
    for component in plugins.all():
        for f in dataclasses.fields(component.cls.Config):
            if (flag := flag_of(f)) is not None:
                out.setdefault(flag, []).append((component.kind, component.name, f))
    return out


def _check_name(kind: str, name: str, where: str) -> None:
    """A component name from a config, before it is looked up (and quoted whole in the 'unknown' line)."""
    if len(name) > MAX_COMPONENT_NAME:
        raise ConfigError(f"{where}: {short(name)} is not an installed {kind} (names are at most "
                          f"{MAX_COMPONENT_NAME} characters)")


def build_config(raw: dict[str, Any], plugins: Plugins, flags: dict[str, Any] | None = None,
                 model_overrides: dict[str, Any] | None = None, only: list[str] | None = None) -> BenchConfig:
    """Validate a raw config dict (file merged with CLI overrides) against the core and the plugins.

    ``flags`` (``{"--some-flag": value}``) set the option behind each flag on every selected component that
    declares it, over the file. ``model_overrides`` (``{label: {key: value}}``, from ``--set model.LABEL.key=v``)
    change entries by label, and ``only`` (``--models``) keeps the entries it names.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a table of tables, got {type(raw).__name__}")
    if "extends" in raw:
        raise ConfigError("extends names a base config file, so it belongs in a config file: merge a dict's base "
                          "into it instead")
    unknown = sorted(set(raw) - set(TABLES))
    if unknown:
        raise ConfigError(f"unknown config table {unknown[0][:60]!r} (known: {', '.join(TABLES)})")
    run_table = raw.get("run", {})
    if isinstance(run_table, dict):
        for old, new in RENAMED.items():
            if old in run_table:
                raise ConfigError(f"run.{old} was renamed: use run.{new}")
    given_entries = raw.get("model")
    raw = entries_over_encoders(raw)  # also for a dict or --set, not only for the files merge_layers reads
    run_table = raw.get("run", {})
    if given_entries is not None and isinstance(run_table, dict) and "encoders" in run_table:
        raise ConfigError("run.encoders and [[model]] entries both list the models: keep one (an entry per model)")
    raw = merge(dataset_defaults(raw, plugins), raw)
    run = from_dict(RunConfig, raw.get("run", {}), "run")
    models = resolve_models(given_entries, run, model_overrides, only,
                            lambda entry, where: _own_encoder_options(raw, plugins, entry, where))
    if given_entries is None and only is not None:
        run.encoders = [m.encoder for m in models]  # the old form stays the old form: it lists what runs
    selected = {
        "dataset": [run.dataset],
        "encoder": list(dict.fromkeys(m.encoder for m in models)),
        "prior": list(dict.fromkeys(m.prior for m in models)),
        "metric": list(run.metrics),
        "modality": [],
    }
    keys = {"dataset": "run.dataset", "encoder": "run.encoders", "prior": "run.prior", "metric": "run.metrics"}
    for kind, names in selected.items():
        for name in names:
            _check_name(kind, name, keys.get(kind, kind))
            plugins.get(kind, name, suggest=not reading_record())  # unknown names fail with the installed ones
    for flag, value in (flags or {}).items():
        targets = [(kind, name, f) for kind, name, f in flag_fields(plugins).get(flag, []) if name in selected[kind]]
        if not targets:
            raise ConfigError(f"{flag}: none of the selected components has this option")
        for kind, name, f in targets:
            raw = merge(raw, {kind: {name: {f.name: value}}})
    explicit = given_entries is not None or bool(model_overrides)
    if explicit:
        run.encoders = list(selected["encoder"])
    for entry in models:
        check_sampling(entry, plugins.get("prior", entry.prior).cls, None if explicit else "run")
    options: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
    for kind in KINDS:
        given = raw.get(kind, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{kind}: expected a table of per-{kind} tables")
        for name in given:
            _check_name(kind, name, kind)
            plugins.get(kind, name)  # options for a component that is not installed are a typo
        # a run's modality is known only once its data are loaded: every modality table given is validated
        for name in selected[kind] if kind != "modality" else list(given):
            component = plugins.get(kind, name)
            options[kind][name] = from_dict(component.cls.Config, given.get(name, {}), f"{kind}.{name}")
    prior_configs = {entry.label: _entry_config(raw, options, plugins, "prior", entry.prior, entry.prior_options,
                                                f"model.{entry.label}.prior_options") for entry in models}
    instances = {entry.label: EncoderInstance(entry.encoder, _entry_config(
        raw, options, plugins, "encoder", entry.encoder, entry.encoder_options, f"model.{entry.label}.encoder_options"),
        entry.encoder_options) for entry in models}
    return BenchConfig(run=run, options=options, models=models, explicit_models=explicit, prior_configs=prior_configs,
                       instances=instances)


def _own_encoder_options(raw: dict[str, Any], plugins: Plugins, entry: ModelEntry, where: str) -> None:
    """An entry's ``encoder_options`` as what they change: the options, as the encoder's ``Config`` reads them, in
    which the entry's encoder differs from its table's. So one encoder has one spelling (``beta = 1`` is
    ``beta = 1.0``, an option at its table's value is none), in labels, results tables, the identity and the
    instance that trains it."""
    if not entry.encoder_options:
        return
    cls = plugins.get("encoder", entry.encoder).cls.Config
    given = raw.get("encoder", {})  # not yet checked to be tables: build_config checks them after the entries
    table = given.get(entry.encoder, {}) if isinstance(given, dict) else {}
    table = table if isinstance(table, dict) else {}
    base = to_dict(from_dict(cls, table, f"encoder.{entry.encoder}"))
    own = _usable_options(cls, "encoder", entry.encoder, entry.encoder_options, f"{where}.encoder_options")
    resolved = to_dict(from_dict(cls, merge(table, own), f"{where}.encoder_options"))
    entry.encoder_options = {key: value for key, value in resolved.items() if value != base[key]}


def _usable_options(cls: type, kind: str, name: str, entry_options: dict[str, Any], where: str) -> dict[str, Any]:
    """An entry's own options of a component that its ``Config`` may take. Machine-local options stay in the table
    (or a flag): an entry is recorded whole, and a record names no path on this machine. One that an older record
    holds in an entry is not used (the table's or its flag's value is), and stays in the entry, whose identity it
    is part of."""
    local = sorted(set(entry_options) & local_options(cls))
    if local and not reading_record():
        raise ConfigError(f"{where}.{local[0]}: a machine-local option of {kind} {name!r}; set it in "
                          f"[{kind}.{name}] or with its flag, not in a model entry")
    return {key: value for key, value in entry_options.items() if key not in local}


def _entry_config(raw: dict[str, Any], options: dict[str, dict[str, Any]], plugins: Plugins, kind: str, name: str,
                  entry_options: dict[str, Any], where: str) -> Any:
    """The ``Config`` of component ``name`` for one model entry: its table's, with the entry's own options over
    them (:func:`_usable_options`)."""
    if not entry_options:
        return options[kind][name]
    cls = plugins.get(kind, name).cls.Config
    return from_dict(cls, merge(raw.get(kind, {}).get(name, {}), _usable_options(cls, kind, name, entry_options, where)),
                     where)


LABEL_KEYS = (("temperature", "t"), ("top_k", "k"), ("top_p", "p"))
"""The sampling settings a made label names when they differ from ``[run]``'s, and how it abbreviates them."""


def resolve_models(given: Any, run: RunConfig, overrides: dict[str, Any] | None = None,
                   only: list[str] | None = None,
                   normalize: Callable[[ModelEntry, str], None] | None = None) -> list[ModelEntry]:
    """The models a config compares: its ``[[model]]`` entries (``given``) with ``[run]``'s prior and sampling
    settings filled in and labels made, or one entry per ``run.encoders`` when it has none. ``overrides`` (from
    ``--set model.LABEL.key=value``) change entries by label; ``only`` (``--models``) keeps the entries it names;
    ``normalize`` puts each entry's options in one spelling before its label is made."""
    normalize = normalize or (lambda entry, where: None)
    inherited = {"prior": run.prior, "temperature": run.temperature, "top_k": run.top_k, "top_p": run.top_p}
    if given is None:
        tables: list[Any] = [{"encoder": name, "label": name} for name in run.encoders]
    elif not isinstance(given, list) or not given:
        raise ConfigError("model: expected [[model]] entries (an array of tables), each naming an encoder")
    else:
        tables = given
    if len(tables) > MAX_MODELS:
        raise ConfigError(f"model: {len(tables)} entries; a config compares at most {MAX_MODELS}")
    models = []
    for i, table in enumerate(tables):
        where = f"model[{i + 1}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table, got {short(table)}")
        if isinstance(table.get("label"), str) and table["label"]:
            where = f"model.{short(table['label'], 40)}"
        entry = from_dict(ModelEntry, {**inherited, **table}, where)
        _check_name("encoder", entry.encoder, "run.encoders" if given is None else f"{where}.encoder")
        _check_name("prior", entry.prior, "run.prior" if given is None else f"{where}.prior")
        normalize(entry, where)
        models.append(entry)
    for entry in models:
        if not entry.label:
            entry.label = _made_label(entry, run, {m.label for m in models})
        elif not is_component_name(entry.label):
            raise ConfigError(f"model.label {short(entry.label, 40)}: a label names folders, so it must be 1-64 "
                              "lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
    labels = [m.label for m in models]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"model: two entries are labelled {repeated[0]!r}; labels must be unique")
    for label, changes in (overrides or {}).items():
        if label not in labels:
            table = next((key for key in OPTION_COLUMNS if str(label).endswith(f".{key}")), None)
            if table and str(label)[:-len(table) - 1] in labels:  # model.LABEL.encoder_options.key=value
                owner = str(label)[:-len(table) - 1]
                raise ConfigError(f"--set model.{owner[:40]}.{table}.KEY: give the whole table, "
                                  f"--set 'model.{owner[:40]}.{table}={{KEY = VALUE}}'")
            raise ConfigError(f"--set model.{str(label)[:40]}...: no model is labelled {str(label)[:40]!r} "
                              f"(models: {', '.join(labels)})")
        if not isinstance(changes, dict) or "label" in changes:
            raise ConfigError(f"--set model.{label}: give model.{label}.key=value (a label cannot be changed)")
        index = labels.index(label)
        merged = {**models[index].to_table(), **changes}
        models[index] = from_dict(ModelEntry, merged, f"model.{label}")
        normalize(models[index], f"model.{label}")
    if only is not None:
        unknown = [name for name in only if name not in labels]
        if unknown:
            raise ConfigError(f"--models: no model labelled {short(unknown[0], 40)} (models: {', '.join(labels)})")
        models = [m for m in models if m.label in only]
    return models


def _made_label(entry: ModelEntry, run: RunConfig, taken: set[str]) -> str:
    """A readable label: the encoder, then what differs from ``[run]``: the prior, the sampling settings
    (``rvq-ngram-p95``), a short digest of the prior options; a short digest of the encoder options after the
    encoder's name; ``-2``, ``-3`` ... when two entries still share it."""
    parts = [entry.encoder] + ([identity.digest(entry.encoder_options)[:6]] if entry.encoder_options else [])
    parts += [entry.prior] if entry.prior != run.prior else []
    parts += [f"{short_key}{_label_number(getattr(entry, key))}" for key, short_key in LABEL_KEYS
              if getattr(entry, key) != getattr(run, key)]
    if entry.prior_options:
        parts.append(identity.digest(entry.prior_options)[:6])
    base = "-".join(parts)[:60]
    label, n = base, 1
    while label in taken:
        n += 1
        label = f"{base}-{n}"
    taken.add(label)
    return label


def _label_number(value: float) -> str:
    """A setting as a label writes it, with no '.' (``--set model.LABEL.key`` splits on dots): 0.95 -> 95,
    0.05 -> 05, 1.5 -> 1_5, 40 -> 40."""
    text = f"{value:g}"
    return (text[2:] if text.startswith("0.") else text).replace(".", "_")


def check_sampling(entry: ModelEntry, prior: type, where: str | None) -> None:
    """A sampling setting away from its default must be one the entry's prior declares (``Prior.sampling_options``).
    ``where`` names the table that gave it: ``run`` for the old form, else the entry."""
    declared = sampling_options_of(prior)
    for key, (what, default) in SAMPLING_OPTIONS.items():
        if getattr(entry, key) != default and key not in declared:
            if where == "run":
                raise ConfigError(f"run.{key}: prior {entry.prior!r} does not accept {key} ({what}); set "
                                  f"run.{key} = {default:g} or choose a prior that does")
            raise ConfigError(f"model.{entry.label}.{key}: prior {entry.prior!r} of model {entry.label!r} does not "
                              f"accept {key} ({what}); leave it at {default:g} or choose a prior that does")


def dataset_defaults(raw: dict[str, Any], plugins: Plugins) -> dict[str, Any]:
    """The partial config a dataset class offers in ``defaults`` (audio encoders and metrics for an audio
    dataset, say); the user's file and options are merged over it."""
    run = raw.get("run", {})
    name = run.get("dataset", RunConfig.dataset) if isinstance(run, dict) else RunConfig.dataset
    if not isinstance(name, str):
        return {}  # from_dict reports the type error
    _check_name("dataset", name, "run.dataset")
    defaults = getattr(plugins.get("dataset", name).cls, "defaults", None) or {}
    if not (isinstance(defaults, dict) and set(defaults) <= set(TABLES)):
        raise ConfigError(f"dataset {name!r}: its defaults must be a dict of config tables")
    # Checked alone, so that a fault of the plugin's is named as its own, not as an option the user never set.
    for table in COMPONENT_TABLES:
        tables = defaults.get(table, {})
        if not (isinstance(tables, dict) and all(isinstance(v, dict) for v in tables.values())):
            raise ConfigError(f"dataset {name!r}: its defaults' {table} must be a table of per-{table} tables")
    try:
        from_dict(RunConfig, defaults.get("run", {}), "run")
        for table in COMPONENT_TABLES:
            for component, options in defaults.get(table, {}).items():
                if component in plugins.names(table):  # one not installed or broken: refused where it is used
                    from_dict(plugins.get(table, component).cls.Config, options, f"{table}.{component}")
    except ConfigError as exc:
        raise ConfigError(f"dataset {name!r}: its defaults are refused: {first_line(exc, 200)}") from None
    return defaults


def load_config(path: Path | None, overrides: dict[str, Any], plugins: Plugins,
                flags: dict[str, Any] | None = None, only: list[str] | None = None) -> BenchConfig:
    """A config file (or none: the defaults) with the CLI's ``overrides`` laid over it. Overrides of model entries
    (``{"model": {label: {...}}}``) are applied by label, after the entries are resolved."""
    raw = read_config(path) if path is not None else {}
    overrides = dict(overrides)
    model_overrides = overrides.pop("model", None)
    if model_overrides is not None and not isinstance(model_overrides, dict):
        raise ConfigError("--set model.LABEL.key=value: name the model entry by its label")
    return build_config(merge(raw, overrides), plugins, flags, model_overrides, only)


def without_local_options(data: dict[str, Any], plugins: Plugins) -> dict[str, Any]:
    """A config's tables without the machine-local options of its components (of those that are installed). A model
    entry's own options keep them, since they are part of its identity; its component is built without them
    (:func:`_usable_options`)."""
    out = dict(data)
    for kind in COMPONENT_TABLES:
        tables = data.get(kind)
        if not isinstance(tables, dict):
            continue
        out[kind] = {}
        for name, options in tables.items():
            known = isinstance(name, str) and name in plugins.names(kind)
            local = local_options(plugins.get(kind, name).cls.Config) if known else set()
            out[kind][name] = {k: v for k, v in options.items() if k not in local} if isinstance(options, dict) \
                else options
    return out


def config_from_record(data: Any, plugins: Plugins, local: dict[str, Any],
                       flags: dict[str, Any] | None = None, set_aside: bool = False,
                       form: Any = None, metrics_aside: bool = False, made_with: Any = None) -> BenchConfig:
    """Rebuild a config saved in a run folder's record. Its machine-local keys are replaced by ``local``, and its
    components' machine-local options are dropped: ``flags`` (``{"--flag": value}``) give them on this machine.
    With ``set_aside``, models whose encoder or prior cannot be loaded here are left out, each named with why in
    the config's :attr:`~BenchConfig.set_aside` (:func:`without_unavailable`). ``form``, the run's recorded
    identity, is checked as the config is: what its digests hold, the components must still take. With
    ``metrics_aside`` too, metrics that cannot be loaded are left out likewise (:attr:`BenchConfig.metrics_set_aside`),
    for commands that score nothing. ``made_with`` (kind -> name -> distribution, as the run recorded them) names
    what provided a component that cannot be loaded now."""
    if not isinstance(data, dict) or not isinstance(data.get("run", {}), dict):
        raise ConfigError("its config is not a table of tables")
    run = {k: v for k, v in data.get("run", {}).items() if k not in LOCAL_KEYS}
    run.update({k: v for k, v in local.items() if v is not None})
    aside: dict[str, str] = {}
    metrics_gone: dict[str, str] = {}
    unreadable: dict[tuple[str, str], str] = {}
    data = renamed_options(data, plugins, unreadable)
    for kind, name, table in identity_tables(form):  # what the run's digests hold, its components must still take
        _respelled(table, plugins, kind, name, f"{kind}.{str(name)[:40]}", unreadable)
    if set_aside:
        data = without_unavailable(data, plugins, aside, unreadable, made_with)
        if "encoders" in run:
            run["encoders"] = data["run"]["encoders"]
    if metrics_aside:
        data = without_unavailable_metrics(data, run, plugins, metrics_gone, unreadable, made_with)
    if unreadable:  # a component in use whose recorded options this version cannot take
        raise ConfigError(next(iter(unreadable.values())))
    with recorded_values():
        cfg = build_config({**without_local_options(data, plugins), "run": run}, plugins, flags)
    cfg.set_aside, cfg.metrics_set_aside = aside, metrics_gone
    return cfg


def without_unavailable_metrics(data: dict[str, Any], run: dict[str, Any], plugins: Plugins, gone: dict[str, str],
                                unreadable: dict[tuple[str, str], str], made_with: Any) -> dict[str, Any]:
    """A recorded config without the metrics that cannot be loaded here or take their recorded options (``run``,
    its ``[run]`` table, changed in place; ``gone`` gets each and why), for commands that score nothing. Nothing is
    left out when every metric would be."""
    metrics = run.get("metrics") if isinstance(run.get("metrics"), list) else []
    why = {name: reason + provided_by(made_with, "metric", name) for name in metrics
           if (reason := unavailable(plugins, "metric", name) or unreadable.get(("metric", name))) is not None}
    if not why or len(why) == len(metrics):
        return data
    run["metrics"] = [name for name in metrics if name not in why]
    if run.get("headline_metric") in why:
        run["headline_metric"] = ""  # the first metric left heads what these commands draw
    for name in why:
        unreadable.pop(("metric", name), None)
    gone.update(why)
    return {**data, "metric": {name: table for name, table in (data.get("metric") or {}).items() if name not in why}}


def installed_config(plugins: Plugins, kind: str, name: Any) -> type | None:
    """The ``Config`` class of the installed component ``name`` of ``kind``, or None where it cannot be loaded."""
    return None if unavailable(plugins, kind, name) is not None else plugins.get(kind, name).cls.Config


def declared(config: type | None, member: str) -> dict[str, Any]:
    """What a ``Config`` class declares of its options' history: ``RENAMED`` (old name -> new one) or ``REMOVED``
    (option -> the value the component now runs at); empty for none, or for no class."""
    found = getattr(config, member, None)
    return dict(found) if isinstance(found, dict) else {}


def _respelled(table: Any, plugins: Plugins, kind: str, name: Any, where: str,
               unreadable: dict[tuple[str, str], str], key: tuple[str, str] | None = None) -> Any:
    """``table`` of component ``name`` as its Config reads it now: each renamed option under its new name (where
    both names are given, the old one goes if it holds the same value, else both stay and the config is refused),
    and each removed option gone where it holds the value the component now runs at. One that held another value
    cannot be reproduced: ``unreadable`` gets why, under ``key`` (default ``(kind, name)``; ``("model", label)`` for
    an entry's own options, which make only that entry irreproducible)."""
    key = key or (kind, name)
    config = installed_config(plugins, kind, name)
    if not isinstance(table, dict) or config is None:
        return table
    renames, removed = declared(config, "RENAMED"), declared(config, "REMOVED")
    known = {f.name for f in dataclasses.fields(config)}
    gone = [k for k in table if k not in known and k not in renames and k not in removed]
    if gone:  # a config file with it is refused as a typo; a run folder names what the plugin no longer has
        unreadable.setdefault(key, f"{where}: the run recorded option {short(gone[0], 40)}, which {kind} {name!r} "
                                   "no longer has (its plugin changed since the run was made, and does not say in "
                                   "Config.REMOVED what it runs as now)")
    if key[0] == "model":  # an entry's own options are its identity: one the plugin removed cannot be carried over
        for option in [k for k in table if k in removed]:
            unreadable.setdefault(key, f"{where}.{option}: {kind} {name!r} no longer has this option (it runs as "
                                       f"{option} = {short(removed[option])} now), and an entry's own options make "
                                       "its identity")
    for option in [k for k in table if k in removed and table[k] != removed[k]]:
        unreadable.setdefault(key, f"{where}.{option} = {short(table[option])}: {kind} {name!r} no longer has this "
                                   f"option and runs as {option} = {short(removed[option])} now, so the run cannot be "
                                   "reproduced with it")
    return {(renames[k] if k in renames and renames[k] not in table else k): v for k, v in table.items()
            if not (k in renames and renames[k] in table and table[renames[k]] == v) and k not in removed}


def renamed_options(data: dict[str, Any], plugins: Plugins, unreadable: dict[tuple[str, str], str]) -> dict[str, Any]:
    """A recorded config as its components read options now: renamed options under their new names, removed ones
    gone (:func:`_respelled`). A config file that gives an old name is told the new one, while a run folder holds
    what its run was made with and reopens (its identity keeps what it recorded: :func:`recorded_spelling`)."""
    out = dict(data)
    for kind in COMPONENT_TABLES:
        if isinstance(data.get(kind), dict):
            out[kind] = {name: _respelled(table, plugins, kind, name, f"{kind}.{str(name)[:40]}", unreadable)
                         for name, table in data[kind].items()}
    run = data.get("run") if isinstance(data.get("run"), dict) else {}
    if isinstance(data.get("model"), list):
        out["model"] = [{**entry, **{f"{kind}_options": _respelled(
            entry.get(f"{kind}_options"), plugins, kind, entry.get(kind, run.get(kind) if kind == "prior" else None),
            f"model.{str(entry.get('label'))[:40]}.{kind}_options", unreadable, ("model", str(entry.get("label"))))
            for kind in ("encoder", "prior") if f"{kind}_options" in entry}} if isinstance(entry, dict) else entry
            for entry in data["model"]]
    return out


def identity_tables(form: Any) -> list[tuple[str, Any, Any]]:
    """``(kind, component, options)`` for each component table of a recorded identity, in both its layers (what
    was set, the defaults in force)."""
    out = []
    for layer in ("set", "defaults"):
        tables = form.get(layer) if isinstance(form, dict) else None
        for kind in COMPONENT_TABLES:
            by_name = tables.get(kind) if isinstance(tables, dict) else None
            out += [(kind, name, table) for name, table in (by_name.items() if isinstance(by_name, dict) else ())]
    return out


def recorded_spelling(form: Any, config_class: Callable[[str, Any], type | None]) -> tuple[
        dict[tuple[str, str], dict[str, str]], dict[tuple[str, str], dict[str, Any]]]:
    """What a run's identity (``form``) holds that its components have changed since (:attr:`BenchConfig.recorded`):
    per (kind, component), options recorded under a name renamed since ({new: old}), and options removed since with
    their recorded values; ``config_class(kind, name)`` gives a component's ``Config`` class, or None."""
    spelling: dict[tuple[str, str], dict[str, str]] = {}
    retired: dict[tuple[str, str], dict[str, Any]] = {}

    def note(kind: str, name: Any, table: Any, entry: bool = False) -> None:
        cls = config_class(kind, name) if isinstance(table, dict) else None
        renames, removed = declared(cls, "RENAMED"), declared(cls, "REMOVED")
        for key, value in (table.items() if cls is not None else ()):
            if key in renames:
                spelling.setdefault((kind, name), {})[renames[key]] = key
            elif key in removed and not entry:  # an entry holding one is set aside (:func:`_respelled`)
                retired.setdefault((kind, name), {})[key] = value

    for kind, name, table in identity_tables(form):
        note(kind, name, table)
    for layer in ("set", "defaults"):
        tables = form.get(layer) if isinstance(form, dict) else None
        for label, entry in (tables["model"] if isinstance(tables, dict) and isinstance(tables.get("model"), dict)
                             else {}).items():
            if isinstance(entry, dict):
                for kind in ("encoder", "prior"):
                    name = entry.get(kind, ((form.get("defaults") or {}).get("model") or {}).get(label, {}).get(kind))
                    note(kind, name, entry.get(f"{kind}_options"), entry=True)
    return spelling, retired


def unavailable(plugins: Plugins, kind: str, name: Any) -> str | None:
    """Why the component ``name`` of ``kind`` cannot be loaded here (its plugin broken, or not installed), or None
    when it can, or when ``name`` is not a name at all (the config's own checks say so)."""
    if not isinstance(name, str) or len(name) > MAX_COMPONENT_NAME:
        return None
    try:
        plugins.get(kind, name)
    except PluginError as exc:
        return str(exc)
    return None


def provided_by(made_with: Any, kind: str, name: Any) -> str:
    """What the run recorded as providing component ``name`` of ``kind``, as a clause; empty if it recorded none."""
    found = made_with.get(kind) if isinstance(made_with, dict) else None
    return made_with_clause(found.get(name) if isinstance(found, dict) and isinstance(name, str) else None)


def made_with_clause(provider: Any) -> str:
    """A distribution and version a run was made with (``"toys 1.0"``), as the clause a line ends with."""
    if not isinstance(provider, str):
        return ""
    text = "".join(c if c.isprintable() else " " for c in provider[:80])  # from the record: kept to one line
    return f" (the run was made with {text})"


def without_unavailable(data: dict[str, Any], plugins: Plugins, aside: dict[str, str],
                        unreadable: dict[tuple[str, str], str] | None = None, made_with: Any = None) -> dict[str, Any]:
    """A recorded config without the models whose encoder or prior cannot be loaded here, or cannot take the options
    recorded for it (``unreadable``, from :func:`renamed_options`: what is left out is taken from it), nor the option
    tables of those components; ``aside`` gets each such model's label and why. One broken, uninstalled or changed
    plugin thus leaves the run folder's other models usable. Nothing is left out when every model would be (the
    config is refused as it stands) or when its dataset cannot be loaded: every model uses it."""
    unreadable = {} if unreadable is None else unreadable

    def why_not(kind: str, name: Any) -> str | None:
        reason = unavailable(plugins, kind, name)
        return reason if reason is not None else unreadable.get((kind, name))

    run = data.get("run", {})
    entries = data.get("model")
    if unavailable(plugins, "dataset", run.get("dataset")) is not None:
        return data
    tables = ([{"encoder": name, "label": name} for name in run.get("encoders", []) or []]
              if entries is None else entries)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        return data  # refused as it stands, with the config's own message
    why: dict[str, str] = {}
    gone: dict[str, set[str]] = {"encoder": set(), "prior": set()}
    for table in tables:
        label = table.get("label")
        if not (isinstance(label, str) and label):
            continue
        for kind in gone:
            name = table.get(kind, run.get(kind) if kind == "prior" else None)
            reason = why_not(kind, name)
            if reason is not None:
                why.setdefault(label, f"its {kind} {name!r} cannot be loaded: {reason}"
                                      + provided_by(made_with, kind, name))
                gone[kind].add(name)
        own = unreadable.get(("model", label))  # its own options: the component serves the other entries
        if own is not None:
            why.setdefault(label, f"its own options cannot be reproduced: {own}")
    if not why or len(why) == len(tables):
        return data
    out = {**data, "run": dict(run)}
    if entries is None:
        out["run"]["encoders"] = [name for name in run["encoders"] if name not in why]
    else:
        out["model"] = [table for table in entries if table.get("label") not in why]
    for kind, names in gone.items():
        if isinstance(data.get(kind), dict):
            out[kind] = {name: table for name, table in data[kind].items() if name not in names}
        for name in names:
            unreadable.pop((kind, name), None)
    for label in why:
        unreadable.pop(("model", label), None)
    aside.update(why)
    return out
