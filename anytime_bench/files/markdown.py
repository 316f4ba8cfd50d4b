"""Markdown tables and text, for summaries and reports.

Text that came from a run folder (a run, model or dataset name, a metric's provenance, a reason a run was
skipped) may come from someone else. :func:`escape` is the one place that makes such text show as written:
HTML in it (``<script>``) becomes entities, never markup, and Markdown's own syntax (links, emphasis, code,
table cells) is escaped, so that a name cannot add a link, an image or a column.
"""

from __future__ import annotations

from typing import Any

from anytime_bench.errors import printable

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\\": "\\\\", "`": "\\`", "*": "\\*",
                          "_": "\\_", "[": "\\[", "]": "\\]", "|": "\\|", "\n": " ", "\r": " "})


def escape(text: Any) -> str:
    """``text`` for a Markdown file, shown as written: HTML and Markdown syntax escaped, on one line."""
    # Line breaks are spaces (one line); other control characters, as printable() writes them, escaped in turn.
    return printable(str(text).replace("\n", " ").replace("\r", " ")).translate(_ESCAPES)


def code(text: Any) -> str:
    """``text`` as a code span, shown as written: nothing inside one is Markdown or HTML, but a backtick would end it,
    a pipe a table cell, and a line break the line."""
    return "`" + printable(str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ").replace("\r", " ")) + "`"


def markdown_table(header: list[str], rows: list[list[str]], markup: tuple[int, ...] = ()) -> str:
    """A table whose cells are escaped, but for the columns in ``markup``: Markdown the caller built from escaped
    parts (a link to a run folder, say)."""
    lines = ["| " + " | ".join(escape(h) for h in header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(c if i in markup else escape(c) for i, c in enumerate(row)) + " |" for row in rows]
    return "\n".join(lines)
