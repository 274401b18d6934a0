"""The published web page, on synthetic run records: self-contained, escaped, linked to its records, and (the
slow test) as a real browser shows it."""
import base64
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stabench.publish import publish
from stabench.records import CURVE_FILE, RUN_FILE
from stabench.table import leaderboard, load_runs

SCRIPT_NAME = "<script>alert(1)</script>"
ATTRIBUTE_NAME = '"><img src=x onerror=alert(1)>'
TRAVERSAL_NAME = "../../outside"
DIRECTIONS = {"modes_captured": "max", "high_quality": "max", "kl": "min", "modes_captured_last5": "max",
              "high_quality_last5": "max", "kl_last5": "min"}
MOG = "mog · version 1 · budget quick · 20000 steps"


def write_run(root, method, seed, modes, task="mog", folder_name=None, note=None):
    """A mixture-task run folder as the runner leaves it (run.json, curve.csv); `folder_name` where the
    method's own name cannot be a folder; `note` a text setting (its row label shows it where it varies)."""
    run_id = f"{zlib.crc32(f'{task}{method}{seed}{note}'.encode()):08x}"
    folder = root / task / (folder_name or method) / run_id
    folder.mkdir(parents=True)
    metrics = {"modes_captured": modes, "high_quality": 0.5, "kl": 0.1, "modes_captured_last5": modes,
               "high_quality_last5": 0.5, "kl_last5": 0.1}
    config = {"lr": 1e-4} if note is None else {"lr": 1e-4, "note": note}
    record = {"run_id": run_id, "method": method, "task": task, "task_version": 1, "seed": seed, "budget": "quick",
              "steps_planned": 20000, "config": config, "status": "completed", "metrics": metrics,
              "timing": {"wall_seconds": 10.0, "steps_per_second": 2000.0}, "device": "cpu",
              "versions": {"python": "3.11.7", "torch": "2.3.0", "stabench": "0.2.0"},
              "started_at": f"2026-01-01T00:00:{seed:02d}+0000", "metric_directions": DIRECTIONS}
    (folder / RUN_FILE).write_text(json.dumps(record))
    pd.DataFrame({"step": [0, 100], "wall_seconds": [0.0, 1.0], "modes_captured": [0, modes]}).to_csv(
        folder / CURVE_FILE, index=False)
    return folder


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Four rows on mog (two whose setting is named to break a page), three on grid25, published; the output
    folder (the tests only read it). A method named to break a page or to leave the folder is skipped where
    records are read."""
    tmp_path = tmp_path_factory.mktemp("site")
    runs = tmp_path / "runs"
    for seed in range(5):
        write_run(runs, "vanilla", seed, modes=1 + seed % 3)
        write_run(runs, "gradreg", seed, modes=8)
        write_run(runs, "sga", seed, modes=4, note=SCRIPT_NAME)
        write_run(runs, "sga", seed, modes=6, note=ATTRIBUTE_NAME)
    for seed in range(3):
        write_run(runs, TRAVERSAL_NAME, seed, modes=2, folder_name="traversal")
        for method, modes in (("vanilla", 3), ("gradreg", 24)):
            write_run(runs, method, seed, modes=modes, task="grid25")
    out = tmp_path / "results"
    with pytest.warns(UserWarning, match="skipping run record: .*traversal.*`method` '../../outside' is not a name"):
        publish(runs, out, command="stabench sweep --methods vanilla,gradreg --tasks mog,grid25 --seeds 0-4")
    return out


class Page(HTMLParser):
    """The elements of a page that the tests look at: tags with their attributes, and inline code."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.inline, self._open = [], {"script": [], "style": []}, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in self.inline else None

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open:
            self.inline[self._open].append(data)

    def all(self, tag):
        return [attrs for name, attrs in self.tags if name == tag]


def sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_page_is_self_contained_and_lets_only_its_own_script_and_style_run(published):
    text = (published / "site" / "index.html").read_text()
    page = Page(text)
    assert len(page.all("script")) == 1 and len(page.all("style")) == 1 and not page.all("link")
    assert not page.all("iframe") and not page.all("object")
    (script,), (style,) = page.inline["script"], page.inline["style"]
    (policy,) = [meta["content"] for meta in page.all("meta") if meta.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in policy and f"script-src {sha256(script)}" in policy
    assert f"style-src {sha256(style)}" in policy and "unsafe-inline" not in policy
    assert not re.search(r"https?://|//[a-z]", "".join(a.get("src", "") + a.get("href", "") for _, a in page.tags))
    assert "@import" not in style and "url(" not in style  # no font or picture fetched from anywhere
    for _, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs)  # no inline handler: the script binds its own


def test_what_records_hold_shows_as_text_never_as_markup(published):
    text = (published / "site" / "index.html").read_text()
    assert text.count("<script") == 1 and "<img src=x" not in text and "onerror=alert(1)>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    page = Page(text)
    assert len(page.all("img")) == sum(1 for _, a in page.tags if a.get("src", "").startswith("../figures/"))


def test_each_section_has_a_sortable_table_and_each_row_links_its_records(published):
    text = (published / "site" / "index.html").read_text()
    page = Page(text)
    sections = [attrs["id"] for attrs in page.all("section")]
    assert len(sections) == len(set(sections)) == 3  # the aggregate, grid25, mog
    assert sections[0].startswith("mode-coverage-budget-quick-") and sections[2].startswith("mog-version-1-")
    assert {f"#{s}" for s in sections} <= {a.get("href") for a in page.all("a")}  # the contents link each
    tables = page.all("table")
    assert all(t["class"] == "sortable" for t in tables) and len(tables) == 3
    assert all(h["data-type"] in ("number", "text") for h in page.all("th"))

    links = [a["href"] for a in page.all("a") if a.get("href", "").startswith("../records/")]
    assert len(links) == 5 * 4 + 3 * 2  # one per run: seeds of every row (not the skipped `../../outside`)
    site = published / "site"
    for href in links:
        target = (site / href).resolve()
        assert target.is_file() and target.name == RUN_FILE
        assert (published / "records").resolve() in target.parents  # `../../outside` stays inside
        assert json.loads(target.read_text())["method"] in {"vanilla", "gradreg", "sga"}
    for image in page.all("img"):
        assert (site / image["src"]).is_file()
    assert not (published.parent / "outside").exists()


def test_numbers_sort_by_their_value_and_missing_ones_are_empty(published):
    text = (published / "site" / "index.html").read_text()
    (table,) = leaderboard(load_runs(published / "records"), "mog").values()
    mog = text[text.index('<table class="sortable" id="table-mog-'):]
    mog = mog[:mog.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", mog)[1:]
    header = re.findall(r"<button type=\"button\">(.*?)</button>", mog)
    column = header.index("modes_captured_last5 ↑")
    keys = [re.findall(r'<td(?: data-sort="([^"]*)")?>', row)[column] for row in rows]
    assert [float(key) for key in keys] == pytest.approx(list(table.modes_captured_last5))
    assert header[-1] == "records" and header[0] == "method"


BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)


def browse(tmp_path, *arguments) -> subprocess.CompletedProcess:
    """Headless Chromium on the page; its console messages come on stderr."""
    flags = ["--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr",
             "--v=0", f"--user-data-dir={tmp_path / 'browser-profile'}"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium's sandbox refuses to start as root (a container's CI)
    return subprocess.run([BROWSER, *flags, *arguments], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="no Chromium or Chrome installed (apt-get install chromium)")
def test_a_real_browser_runs_the_page_sorts_it_and_shows_hostile_names_as_text(published, tmp_path):
    index = published / "site" / "index.html"
    (table,) = leaderboard(load_runs(published / "records"), "mog").values()
    text = index.read_text()
    identifier = re.search(r'id="(table-mog-[^"]+)"', text).group(1)
    header = re.findall(r"<button type=\"button\">(.*?)</button>", text[text.index(identifier):])
    column = header.index("modes_captured_last5 ↑")

    shown = browse(tmp_path, "--dump-dom", f"{index.as_uri()}#sort={identifier}:{column}:descending")
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = shown.stdout
    assert 'data-sortable="ready"' in dom  # the script ran under the page's policy
    console = [line for line in shown.stderr.splitlines() if "CONSOLE" in line]
    assert not any("violates" in line or "Uncaught" in line or "Refused" in line for line in console), console
    assert dom.count("<script") == 1 and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    sorted_table = dom[dom.index(f'id="{identifier}"'):]
    sorted_table = sorted_table[:sorted_table.index("</table>")]
    order = re.findall(r"<tr><td>(.*?)</td>", sorted_table)
    expected = table.sort_values("modes_captured_last5", ascending=False, kind="stable").method
    assert [html.unescape(name) for name in order] == list(expected)
    assert 'aria-sort="descending"' in sorted_table

    screenshot = tmp_path / "page.png"
    taken = browse(tmp_path, "--window-size=1280,2400", f"--screenshot={screenshot}", index.as_uri())
    assert taken.returncode == 0 and screenshot.is_file(), taken.stderr[-2000:]
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.size == (1280, 2400)
        pixels = np.asarray(image.convert("L"))
    assert (pixels < 128).mean() > 0.005 and len(np.unique(pixels)) > 50  # text and figures, not a blank page
    kept = os.environ.get("STABENCH_SCREENSHOT")  # where a person wants to look at it
    if kept:
        shutil.copyfile(screenshot, Path(kept))
