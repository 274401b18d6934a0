"""The leaderboard as one static web page: `index.html`, self-contained (inline style and script, no
external fonts or scripts), read offline from the file system. Figures and records are linked relatively
(`../figures/`, `../records/`), so the page works wherever its `results` folder is copied whole.

Everything a record holds is escaped for the browser, and a Content-Security-Policy lets only the page's
own script and style run: a method named like markup shows as text.
"""
from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass, field

import pandas as pd

from stabench.table import Aggregate, aggregate_cells, aggregate_notes, table_cells, table_notes, without_attrs

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0 auto;
       max-width: 78rem; padding: 1rem 1.5rem 3rem; color: #1b1f24; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; margin-top: 2.2rem; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem; }
nav ul { columns: 2; font-size: 0.9rem; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.85rem; }
pre { background: #f6f8fa; padding: 0.6rem 0.8rem; overflow-x: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.82rem; margin: 0.6rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.45rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f6f8fa; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; color: inherit; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafbfc; }
td a + a { margin-left: 0.3rem; }
p.notes { font-size: 0.8rem; color: #57606a; max-width: 70rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: 0.8rem; color: #57606a; }
"""

# Sorting: a click on a column's button sorts by it (again: the other way); numbers by their data-sort value,
# rows without one last either way. `#sort=<table id>:<column>:<ascending|descending>` opens the page sorted.
SCRIPT = """
(function () {
  "use strict";
  function sortBy(table, column, ascending) {
    var head = table.tHead.rows[0].cells, body = table.tBodies[0];
    var numeric = head[column].getAttribute("data-type") === "number";
    var rows = Array.prototype.slice.call(body.rows);
    function value(row) {
      var cell = row.cells[column];
      return numeric ? parseFloat(cell.getAttribute("data-sort")) : cell.textContent;
    }
    rows.sort(function (a, b) {
      var x = value(a), y = value(b);
      if (!numeric) { return ascending ? x.localeCompare(y) : y.localeCompare(x); }
      if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
      return ascending ? x - y : y - x;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(head, function (th, index) {
      if (index === column) { th.setAttribute("aria-sort", ascending ? "ascending" : "descending"); }
      else { th.removeAttribute("aria-sort"); }
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.querySelector("button").addEventListener("click", function () {
        sortBy(table, column, th.getAttribute("aria-sort") !== "ascending");
      });
    });
  });
  var wanted = /^#sort=([A-Za-z0-9_-]+):([0-9]+):(ascending|descending)$/.exec(window.location.hash);
  var table = wanted && document.getElementById(wanted[1]);
  if (table && +wanted[2] < table.tHead.rows[0].cells.length) { sortBy(table, +wanted[2], wanted[3] === "ascending"); }
  document.documentElement.setAttribute("data-sortable", "ready");
}());
"""


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Only the page's own style and script run, only its own files (and nothing from the network) load.
POLICY = (f"default-src 'none'; img-src 'self'; style-src {_hash(STYLE)}; script-src {_hash(SCRIPT)}; "
          "base-uri 'none'; form-action 'none'")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and line feed, which HTML takes as spaces


def escape(text) -> str:
    """Text from a record as HTML text or attribute value: nothing in it becomes markup, and a control
    character (ESC, BEL, NUL) shows as �."""
    return html.escape(_CONTROL.sub("\ufffd", str(text)), quote=True)


def code(text: str) -> str:
    """`text` escaped, its `backquoted` spans as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", escape(text))


def anchor(name: str) -> str:
    """An id for a section named `name`: its letters and digits, and a short hash so two names never share one."""
    plain = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return f"{plain}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


@dataclass
class Link:
    """A link from a table row to one run's record."""

    text: str
    href: str
    title: str = ""


@dataclass
class Section:
    """One part of the page: a heading, a sortable table, notes, then figures (caption, relative path)."""

    title: str
    table: str
    notes: str = ""
    figures: list[tuple[str, str]] = field(default_factory=list)

    def html(self) -> str:
        figures = "".join(f'<figure><img src="{escape(src)}" alt="{escape(caption)}" loading="lazy">'
                          f"<figcaption>{escape(caption)}</figcaption></figure>\n" for caption, src in self.figures)
        notes = f'<p class="notes">{self.notes}</p>\n' if self.notes else ""
        return (f'<section id="{anchor(self.title)}">\n<h2>{escape(self.title)}</h2>\n'
                f"{self.table}{notes}{figures}</section>\n")


def _sort_key(value) -> str:
    """A number as the data-sort attribute the script reads; empty (sorted last) where there is none."""
    return "" if pd.isna(value) else repr(float(value))


def sortable(identifier: str, header: list[str], body: list[list[str]], keys: list[list], numeric: list[bool]) -> str:
    """A table whose columns sort on a click. `header` and `body` are HTML already escaped; `keys[r][c]` is the
    number a numeric column (`numeric[c]`) sorts row r by."""
    head = "".join(f'<th data-type="{"number" if number else "text"}" scope="col"><button type="button">{cell}'
                   "</button></th>" for cell, number in zip(header, numeric))
    rows = []
    for cells, row_keys in zip(body, keys):
        tds = (f'<td data-sort="{_sort_key(key)}">{cell}</td>' if number else f"<td>{cell}</td>"
               for cell, key, number in zip(cells, row_keys, numeric))
        rows.append("<tr>" + "".join(tds) + "</tr>\n")
    return (f'<div class="scroll"><table class="sortable" id="{escape(identifier)}">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{''.join(rows)}</tbody>\n</table></div>\n")


def _links(links: list[Link]) -> str:
    return " ".join(f'<a href="{escape(link.href)}" title="{escape(link.title)}">{escape(link.text)}</a>'
                    for link in links)


def leaderboard_section(name: str, table: pd.DataFrame, records: dict[str, list[Link]],
                        figures: list[tuple[str, str]]) -> Section:
    """A group's leaderboard (the cells of `table.table_cells`), a column of links to each row's records
    (`records`, by method label), its notes and figures."""
    header, body = table_cells(table, "html")
    metrics, plain = table.attrs["metrics"], without_attrs(table)
    keys = [[None, row["seeds"], row["diverged_or_failed"], *(row[m] for m in metrics), row["wall_seconds"],
             row["steps_per_second"], None] for _, row in plain.iterrows()]
    body = [cells + [_links(records.get(method, []))] for cells, method in zip(body, plain["method"])]
    numeric = [False, *[True] * (len(header) - 1), False]
    return Section(name, sortable("table-" + anchor(name), [*header, "records"], body, keys, numeric),
                   table_notes(table, "html"), figures)


def aggregate_section(aggregate: Aggregate, figures: list[tuple[str, str]]) -> Section:
    """A budget's aggregate over tasks (the cells of `table.aggregate_cells`), its notes and figures."""
    header, body = aggregate_cells(aggregate, "html")
    keys = [[None, row["tasks"], row["runs"], row["iqm"], row["improvement"]][:len(header)]
            for _, row in aggregate.table.iterrows()]
    numeric = [False, *[True] * (len(header) - 1)]
    return Section(aggregate.name, sortable("table-" + anchor(aggregate.name), header, body, keys, numeric),
                   aggregate_notes(aggregate, "html"), figures)


def page(title: str, preamble: str, sections: list[Section]) -> str:
    """The whole page: `title`, `preamble` (HTML), a list of the sections linking to each, then the sections."""
    contents = "".join(f'<li><a href="#{anchor(s.title)}">{escape(s.title)}</a></li>' for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n{preamble}"
            f"<nav><h2>Contents</h2><ul>{contents}</ul></nav>\n{''.join(s.html() for s in sections)}"
            f"<script>{SCRIPT}</script>\n</body>\n</html>\n")
