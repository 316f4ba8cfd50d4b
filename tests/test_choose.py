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

from .conftest import ROOT


def frame(values: dict[tuple[str, float], list[float]], **entry) -> pd.DataFrame:
    """metrics.csv rows: for each (model, top_p) one value per budget (0.5 and 1), training seeds 0 and 1."""
    rows = []
    for (model, top_p), per_seed_budget in values.items():
        for i, value in enumerate(per_seed_budget):
            rows.append(dict(model=model, encoder=entry.get("encoder", "rvq"),
                             encoder_options=entry.get("encoder_options", ""), prior="transformer",
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
    assert found["rvq-p9"].per_budget == {0.5: 1.5, 1.0: 2.0} and found["rvq-p9"].rivals == 1
    higher = {c.model for c in choose(data, "fid", True, "validation", "generated") if c.chosen}
    assert higher == {"rvq", "other-p9"}


def test_variants_of_one_encoder_are_families_of_their_own():
    data = pd.concat([
        frame({("rvq", 1.0): [1, 1, 1, 1], ("rvq-p9", 0.9): [2, 2, 2, 2]}),
        frame({("l1", 1.0): [2, 2, 2, 2], ("l1-p9", 0.9): [1, 1, 1, 1]}, encoder_options='{"recon_loss": "l1"}'),
    ])
    chosen = [c for c in choose(data, "fid", False, "validation", "generated") if c.chosen]
    assert [c.model for c in chosen] == ["rvq", "l1-p9"] and all(c.rivals == 1 for c in chosen)
    entry = tomllib.loads(entry_toml(chosen[1]))["model"][0]
    assert entry["encoder"] == "rvq" and entry["encoder_options"] == {"recon_loss": "l1"} and entry["top_p"] == 0.9
    assert "encoder_options" not in tomllib.loads(entry_toml(chosen[0]))["model"][0]


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


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.assign(value=d.value.where(d.index != 5, float("nan"))),
     r"fid of 'rvq-p9' at budget 1.0, training seed 0 is nan: an average over it would not compare"),
    (lambda d: d.assign(value=d.value.where(d.index != 0, float("inf"))), r"fid of 'rvq' at budget 0.5.* is inf"),
    (lambda d: d.assign(top_p=d.top_p.where(d.index != 1, 0.5)), r"model 'rvq': its rows disagree on top_p"),
    (lambda d: d.assign(prior_options="[1, 2]"), r"model 'rvq': its prior_options '\[1, 2\]' are not a table"),
    (lambda d: d.assign(encoder=""), r"model 'rvq': its rows name no encoder"),
    (lambda d: d.assign(prior_options='{"n_layer": null}'), r"prior_options .* are not a table of TOML values"),
    (lambda d: d.assign(top_k=3.5), r"model 'rvq': its top_k 3.5 is not a count"),
    (lambda d: pd.concat([d, d.iloc[[0]]]), r"fid of 'rvq' at budget 0.5, training seed 0, sampling seed 0 appears 2 "
                                            r"times"),
    (lambda d: d.drop(index=3), r"the candidates rvq, rvq-p9 were not scored at the same budgets and training seeds"),
])
def test_a_metrics_table_that_cannot_choose_is_named(edit, problem):
    data = edit(frame({("rvq", 1.0): [1, 1, 1, 1], ("rvq-p9", 0.9): [2, 2, 2, 2]}).reset_index(drop=True))
    with pytest.raises(ConfigError, match=problem):
        choose(data, "fid", False, "validation", "generated")


def test_a_lone_candidate_is_chosen_with_no_rival():
    (lone,) = choose(frame({("rvq", 1.0): [1, 2, 1, 2]}), "fid", False, "validation", "generated")
    assert lone.chosen and lone.rivals == 0 and lone.score == 1.5


def test_the_chosen_entry_is_a_config_entry():
    data = frame({("rvq-small-p95", 0.95): [1, 1, 1, 1]}, prior_options=json.dumps({"n_layer": 1, "dropout": 0.1}))
    (chosen,) = choose(data, "fid", False, "validation", "generated")
    entry = tomllib.loads(entry_toml(chosen))["model"][0]
    assert entry == {"encoder": "rvq", "prior": "transformer", "prior_options": {"n_layer": 1, "dropout": 0.1},
                     "temperature": 1.0, "top_k": 0, "top_p": 0.95}


def test_choose_sampling_is_the_library_call_beneath_the_command(tmp_path):
    import anytime_bench

    assert "choose_sampling" in anytime_bench.__all__
    with pytest.raises(ConfigError, match=r"not a run folder \(it holds neither run.json nor metrics.csv\)"):
        anytime_bench.choose_sampling(tmp_path)
    with pytest.raises(ConfigError, match="missing: no such folder"):
        anytime_bench.choose_sampling(tmp_path / "missing")
    frame({("rvq", 1.0): [1, 1, 1, 1]}).to_csv(tmp_path / "metrics.csv", index=False)
    with pytest.raises(ConfigError, match=r"lacks a readable run.json .*run.json is missing\)"):
        anytime_bench.choose_sampling(tmp_path)
    with pytest.raises(ConfigError, match="expected a metric name"):
        anytime_bench.choose_sampling(tmp_path, " ")


def test_a_run_evaluated_before_splits_were_recorded_is_refused_by_what_its_record_tells(tmp_path):
    """Its record names no split per metric: a metric of reconstructions was scored against the test split and is
    refused as such; for one of generated samples the command that records the split is named, with what choosing
    needs."""
    import shutil

    import anytime_bench

    run = tmp_path / "r"
    shutil.copytree(ROOT / "results" / "reference-digits", run)
    state = json.loads((run / "run.json").read_text())
    del state["metric_references"]  # as evaluate recorded it before it named the splits
    (run / "run.json").write_text(json.dumps(state))
    assert state["metric_requires"]["mse"] == "reconstructed"
    with pytest.raises(ConfigError, match="mse scores reconstructed, not generated samples"):
        anytime_bench.choose_sampling(run, "mse")
    with pytest.raises(ConfigError, match=r"which real data 'fid' was scored against .* --floors-only` records it .*"
                                          r"scored against the validation split"):
        anytime_bench.choose_sampling(run)
