"""The ``results/<run-id>/`` and report folder contracts: every file name, in one place.

Later stages, ``bench``, ``report`` and third-party tools rely on these names
and columns; nothing else in the package spells them out. Every path is built
under the folder's root from names that cannot leave it: names that come from
data (a dataset or model name read from a ``metrics.csv``) go through
:func:`safe_name`, and :meth:`Folder.inside` refuses anything that would
resolve outside the root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from anytime_bench.errors import ConfigError
from anytime_bench.files.datafiles import resolves_within

ENTRY_COLUMNS = ["encoder", "encoder_options", "prior", "prior_options", "temperature", "top_k", "top_p"]
"""What a model entry is made of, as columns beside its label (``model``) in ``metrics.csv`` and ``cost.csv``
(``encoder_options``, ``prior_options``: the entry's own options of its encoder and prior as JSON, empty when it
has none; tables written before a column existed read it as empty)."""

METRICS_COLUMNS = ["run_id", "dataset", "model", *ENTRY_COLUMNS, "ordered", "per_budget", "train_seed",
                   "sample_seed", "budget", "tokens", "metric", "source", "value", "provenance"]
"""``metrics.csv``: one row per measurement (tidy)."""

COST_COLUMNS = ["run_id", "model", *ENTRY_COLUMNS, "train_seed", "budget", "tokens", "batch", "cache", "stage", "seconds",
                "seconds_per_sample"]
"""``cost.csv``: one row per timed job (the minimum over rounds)."""

PROVENANCE_KEYS: dict[str, str] = {
    "implementation": "required: what computed the number (a library, or the plugin's own code)",
    "version": "the version of that implementation",
    "feature_space": "an identifier of the feature space (extractor and a hash of its weights); numbers of one metric "
                     "from different feature spaces are not ranked together",
    "reference_set": "an identifier of the real data compared with (dataset, split, size, content hash); numbers "
                     "against different reference sets are not ranked together",
    "samples": "how many candidate items were scored; numbers from different sample counts are not ranked together",
}
"""The keys of ``Metric.provenance()`` (the ``provenance`` column) that the core reads (``report`` uses the last
three to decide which runs can be ranked together). A metric may add any other JSON-serialisable keys; they are
recorded, not interpreted."""

COMPARABILITY_KEYS = ("feature_space", "reference_set", "samples")

RUN_JSON, METRICS_CSV, SUMMARY_MD, COST_CSV = "run.json", "metrics.csv", "summary.md", "cost.csv"
QUALITY_PNG, SAMPLES_PNG, COST_PNG, TIME_PNG = ("quality_vs_budget.png", "samples.png", "cost_vs_budget.png",
                                               "quality_vs_time.png")

#: Keys of a samples archive at ``k`` tokens.
GENERATED, RECONSTRUCTED, CODES, LOG_PROB = "generated", "reconstructed", "codes", "logprob"

MAX_NAME = 100
"""Run ids and other single path components are at most this long (file systems allow 255 bytes)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = MAX_NAME) -> str:
    """A file-name component made from ``text``: letters, digits, '.', '_', '-' only, never '.', '..' or empty."""
    name = _UNSAFE.sub("_", str(text)).strip("._")[:limit]
    return name or "_"


_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def check_run_id(run_id: str) -> str:
    """A user-chosen run id: a plain folder name of at most :data:`MAX_NAME` characters (letters, digits, '.', '_'
    and '-', not starting with '.': never '.', '..' or a hidden folder). ``_x_`` is one; names made from data go
    through :func:`safe_name`, which is stricter."""
    if not run_id or len(run_id) > MAX_NAME or not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f"--run-id {run_id[:MAX_NAME + 20]!r} must be a plain folder name: 1-{MAX_NAME} letters, "
                          "digits, '.', '_' or '-', not starting with '.'")
    return run_id


def archive_key(what: str, k: int) -> str:
    """The array of ``what`` (generated, reconstructed, codes, logprob) at ``k`` tokens in a samples archive."""
    return f"{what}_k{k}"


class Folder:
    """A root folder and the paths under it, refused if they would lead outside."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def inside(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        if not resolves_within(path, self.root):
            raise ConfigError(f"refusing to use {path}: it leads outside {self.root} (a link?), which is not followed")
        return path


@dataclass(frozen=True)
class FileDoc:
    pattern: str
    content: str


#: The results contract, as the README shows it (a test checks the README against this list).
RUN_FILES: list[FileDoc] = [
    FileDoc("metrics.csv", "tidy, one row per measurement: " + ", ".join(f"`{c}`" for c in METRICS_COLUMNS)
            + " (`model` = the model entry's label, with its encoder, prior and sampling settings beside it; "
              "`source` = the metric plugin that measured it (`prc` for `prc_precision`), which decides its "
              "direction and whether it is the headline; `budget` = k/D, `tokens` = k, `per_budget` = a model "
              "trained for each budget, `provenance` = the metric's JSON provenance)"),
    FileDoc("summary.md", "per metric: models x budgets (mean over training seeds with a 95% interval), the "
                          "models' encoders, priors and sampling settings when they differ in more than the encoder, "
                          "paired verdicts of each ordered model against each unordered one and between model "
                          "entries that differ in one thing, the real-versus-real floor of each generated-sample "
                          "metric that has one (and the real test items' own score of a reconstruction metric that "
                          "gives one, `asr`) with each model's distance from it, or why a metric has none, anytime "
                          "scores"),
    FileDoc("quality_vs_budget.png", "one panel per metric, one line per model (mean over training seeds, 95% band)"),
    FileDoc("samples.png", "one row per model, one column per budget, the same samples (the modality's preview)"),
    FileDoc("run.json", "the resolved config and its digest, the data it was trained on (modality, item shape, sample "
                        "rate, numbers of train and test items, which `sample`, `evaluate` and a resumed `run` check "
                        "the data they load against), seeds, package versions and the distribution of each "
                        "component, git commit, device, per-stage wall time (a stage run on some of the models, with "
                        "`--models` or some set aside, records its own beside the whole stage's, as `sample (some "
                        "models)`) and the commit and version that last ran "
                        "each stage, per-model training statistics, metric provenance, floors and why a metric has "
                        "none, status; when the run is resumed, what each earlier pass recorded of itself "
                        "(versions, components, commit, device, stage times, how it ended) under `passes`"),
    FileDoc("checkpoints/<encoder>/train<t>[-k<k>].{encoder,prior[-<prior>]}.pt", "weights of each encoder, and of "
            "each prior trained on its codes, per training seed (`<encoder>`: the encoder's name, or "
            "`<name>/options-<digest>` for an entry whose own `encoder_options` change its encoder; `-k<k>`: the "
            "member of a per-budget model trained with k codes; `-<prior>`: a prior other than `run.prior`, or with an "
            "entry's own options; "
            "`torch.load(weights_only=True)`), with `partial/` mid-stage checkpoints while training"),
    FileDoc("checkpoints/<encoder>/train<t>[-k<k>].{encoder,prior[-<prior>]}.last-good.pt", "the weights before a "
            "non-finite loss stopped that training (failure behaviour)"),
    FileDoc("codes/<encoder>/train<t>[-k<k>].npz", "the training split's codes that the priors were trained on "
            "(`<encoder>` as for checkpoints)"),
    FileDoc("samples/<model>/train<t>-sample<s>.npz", "per model entry (its label): generated samples, test "
            "reconstructions and codes at every "
            "budget: arrays `generated_k<k>` and `reconstructed_k<k>` (uint8 images, int16 audio), `codes_k<k>` (int32), and "
            "`logprob_k<k>` (float32 `[test items, k]`, the prior's log-probabilities of the test codes) when a "
            "metric scores them"),
    FileDoc("samples/<model>/deadline-<d>s-train<t>-sample<s>.npz", "written by `sample --deadline`: arrays `data` (what "
            "sampling reached in d seconds, decoded), `codes` and `tokens` (how many it reached), for the first "
            "training seed"),
    FileDoc("<modality>/<model>/budget<b>-tokens<k>-<i>.<ext>", "a few exported items per model and budget when the "
            "modality exports them (FLAC clips for audio)"),
    FileDoc("<modality>/real-test/<i>.<ext>", "a few real test items to compare them with"),
    FileDoc("cost.csv", "written by `bench`: " + ", ".join(f"`{c}`" for c in COST_COLUMNS)),
    FileDoc("cost_vs_budget.png, quality_vs_time.png", "written by `bench`: seconds per sample against the budget, "
                                                       "and quality against seconds per sample"),
]


class RunPaths(Folder):
    """Where each stage of a run reads and writes, under ``results/<run-id>/``."""

    @property
    def run_id(self) -> str:
        return self.root.name

    run_json = property(lambda self: self.inside(RUN_JSON))
    lock = property(lambda self: self.inside(".lock"))
    metrics_csv = property(lambda self: self.inside(METRICS_CSV))
    summary_md = property(lambda self: self.inside(SUMMARY_MD))
    quality_plot = property(lambda self: self.inside(QUALITY_PNG))
    samples_png = property(lambda self: self.inside(SAMPLES_PNG))
    cost_csv = property(lambda self: self.inside(COST_CSV))
    cost_plot = property(lambda self: self.inside(COST_PNG))
    time_plot = property(lambda self: self.inside(TIME_PNG))

    def checkpoint(self, encoder: str, train_seed: int, kind: str, tokens: int | None = None, slot: str = "") -> Path:
        """Final weights of ``kind`` (encoder or prior) trained on ``encoder``'s codes with ``train_seed``
        (``tokens``: the member of a per-budget model trained with that many codes). ``slot`` tells apart the
        priors of one encoder (:func:`prior_slot`); the run's own prior has none, as before model entries."""
        return self.inside("checkpoints", *encoder_folder(encoder), f"{member(train_seed, tokens)}.{kind}{_slot(slot)}.pt")

    def last_good(self, encoder: str, train_seed: int, kind: str, tokens: int | None = None, slot: str = "") -> Path:
        """The weights before a non-finite loss stopped training."""
        return self.inside("checkpoints", *encoder_folder(encoder),
                           f"{member(train_seed, tokens)}.{kind}{_slot(slot)}.last-good.pt")

    def partial(self, encoder: str, train_seed: int, kind: str, tokens: int | None = None, slot: str = "") -> Path:
        """The folder of mid-stage checkpoints of one training loop (removed when the loop finishes)."""
        *within, name = encoder_folder(encoder)
        return self.inside("checkpoints", "partial", *within,
                           f"{name}-{member(train_seed, tokens)}.{kind}{_slot(slot)}")

    def codes(self, encoder: str, train_seed: int, tokens: int | None = None) -> Path:
        """The training split's codes of trained encoder ``encoder`` (a run's key for it), on which its priors
        train."""
        return self.inside("codes", *encoder_folder(encoder), f"{member(train_seed, tokens)}.npz")

    def samples(self, model: str, train_seed: int, sample_seed: int) -> Path:
        return self.inside("samples", safe_name(model), f"train{train_seed}-sample{sample_seed}.npz")

    def deadline_samples(self, model: str, train_seed: int, sample_seed: int, deadline: float) -> Path:
        return self.inside("samples", safe_name(model), f"deadline-{deadline:g}s-train{train_seed}-"
                                                        f"sample{sample_seed}.npz")

    def export(self, modality: str, model: str, budget: float, k: int, i: int, suffix: str) -> Path:
        return self.exports(modality, model) / f"budget{budget:g}-tokens{k}-{i}{safe_suffix(suffix)}"

    def export_real(self, modality: str, i: int, suffix: str) -> Path:
        return self.exports(modality, REAL_EXPORTS) / f"{i}{safe_suffix(suffix)}"

    def exports(self, modality: str, model: str | None = None) -> Path:
        """The folder of a modality's exported items, or of one model's (``model``, or :data:`REAL_EXPORTS` for
        real test items): names made safe here, whether written or read, since a model's name comes from a table
        that may not be this project's."""
        return self.inside(safe_name(modality), *(() if model is None else (safe_name(model),)))


REAL_EXPORTS = "real-test"
"""The folder, beside the models', of a modality's exported real test items."""


def prior_slot(prior: str, run_prior: str, entry_options_digest: str = "") -> str:
    """Which of an encoder's priors a checkpoint holds: none for the run's prior at its table's options (the name
    every run folder used before model entries), else the prior's name and a digest of an entry's own options."""
    if prior == run_prior and not entry_options_digest:
        return ""
    return prior + (f"-{entry_options_digest}" if entry_options_digest else "")


def encoder_folder(encoder: str) -> tuple[str, ...]:
    """Where a trained encoder's files go, from the run's key for it: its name, and for an entry's own options
    (``rvq+1a2b3c4d``) a folder ``options-1a2b3c4d`` inside its name's. A component name holds no '/', so no
    encoder's folder is another's."""
    name, _, options = encoder.partition("+")
    return (safe_name(name),) + ((f"options-{safe_name(options)}",) if options else ())


def _slot(slot: str) -> str:
    return f"-{safe_name(slot)}" if slot else ""


def member(train_seed: int, tokens: int | None = None) -> str:
    """The name of one trained model: its training seed, and for a per-budget model its token count."""
    return f"train{train_seed}" + ("" if tokens is None else f"-k{tokens}")


def safe_suffix(suffix: str) -> str:
    """A file suffix from a plugin (``.wav``): a dot and up to 8 letters or digits."""
    if not re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix or ""):
        raise ValueError(f"{suffix!r} is not a file suffix like '.wav'")
    return suffix


class ReportPaths(Folder):
    """What ``anytime-bench report`` writes into ``--out``."""

    markdown = property(lambda self: self.inside("report.md"))
    html = property(lambda self: self.inside("report.html"))
    overview = property(lambda self: self.inside("overview.png"))
    """The best entry of each family per dataset (no dataset's figure is named so: theirs hold a '-')."""

    # The metric is in the name: runs of one dataset ranked by different headlines get a figure each.
    def quality_plot(self, dataset: str, metric: str) -> Path:
        return self.inside(f"{safe_name(dataset)}-{safe_name(metric)}-{QUALITY_PNG}")

    def time_plot(self, dataset: str, metric: str) -> Path:
        return self.inside(f"{safe_name(dataset)}-{safe_name(metric)}-{TIME_PNG}")

    def samples_copy(self, run: str) -> Path:
        return self.inside(f"{safe_name(run)}-{SAMPLES_PNG}")

    def holds_report(self) -> bool:
        """Whether the folder holds a report that anytime-bench wrote (its page in either format, by its heading):
        a page of another origin, and the files beside it, are not a report's to replace."""
        for name, mark in (("report.md", b"# anytime-bench report\n"), ("report.html", b"<!DOCTYPE html>")):
            path = self.root / name
            if path.is_file() and not path.is_symlink():
                with open(path, "rb") as page:
                    head = page.read(200)
                if head.startswith(mark) and (name == "report.md" or b"<title>anytime-bench report</title>" in head):
                    return True
        return False

    @staticmethod
    def is_reports(name: str) -> bool:
        """Whether a file of this name is one a report writes (its pages and figures, by the names above)."""
        return name in ("report.md", "report.html", "overview.png") or (
            "-" in name and name.endswith((f"-{QUALITY_PNG}", f"-{TIME_PNG}", f"-{SAMPLES_PNG}")))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(dataset: str) -> str:
    return f"{safe_name(dataset, 60)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
