"""Writing the report: Markdown beside its images, and one self-contained HTML page.

Both open with a contents list, then the overview figure, then a section per
dataset (its leaderboard, figures, sample grids and clips), then provenance.
The HTML page embeds its images (and audio, where runs exported clips) as data
URIs and carries its own small script and styles for sorting every table by any
column and filtering its rows: nothing is fetched from elsewhere. Each figure
records how many lines each of its axes draws (``data-lines``).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from anytime_bench.errors import printable
from anytime_bench.files import storage
from anytime_bench.files.markdown import escape, markdown_table
from anytime_bench.store.rundir import ReportPaths


def _html(text: object, quote: bool = True) -> str:
    """Text for the HTML page, shown as written: markup escaped, and control characters (which a run folder's names
    may hold) written as escapes, as :func:`~anytime_bench.files.markdown.escape` does for report.md."""
    return html.escape(printable(str(text)), quote)


class Figure(NamedTuple):
    section: str
    """The dataset it belongs to."""
    caption: str
    file: Path
    lines: tuple[int, ...] = ()
    """How many lines each axis draws; empty for a picture that is no plot (a sample grid)."""


@dataclass
class Page:
    intro: str
    missing: list[str]
    board: tuple[list[str], list[list[str]]]
    """The leaderboard; its "dataset" column puts each row in its dataset's section."""
    figures: list[Figure]
    provenance: tuple[list[str], list[list[str]]]
    overview: list[Figure] = field(default_factory=list)
    media: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    """``(section, caption, mime type, bytes)`` of exported items to embed (audio players)."""
    skipped: list[str] = field(default_factory=list)
    """Run folders that could not be read, each with the reason: listed, not ranked."""
    floors: list[tuple[str, str]] = field(default_factory=list)
    """``(dataset, line)``: each metric's real-versus-real floor, or why a run has none."""
    unscored: list[str] = field(default_factory=list)
    """Runs left out of a ranking by a metric that they do not measure, each with the metrics they do."""


FLOOR = ("What real data scores against real data: n held-out items of the reference split against the disjoint rest "
         "(mean over seeded splits, 95% Student-t interval over them). Models are scored with their sample count "
         "against the whole reference split, and scores such as FID fall as the counts grow, so the floor lies "
         "above what a perfect generator would score, the more so where n is capped below the sample count. The "
         "leaderboard's \"minus floor\" is each model's full-budget value minus it, which understates what a model "
         "could still gain.")


def sections(page: Page) -> list[str]:
    """The datasets, in the order the leaderboard, the figures and the clips first name them."""
    rows = [row[page.board[0].index("dataset")] for row in page.board[1]] if "dataset" in page.board[0] else []
    return list(dict.fromkeys(rows + [f.section for f in page.figures] + [m[0] for m in page.media]
                              + [f[0] for f in page.floors]))


def boards_of(page: Page, section: str) -> list[tuple[str, list[list[str]]]]:
    """The leaderboard rows of ``section``, one table per metric: ``(metric, rows)``. Runs ranked by their own
    headline metrics (an ablation scored by another metric than its reference run) give a dataset several
    metrics, whose scores are in other units and maybe other directions: never one ranking."""
    if "dataset" not in page.board[0]:
        return []
    column = page.board[0].index("dataset")
    rows = [row for row in page.board[1] if row[column] == section]
    if "metric" not in page.board[0]:
        return [("", rows)] if rows else []
    metric = page.board[0].index("metric")
    return [(name, [row for row in rows if row[metric] == name]) for name in dict.fromkeys(r[metric] for r in rows)]


def board_heading(metric: str) -> str:
    return f"Leaderboard: {metric}" if metric else "Leaderboard"


def without_said(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """A section's leaderboard for Markdown without the columns its heading says (``dataset``, ``metric``): the
    same in every row, they widen a table that a Markdown viewer cannot sort or scroll."""
    keep = [i for i, name in enumerate(header) if name not in ("dataset", "metric")]
    return [header[i] for i in keep], [[row[i] for i in keep if i < len(row)] for row in rows]


def slug(text: str) -> str:
    """The anchor a Markdown renderer (GitHub's) gives a heading: lower case, letters, digits, '-' and '_' only."""
    return re.sub(r"[^a-z0-9_ -]", "", text.lower()).replace(" ", "-")


def markdown(page: Page) -> str:
    """The report as Markdown. Every text that may have come from a run folder (the intro names metrics, sections
    datasets, captions runs and models) goes through :func:`escape`, as the HTML page's go through html.escape;
    the image names are :func:`~anytime_bench.store.rundir.safe_name` file names and the anchors :func:`slug`\\ s."""
    names = sections(page)
    contents = (["Overview"] if page.overview else []) + names + ["Provenance"]
    parts = ["# anytime-bench report", "", "**Contents:** " + " · ".join(
        f"[{escape(name)}](#{slug(name)})" for name in contents), "", escape(page.intro), ""]
    if page.missing:
        parts += ["**Incomplete runs:** " + escape("; ".join(page.missing)), ""]
    if page.unscored:
        parts += ["**Not ranked:** " + escape("; ".join(page.unscored)), ""]
    if page.skipped:
        parts += ["## Skipped", "", "Run folders that could not be read, left out of this report:", ""]
        parts += [f"- {escape(line)}" for line in page.skipped] + [""]
    if not page.board[1]:
        parts += ["No run has this metric.", ""]

    def figure(f: Figure) -> str:
        return f"![{escape(f.caption)}]({f.file.name})\n\n*{escape(f.caption)}*\n"

    if page.overview:
        parts += ["## Overview", ""] + [figure(f) for f in page.overview]
    for section in names:
        parts += [f"## {escape(section)}", ""]
        boards = boards_of(page, section)
        for metric, rows in boards:
            parts += [f"### {escape(board_heading(metric))}", "",
                      markdown_table(*without_said(page.board[0], rows)), ""]
        floors = [line for s, line in page.floors if s == section]
        if floors:
            parts += ["### Real-versus-real floor", "", FLOOR, ""] + [f"- {escape(line)}" for line in floors] + [""]
        parts += [figure(f) for f in page.figures if f.section == section]
    parts += ["## Provenance", "", markdown_table(*page.provenance), ""]
    return "\n".join(parts)


def _table(header: list[str], rows: list[list[str]], table_id: str, what: str, cls: str = "") -> str:
    """A table that sorts by any column and filters its rows (:data:`SCRIPT`), with its filter box above it."""
    head = "".join(f'<th title="sort by {_html(h)}">{_html(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_html(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<div class="filter"><input type="search" placeholder="filter rows" aria-label="filter {_html(what)}" '
            f'aria-controls="{table_id}"> <span class="shown">{len(rows)} of {len(rows)} rows</span></div>'
            f'<table id="{table_id}" class="sortable{" " + cls if cls else ""}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


# Click a header to sort by that column; numbers (the leading number of "3.2 [2.9, 3.5]") sort numerically.
# Type in a table's filter box to show only the rows holding every word typed (any case). Text is only ever read
# and compared (textContent), never written as markup: a run's name stays text.
SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.getAttribute('data-order') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
      th.setAttribute('data-order', ascending ? 'ascending' : 'descending');
      function key(row) {
        var text = row.cells[column] ? row.cells[column].textContent.trim() : '';
        var number = parseFloat(text);
        return isNaN(number) ? text.toLowerCase() : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  var box = table.previousElementSibling;
  if (!box || !box.classList.contains('filter')) { return; }
  var input = box.querySelector('input'), shown = box.querySelector('.shown');
  input.addEventListener('input', function () {
    var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var rows = table.tBodies[0].rows, count = 0;
    for (var i = 0; i < rows.length; i++) {
      var text = rows[i].textContent.toLowerCase();
      rows[i].hidden = !words.every(function (word) { return text.indexOf(word) !== -1; });
      if (!rows[i].hidden) { count += 1; }
    }
    shown.textContent = count + ' of ' + rows.length + ' rows';
  });
});
"""

STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;font-size:13px;margin:0 0 1em}"
         "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3;cursor:pointer}"
         "th[data-order=ascending]::after{content:' \\25B2'}th[data-order=descending]::after{content:' \\25BC'}"
         "div.filter{margin:1em 0 .3em;font-size:13px}div.filter input{width:20em}.shown{color:#666}"
         "nav ul{columns:3;font-size:14px}"
         "figure{display:inline-block;margin:1em;vertical-align:top}figure img{max-width:100%}"
         "figcaption{font-size:12px;color:#444;max-width:60em}"
         ".warn{color:#a00}")


def _figure_html(figure: Figure) -> str:
    data = base64.b64encode(figure.file.read_bytes()).decode()
    lines = f' data-lines="{" ".join(str(n) for n in figure.lines)}"' if figure.lines else ""
    return (f'<figure{lines}><img alt="{_html(figure.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_html(figure.caption)}</figcaption></figure>")


def page_html(page: Page) -> str:
    names = sections(page)
    anchors = {name: f"dataset-{i + 1}" for i, name in enumerate(names)}  # ids from no untrusted text
    contents = ([("overview", "Overview")] if page.overview else []) + [(anchors[n], n) for n in names] + [
        ("provenance-section", "Provenance")]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>anytime-bench report</title>',
             f"<style>{STYLE}</style></head><body>", "<h1>anytime-bench report</h1>",
             '<nav id="contents"><h2>Contents</h2><ul>'
             + "".join(f'<li><a href="#{anchor}">{_html(name)}</a></li>' for anchor, name in contents)
             + "</ul></nav>",
             f"<p>{_html(page.intro)}</p>"]
    if page.missing:
        parts.append('<p class="warn">Incomplete runs: ' + _html("; ".join(page.missing)) + "</p>")
    if page.unscored:
        parts.append("<p>Not ranked: " + _html("; ".join(page.unscored)) + "</p>")
    if page.skipped:
        parts.append('<h2>Skipped</h2><p class="warn">Run folders that could not be read, left out of this '
                     "report:</p><ul>" + "".join(f"<li>{_html(line)}</li>" for line in page.skipped) + "</ul>")
    if not page.board[1]:
        parts.append("<p>No run has this metric.</p>")
    if page.overview:
        parts.append('<h2 id="overview">Overview</h2>')
        parts += [_figure_html(f) for f in page.overview]
    for section in names:
        parts.append(f'<section id="{anchors[section]}"><h2>{_html(section)}</h2>')
        boards = boards_of(page, section)
        for i, (metric, rows) in enumerate(boards):
            suffix = f"-{i + 1}" if len(boards) > 1 else ""
            parts += [f"<h3>{_html(board_heading(metric))}</h3>",
                      _table(page.board[0], rows, f"leaderboard-{anchors[section]}{suffix}",
                             f"the leaderboard of {section}" + (f" by {metric}" if len(boards) > 1 else ""),
                             "leaderboard")]
        floors = [line for s, line in page.floors if s == section]
        if floors:
            parts.append(f"<h3>Real-versus-real floor</h3><p>{_html(FLOOR)}</p><ul>"
                         + "".join(f"<li>{_html(line)}</li>" for line in floors) + "</ul>")
        parts += [_figure_html(f) for f in page.figures if f.section == section]
        for s, caption, mime, payload in page.media:
            if s == section:
                data = base64.b64encode(payload).decode()
                tag = "audio" if mime.startswith("audio/") else "video" if mime.startswith("video/") else None
                if tag:
                    parts.append(f'<figure><{tag} controls preload="none" src="data:{_html(mime)};base64,{data}">'
                                 f"</{tag}><figcaption>{_html(caption)}</figcaption></figure>")
        parts.append("</section>")
    parts += ['<h2 id="provenance-section">Provenance</h2>', _table(*page.provenance, "provenance", "the provenance"),
              f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts)


def write(page: Page, out: ReportPaths, formats: list[str]) -> dict[str, Path]:
    written = {}
    if "md" in formats:
        storage.write_text(out.markdown, markdown(page))
        written["md"] = out.markdown
    if "html" in formats:
        storage.write_text(out.html, page_html(page))
        written["html"] = out.html
    return written
