"""Loggers: what a logger receives and when, TensorBoard event files and W&B offline runs read back, a
failing logger costing a warning and not the run, missing extras in one line, sweeps and batched seeds."""
from __future__ import annotations

import csv
import glob
import json
import sys
import warnings
from pathlib import Path

import pytest
from matplotlib.image import imread

import stabench
from stabench import batched
from stabench import sweep as sweeps
from stabench.records import CURVE_FILE, SAMPLES_FILE, SPECTRUM_FILE

LQ = dict(budget="smoke", steps=100, overrides={"batch_size": 16}, progress=False)  # evaluated at 0, 50, 100


def curve_of(record) -> list[dict[str, float]]:
    with open(record.path / CURVE_FILE, newline="") as file:
        return [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(file)]


class Recorder(stabench.Logger):
    """Keeps every call it gets, in order, in `RECORDED` (one list per run)."""

    name = "test-recorder"
    takes_pictures = True
    RECORDED: list[list[tuple]] = []

    def start(self, run):
        self.calls = [("start", run)]
        Recorder.RECORDED.append(self.calls)

    def metrics(self, step, values):
        self.calls.append(("metrics", step, dict(values)))

    def pictures(self, step, pictures):  # the files exist while the logger is called
        self.calls.append(("pictures", step, {key: imread(path).shape for key, path in pictures.items()}))

    def finish(self, status, metrics):
        self.calls.append(("finish", status, dict(metrics)))


@pytest.fixture
def recorder():
    Recorder.RECORDED.clear()
    logger = stabench.register_logger(Recorder())
    yield Recorder.RECORDED
    stabench.unregister_logger(logger.name)


def test_a_logger_gets_every_evaluation_then_the_pictures_then_the_end(recorder, tmp_path):
    record = stabench.run("vanilla", "lq", out=tmp_path, loggers=["test-recorder"], **LQ)
    [calls] = recorder
    run = calls[0][1]
    assert (run.method, run.task, run.seed, run.run_id, run.out) == ("vanilla", "lq", 0, record.run_id, tmp_path)
    assert run.name == f"lq/vanilla/seed0-{record.run_id}"
    assert run.config["batch_size"] == 16
    curve = curve_of(record)
    assert [call[1] for call in calls[1:4]] == [0, 50, 100]
    assert [call[2] for call in calls[1:4]] == [{k: v for k, v in row.items() if k != "step"} for row in curve]
    kind, step, shapes = calls[4]
    assert (kind, step, set(shapes)) == ("pictures", 100, {"samples", "spectrum"})
    assert shapes["samples"] == imread(record.path / SAMPLES_FILE).shape
    assert (record.path / SPECTRUM_FILE).is_file()
    assert calls[5] == ("finish", "completed", record.metrics)
    assert len(calls) == 6


def test_tensorboard_events_read_back_and_the_curve_csv_is_the_same_with_loggers(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = stabench.run("vanilla", "lq", out=tmp_path / "logged", loggers=["tensorboard", "csv"], **LQ)
    plain = stabench.run("vanilla", "lq", out=tmp_path / "plain", **LQ)

    def without_wall_seconds(record):
        lines = (record.path / CURVE_FILE).read_text().splitlines()
        column = lines[0].split(",").index("wall_seconds")
        return [[cell for i, cell in enumerate(line.split(",")) if i != column] for line in lines]

    assert without_wall_seconds(logged) == without_wall_seconds(plain)
    assert logged.metrics == plain.metrics

    folder = tmp_path / "logged" / "tensorboard" / "lq" / "vanilla" / f"seed0-{logged.run_id}"
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    curve = curve_of(logged)
    assert set(events.Tags()["scalars"]) == set(curve[0]) - {"step"}
    for tag in events.Tags()["scalars"]:
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [row["step"] for row in curve]
        assert [s.value for s in scalars] == pytest.approx([row[tag] for row in curve], rel=1e-6)  # float32
    samples = imread(logged.path / SAMPLES_FILE)
    [picture] = events.Images("samples")
    assert (picture.step, picture.height, picture.width) == (100, samples.shape[0], samples.shape[1])
    assert [image.step for image in events.Images("spectrum")] == [100]


def wandb_records(file: Path):
    """The protobuf records of a W&B run file: a LevelDB log (32 KiB blocks; 7-byte headers of crc, length,
    type) after a 7-byte `:W&B` header."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, pending = file.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4) and pending:  # full, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_wandb_offline_run_reads_back(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    record = stabench.run("vanilla", "lq", out=tmp_path, loggers=["wandb"], **LQ)
    wandb.teardown()  # the W&B service writes the run file on its own time; this waits for it, as exiting does

    [run_file] = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    history, summary, exits, run = [], {}, [], None
    for item in wandb_records(Path(run_file)):
        kind = item.WhichOneof("record_type")
        if kind == "run":
            run = item.run
        elif kind == "history":
            history.append({entry.key or "/".join(entry.nested_key): json.loads(entry.value_json)
                            for entry in item.history.item})
        elif kind == "summary":
            summary |= {entry.key: json.loads(entry.value_json) for entry in item.summary.update}
        elif kind == "exit":
            exits.append(item.exit.exit_code)
    assert (run.display_name, run.run_group) == (f"lq/vanilla/seed0-{record.run_id}", "lq/vanilla")
    config = {entry.key: json.loads(entry.value_json) for entry in run.config.update}
    assert (config["seed"], config["run_id"], config["batch_size"]) == (0, record.run_id, 16)
    curve = curve_of(record)
    assert [row["_step"] for row in history] == [row["step"] for row in curve]
    assert [row["kl"] for row in history] == [row["kl"] for row in curve]
    assert history[-1]["samples/_type"] == history[-1]["spectrum/_type"] == "image-file"
    media = Path(run_file).parent / "files"
    assert (media / history[-1]["samples/path"]).is_file() and (media / history[-1]["spectrum/path"]).is_file()
    assert summary["status"] == "completed" and summary["kl"] == record.metrics["kl"]
    assert exits == [0]


class Flaky(stabench.Logger):
    """Raises at its second evaluation (or at `start`, with `at_start`)."""

    name = "flaky"

    def __init__(self, at_start: bool = False):
        self.at_start, self.seen = at_start, 0

    def start(self, run):
        if self.at_start:
            raise ConnectionError("no server")

    def metrics(self, step, values):
        self.seen += 1
        if self.seen == 2:
            raise OSError("disk full")


@pytest.mark.parametrize("at_start, hook, reason", [(False, "metrics", "OSError: disk full"),
                                                    (True, "start", "ConnectionError: no server")])
def test_a_failing_logger_costs_one_warning_not_the_run(recorder, tmp_path, at_start, hook, reason):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = stabench.run("vanilla", "lq", out=tmp_path, loggers=[Flaky(at_start), "test-recorder"], **LQ)
    said = [str(w.message) for w in caught if "logger `flaky`" in str(w.message)]
    assert said == [f"logger `flaky` failed in `{hook}` ({reason}); lq/vanilla/seed0-{record.run_id} goes on "
                    "without it"]
    assert record.status == "completed" and len(curve_of(record)) == 3
    assert [call[0] for call in recorder[0]] == ["start", "metrics", "metrics", "metrics", "pictures", "finish"]


@pytest.mark.parametrize("logger, module, says", [
    ("tensorboard", "torch.utils.tensorboard", "the `tensorboard` logger needs TensorBoard: pip install "
                                               "'stabench[tensorboard]'"),
    ("wandb", "wandb", "the `wandb` logger needs Weights & Biases: pip install 'stabench[wandb]'"),
])
def test_a_missing_extra_is_one_line_before_anything_trains(invoke, tmp_path, monkeypatch, logger, module, says):
    monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    result = invoke("run", "--method", "vanilla", "--task", "lq", "--budget", "smoke", "--logger", logger)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"stabench: error: {says}"
    assert not (tmp_path / "runs").exists()


def test_an_unknown_logger_gets_a_suggestion(invoke):
    result = invoke("run", "--method", "vanilla", "--task", "lq", "--logger", "tensorbord")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("stabench: error: unknown logger `tensorbord`. Did you mean `tensorboard`? "
                                     "See `stabench list loggers`.")


def test_list_loggers(invoke):
    result = invoke("list", "loggers")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == ["csv", "tensorboard", "wandb"]


def test_a_sweep_logs_every_cell_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cells = sweeps.plan(["vanilla"], ["lq"], [0, 1], budget="smoke", steps=50, overrides={"batch_size": 16},
                        out=tmp_path)
    report = sweeps.sweep(cells, workers=2, spectrum=False, progress=False, loggers=["tensorboard"])
    assert report.counts["completed"] == 2
    for cell in cells:
        events = EventAccumulator(str(tmp_path / "tensorboard" / "lq" / "vanilla" / f"seed{cell.seed}-{cell.run_id}"))
        events.Reload()
        assert [s.step for s in events.Scalars("kl")] == [0, 50]


def test_batched_seeds_log_each_seed_as_its_own_run(recorder, tmp_path):
    records = batched.run_seeds("vanilla", "mog", seeds=[0, 1], budget="smoke", steps=20,
                                overrides={"batch_size": 16, "latent_dim": 4, "hidden": 8}, out=tmp_path,
                                progress=False, spectrum=False, batched=True, loggers=["test-recorder"])
    assert [calls[0][1].seed for calls in recorder] == [0, 1]
    for calls, record in zip(recorder, records):
        metrics = [call for call in calls if call[0] == "metrics"]
        assert [{"step": step, **values} for _, step, values in metrics] == curve_of(record)
        assert calls[-1] == ("finish", "completed", record.metrics)
        assert [call[0] for call in calls if call[0] == "pictures"] == ["pictures"]  # the samples, no spectrum
