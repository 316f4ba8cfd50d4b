"""The report's figures at many runs, drawn from small made-up metrics tables (no training): families, the best
entry of each, and never more than eight lines on one axis."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest

from anytime_bench.analysis.labels import ORACLES, model_family
from anytime_bench.analysis.report.gather import Gathered
from anytime_bench.store.rundir import RunPaths

# the module, not the function of that name which anytime_bench.analysis.report exports
figures = importlib.import_module("anytime_bench.analysis.report.figures")
BUDGETS = (0.25, 0.5, 1.0)


def run(tmp_path, name: str, models: dict[str, float], dataset: str = "digits", cost: bool = False,
        budgets: dict[str, tuple[float, ...]] | None = None, metric: str = "fid") -> Gathered:
    """A run of three training seeds whose models' fid is ``scale / budget`` (so a smaller scale ranks better),
    at ``BUDGETS`` or a model's own ``budgets``; a model named '*-oracle' is a per-budget oracle, one named
    'vqvae-*' unordered."""
    rows = [dict(run_id=name, dataset=dataset, model=model, ordered=not model.startswith("vqvae"),
                 per_budget=model.endswith("oracle"), train_seed=seed, sample_seed=0, budget=budget,
                 tokens=int(budget * 16), metric=metric, value=scale / budget * (1 + 0.01 * seed), provenance=None)
             for model, scale in models.items() for seed in range(3)
             for budget in (budgets or {}).get(model, BUDGETS)]
    gathered = Gathered(paths=RunPaths(tmp_path / name), name=name, metrics=pd.DataFrame(rows), group=name)
    if cost:
        gathered.cost = pd.DataFrame([dict(model=model, budget=budget, batch=1, stage=stage, cache=True,
                                           seconds=1e-4 * budget) for model in models
                                      for budget in BUDGETS for stage in ("prior", "decoder")])
    return gathered


@pytest.fixture
def many(tmp_path):
    """25 runs of one dataset: eleven ovqvae ablations, ten of rvq, two oracles and two unordered baselines."""
    runs = [run(tmp_path, f"ablation-{i}", {"ovqvae": 2.0 + i}) for i in range(11)]
    runs += [run(tmp_path, f"rvq-{i}", {"rvq": 1.0 + i}) for i in range(10)]
    runs += [run(tmp_path, "zoo", {"ovqvae": 30.0, "oracle": 0.5, "rvq-oracle": 0.7, "vqvae-channel": 50.0},
                 cost=True),
             run(tmp_path, "reference", {"ovqvae": 40.0, "vqvae-spatial": 60.0}, cost=True),
             run(tmp_path, "mnist", {"ovqvae": 3.0}, dataset="mnist")]
    return runs


@pytest.fixture
def drawn(monkeypatch):
    """The figures as drawn, not rendered: save_figure keeps them and counts their lines."""
    import matplotlib.pyplot as plt

    from anytime_bench.analysis.plots import lines_per_axis

    kept: list = []

    def keep(fig, path, exact=False):
        kept.append(fig)
        return lines_per_axis(fig)

    monkeypatch.setattr(figures, "save_figure", keep)
    yield kept
    for fig in kept:
        plt.close(fig)


def test_a_models_family_is_its_encoder_and_every_oracle_is_one_family():
    assert model_family("ovqvae", True) == "ovqvae"
    assert model_family("vqvae-channel", False) == "vqvae-channel (unordered)"
    assert model_family("oracle", False, True) == model_family("rvq-oracle", False, True) == ORACLES
    assert model_family("ovqvae long prior", True, encoder="ovqvae") == "ovqvae"  # an entry named apart


def test_entries_rank_best_first_by_anytime_score_and_the_best_of_each_family_leads_it(many):
    ranked = figures.entries(many, "digits", "fid", higher_is_better=False)
    assert len(ranked) == 11 + 10 + 4 + 2  # mnist's run has no digits entry
    scores = [e.score for e in ranked]
    assert scores == sorted(scores)
    best = {e.family: e.experiment for e in figures.best_of_families(ranked)}
    assert best == {"ovqvae": "ablation-0", "rvq": "rvq-0", ORACLES: "zoo", "vqvae-channel (unordered)": "zoo",
                    "vqvae-spatial (unordered)": "reference"}
    higher = figures.entries(many, "digits", "fid", higher_is_better=True)
    assert figures.best_of_families(higher)[0].experiment == "reference"  # its vqvae-spatial, now the best


def test_scores_over_another_range_of_budgets_rank_after_the_widest_and_an_oracle_has_no_full_budget_value(tmp_path):
    from anytime_bench.analysis.report.leaderboard import board_table, leaderboard

    # ovqvae over 0.25-1 scores 4.04; the ablation's, measured from 0.5 only, 3.79, though worse at every budget
    # they share; the oracle stops at 0.5
    runs = [run(tmp_path, "reference", {"ovqvae": 2.0, "rvq-oracle": 1.0}, budgets={"rvq-oracle": (0.25, 0.5)}),
            run(tmp_path, "ablation", {"ovqvae": 2.5}, budgets={"ovqvae": (0.5, 1.0)})]
    rows = leaderboard(runs, "fid", higher_is_better=False)
    assert [(r["runs"], r["model"]) for r in rows] == [("reference", "ovqvae"), ("ablation", "ovqvae"),
                                                       ("reference", "rvq-oracle")]
    assert [round(r["anytime score"].mean, 2) for r in rows] == [4.04, 3.79, 3.03]
    assert [r["flag"] for r in rows] == [
        "", "anytime score over budgets 0.5-1: ranked after the scores over 0.25-1",
        "anytime score over budgets 0.25-0.5: ranked after the scores over 0.25-1"]
    header, body = board_table(rows)
    full, above = header.index("full budget"), header.index("minus floor")
    assert body[0][full].startswith("2.02 [") and [body[2][full], body[2][above]] == ["-", "-"]  # not its 0.5
    ranked = figures.entries(runs, "digits", "fid", higher_is_better=False)
    assert [(e.experiment, e.model) for e in ranked][:2] == [("reference", "ovqvae"), ("ablation", "ovqvae")]
    assert {e.family: e.experiment for e in figures.best_of_families(ranked)}["ovqvae"] == "reference"


def test_a_dataset_ranked_by_two_metrics_gets_a_leaderboard_and_an_overview_panel_for_each(tmp_path, drawn):
    from anytime_bench.analysis.report.render import Page, boards_of, markdown, page_html

    runs = [run(tmp_path, "reference", {"ovqvae": 2.0}), run(tmp_path, "ablation", {"rvq": 1.0}, metric="fad")]
    panels = [("digits", m, figures.entries(runs, "digits", m, higher_is_better=False)) for m in ("fid", "fad")]
    figures.overview_plot(panels, tmp_path / "overview.png")
    assert [ax.get_title() for ax in drawn[-1].axes] == ["digits (fid)", "digits (fad)"]
    page = Page(intro="i", missing=[], board=(["dataset", "model", "metric"], [
        ["digits", "ovqvae", "fid"], ["digits", "rvq", "fad"], ["mnist", "rvq", "fid"]]), figures=[],
        provenance=(["run"], [["r"]]))
    assert [(m, len(rows)) for m, rows in boards_of(page, "digits")] == [("fid", 1), ("fad", 1)]
    text, md = page_html(page), markdown(page)
    assert "### Leaderboard: fid" in md and "### Leaderboard: fad" in md and "## mnist\n\n### Leaderboard: fid\n" in md
    assert 'id="leaderboard-dataset-1-1"' in text and 'id="leaderboard-dataset-1-2"' in text


def test_a_large_family_is_split_evenly_into_panels_of_at_most_eight():
    assert [len(p) for p in figures.split(list(range(11)))] == [6, 5]
    assert [len(p) for p in figures.split(list(range(8)))] == [8]
    assert [len(p) for p in figures.split(list(range(17)))] == [6, 6, 5]
    assert figures.split(list(range(17)))[1][0] == 6  # in order: the best entries in the first panel


def test_small_multiples_keep_every_axis_to_eight_lines_on_shared_log_axes_with_legends_outside(many, drawn,
                                                                                              tmp_path):
    ranked = figures.entries(many, "digits", "fid", higher_is_better=False)
    lines = figures.small_multiples(ranked, "digits", "fid", tmp_path / "sm.png")
    fig = drawn[-1]
    axes = fig.axes
    assert lines == [len(ax.get_lines()) for ax in axes]
    assert max(lines) <= figures.MAX_LINES and sum(lines) == len(ranked)  # every entry drawn once, none dropped
    # the family of the best entry first, then in the order of their best; a large family in even parts, best first
    assert [ax.get_title() for ax in axes] == [ORACLES, "rvq: 1-5 of 10", "rvq: 6-10 of 10", "ovqvae: 1-7 of 13",
                                               "ovqvae: 8-13 of 13", "vqvae-channel (unordered)",
                                               "vqvae-spatial (unordered)"]
    assert [line.get_label() for line in axes[1].get_lines()] == [f"rvq-{i}" for i in range(5)]
    assert all(ax.get_yscale() == "log" for ax in axes)  # fid spans 1 to 240 over the panels
    assert all(ax.get_shared_y_axes().joined(axes[0], ax) and ax.get_ylim() == axes[0].get_ylim() for ax in axes)
    renderer = fig.canvas.get_renderer()
    for ax in axes:  # each legend below its own axes, clear of every panel's data
        legend = ax.get_legend().get_window_extent(renderer)
        assert legend.y1 < ax.get_window_extent().y0
        assert not any(legend.overlaps(other.get_window_extent()) for other in axes)


def test_the_overview_draws_the_best_entry_of_each_family_per_dataset(many, drawn, tmp_path):
    panels = [(d, "fid", figures.entries(many, d, "fid", higher_is_better=False)) for d in ("digits", "mnist")]
    lines = figures.overview_plot(panels, tmp_path / "overview.png")
    assert lines == [5, 1]
    labels = [line.get_label() for line in drawn[-1].axes[0].get_lines()]
    assert labels == ["zoo: oracle (per-budget oracle)", "rvq-0: rvq", "ablation-0: ovqvae",  # experiment: model
                      "zoo: vqvae-channel (unordered)", "reference: vqvae-spatial (unordered)"]
    assert [ax.get_title() for ax in drawn[-1].axes] == ["digits", "mnist"]


def test_the_cost_figure_draws_the_best_benchmarked_entry_of_each_family(many, drawn, tmp_path):
    ranked = figures.entries(many, "digits", "fid", higher_is_better=False)
    lines = figures.time_plot(ranked, "fid", tmp_path / "time.png")
    labels = sorted(line.get_label() for line in drawn[-1].axes[0].get_lines())
    # ovqvae's best benchmarked entry is zoo's (30 < 40); rvq was never benchmarked
    assert lines == [4] and labels == ["reference: vqvae-spatial (unordered)", "zoo: oracle (per-budget oracle)",
                                       "zoo: ovqvae", "zoo: vqvae-channel (unordered)"]


def test_the_page_has_a_section_per_dataset_and_keeps_a_hostile_dataset_name_text(tmp_path):
    from anytime_bench.analysis.report.render import Figure, Page, markdown, page_html

    hostile = '"><script>alert(1)</script>'
    image = tmp_path / "plot.png"
    image.write_bytes(b"\x89PNG")
    page = Page(intro="i", missing=[], board=(["dataset", "model"], [[hostile, "ovqvae"], ["digits", "rvq"]]),
                figures=[Figure("digits", "fid versus budget", image, (3, 8))],
                provenance=(["run"], [["r"]]), overview=[Figure("", "best", image, (2,))])
    text = page_html(page)
    assert "<script>alert" not in text and text.count("<script>") == 1  # the page's own script, once
    assert '<nav id="contents">' in text and '<a href="#dataset-1">&quot;&gt;&lt;script&gt;' in text
    assert '<section id="dataset-2"><h2>digits</h2>' in text and text.count('class="sortable leaderboard"') == 2
    assert '<figure data-lines="3 8">' in text and '<figure data-lines="2">' in text
    assert text.count('<input type="search"') == 3  # a filter above each table: two leaderboards, provenance
    md = markdown(page)
    assert "<script" not in md and "](#scriptalert1script)" in md and "](#digits)" in md


def test_rows_of_one_model_from_several_experiments_say_how_they_differ(tmp_path):
    from anytime_bench.analysis.report.leaderboard import board_table, leaderboard

    def made(name, scale, encoder=None, prior=None, top_p=1.0, defaults=None):
        made = run(tmp_path, name, {"rvq": scale})
        made.metrics = made.metrics.assign(encoder="rvq", encoder_options="", prior="transformer", prior_options="",
                                           temperature=1.0, top_k=0, top_p=top_p)
        made.state = {"identity": {"set": {"encoder": {"rvq": encoder or {}}, "prior": {"transformer": prior or {}}},
                                   "defaults": {"encoder": {"rvq": {"steps": 100, "budget_film": False, "beta": 1,
                                                                    "width": 8} if defaults is None else defaults},
                                                "prior": {"transformer": {"steps": 600}}}}}
        return made

    runs = [made("a", 1.0), made("b", 1.1), made("film", 1.2, {"budget_film": True}),
            made("long", 1.3, prior={"steps": 1200}, top_p=0.9),
            made("old", 1.4, defaults={"steps": 100, "beta": 1, "width": 8}),  # before budget_film: at its default
            made("many", 1.5, {"steps": 5, "budget_film": True, "beta": 2, "width": 3}, prior={"steps": 1}),
            run(tmp_path, "unread", {"rvq": 1.6})]  # no record: nothing to compare
    rows = leaderboard(runs, "fid", higher_is_better=False)
    differs = {r["runs"]: r["differs"] for r in rows}
    assert differs == {  # the settings fewest rows share first (budget_film true is shared by two), then by name
        "a": "", "b": "", "film": "budget_film true", "long": "prior.steps 1200, top_p 0.9", "old": "",
        "many": "beta 2, prior.steps 1, steps 5, width 3 (+1 more)", "unread": ""}
    assert {r["runs"]: r["differs"] for r in leaderboard(runs[::-1], "fid", higher_is_better=False)} == differs
    header, body = board_table(rows)
    assert header[:4] == ["dataset", "runs", "model", "differs"]
    assert {row[1]: row[3] for row in body}["a"] == "-"

    # Two runs tied: the one at the default names nothing, whichever is given first.
    pair = [made("tour", 1.0, {"steps": 20}), made("reference", 1.1)]
    for order in (pair, pair[::-1]):
        assert {r["runs"]: r["differs"] for r in leaderboard(order, "fid", higher_is_better=False)} == {
            "tour": "steps 20", "reference": ""}
    # An option no record gives a default for (added since "older" ran, and set in both others): each value
    # that is known is named, the unknown one nothing.
    newer = {"steps": 100, "budget_film": False, "beta": 1, "width": 8}
    three = [made("older", 1.0, defaults=newer), made("depth-3", 1.1, {"depths": 3}, defaults=newer),
             made("depth-6", 1.2, {"depths": 6}, defaults=newer)]
    for order in (three, three[::-1]):
        assert {r["runs"]: r["differs"] for r in leaderboard(order, "fid", higher_is_better=False)} == {
            "older": "", "depth-3": "depths 3", "depth-6": "depths 6"}


def test_models_of_one_run_scored_in_two_feature_spaces_are_not_ranked_together(tmp_path):
    """A model set aside keeps its earlier scores while the others are scored anew by another classifier."""
    import json

    from anytime_bench.analysis.report.leaderboard import leaderboard

    mixed = run(tmp_path, "mixed", {"ovqvae": 2.0, "rvq": 1.0})
    space = {"ovqvae": "classifier-new", "rvq": "classifier-old"}
    mixed.metrics["provenance"] = [json.dumps({"feature_space": space[m], "reference_set": "train", "samples": 64})
                                   for m in mixed.metrics.model]
    flags = {r["model"]: r["flag"] for r in leaderboard([mixed], "fid", higher_is_better=False)}
    assert all(flag.startswith("not comparable: group ") for flag in flags.values()), flags
    assert flags["ovqvae"] != flags["rvq"]
    # the flag says what differs, and not what does not
    assert "feature space classifier-new, other groups classifier-old" in flags["ovqvae"], flags
    assert "samples" not in flags["ovqvae"] and "reference set" not in flags["ovqvae"]


def test_an_entry_drawn_for_several_runs_is_labelled_by_the_shortest_name_whatever_their_order():
    from anytime_bench.analysis.report.figures import experiment_label

    names = ["ablation-mnist-price-decomposition", "reference-mnist", "reference-mnist-oracle", "reference-mnist"]
    assert experiment_label(names) == experiment_label(names[::-1]) == "reference-mnist +2"
    assert experiment_label(["only"]) == "only"
