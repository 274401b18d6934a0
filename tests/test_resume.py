import csv
import json
from pathlib import Path

import pytest
import torch

import stabench
from stabench import resume, sweep
from stabench.records import CURVE_FILE, RUN_FILE, read_state

TINY = {"batch_size": 32, "latent_dim": 8, "hidden": 16}


def run_mog(out, method, **options):
    return stabench.run(method, "mog", seed=3, budget="smoke", steps=300, overrides=TINY, out=out, progress=False,
                        spectrum=False, **options)


def curve_without_clock(folder):
    with open(Path(folder) / CURVE_FILE) as file:
        return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in csv.DictReader(file)]


def interrupted_then_resumed(out, monkeypatch, interrupt_at, method, stop):
    monkeypatch.setattr(resume, "SNAPSHOT_SECONDS", 0.0)  # a snapshot at every evaluation
    with interrupt_at(stop), pytest.raises(KeyboardInterrupt):
        run_mog(out, method)
    (snapshot,) = (out / ".partial").glob("*.pt")
    stopped = json.loads(next(out.glob(f"mog/{method}/*/{RUN_FILE}")).read_text())
    assert stopped["status"] == "interrupted"
    return run_mog(out, method), snapshot


# lookahead keeps slow weights in its method state; wgan-gp draws its own noise; both step Adam.
@pytest.mark.parametrize("method", ["lookahead", "wgan-gp"])
def test_a_resumed_run_ends_exactly_where_an_unstopped_run_ends(tmp_path, monkeypatch, interrupt_at, method):
    whole = run_mog(tmp_path / "whole", method, checkpoints=1)
    resumed, snapshot = interrupted_then_resumed(tmp_path / "stopped", monkeypatch, interrupt_at, method, stop=177)
    assert resumed.status == whole.status == "completed"
    assert "resumed at step 150 from the snapshot of an interrupted attempt" in resumed.notes
    assert curve_without_clock(resumed.path) == curve_without_clock(whole.path)
    assert resumed.metrics == whole.metrics
    assert resumed.timing["steps"] == 300
    finished, reference = read_state(Path(resumed.path)), read_state(Path(whole.path))
    for network in ("discriminator", "generator"):
        for name, tensor in reference[network].items():
            assert torch.equal(finished[network][name], tensor), name
    assert not snapshot.exists()  # a finished run leaves no snapshot behind


def test_a_snapshot_is_only_resumed_under_the_settings_it_was_taken_with(tmp_path, monkeypatch, interrupt_at):
    out = tmp_path / "runs"
    monkeypatch.setattr(resume, "SNAPSHOT_SECONDS", 0.0)
    with interrupt_at(120), pytest.raises(KeyboardInterrupt):
        run_mog(out, "vanilla", threads=1)
    record = run_mog(out, "vanilla", threads=2)
    assert record.status == "completed" and not any("resumed" in note for note in record.notes)
    assert [row["step"] for row in curve_without_clock(record.path)][:2] == ["0", "50"]


def test_a_sweep_cell_resumes_its_interrupted_attempt(tmp_path, monkeypatch, interrupt_at):
    # the sweep trains with force=True (it has skipped the finished cells itself): that must not start over
    monkeypatch.setattr(resume, "SNAPSHOT_SECONDS", 0.0)
    (cell,) = sweep.plan(["vanilla"], ["mog"], [3], budget="smoke", overrides=TINY, out=tmp_path)
    options = sweep.CellOptions(device="cpu", spectrum=False)
    with interrupt_at(120), pytest.raises(KeyboardInterrupt):
        sweep.run_cell(cell, options)
    assert sweep.run_cell(cell, options)[1:] == ("completed", None)
    record = json.loads((cell.directory / RUN_FILE).read_text())
    assert record["notes"] == ["resumed at step 100 from the snapshot of an interrupted attempt"]
    assert not list((tmp_path / ".partial").iterdir())


def test_an_unreadable_snapshot_means_training_from_the_start(tmp_path):
    snapshots = resume.Snapshots(tmp_path / "cell.pt", {"threads": 1})
    snapshots.path.write_bytes(b"not a snapshot")
    assert snapshots.load() is None
    snapshots.save({"step": 50})
    assert snapshots.load() == {"step": 50}
    assert resume.Snapshots(tmp_path / "cell.pt", {"threads": 2}).load() is None
    assert [path.name for path in tmp_path.iterdir()] == ["cell.pt"]  # no temporary file left


def test_an_interrupted_run_says_the_same_command_resumes_and_from_which_step(invoke, tmp_path, monkeypatch,
                                                                              interrupt_at):
    monkeypatch.setattr(resume, "SNAPSHOT_SECONDS", 0.0)
    command = ["run", "--method", "vanilla", "--task", "mog", "--budget", "smoke", "--no-spectrum", "--out",
               str(tmp_path), *[part for key, value in TINY.items() for part in ("--set", f"{key}={value}")]]
    with interrupt_at(120):
        result = invoke(*command)
    (folder,) = tmp_path.glob("mog/vanilla/*")
    assert result.exit_code == 130
    assert result.output.splitlines()[-1] == (f"stabench: interrupted; the record is at {folder}; "
                                              "the same command resumes from step 100")
    result = invoke(*command)
    assert result.exit_code == 0 and "vanilla on mog, seed 0, budget smoke: completed" in result.output
    assert "resumed at step 100" in json.loads((folder / RUN_FILE).read_text())["notes"][0]
