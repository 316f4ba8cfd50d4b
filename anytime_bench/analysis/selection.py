"""Choosing how each model is sampled, from a run that scored its candidates on held-out data.

The rule of ``anytime-bench choose``: models that share an encoder, a prior and the prior's options are one family,
and its candidates differ in their sampling settings only. Each candidate's score is its metric averaged over the
run's budgets (each budget's value first averaged over training seeds, each seed's over its sampling seeds), so
one setting serves every budget: settings that changed with the budget would not be anytime. A run whose
generated samples were scored against the reported reference, not the validation split, is refused: choosing on
it would tune on the results.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from anytime_bench.errors import ConfigError
from anytime_bench.store.rundir import ENTRY_COLUMNS
from anytime_bench.store.tables import json_cell

FAMILY = ("encoder", "encoder_options", "prior", "prior_options")
"""What the candidates of one choice share: the columns of a model entry that decide its weights."""
SETTINGS = tuple(c for c in ENTRY_COLUMNS if c not in FAMILY)
"""What the candidates differ in: how the prior is sampled."""
HELD_OUT = "validation"
"""The reference split a run must have scored its samples against."""


@dataclass
class Candidate:
    model: str
    encoder: str
    prior: str
    prior_options: dict[str, Any]
    settings: dict[str, Any]
    score: float
    per_budget: dict[float, float]
    chosen: bool = False
    rivals: int = 0
    """How many other candidates of its family it was compared with."""
    encoder_options: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _options(model: str, text: Any, column: str) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        return {}
    options = json_cell(text)
    try:
        if isinstance(options, dict):
            _value(options)  # what TOML cannot hold (a null) could not be written back as a config entry
    except (ValueError, TypeError):
        options = None
    if not isinstance(options, dict):
        raise ConfigError(f"model {model[:60]!r}: its {column} {text[:60]!r} are not a table of TOML values")
    return options


def _candidate(model: str, part: pd.DataFrame, cells: pd.Series) -> Candidate:
    columns = [c for c in ENTRY_COLUMNS if c in part.columns]
    differing = [c for c in columns if part[c].astype(str).nunique() > 1]
    if differing:
        raise ConfigError(f"model {model[:60]!r}: its rows disagree on {differing[0]}, so what was scored is unclear")
    first = part.iloc[0]
    encoder, prior = str(first.get("encoder", "")), str(first.get("prior", ""))
    if not encoder.strip() or not prior.strip():
        raise ConfigError(f"model {model[:60]!r}: its rows name no {'encoder' if not encoder.strip() else 'prior'}")
    settings = {c: _plain(first[c]) for c in SETTINGS if c in part.columns}
    for key, value in settings.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ConfigError(f"model {model[:60]!r}: its {key} {str(value)[:40]!r} is not a number")
    if "top_k" in settings:
        if settings["top_k"] != int(settings["top_k"]) or settings["top_k"] < 0:
            raise ConfigError(f"model {model[:60]!r}: its top_k {settings['top_k']!r} is not a count")
        settings["top_k"] = int(settings["top_k"])
    per_budget = {float(b): float(v) for b, v in cells[model].items()}
    return Candidate(model, encoder, prior, _options(model, first.get("prior_options", ""), "prior_options"), settings,
                     sum(per_budget.values()) / len(per_budget), per_budget,
                     encoder_options=_options(model, first.get("encoder_options", ""), "encoder_options"))


def choose(frame: pd.DataFrame, metric: str, higher_is_better: bool, reference_split: str,
           requires: str) -> list[Candidate]:
    """Every candidate of every family of ``frame`` (a run's ``metrics.csv``) scored on ``metric``, the best of
    each family marked ``chosen`` (the first in the table's order on a tie). ``reference_split`` is the split the
    run scored ``metric`` against and ``requires`` what the metric reads, as the run recorded them: only generated
    samples scored against held-out data may choose."""
    rows = frame[frame.metric == metric]
    if rows.empty:
        raise ConfigError(f"--metric {metric[:40]!r}: the run has no such measurement (it has {_known(frame)})")
    if requires != "generated":
        raise ConfigError(f"{metric} scores {requires or 'what the record does not say'}, not generated samples: "
                          f"it cannot tell sampling settings apart")
    if reference_split != HELD_OUT:
        raise ConfigError(f"{metric} was scored against the {reference_split} split, not the {HELD_OUT} split: "
                          f"choosing on it would tune on the results (score the candidates with "
                          f"run.reference_split = \"{HELD_OUT}\")")
    values = pd.to_numeric(rows.value, errors="coerce").astype(float)
    bad = rows[~values.apply(math.isfinite)]
    if len(bad):
        row = bad.iloc[0]
        raise ConfigError(f"{metric} of {str(row.model)[:60]!r} at budget {row.budget}, training seed {row.train_seed} "
                          f"is {str(row.value)[:20]}: an average over it would not compare")
    repeated = rows[rows.duplicated(["model", "train_seed", "sample_seed", "budget"], keep=False)]
    if len(repeated):
        row = repeated.iloc[0]
        raise ConfigError(f"{metric} of {str(row.model)[:60]!r} at budget {row.budget}, training seed "
                          f"{row.train_seed}, sampling seed {row.sample_seed} appears {len(repeated)} times")
    cells = (rows.assign(value=values).groupby(["model", "train_seed", "budget"], sort=False)["value"].mean()
             .groupby(["model", "budget"], sort=False).mean())
    out = [_candidate(str(model), part, cells) for model, part in rows.groupby("model", sort=False)]
    families: dict[str, list[Candidate]] = {}
    for candidate in out:
        key = json.dumps([candidate.encoder, candidate.encoder_options, candidate.prior, candidate.prior_options],
                         sort_keys=True, default=str)
        families.setdefault(key, []).append(candidate)
    for members in families.values():
        # every candidate, at every budget, over the same training and sampling seeds: else averages would differ
        # in what they average, not only in how the candidates sample
        cover = {frozenset(map(tuple, rows[rows.model == c.model][["budget", "train_seed", "sample_seed"]]
                                .astype(str).values.tolist())) for c in members}
        per_budget = [rows[rows.model == c.model].groupby("budget")["train_seed"].apply(
            lambda seeds: tuple(sorted(map(str, seeds.unique())))).nunique() for c in members]
        if len(cover) > 1 or any(n > 1 for n in per_budget):
            raise ConfigError(f"the candidates {', '.join(c.model for c in members)[:120]} were not scored at the "
                              f"same budgets and training seeds: their averages would not compare")
        best = (max if higher_is_better else min)(members, key=lambda c: c.score)
        best.chosen = True
        for member in members:
            member.rivals = len(members) - 1
    return out


def _known(frame: pd.DataFrame) -> str:
    return ", ".join(sorted(map(str, frame.metric.unique())))[:200] or "none"


@dataclass
class Choice:
    """What :func:`choose_sampling` found: the metric it chose by and every candidate, the chosen ones marked."""

    metric: str
    higher_is_better: bool
    candidates: list[Candidate]

    @property
    def chosen(self) -> list[Candidate]:
        return [c for c in self.candidates if c.chosen]


def choose_sampling(run_dir: Path | str, metric: str | None = None) -> Choice:
    """The sampling of each model family of a run folder that scored its candidates on the validation split, by
    :func:`choose`'s rule, on ``metric`` (default: the run's headline metric). The folder is read as untrusted, as
    ``anytime-bench choose`` reads it; what it lacks or what refuses the choice raises :class:`ConfigError`."""
    from anytime_bench.analysis.report import headline_of, recorded_directions, unreadable
    from anytime_bench.analysis.report.gather import load_run

    path = Path(run_dir)
    if metric is not None and not metric.strip():
        raise ConfigError("--metric: expected a metric name, got ''")
    reason = unreadable(path)
    if reason:
        raise ConfigError(reason)
    run = load_run(path)
    if run.metrics is None or not run.state:
        raise ConfigError(f"{path}: lacks {'; '.join(run.missing)[:300] or 'a readable record'}")
    name = metric or headline_of(path)
    if not name:
        raise ConfigError(f"{path}: its record names no headline metric: pass --metric")
    if name not in set(run.metrics.metric):
        raise ConfigError(f"--metric {name[:40]!r}: the run has no such measurement (it has {_known(run.metrics)})")
    directions = recorded_directions([path])
    splits, requires = (run.state.get(key) or {} for key in ("metric_references", "metric_requires"))
    if name not in splits and requires.get(name) == "reconstructed":
        # recorded before the split was recorded per metric: reconstructions are scored against the test split, so
        # the choice is refused now, not after recording what refuses it
        splits = {**splits, name: "test"}
    missing = (f"which way is better for {name[:40]!r}" if name not in directions else
               f"which real data {name[:40]!r} was scored against" if name not in splits else "")
    if missing:
        raise ConfigError(f"{path}: its record does not say {missing} (a run evaluated before anytime-bench "
                          f"recorded it): `anytime-bench evaluate {path} --floors-only` records it without scoring "
                          f"anything again (choosing needs generated samples scored against the {HELD_OUT} split, "
                          f"run.reference_split = \"{HELD_OUT}\")")
    return Choice(name, directions[name], choose(run.metrics, name, directions[name], splits[name],
                                                 requires.get(name, "")))


def entry_toml(candidate: Candidate) -> str:
    """A ``[[model]]`` table with the candidate's encoder, its options, prior, prior options and sampling settings."""
    entry: dict[str, Any] = {"encoder": candidate.encoder}
    if candidate.encoder_options:
        entry["encoder_options"] = candidate.encoder_options
    entry["prior"] = candidate.prior
    if candidate.prior_options:
        entry["prior_options"] = candidate.prior_options
    for key, value in candidate.settings.items():
        entry[key] = value if key == "top_k" else float(value)
    return "\n".join(["[[model]]", *(f"{_key(k)} = {_value(v)}" for k, v in entry.items())])


def _key(key: str) -> str:
    return key if key.replace("_", "a").replace("-", "a").isalnum() and key.isascii() else json.dumps(key)


def _value(value: Any) -> str:
    import tomli_w

    if isinstance(value, dict):  # inline, so that it stays inside its [[model]] table
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + " }"
    return tomli_w.dumps({"v": value})[len("v = "):].strip()
