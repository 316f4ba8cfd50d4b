"""Writing the report: Markdown beside its images, and one self-contained HTML page.

The HTML page embeds its images (and audio, where runs exported clips) as data
URIs and carries its own small script for sorting the leaderboard by any
column: nothing is fetched from elsewhere.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from .. import storage
from ..markdown import escape, markdown_table
from ..rundir import ReportPaths


@dataclass
class Page:
    intro: str
    missing: list[str]
    board: tuple[list[str], list[list[str]]]
    figures: list[tuple[str, str, Path]]
    provenance: tuple[list[str], list[list[str]]]
    media: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    """``(section, caption, mime type, bytes)`` of exported items to embed (audio players)."""
    skipped: list[str] = field(default_factory=list)
    """Run folders that could not be read, each with the reason: listed, not ranked."""


def markdown(page: Page) -> str:
    """The report as Markdown. Every text that may have come from a run folder (the intro names metrics, sections
    datasets, captions runs and models) goes through :func:`escape`, as the HTML page's go through html.escape;
    the image names are :func:`~anytime_bench.rundir.safe_name` file names."""
    parts = ["# anytime-bench report", "", escape(page.intro), ""]
    if page.missing:
        parts += ["**Incomplete runs:** " + escape("; ".join(page.missing)), ""]
    if page.skipped:
        parts += ["## Skipped", "", "Run folders that could not be read, left out of this report:", ""]
        parts += [f"- {escape(line)}" for line in page.skipped] + [""]
    parts += ["## Leaderboard", ""]
    parts += [markdown_table(*page.board), ""] if page.board[1] else ["No run has this metric.", ""]
    for section in dict.fromkeys(f[0] for f in page.figures):
        parts += [f"## {escape(section)}", ""]
        parts += [f"![{escape(caption)}]({file.name})\n\n*{escape(caption)}*\n" for s, caption, file in page.figures
                  if s == section]
    parts += ["## Provenance", "", markdown_table(*page.provenance), ""]
    return "\n".join(parts)


def _table(header: list[str], rows: list[list[str]], table_id: str, sortable: bool = False) -> str:
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f'<th title="sort by {html.escape(h)}">{html.escape(h)}</th>' if sortable else
                   f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# Click a header to sort by that column; numbers (the leading number of "3.2 [2.9, 3.5]") sort numerically.
SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.style.cursor = 'pointer';
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.getAttribute('data-order') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
      th.setAttribute('data-order', ascending ? 'ascending' : 'descending');
      function key(row) {
        var text = row.cells[column].textContent.trim();
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
});
"""

STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
         "th[data-order=ascending]::after{content:' \\25B2'}th[data-order=descending]::after{content:' \\25BC'}"
         "figure{display:inline-block;margin:1em;vertical-align:top}figcaption{font-size:12px;color:#444}"
         ".warn{color:#a00}")


def page_html(page: Page) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>anytime-bench report</title>',
             f"<style>{STYLE}</style></head><body>", "<h1>anytime-bench report</h1>",
             f"<p>{html.escape(page.intro)}</p>"]
    if page.missing:
        parts.append('<p class="warn">Incomplete runs: ' + html.escape("; ".join(page.missing)) + "</p>")
    if page.skipped:
        parts.append('<h2>Skipped</h2><p class="warn">Run folders that could not be read, left out of this '
                     "report:</p><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in page.skipped) + "</ul>")
    parts.append("<h2>Leaderboard</h2>")
    parts.append(_table(*page.board, "leaderboard", sortable=True) if page.board[1] else
                 "<p>No run has this metric.</p>")
    sections = list(dict.fromkeys([f[0] for f in page.figures] + [m[0] for m in page.media]))
    for section in sections:
        parts.append(f"<h2>{html.escape(section)}</h2>")
        for s, caption, file in page.figures:
            if s == section:
                data = base64.b64encode(file.read_bytes()).decode()
                parts.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        for s, caption, mime, payload in page.media:
            if s == section:
                data = base64.b64encode(payload).decode()
                tag = "audio" if mime.startswith("audio/") else "video" if mime.startswith("video/") else None
                if tag:
                    parts.append(f'<figure><{tag} controls preload="none" src="data:{html.escape(mime)};base64,{data}">'
                                 f"</{tag}><figcaption>{html.escape(caption)}</figcaption></figure>")
    parts += ["<h2>Provenance</h2>", _table(*page.provenance, "provenance"), f"<script>{SORT_SCRIPT}</script>",
              "</body></html>"]
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
