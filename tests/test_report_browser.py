"""The HTML report in a real headless browser: no console error, every image drawn, every clip playable, and the
leaderboard sorts by any column.

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
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def report(tiny_run, shared_cache, tmp_path_factory):
    """A report of the session's image run and of a tiny audio run (players)."""
    out = tmp_path_factory.mktemp("browser")
    audio = run_cli("run", ROOT / "tests" / "configs" / "tiny-audio.toml", "--out", out, "--run-id", "audio",
                    "--cache-dir", shared_cache, "--quiet")
    assert audio.code == 0, audio.err
    result = run_cli("report", tiny_run, out / "audio", "--out", out / "report", "--metric", "fid")
    assert result.code == 0, result.err
    return out / "report" / "report.html"


def open_page(browser, report):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url[:80]}"))
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
    headers = page.locator("#leaderboard th")
    names = headers.all_inner_texts()
    column = names.index("full budget")

    def values() -> list[float]:
        cells = page.eval_on_selector_all(f"#leaderboard tbody tr td:nth-child({column + 1})",
                                          "els => els.map(e => e.textContent)")
        return [float(c.split()[0]) for c in cells]

    headers.nth(column).click()
    ascending = values()
    assert ascending == sorted(ascending) and len(ascending) >= 3
    headers.nth(column).click()
    assert values() == sorted(ascending, reverse=True)
    headers.nth(names.index("model")).click()
    models = page.eval_on_selector_all("#leaderboard tbody tr td:nth-child(3)", "els => els.map(e => e.textContent)")
    assert models == sorted(models, key=str.lower)
    assert not errors, errors
    page.close()
