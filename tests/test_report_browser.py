"""The HTML report in a real headless browser: no console error, every image drawn, every clip playable, the
leaderboard sorts by any column; and over every committed run, offline, no figure draws more than eight lines on one
axis and the tables sort and filter.

It needs a Chromium binary (Debian's ``chromium``, which ``.ci/run`` installs) and drives it with Playwright. On
a machine without one the test is skipped, unless ``ANYTIME_BENCH_BROWSER_TESTS=1`` (set by ``.ci/run``) makes a
missing browser a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

from .conftest import ROOT, run_cli

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)),
                None)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("ANYTIME_BENCH_BROWSER_TESTS") == "1":
            pytest.fail("ANYTIME_BENCH_BROWSER_TESTS=1 but no Chromium is installed (apt-get install chromium)")
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def report(tiny_run, shared_cache, tmp_path_factory, speech):
    """A report of the session's image run and of a tiny audio run (players)."""
    out = tmp_path_factory.mktemp("browser")
    audio = run_cli("run", ROOT / "tests" / "configs" / "tiny-audio.toml", "--out", out, "--run-id", "audio",
                    "--cache-dir", shared_cache, "--quiet")
    assert audio.code == 0, audio.err
    result = run_cli("report", tiny_run, out / "audio", "--out", out / "report", "--metric", "fid")
    assert result.code == 0, result.err
    return out / "report" / "report.html"


@pytest.fixture(scope="module")
def committed_report(tmp_path_factory):
    """The report over every committed run (25 and more), as docs/guide/reports.md writes results/reference-report."""
    runs = sorted(p for p in (ROOT / "results").iterdir() if (p / "run.json").is_file())
    assert len(runs) >= 25
    out = tmp_path_factory.mktemp("committed") / "report"
    result = run_cli("report", *runs, "--out", out)
    assert result.code == 0, result.err
    return out / "report.html"


def open_page(browser, report, offline: bool = False):
    page = browser.new_context(offline=offline).new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url[:80]}"))
    page.on("request", lambda request: None if request.url.startswith(("file:", "data:")) else
            errors.append(f"request: {request.url[:80]}"))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def test_the_report_renders_every_image_without_errors(browser, report):
    page, errors = open_page(browser, report)
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.alt])")
    assert len(images) >= 3 and all(complete and width > 0 for complete, width, _ in images), images
    assert not errors, errors
    page.close()


def test_the_report_plays_its_clips(browser, report):
    page, errors = open_page(browser, report)
    durations = page.eval_on_selector_all("audio", """els => Promise.all(els.map(e => new Promise(done => {
        e.addEventListener('loadedmetadata', () => done(e.duration), {once: true});
        e.addEventListener('error', () => done(-1), {once: true});
        e.load();
    })))""")
    assert len(durations) >= 4, "no players for the real clips and each model's budgets"
    assert all(d > 0 for d in durations), durations
    assert not errors, errors
    page.close()


def test_the_leaderboard_sorts_by_any_column(browser, report):
    page, errors = open_page(browser, report)
    board = page.locator("table.leaderboard").first  # the first dataset's (digits)
    headers = board.locator("th")
    names = headers.all_inner_texts()
    column = names.index("full budget")

    def values() -> list[float]:
        cells = board.locator(f"tbody tr td:nth-child({column + 1})").all_inner_texts()
        return [float(c.split()[0]) for c in cells]

    headers.nth(column).click()
    ascending = values()
    assert ascending == sorted(ascending) and len(ascending) >= 3
    headers.nth(column).click()
    assert values() == sorted(ascending, reverse=True)
    headers.nth(names.index("model")).click()
    models = board.locator("tbody tr td:nth-child(3)").all_inner_texts()
    assert models == sorted(models, key=str.lower)
    assert not errors, errors
    page.close()


def test_over_every_committed_run_no_axis_draws_more_than_eight_lines_and_tables_sort_and_filter_offline(
        browser, committed_report):
    page, errors = open_page(browser, committed_report, offline=True)
    lines = page.eval_on_selector_all("figure[data-lines]", "els => els.map(e => e.dataset.lines)")
    counts = [[int(n) for n in figure.split()] for figure in lines]
    # the overview and each dataset's small multiples (digits, mnist, spoken-digits), digits' cost figure
    assert len(counts) >= 5 and all(1 <= n <= 8 for figure in counts for n in figure), counts
    assert sum(len(figure) > 1 for figure in counts) >= 3  # the families were drawn apart, in panels
    unrecorded = page.eval_on_selector_all("figure:not([data-lines]) img", "els => els.map(e => e.alt)")
    assert unrecorded and all(alt.startswith("samples of") for alt in unrecorded)  # every plot records its lines
    images = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
    assert all(images)

    # the contents list leads to each section
    anchors = page.eval_on_selector_all("nav a", "els => els.map(e => e.getAttribute('href').slice(1))")
    assert anchors[0] == "overview" and anchors[-1] == "provenance-section" and len(anchors) == 3 + 2
    assert all(page.locator(f"[id='{anchor}']").count() == 1 for anchor in anchors)

    mnist = page.locator("section:has(h2:text-is('mnist'))")
    assert mnist.locator("h3", has_text="Leaderboard").all_inner_texts() == ["Leaderboard: fid", "Leaderboard: rfid"]
    board = mnist.locator("table.leaderboard").first  # fid's: the runs ranked by rfid have a table of their own
    names = board.locator("th").all_inner_texts()
    rows = board.locator("tbody tr")
    total = rows.count()
    assert total >= 20  # a dozen rvq ablations, the zoo, the references

    def column(name: str) -> list[str]:
        return [cell for cell, shown in zip(board.locator(f"tbody tr td:nth-child({names.index(name) + 1})")
                                            .all_inner_texts(), visible(), strict=True) if shown]

    def visible() -> list[bool]:
        return [row.is_visible() for row in rows.all()]

    board.locator("th", has_text="anytime score").click()
    scores = [float(c.split()[0]) for c in column("anytime score")]
    assert scores == sorted(scores)
    board.locator("th", has_text="anytime score").click()
    assert [float(c.split()[0]) for c in column("anytime score")] == sorted(scores, reverse=True)

    box = mnist.locator("div.filter input").first
    box.fill("rvq TEMPERATURE")  # every word, any case
    assert column("runs") == ["ablation-mnist-rvq-temperature"]
    assert mnist.locator("div.filter .shown").first.inner_text() == f"1 of {total} rows"
    box.fill("oracle")
    assert 1 < sum(visible()) < total
    shown = [text for text, seen in zip(rows.all_inner_texts(), visible(), strict=True) if seen]
    assert shown and all("oracle" in text.lower() for text in shown)
    box.fill("")
    assert all(visible()) and mnist.locator("div.filter .shown").first.inner_text() == f"{total} of {total} rows"

    provenance = page.locator("#provenance")
    provenance.locator("th", has_text="run").first.click()
    runs = provenance.locator("tbody tr td:nth-child(1)").all_inner_texts()
    assert runs == sorted(runs, key=str.lower) and len(runs) >= 25
    assert not errors, errors
    page.close()
