"""``anytime-bench choose``: the sampling of each model chosen on the validation split, by the rule it states."""

from __future__ import annotations

import json

import pandas as pd
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from anytime_bench.analysis.selection import choose, entry_toml
from anytime_bench.errors import ConfigError


def frame(values: dict[tuple[str, float], list[float]], **entry) -> pd.DataFrame:
    """metrics.csv rows: for each (model, top_p) one value per budget (0.5 and 1), training seeds 0 and 1."""
    rows = []
    for (model, top_p), per_seed_budget in values.items():
        for i, value in enumerate(per_seed_budget):
            rows.append(dict(model=model, encoder=entry.get("encoder", "rvq"), prior="transformer",
                             prior_options=entry.get("prior_options", ""), temperature=1, top_k=0, top_p=top_p,
                             train_seed=i // 2, sample_seed=0, budget=(0.5, 1.0)[i % 2], metric="fid", value=value))
    return pd.DataFrame(rows)


def test_the_best_average_over_budgets_and_seeds_is_chosen_per_family():
    data = pd.concat([
        frame({("rvq", 1.0): [1.0, 3.0, 1.0, 3.0], ("rvq-p9", 0.9): [1.5, 2.0, 1.5, 2.0]}),  # 2.0 against 1.75
        frame({("other", 1.0): [1.0, 1.0, 1.0, 1.0], ("other-p9", 0.9): [2.0, 2.0, 2.0, 2.0]}, encoder="ovqvae"),
    ])
    found = {c.model: c for c in choose(data, "fid", False, "validation", "generated")}
    assert {m for m, c in found.items() if c.chosen} == {"rvq-p9", "other"}
    assert found["rvq"].score == 2.0 and found["rvq-p9"].score == 1.75
    assert found["rvq-p9"].per_budget == {0.5: 1.5, 1.0: 2.0}
    higher = {c.model for c in choose(data, "fid", True, "validation", "generated") if c.chosen}
    assert higher == {"rvq", "other-p9"}


def test_a_run_scored_on_its_reported_reference_is_refused():
    data = frame({("rvq", 1.0): [1, 1, 1, 1], ("rvq-p9", 0.9): [2, 2, 2, 2]})
    for split in ("train", "test"):
        with pytest.raises(ConfigError, match=f"scored against the {split} split, not the validation split: choosing "
                                              "on it would tune on the results"):
            choose(data, "fid", False, split, "generated")
    with pytest.raises(ConfigError, match="fid scores reconstructed, not generated samples"):
        choose(data, "fid", False, "validation", "reconstructed")
    with pytest.raises(ConfigError, match="no such measurement"):
        choose(data, "kid", False, "validation", "generated")


def test_candidates_scored_at_other_budgets_do_not_compare():
    data = frame({("rvq", 1.0): [1, 1, 1, 1], ("rvq-p9", 0.9): [2, 2, 2, 2]})
    data = data[~((data.model == "rvq-p9") & (data.budget == 0.5))]
    with pytest.raises(ConfigError, match="not scored at the same budgets and training seeds"):
        choose(data, "fid", False, "validation", "generated")


def test_the_chosen_entry_is_a_config_entry():
    data = frame({("rvq-small-p95", 0.95): [1, 1, 1, 1]}, prior_options=json.dumps({"n_layer": 1, "dropout": 0.1}))
    (chosen,) = choose(data, "fid", False, "validation", "generated")
    entry = tomllib.loads(entry_toml(chosen))["model"][0]
    assert entry == {"encoder": "rvq", "prior": "transformer", "prior_options": {"n_layer": 1, "dropout": 0.1},
                     "temperature": 1.0, "top_k": 0, "top_p": 0.95}
