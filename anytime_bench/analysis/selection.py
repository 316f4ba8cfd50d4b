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
from dataclasses import dataclass
from typing import Any

import pandas as pd

from anytime_bench.errors import ConfigError
from anytime_bench.store.rundir import ENTRY_COLUMNS

FAMILY = ("encoder", "prior", "prior_options")
"""What the candidates of one choice share: the columns of a model entry that decide its weights."""
SETTINGS = tuple(c for c in ENTRY_COLUMNS if c not in FAMILY)
"""What the candidates differ in: how the prior is sampled."""
FLOAT_SETTINGS = ("temperature", "top_p")
"""Settings that a CSV reads back as integers when every value is whole."""
HELD_OUT = "validation"
"""The reference split a run must have scored its samples against."""


@dataclass
class Candidate:
    model: str
    family: dict[str, Any]
    settings: dict[str, Any]
    score: float
    per_budget: dict[float, float]
    chosen: bool = False


def choose(frame: pd.DataFrame, metric: str, higher_is_better: bool, reference_split: str,
           requires: str) -> list[Candidate]:
    """Every candidate of every family of ``frame`` (a run's ``metrics.csv``) scored on ``metric``, the best of
    each family marked ``chosen`` (the first in the table's order on a tie). ``reference_split`` is the run's
    (``run.reference_split``) and ``requires`` what the metric reads, as the run recorded them: only samples scored
    against held-out data may choose."""
    rows = frame[frame.metric == metric]
    if rows.empty:
        known = ", ".join(sorted(frame.metric.unique()))[:200]
        raise ConfigError(f"--metric {metric[:40]!r}: the run has no such measurement (it has {known})")
    if requires != "generated":
        raise ConfigError(f"{metric} scores {requires or 'what the record does not say'}, not generated samples: "
                          f"it cannot tell sampling settings apart")
    if reference_split != HELD_OUT:
        raise ConfigError(f"{metric} was scored against the {reference_split} split, not the {HELD_OUT} split: "
                          f"choosing on it would tune on the results (score the candidates with "
                          f"run.reference_split = \"{HELD_OUT}\")")
    family_columns = [c for c in FAMILY if c in rows.columns]
    setting_columns = [c for c in SETTINGS if c in rows.columns]
    cells = (rows.groupby(["model", "train_seed", "budget"], sort=False)["value"].mean()
             .groupby(["model", "budget"], sort=False).mean())
    out: list[Candidate] = []
    for model, first in rows.drop_duplicates("model").set_index("model").iterrows():
        per_budget = {float(b): float(v) for b, v in cells[model].items()}
        out.append(Candidate(str(model), {c: first[c] for c in family_columns},
                             {c: first[c] for c in setting_columns},
                             sum(per_budget.values()) / len(per_budget), per_budget))
    families: dict[tuple, list[Candidate]] = {}
    for candidate in out:
        families.setdefault(tuple(str(v) for v in candidate.family.values()), []).append(candidate)
    for members in families.values():
        budgets = {tuple(sorted(c.per_budget)) for c in members}
        seeds = {tuple(sorted(rows[rows.model == c.model].train_seed.unique())) for c in members}
        if len(budgets) > 1 or len(seeds) > 1:
            raise ConfigError(f"the candidates {', '.join(c.model for c in members)[:120]} were not scored at the "
                              f"same budgets and training seeds: their averages would not compare")
        best = (max if higher_is_better else min)(members, key=lambda c: c.score)
        best.chosen = True
    return out


def entry_toml(candidate: Candidate) -> str:
    """A ``[[model]]`` entry with the candidate's encoder, prior, prior options and sampling settings."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)  # a TOML basic string is a JSON string
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(str(k))} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(float(v)) if isinstance(v, float) else str(v)

    lines = ["[[model]]"]
    for key, v in {**candidate.family, **candidate.settings}.items():
        if key == "prior_options":
            try:
                options = json.loads(v) if isinstance(v, str) and v.strip() else {}
            except ValueError:
                options = {}
            if isinstance(options, dict) and options:
                lines.append(f"prior_options = {value(options)}")
            continue
        if not isinstance(v, str) and pd.isna(v):
            continue
        v = v.item() if hasattr(v, "item") else v
        lines.append(f"{key} = {value(float(v) if key in FLOAT_SETTINGS else v)}")
    return "\n".join(lines)
