"""Hook specifications: the reference documentation for plugin authors.

A plugin is any importable module or object, advertised through the entry-point
group ``anytime_bench``, that implements some of the hooks below with the
:data:`hookimpl` marker. The built-in plugins are registered through exactly the
same entry-point mechanism as third-party ones.

Every ``register_*`` hook returns a list of *component classes*. A component
class carries:

* ``name`` (``ClassVar[str]``): the name users type (``--encoders ovqvae``);
  unique per kind across all installed plugins; 1-64 lower-case letters,
  digits, ``.``, ``_`` or ``-``, since it appears in file names.
* ``Config`` (``ClassVar[type]``): a dataclass of its options, each with a
  default. The core validates ``[<kind>.<name>]`` tables of a run's TOML config
  against it (unknown keys, wrong types; a ``validate()`` method may check
  ranges with :func:`anytime_bench.require`) and passes an instance to the
  constructor. A string literal under a field documents it: ``anytime-bench
  plugins NAME`` shows it. A field whose ``metadata`` has ``"flag":
  "--some-flag"`` is also settable from ``run`` and ``train`` with that flag,
  for every selected component that declares it. A field that says where
  something is on this machine (a weights file) also has ``"local": True``: it
  is never read back from a run folder, and ``sample``, ``evaluate`` and
  ``bench`` take its flag (which it must have) to give it again.
* a docstring whose first paragraph (its summary) ``anytime-bench plugins`` shows.

The members each kind must have, and exactly how the core calls them, are in
:mod:`anytime_bench.contract.interfaces` (``CONTRACT``). They are checked when plugins
load, and a class that breaks the contract is quarantined (listed by
``anytime-bench plugins``, refused when selected), as is a whole plugin whose
import or hook fails (:mod:`anytime_bench.contract.plugin_manager`);
:mod:`anytime_bench.testing` checks their behaviour.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "anytime_bench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_datasets() -> list[type]:
    """Contribute dataset classes (:class:`anytime_bench.contract.interfaces.Dataset`).

    Each class is constructed as ``cls(config, data_root)``, where ``config`` is
    an instance of ``cls.Config`` and ``data_root`` a :class:`pathlib.Path` or
    ``None`` (from ``--data-root``). Its ``load()`` returns a
    :class:`anytime_bench.contract.interfaces.DataSplits`: float tensors in ``[-1, 1]``,
    labels in ``0..num_classes-1``, and the name of a registered modality. A
    dataset whose files are missing or malformed raises
    :class:`anytime_bench.DataError` naming the file; the core then checks the
    splits themselves (shapes, range, labels) and names the dataset if they are
    wrong.

    Optional class attributes:

    * ``uses_cache_dir = True``: the constructor also receives ``cache_dir``
      (``<cache-dir>/datasets``), for data built or converted once;
    * ``defaults``: a partial config (``{"run": {...}, "encoder": {"<name>":
      {...}}}``) merged beneath the user's file and options, so that
      ``--dataset <name>`` alone picks fitting encoders, metrics and budgets
      (an audio dataset picks audio models, say).
    """


@hookspec
def register_encoders() -> list[type]:
    """Contribute encoder (tokenizer/autoencoder) classes, ordered or not (:class:`anytime_bench.contract.interfaces.Encoder`).

    Each class is constructed as ``cls(config, data_shape)`` with the shape of
    one data point (``(C, H, W)`` for images). Once built it has ``code_length``
    (D) and ``codebook_size`` (K). ``fit(data, ctx)`` trains it, ``encode(x)``
    maps a batch to int64 codes ``[B, D]`` in ``[0, K)``, and ``decode(codes)``
    maps any code prefix ``[B, k]`` with ``1 <= k <= D`` back to data, filling
    the missing tail the way its training defined. ``state_dict`` and
    ``load_state_dict`` save and restore it (tensors and plain values only).
    The class attribute ``ordered`` says whether training puts important codes
    first (reports mark unordered baselines). ``to(device)`` is optional:
    without it the encoder works on the CPU.
    """


@hookspec
def register_priors() -> list[type]:
    """Contribute autoregressive prior classes over code sequences (:class:`anytime_bench.contract.interfaces.Prior`).

    Each class is constructed as ``cls(config, vocab_size, seq_len)``.
    ``fit(train_codes, ctx)`` trains on int64 code sequences ``[N, D]``.
    ``stream(n, length, *, generator, temperature, top_k)`` yields, position by
    position, the ``[n]`` codes drawn for ``n`` sequences, one incremental step
    per token, so that stopping after ``k`` tokens costs ``k`` steps; the caller
    stops by no longer iterating. ``sample`` (optional) returns the stacked
    stream. ``kv_cache = True`` declares a key/value cache that ``stream``
    can switch off with ``use_cache=False`` (``bench`` times both).
    ``sampling_options`` declares the sampling settings a config may set
    (default ``("temperature", "top_k")``; ``"top_p"`` adds nucleus sampling).
    ``log_prob(codes)`` (optional) gives the log-probability of each code
    given those before it, which metrics of likelihoods (``nll``) score.
    """


@hookspec
def register_metrics() -> list[type]:
    """Contribute metric classes scored at one budget (:class:`anytime_bench.contract.interfaces.Metric`).

    Each class is constructed as ``cls(config)``. ``requires`` names what it
    scores (``"generated"``: samples of the prior decoded from ``k`` codes,
    ``"reconstructed"``: test data encoded and decoded from its first ``k``
    codes, or ``"likelihood"``: the prior's log-probabilities of the test
    data's first ``k`` codes); ``higher_is_better`` orients plots, verdicts
    and scores.
    ``compute(inputs, ctx)`` returns a number (or a dict of named numbers) and
    ``provenance()`` a JSON-serialisable dict whose keys ``feature_space``,
    ``reference_set`` and ``samples`` decide which runs ``report`` ranks
    together (:data:`anytime_bench.contract.interfaces.PROVENANCE_KEYS`).

    An optional ``preflight(inputs, ctx)`` method is called once before any
    training, with :class:`anytime_bench.contract.interfaces.MetricInputs` holding a
    few test items, so that a missing resource (say, feature-extractor
    weights) stops the run in seconds rather than after training.
    """


@hookspec
def register_modalities() -> list[type]:
    """Contribute modality classes: how one kind of data is stored, shown and exported
    (:class:`anytime_bench.contract.interfaces.Modality`).

    Each class is constructed as ``cls(config)``. ``to_stored``/``from_stored``
    convert data in ``[-1, 1]`` to the compact arrays kept in samples archives
    and back; ``preview(ax, stored, splits_info)`` draws a cell of
    the sample grid; the optional ``export(item, splits_info)`` turns one item
    into a file a person can open (a WAV clip), which runs and reports show.
    A dataset names its modality in ``DataSplits.modality``, so a new kind of
    data needs a modality plugin, not a change to the core.
    """


@hookspec
def register_commands(cli) -> None:
    """Add click commands to the ``anytime-bench`` group.

    Called once with the top-level :class:`click.Group`; call
    ``cli.add_command(...)`` or decorate functions with ``@cli.command()``.
    Raise :class:`anytime_bench.AnytimeBenchError` subclasses for bad input:
    the CLI prints them as one line with exit code 2. Any other exception, or
    a non-zero exit, in a command added here is reported in one line naming
    the plugin and its distribution (exit code 1, or the command's own code).
    If this hook itself raises (``SystemExit`` included), the plugin is
    quarantined: what it added is taken back, the other commands work.
    """
