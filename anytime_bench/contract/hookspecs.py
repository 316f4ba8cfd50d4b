"""Hook specifications: the reference documentation for plugin authors.

A plugin is any importable module or object, advertised through the entry-point
group ``anytime_bench``, that implements some of the hooks below with the
:data:`hookimpl` marker. The built-in plugins are registered through exactly the
same entry-point mechanism as third-party ones.

Every ``register_*`` hook returns a list of *component classes* (``return []``
for none). Each hook's docstring says what a component of its kind must do and
what the core checks; :data:`anytime_bench.contract.interfaces.CONTRACT` (the
method tables of ``plugins/README.md``) gives the exact call of every member,
its shapes and the default of an optional one. Every component class carries:

* ``name`` (``ClassVar[str]``): the name users type (``--encoders ovqvae``);
  unique per kind across all installed plugins; 1-64 lower-case letters,
  digits, ``.``, ``_`` or ``-``, starting with a letter or digit, since it
  appears in file names.
* ``Config`` (``ClassVar[type]``): a dataclass of its options (below), an
  instance of which the constructor receives.
* a docstring whose first paragraph (its summary) ``anytime-bench plugins`` shows.

**Options.** Every field of ``Config`` has a default, and a ``float`` default
is finite. When plugins load, the core builds ``Config`` with its defaults,
reads each back as a config value is read and calls ``validate()``: a
``Config`` that fails, or raises anything but :class:`anytime_bench.ConfigError`,
is refused. A run's ``[<kind>.<name>]`` table is validated against it: an
unknown key or a value of the wrong type is refused (option types: ``bool``,
64-bit ``int``, finite ``float``, ``str``, ``Literal``, lists and tuples of
these, unions such as ``str | None``, nested dataclasses), then ``validate()``
checks ranges with :func:`anytime_bench.require`.
A ``require(ok, "option", ...)`` raised by the constructor is named as
``validate()``'s are (``encoder.NAME.option: ...``). A string literal under a
field documents it: ``anytime-bench plugins NAME`` shows it.

**Renamed and removed options.** ``Config.RENAMED`` (``{"old": "new"}``) and
``Config.REMOVED`` (``{"old": value}``) are plain class attributes, without a
type annotation (an annotated one would be an option). When plugins load, a
``RENAMED`` key must not be an option and its value must be one; a
``REMOVED`` key must be neither an option nor renamed. A config that gives an
old name is refused with a line naming the new option, or the value at which
the component now runs. A run folder that recorded a renamed option, or a
removed one at its ``REMOVED`` value, reopens and resumes under the spelling
it recorded (so its digests stay what they were); one that recorded a removed
option at another value, in a model entry's own options, or an option dropped
without a ``REMOVED`` entry cannot be reproduced: ``sample``, ``evaluate`` and
``bench`` set its models aside, and ``run`` refuses to resume it.

**Flags.** A field whose ``metadata`` has ``"flag": "--some-flag"`` (``--``
and a name of letters, digits, ``-`` and ``_`` starting with a letter or
digit; another form is refused when plugins load) can be given on the command
line: ``run``, ``train`` and ``config`` take every such flag and set the
option, over the config file and ``--set``, on every selected component that
declares it (a flag that no selected component declares is a
``ConfigError``). The flag
reads its value as the option's type: ``int``, ``float``, ``bool``, a
``Literal``'s values, else text (a flag on a list, tuple, dict or dataclass
option, which no one value sets, is refused when plugins load). A component whose flag is one of the core's
own (``--out``, ``--seed``...) is quarantined. Components may share a flag for
options of one type, which it then sets on each; for options of different
types, a built-in keeps the flag (among other plugins, the first component in
kind-then-name order) and the other component is quarantined. A field that
says where something is on this machine (a weights file) also has
``"local": True``: it is never read back from a run folder, and ``sample``,
``evaluate`` and ``bench`` take its flag (which it must have: a local option
without one is refused when plugins load) to give it again.

**Errors.** Bad input is an :class:`anytime_bench.AnytimeBenchError`:
``ConfigError`` (an option), ``DataError`` (a missing or malformed file or
resource, named), ``CheckpointError``; the core prints its one line and exits
with code 2. Any other exception from a component, and anything it returns
that fails the core's checks, is a failure of the plugin: one line naming the
component, its plugin and distribution, and the stage (exit code 1).

A class that breaks its kind's contract is quarantined when plugins load
(listed by ``anytime-bench plugins``, refused when selected), as is a whole
plugin whose import or hook fails, or whose hook returns something other than
a list, ``None`` included (:mod:`anytime_bench.contract.plugin_manager`).
:mod:`anytime_bench.testing`, the conformance kit, checks behaviour (each hook
says what it runs).
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "anytime_bench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_datasets() -> list[type]:
    """Contribute dataset classes (:class:`anytime_bench.contract.interfaces.Dataset`).

    Each class is constructed as ``cls(config, data_root)``: ``data_root`` is a
    :class:`pathlib.Path` (``--data-root``, ``run.data_root``) or ``None``. With
    ``uses_cache_dir = True`` it also receives ``cache_dir=``
    (``<cache-dir>/datasets``), for data built or converted once.

    ``load()`` returns a :class:`anytime_bench.contract.interfaces.DataSplits`.
    A file that is missing or malformed, or a data root that is needed but not
    given, raises :class:`anytime_bench.DataError` naming it. Each command and
    each process loads the data again, so a load is deterministic: the same
    config and files give the same tensors.

    The core checks the splits and refuses them with a ``DataError`` naming
    the dataset:

    * ``train``, ``test`` and the optional ``validation``: non-empty float
      tensors ``[N, *data_shape]`` of one item shape, finite, within ``[-1, 1]``
      (up to a rounding slack of 1e-4);
    * ``modality``: the name of a registered modality;
    * ``sample_rate`` (time series: samples per second along the last axis): a
      positive ``int``, or ``None``;
    * labels for every split or for none: ``train_labels``, ``test_labels`` and,
      with a ``validation`` split, ``validation_labels``, each int64 ``[N]`` in
      ``0..num_classes-1`` with ``num_classes`` an ``int`` >= 1;
      ``validation_labels`` without ``validation`` is refused.

    ``validation`` holds items that neither training nor the test metrics
    read: the real data of ``run.reference_split = "validation"``, which is
    refused (``DataError``) for a dataset without it. ``info`` holds free-form
    facts about the data (its source, class names) that metrics may read
    (``asr`` reads ``vocabulary``): a dict with string keys, checked with the
    splits.

    Optional class attributes (their types are checked when plugins load):

    * ``uses_cache_dir`` (``bool``, default False): as above;
    * ``defaults`` (``dict``, default ``{}``): a partial config of config
      tables (``{"run": {...}, "encoder": {"<name>": {...}}}``), merged
      beneath the user's file and options, so that ``--dataset <name>`` alone
      picks fitting encoders, metrics and budgets (an audio dataset picks
      audio models, say). When a config is read, a ``run`` table that
      ``[run]`` would refuse, or a table of another form, is a ``ConfigError``
      naming the dataset.

    The conformance kit checks the contract, the splits as above, and that two
    loads give equal ``train`` and ``test`` tensors.
    """


@hookspec
def register_encoders() -> list[type]:
    """Contribute encoder (tokenizer/autoencoder) classes, ordered or not (:class:`anytime_bench.contract.interfaces.Encoder`).

    Each class is constructed as ``cls(config, data_shape)``, ``data_shape``
    the tuple of one item's shape (``(C, H, W)`` for images, ``(1, T)`` for
    audio), then placed with ``to(device)`` if it has one (without ``to`` it is
    given CPU tensors only). Once built it has ``code_length`` (D, an ``int`` >=
    1) and ``codebook_size`` (K, an ``int`` >= 2), attributes or properties,
    checked then. The class attribute ``ordered`` (``bool``, required) says
    whether training puts the most important codes first; reports mark the
    others as unordered baselines.

    * ``fit(data, ctx)`` trains on the training split (float, on the CPU) and
      returns statistics to record (a dict with string keys, JSON-serialisable)
      or None. Call :func:`anytime_bench.check_finite` ``(loss, stage, step)``
      before applying each step: on a NaN or infinite loss it raises
      :class:`anytime_bench.NonFiniteLossError`, and the core saves the last
      good weights beside the checkpoints, names the file and stops (exit 1).
      A fit is deterministic given its seed: the core seeds the global random
      state before it, and ``ctx.generator(offset)`` derives from ``ctx.seed``.
    * ``encode(x)``: a batch ``[B, *data_shape]`` on the encoder's device to
      int64 codes ``[B, D]`` in ``[0, K)``; the core refuses non-integer
      (floating, complex, boolean) codes, another shape and a code out of
      range. Deterministic: the same input gives the same codes. Called under
      ``torch.no_grad``, in batches of at most 512.
    * ``decode(codes)``: any prefix ``[B, k]``, ``1 <= k <= D``, to floats
      ``[B, *data_shape]``, finite and in ``[-1, 1]`` (checked on every call),
      the missing tail filled the way training defined (zeros, a learned
      vector, the mean): this is what makes anytime sampling possible.
    * ``encode`` and ``decode`` also work untrained: ``run``'s preflight encodes
      two real items and decodes them before any training.
    * ``state_dict()`` holds tensors and plain values only: checkpoints are
      written with ``torch.save`` and read with ``torch.load(weights_only=True)``
      (checked before training, where the untrained state exists, and before
      every checkpoint). A checkpoint holding NaN is refused as corrupt;
      infinities are allowed (a mask buffer), but not in a learned parameter of
      a ``torch.nn.Module``.
    * ``load_state_dict(state)`` restores it: afterwards ``encode`` and
      ``decode`` behave exactly as before it was saved. It takes its own
      ``state_dict()`` without raising or warning, and raises (or warns) on a
      state that does not fit; the core reports a checkpoint that makes it
      raise or warn, or that holds a tensor of another kind (boolean, integer,
      floating-point, complex) than its own ``state_dict()`` under the same
      key, as not fitting (:class:`anytime_bench.CheckpointError`, exit 2).

    Optional:

    * ``per_budget = True``: a per-budget oracle. The instance built as above
      gives the full D; the core also builds one member per budget as
      ``cls(config, data_shape, tokens=k)``, whose ``code_length`` must be the
      ``k`` codes the budget allows, trains each with its own prior and samples
      it at its full length; reports show the members as one model.
      ``covered_budgets(budgets)``, called on the instance built without
      ``tokens``, returns a non-empty subset of the run's budgets to train a
      member for (default: all of them).
    * ``code_vectors()``: finite floats ``[D, K, E]``, the latent vector of code
      ``k`` at position ``d``, a prefix's latent being the sum of its codes'
      vectors; handed to the prior (``use_code_vectors``). Called on the
      untrained encoder at the preflight too, and the same after a state round
      trip.

    The conformance kit checks the contract, a fit (JSON statistics), codes of
    the right shape and dtype, the same twice, every prefix decoded finite and
    in ``[-1, 1]``, a round trip through a real checkpoint giving the same
    codes, decoded data and code vectors, two fits under one seed giving the
    same codes, and a per-budget member.
    """


@hookspec
def register_priors() -> list[type]:
    """Contribute autoregressive prior classes over code sequences (:class:`anytime_bench.contract.interfaces.Prior`).

    Each class is constructed as ``cls(config, vocab_size, seq_len)`` (the K and
    D of the encoder whose codes it models), placed with ``to(device)`` if it
    has one, then given ``use_code_vectors(vectors)`` if it has that: once,
    before ``fit``, ``load_state_dict`` or ``stream``, with the encoder's
    ``code_vectors()`` (float ``[seq_len, vocab_size, E]`` on the CPU), or
    ``None`` when the encoder has none. A prior whose options need vectors
    raises :class:`anytime_bench.ConfigError` on ``None`` (exit 2, before any
    training); one that reads them keeps them in its ``state_dict``.

    * ``fit(train_codes, ctx)`` trains on int64 codes ``[N, D]`` of the training
      split, on the CPU (hold out what early stopping needs from them, never
      the test set); statistics, :func:`anytime_bench.check_finite` and
      determinism under the seed as for encoders.
    * ``stream(n, length, *, generator, temperature, top_k)`` yields ``length``
      tensors, one per position: the int64 ``[n]`` codes, in
      ``[0, vocab_size)``, drawn at that position for the ``n`` sequences, on
      any device (the core moves them to the CPU and refuses non-integer
      codes, another shape or a code out of range). One incremental step per
      token, so that stopping after ``k`` tokens costs ``k`` steps; the caller
      stops by no longer iterating (it closes the generator), so nothing may
      depend on the iteration finishing. ``1 <= length <= seq_len``. ``generator`` is a
      seeded CPU :class:`torch.Generator`: the same seed draws the same codes,
      and the codes of a prefix do not depend on ``length``. ``temperature`` >
      0; ``top_k`` a positive ``int``, or ``None`` for the full distribution.
      It works untrained: the preflight streams two sequences before training.
    * ``sample(...)`` (optional; same arguments): int64 ``[n, length]`` in
      ``[0, vocab_size)`` (checked as ``stream``'s), equal to the stacked
      ``stream``; the default is that stacking.
    * ``log_prob(codes)`` (optional): for int64 codes ``[B, L]`` on the prior's
      device, floats ``[B, L]``: the natural log of each code's probability
      given the codes before it, in the distribution ``stream`` draws from at
      temperature 1 without top-k or top-p. Position ``i`` depends on codes
      ``0..i`` only, and the probabilities at a position add up to 1. The core
      refuses another shape, integers, NaN, infinities and values above 0 (by
      more than 1e-4 of rounding, which it clamps). Metrics that require
      ``"likelihood"`` (``nll``) need it: a run that asks for one with a prior
      without it is refused before any training.
    * ``state_dict`` and ``load_state_dict``: as for encoders.

    Optional class attributes, checked when plugins load:

    * ``kv_cache = True``: ``stream`` keeps a key/value cache and also accepts
      ``use_cache=False``, which re-runs the whole prefix at every step and
      draws exactly the same codes; ``bench`` times both.
    * ``sampling_options``: the settings a config may set for the prior, out of
      ``"temperature"``, ``"top_k"`` and ``"top_p"`` (default
      ``("temperature", "top_k")``, which every ``stream`` takes). Declaring
      ``"top_p"`` promises that ``stream`` and ``sample`` accept a ``top_p``
      keyword in (0, 1): keep, at each position, the fewest most likely codes
      whose probabilities add up to at least ``top_p``; the core passes it only
      below 1. A config that sets an undeclared setting away from its default
      is refused when it is read.

    :func:`anytime_bench.draw_codes` applies these settings to next-code
    logits. The conformance kit checks the contract, streams of every length,
    stopping after any prefix, prefixes independent of the length, ``sample``
    equal to the stream, the same codes with and without the cache and under
    one seed, ``top_p`` near 0 keeping the most likely code, ``log_prob``
    (causal, normalised, and matching what ``stream`` draws), a state round
    trip into a prior given other code vectors drawing the same codes, and two
    fits under one seed drawing the same codes.
    """


@hookspec
def register_metrics() -> list[type]:
    """Contribute metric classes scored at one budget (:class:`anytime_bench.contract.interfaces.Metric`).

    Each class is constructed as ``cls(config)``, once per run. Its class
    attributes ``requires`` and ``higher_is_better`` (``bool``: orients plots,
    verdicts and anytime scores) are required. ``requires`` names what
    ``compute`` scores as ``inputs.candidate``:

    * ``"generated"``: samples of the prior decoded from their first ``k``
      codes, against the run's reference split (``run.reference_split``);
    * ``"reconstructed"``: the test split encoded and decoded from its first
      ``k`` codes, against the test split, item by item;
    * ``"likelihood"``: the prior's log-probabilities of the test split's first
      ``k`` codes, float ``[N, k]`` (every model's prior needs ``log_prob``;
      ``floor`` is not called).

    Data candidates are float ``[N, *data_shape]`` in ``[-1, 1]`` as the samples
    archive stores them, quantized by the modality (8-bit images, 16-bit
    audio) and read back; ``inputs.reference`` is the real split as loaded.
    ``inputs`` also holds ``dataset``, ``reference_split``, ``splits`` and
    ``seed`` (:class:`anytime_bench.contract.interfaces.MetricInputs`).

    ``compute(inputs, ctx)`` returns a number (``float``, ``int``, a numpy
    number or a one-element tensor, not a ``bool``), recorded as metric
    ``<name>``, or a dict of them recorded as ``<name>_<key>``, whose keys
    have a component name's form (1-64 lower-case letters, digits, ``.``,
    ``_`` or ``-``). Anything else, and a finite
    value beyond ``MAX_MAGNITUDE`` (1e150, :mod:`anytime_bench.store.tables`)
    in size, is refused; NaN and infinities are recorded as they are,
    shown as ``-`` and left out of every statistic (the conformance kit fails
    a metric that gives one). The evaluation seeds the global random state
    before each call, and the result is deterministic given it. A ``"generated"``
    metric is computed for each sampling seed; the others once per model,
    budget and training seed, their value recorded for every sampling seed.
    The preflight also scores real test items, as stored, before any training.
    Raise :class:`anytime_bench.DataError` when the data cannot be scored
    (wrong modality, no labels).

    ``provenance()``, read after each ``compute``, returns a dict that
    ``json.dumps`` takes without NaN or infinities and that holds
    ``implementation`` (refused without it), with the other
    :data:`anytime_bench.contract.interfaces.PROVENANCE_KEYS` that apply:
    ``report`` ranks runs' numbers together only where ``feature_space``,
    ``reference_set`` and ``samples`` agree. Other keys are recorded, not read.

    Optional:

    * ``preflight(inputs, ctx)``: called once before any training, with a few
      test items as loaded (log-probabilities, for ``"likelihood"``) as
      ``candidate``; raise ``DataError`` when a resource is missing
      (feature-extractor weights, labels), so that the run stops in seconds
      rather than after training.
    * ``floor(inputs, ctx, n, splits)``: what real data scores (the
      real-versus-real floor of a ``"generated"`` metric, the real test items'
      own score for a ``"reconstructed"`` one; how ``n`` and the splits are
      drawn is in ``CONTRACT``): a list of ``splits`` numbers, or a dict of such
      lists with the keys of ``compute``'s dict, each at most ``MAX_MAGNITUDE``
      in size. ``floor = None`` gives up an inherited one.

    The conformance kit checks the contract, that real data scores better
    than noise (for ``"likelihood"``: a prior sure of the right codes against
    one that knows nothing), both finite, a JSON ``provenance()`` whose
    ``implementation`` is a string, the same score twice, and a floor with
    ``compute``'s keys, better than noise and the same twice.
    """


@hookspec
def register_modalities() -> list[type]:
    """Contribute modality classes: how one kind of data is stored, shown and exported
    (:class:`anytime_bench.contract.interfaces.Modality`).

    Each class is constructed as ``cls(config)``. A dataset names its modality
    in ``DataSplits.modality``, so a new kind of data needs a modality plugin,
    not a change to the core.

    * ``to_stored(x)``: float data ``[N, *data_shape]`` to the compact numpy
      array (not of dtype ``object``) of the same shape kept in samples
      archives, shown and scored (8-bit images, 16-bit PCM audio); it clips
      values outside ``[-1, 1]`` itself.
    * ``from_stored(a)``: the inverse, float32 ``[N, *data_shape]`` in
      ``[-1, 1]``, of the array's shape. For an array this modality never
      stores (wrong dtype or rank) it raises ``ValueError``: the core then
      names the file as not holding this modality's data (``DataError``, exit 2).
    * ``preview(ax, stored, splits_info)``: draws a few stored items into one
      matplotlib ``Axes``, a cell of the sample grid; ``splits_info`` is a dict
      of ``modality``, ``data_shape`` (a list) and ``sample_rate``.
    * ``export(item, splits_info)`` (optional): one stored item as a file a
      person can open, as ``(suffix, mime, bytes)``: a suffix of a dot and 1-8
      letters or digits (``".wav"``), a MIME type (``"audio/wav"``) and the
      file's non-empty content; or None. The core writes a few per model and
      budget, and of the real test items, under ``<modality>/<model>/`` of the
      run folder, and reports show them.
    * ``preview_size`` (optional class attribute, default ``(1.3, 1.4)``):
      width and height in inches of one cell of the sample grid, a tuple of
      two positive finite numbers (checked when plugins load).

    The conformance kit checks the contract, storing and reading back within
    one quantization step (8- or 16-bit), storing twice changing nothing, an
    object array refused, and ``preview`` and ``export``.
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
