"""Issue 41, records and publishing: strict record reading, names checked where they enter, no control
character or linked file reaching a reader, and a publication swapped in whole (one test per case found)."""
import json
import os
import re
import signal
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import pandas as pd
import pytest

import stabench
from stabench.errors import StabenchError
from stabench.methods import METHODS
from stabench.methods.vanilla import Vanilla
from stabench.publish import _recover, publish
from stabench.recipes import recipes, register_recipe
from stabench.records import CURVE_FILE, RUN_FILE
from stabench.table import csv_text, escape_csv, escape_latex, escape_markdown, load_runs, render
from stabench.tasks import TASKS

RESULTS = Path(__file__).resolve().parent.parent / "results" / "records"


def record_text(method="vanilla", seed=0, task="lq", **fields) -> tuple[str, str]:
    """(run_id, run.json text) of a finished lq-like run, without training."""
    run_id = f"{zlib.crc32(f'{task}{method}{seed}{sorted(fields.items())}'.encode()):08x}"
    record = {"run_id": run_id, "method": method, "task": task, "task_version": 1, "seed": seed, "budget": "quick",
              "steps_planned": 100, "config": {"lr": 1e-4}, "status": "completed",
              "metrics": {"distance": 0.1 * (seed + 1)}, "timing": {"wall_seconds": 1.0, "steps_per_second": 100.0},
              "device": "cpu", "threads": 1, "started_at": f"2026-01-01T00:00:{seed:02d}+0000",
              "metric_directions": {"distance": "min"}} | fields
    return run_id, json.dumps(record)


def write_record(root, method="vanilla", seed=0, task="lq", text=None, folder=None, changes=None, **fields) -> Path:
    """A record folder as the runner leaves it (run.json, curve.csv); `changes` replace fields of its run.json
    (the folder stays where `method`, `seed` and `task` put it), `text` its whole content."""
    run_id, made = record_text(method, seed, task, **fields)
    made = json.dumps(json.loads(made) | (changes or {}))
    directory = Path(root) / task / (folder or method) / run_id
    directory.mkdir(parents=True)
    (directory / RUN_FILE).write_text(made if text is None else text)
    pd.DataFrame({"step": [0, 100], "distance": [1.0, 0.1]}).to_csv(directory / CURVE_FILE, index=False)
    return directory


def good_runs(root) -> list[Path]:
    return [write_record(root, method, seed) for method in ("vanilla", "gradreg") for seed in (0, 1)]


def skipped(root, bad: Path) -> pd.DataFrame:
    """`load_runs(root)`, checked to warn once about `bad`'s run.json and to keep every other record."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = load_runs(root)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith(f"skipping run record: {bad / RUN_FILE}"), messages
    assert len(runs) == 4
    return runs


# --- 5. strict JSON: NaN and infinities are never read ----------------------------------------------

@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "-1e400"])
def test_nan_and_infinity_in_a_record_are_refused_with_one_warning(tmp_path, number):
    good_runs(tmp_path)
    _, text = record_text("sga", 0)
    bad = write_record(tmp_path, "sga", 0, text=text.replace('"distance": 0.1', f'"distance": {number}'))
    runs = skipped(tmp_path, bad)
    table = render(runs, fmt="md")
    assert "sga" not in table and "inf" not in table.lower() and "nan" not in table.lower()


# --- 6. one record never stops `table` or `publish`, and many metrics are fast ------------------------

HOSTILE_JSON = {
    "a 400-digit number": lambda text: text.replace('"distance": 0.1', '"distance": 1' + "0" * 399),
    "a 5,000-digit number": lambda text: text.replace('"seed": 0', '"seed": 1' + "0" * 4999),
    "100,000 levels of nesting": lambda text: text[:-1] + ', "data": {"deep": ' + "[" * 100_000 + "]" * 100_000 + "}}",
    "a 256-character method name": lambda text: text.replace('"method": "sga"', '"method": "' + "m" * 256 + '"'),
    "an oversized file": lambda text: text[:-1] + ', "notes": ["' + "x" * (20 << 20) + '"]}',
}


@pytest.mark.parametrize("damage", list(HOSTILE_JSON), ids=list(HOSTILE_JSON))
def test_a_hostile_record_is_skipped_and_never_stops_table_or_publish(tmp_path, damage):
    good_runs(tmp_path / "runs")
    _, text = record_text("sga", 0)
    bad = write_record(tmp_path / "runs", "sga", 0, text=HOSTILE_JSON[damage](text), folder="sga")
    runs = skipped(tmp_path / "runs", bad)
    assert "gradreg" in render(runs, fmt="md")
    if damage == "a 256-character method name":
        with pytest.warns(UserWarning, match="skipping run record"):
            written = publish(tmp_path / "runs", tmp_path / "out")
        assert all(path.exists() for path in written)


def test_a_thousand_metrics_are_all_tabulated(tmp_path):
    good_runs(tmp_path)  # how long it takes is measured in benchmarks/test_table_speed.py
    metrics = {f"m{index}": index / 1000 for index in range(1000)}
    write_record(tmp_path, "sga", 0, metrics=metrics, metric_directions={name: "max" for name in metrics})
    table = render(load_runs(tmp_path), fmt="md")
    assert "m999 ↑" in table and "| sga | 1 | 0% |" in table


# --- 11. names are checked where they enter: registration and reading ---------------------------------

BAD_NAMES = ["../../evil", "/abs", "a\x00b", "", ".", "..", ".hidden", "Vanilla", "m" * 65, "evil\n# heading",
             "x\r=cmd|' /C calc'!A0", "bell\x07", "esc\x1b[31m", "a/b", "a\\b", "sp ace"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_registration_refuses_a_name_outside_the_rule_in_one_line(name):
    with pytest.raises(StabenchError, match="name") as refused:
        METHODS.register(Vanilla(name, "a plugin"))
    assert "\n" not in str(refused.value) and "\x00" not in str(refused.value)
    assert name not in METHODS._entries
    lq = type(TASKS.get("lq"))
    with pytest.raises(StabenchError, match="name"):
        TASKS.register(type("Plugin", (lq,), {"name": name})())
    with pytest.raises(StabenchError, match="name"):
        register_recipe(name, "mog", methods={"vanilla": {}}, source="a paper")
    assert name not in [recipe.name for recipe in recipes()]


@pytest.mark.parametrize("name", ["Paper", "long run", "../x"])
def test_a_budget_name_outside_the_rule_is_refused_where_it_is_registered(name):
    """Budgets are names in records too: a plugin's budget that reading would refuse is refused up front."""
    lq = type(TASKS.get("lq"))
    budgets = {name: stabench.Budget(steps=2, eval_every=1)}
    with pytest.raises(StabenchError, match="budget name"):
        TASKS.register(type("Plugin", (lq,), {"name": "lq-budgets", "budgets": budgets})())
    with pytest.raises(StabenchError, match="budget name"):
        register_recipe("budgets", "mog", methods={"vanilla": {}}, source="a paper", budgets=budgets)
    assert "lq-budgets" not in TASKS._entries and "budgets" not in [recipe.name for recipe in recipes()]


@pytest.mark.parametrize("field", ["method", "task", "recipe", "budget", "run_id"])
@pytest.mark.parametrize("name", ["../../evil", "x\r=cmd", "evil\n# heading", "bell\x07\x1b\x00"])
def test_a_record_whose_name_breaks_the_rule_is_skipped_with_one_warning(tmp_path, field, name):
    good_runs(tmp_path)
    bad = write_record(tmp_path, "sga", 0, changes={field: name})
    skipped(tmp_path, bad)


def test_built_in_names_and_the_published_records_pass_the_rule():
    from stabench.names import valid_name

    budgets = {budget for task in TASKS for budget in task.budgets}
    for name in [*METHODS.names(), *TASKS.names(), *(recipe.name for recipe in recipes()), *budgets]:
        assert valid_name(name), name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one published record is skipped
        runs = load_runs(RESULTS)
    assert len(runs) == len(list(RESULTS.rglob(RUN_FILE))) > 800


# --- 4, 12. no control character reaches a reader ------------------------------------------------------

CONTROL = "x\r=cmd|' /C calc'!A0\n# injected\x1b[31m\x07\x00"


def test_escapers_leave_no_control_character_and_no_formula_after_a_carriage_return():
    for escaped in (escape_csv(CONTROL), escape_markdown(CONTROL), escape_latex(CONTROL)):
        assert not re.search(r"[\x00-\x1f\x7f-\x9f]", escaped), repr(escaped)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", stabench.site.escape(CONTROL))  # HTML: \n is a space
    text = csv_text(pd.DataFrame({"method": [CONTROL, "\r=1+1", "=2"], "mean": [1.0, 2.0, 3.0]}))
    cells = [cell for line in re.split(r"\r\n|\r|\n", text) for cell in line.split(",")]
    assert not any(cell.lstrip('"').startswith(("=", "+", "@")) for cell in cells), text


def test_control_characters_in_what_a_record_holds_reach_no_table_or_published_file(tmp_path):
    runs = tmp_path / "runs"
    good_runs(runs)
    for seed in (0, 1):  # two settings of sga: its row labels show the setting
        write_record(runs, "sga", seed, config={"lr": 1e-4, "note": CONTROL if seed else "plain"})
    for fmt in ("md", "html", "latex", "csv"):
        text = render(load_runs(runs), fmt=fmt)
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), (fmt, text)
        assert not re.search(r"^\s*#+ injected", text, re.M) and not re.search(r"^'?=cmd", text, re.M)
    publish(runs, tmp_path / "out")
    for file in (tmp_path / "out").rglob("*"):
        if file.suffix in (".md", ".csv", ".html", ".txt"):
            text = file.read_text()
            assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), file
            assert not re.search(r"^\s*#+ injected", text, re.M), file


# --- 3. publish never follows a link -----------------------------------------------------------------

def test_publish_copies_no_linked_file_and_warns_about_each(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the secret\n")
    runs = tmp_path / "runs"
    first, second, *_ = good_runs(runs)
    (first / CURVE_FILE).unlink()
    (first / CURVE_FILE).symlink_to(secret)
    elsewhere = write_record(tmp_path / "elsewhere", "sga", 0)
    linked = runs / "lq" / "sga" / elsewhere.name
    linked.mkdir(parents=True)
    (linked / RUN_FILE).symlink_to(elsewhere / RUN_FILE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        publish(runs, tmp_path / "out")
    messages = [str(w.message) for w in caught]
    assert any(f"skipping {first / CURVE_FILE}: a link" in m for m in messages), messages
    assert any(f"skipping {linked / RUN_FILE}: a link" in m for m in messages), messages
    published = list((tmp_path / "out").rglob("*"))
    assert not any(path.is_symlink() for path in published)
    assert not any("the secret" in path.read_text(errors="replace") for path in published if path.is_file()
                   and path.suffix != ".png")
    assert set(load_runs(tmp_path / "out" / "records").method) == {"vanilla", "gradreg"}
    assert "sga" not in (tmp_path / "out" / "LEADERBOARD.md").read_text()


# --- 13. an interrupted publish leaves the old publication whole ------------------------------------------

def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("stage", ["page", "leaderboard_section"])
def test_an_interrupted_publish_leaves_the_old_publication_whole(tmp_path, monkeypatch, stage):
    runs, out = tmp_path / "runs", tmp_path / "out"
    good_runs(runs)
    publish(runs, out)
    before, entries = snapshot(out), sorted(os.listdir(out))
    write_record(runs, "sga", 0)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(f"stabench.publish.{stage}", stop)
    with pytest.raises(KeyboardInterrupt):
        publish(runs, out)
    assert snapshot(out) == before and sorted(os.listdir(out)) == entries  # and nothing left aside
    monkeypatch.undo()
    publish(runs, out)
    assert "sga" in (out / "LEADERBOARD.md").read_text() and "sga" in set(load_runs(out / "records").method)
    assert not [name for name in os.listdir(out) if name.startswith(".")]


KILLED_MID_SWAP = """
import os, signal, sys
import stabench.publish as publish

swap, replace = publish._swap, os.replace


def killing_swap(build, to):
    moved = []

    def replace_then_die(source, target):
        replace(source, target)
        moved.append(target)
        if len(moved) == 4:  # LEADERBOARD.md and leaderboard.csv set aside and replaced: then kill -9
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace_then_die
    swap(build, to)


publish._swap = killing_swap
publish.publish(sys.argv[1], sys.argv[2])
"""


def test_a_publish_killed_mid_swap_is_finished_by_the_next(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    good_runs(runs)
    publish(runs, out)
    write_record(runs, "sga", 0)
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_SWAP, str(runs), str(out)], capture_output=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "sga" in (out / "LEADERBOARD.md").read_text() and "sga" not in set(load_runs(out / "records").method)
    _recover(out)  # what the next publish does first
    assert "sga" in set(load_runs(out / "records").method) and "sga" in (out / "site" / "index.html").read_text()
    assert "sga" in (out / "LEADERBOARD.md").read_text()
    assert not [name for name in os.listdir(out) if name.startswith(".")]


def test_publish_keeps_what_else_lies_in_its_folder(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    good_runs(runs)
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "mine.txt").write_text("kept")
    (out / "README.md").write_text("kept")
    publish(runs, out)
    publish(runs, out)
    assert (out / "notes" / "mine.txt").read_text() == (out / "README.md").read_text() == "kept"
    assert (out / "LEADERBOARD.md").is_file() and (out / "site" / "index.html").is_file()


# --- 15. publish --to that cannot be written; Ctrl-C in table and publish; impossible values -----------

@pytest.mark.parametrize("where", ["under a file", "a file"])
def test_publish_to_a_folder_that_cannot_be_made_is_one_line(tmp_path, invoke, where):
    good_runs(tmp_path / "runs")
    (tmp_path / "file").write_text("not a folder")
    to = tmp_path / "file" / "out" if where == "under a file" else tmp_path / "file"
    result = invoke("publish", "--results", str(tmp_path / "runs"), "--to", str(to))
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
    assert result.output.startswith(f"stabench: error: cannot publish to `{to}`"), result.output
    assert (tmp_path / "file").read_text() == "not a folder"


def test_publish_to_a_folder_it_may_not_write_is_one_line(tmp_path, invoke, monkeypatch):
    good_runs(tmp_path / "runs")
    to = tmp_path / "locked" / "out"
    make = Path.mkdir

    def refused(path, *args, **kwargs):  # a read-only folder, as root (whom permissions never stop) sees it too
        if tmp_path / "locked" in [path, *path.parents]:
            raise PermissionError(13, "Permission denied", str(path))
        return make(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused)
    result = invoke("publish", "--results", str(tmp_path / "runs"), "--to", str(to))
    assert result.exit_code == 2 and result.output == f"stabench: error: cannot publish to `{to}`: Permission denied\n"


@pytest.mark.parametrize("command, stopped", [("table", "stabench.table.render"),
                                              ("publish", "stabench.publish.page")])
def test_ctrl_c_in_table_and_publish_says_what_stopped_and_exits_130(tmp_path, invoke, monkeypatch, command,
                                                                       stopped):
    good_runs(tmp_path / "runs")

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stopped, stop)
    extra = ["--to", str(tmp_path / "out")] if command == "publish" else []
    result = invoke(command, "--results", str(tmp_path / "runs"), *extra)
    assert result.exit_code == 130, result.output
    assert result.output.startswith(f"stabench: {command} interrupted") and "Aborted!" not in result.output


@pytest.mark.parametrize("fields", [{"seed": -1}, {"seed": 2**32}, {"threads": -3}, {"threads": 0}])
def test_impossible_seeds_and_threads_are_skipped_with_one_warning(tmp_path, fields):
    good_runs(tmp_path)
    bad = write_record(tmp_path, "sga", 0, changes=fields)
    skipped(tmp_path, bad)


def test_a_record_of_a_future_task_version_is_tabulated_with_a_warning_naming_it(tmp_path):
    good_runs(tmp_path)
    future = write_record(tmp_path, "sga", 0, task_version=TASKS.get("lq").version + 1)
    with pytest.warns(UserWarning, match=re.escape(f"{future / RUN_FILE}: task `lq` version 2 is newer")):
        runs = load_runs(tmp_path)
    assert "sga" in set(runs.method) and "lq · version 2" in render(runs, fmt="md")
