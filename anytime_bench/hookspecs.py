"""Hook specifications: the reference documentation for plugin authors.

A plugin is any importable module or object, advertised through the entry-point
group ``anytime_bench``, that implements some of the hooks below with the
:data:`hookimpl` marker. The built-in plugins are registered through exactly the
same entry-point mechanism as third-party ones.

Every ``register_*`` hook returns a list of *component classes*. A component
class carries:

* ``name`` (``ClassVar[str]``): the name users type (``--encoders ovqvae``);
  unique per kind across all installed plugins.
* ``Config`` (``ClassVar[type]``): a dataclass of its options. The core
  validates ``[<kind>.<name>]`` tables of a run's TOML config against it
  (unknown keys, wrong types) and passes an instance to the constructor.
* a docstring whose first line is shown by ``anytime-bench plugins``.

The protocols each kind must satisfy live in :mod:`anytime_bench.interfaces`.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "anytime_bench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_datasets() -> list[type]:
    """Contribute dataset classes.

    Each class is constructed as ``cls(config, data_root)``, where ``config`` is
    an instance of ``cls.Config`` and ``data_root`` a :class:`pathlib.Path` or
    ``None`` (from ``--data-root``). Its ``load()`` returns a
    :class:`anytime_bench.interfaces.DataSplits`. A dataset whose files are
    missing or malformed raises :class:`anytime_bench.errors.DataError` naming
    the file.

    Optional:

    * a ``cache_dir`` keyword in the constructor receives the run's cache
      folder (``<cache-dir>/datasets``), for data built or converted once;
    * a ``defaults`` class attribute: a partial config (``{"run": {...},
      "encoder": {"<name>": {...}}}``) merged beneath the user's file and
      options, so that ``--dataset <name>`` alone picks fitting encoders,
      metrics and budgets (an audio dataset picks audio models, say).
    """


@hookspec
def register_encoders() -> list[type]:
    """Contribute encoder (tokenizer/autoencoder) classes, ordered or not.

    Each class is constructed as ``cls(config, data_shape)`` with the shape of
    one data point (``(C, H, W)`` for images). It satisfies
    :class:`anytime_bench.interfaces.Encoder`: ``fit`` trains it, ``encode``
    maps data to integer codes ``[B, D]`` and ``decode`` maps any code prefix
    ``[B, k]`` with ``k <= D`` back to data, filling the missing tail the way
    its training defined. The class attribute ``ordered`` says whether it was
    trained to put important codes first (reports mark unordered baselines).
    """


@hookspec
def register_priors() -> list[type]:
    """Contribute autoregressive prior classes over code sequences.

    Each class is constructed as ``cls(config, vocab_size, seq_len)`` and
    satisfies :class:`anytime_bench.interfaces.Prior`: ``fit`` trains on code
    sequences ``[N, D]``; ``sample(n, length, generator=...)`` draws ``n``
    sequences of ``length`` codes, one incremental (KV-cached) step per token,
    so that stopping after ``k`` tokens costs ``k`` steps.
    """


@hookspec
def register_metrics() -> list[type]:
    """Contribute metric classes scored at one budget.

    Each class is constructed as ``cls(config)`` and satisfies
    :class:`anytime_bench.interfaces.Metric`. ``requires`` names what it scores
    (``"generated"``: samples of the prior decoded from ``k`` codes, or
    ``"reconstructed"``: test data encoded and decoded from its first ``k``
    codes); ``higher_is_better`` orients plots and scores.

    An optional ``preflight(inputs, ctx)`` method is called once before any
    training, with :class:`anytime_bench.interfaces.MetricInputs` holding a
    few test items, so that a missing resource (say, feature-extractor
    weights) stops the run in seconds rather than after training.
    """


@hookspec
def register_commands(cli) -> None:
    """Add click commands to the ``anytime-bench`` group.

    Called once with the top-level :class:`click.Group`; call
    ``cli.add_command(...)`` or decorate functions with ``@cli.command()``.
    """
