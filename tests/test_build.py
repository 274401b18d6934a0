"""What identifies the code behind a record (its version and commit), and a smoke run that takes seconds."""
from pathlib import Path

import torch

import stabench
from stabench.cell import resolve
from stabench.records import SPECTRUM_FILE
from stabench.runner import parameter_count
from stabench.spectra import DENSE_LIMIT

TINY = {"batch_size": 16, "latent_dim": 4, "hidden": 8}


def test_a_smoke_run_of_a_large_game_skips_the_arnoldi_spectrum_and_says_so(tmp_path):
    larger = {"hidden": 48, "latent_dim": 4}
    record = stabench.run("gradreg", "mog", budget="smoke", steps=2, out=tmp_path, progress=False, overrides=larger)
    size = parameter_count(resolve("gradreg", "mog", overrides=larger).build_game(torch.device("cpu")))
    assert record.status == "completed" and size > DENSE_LIMIT
    assert record.spectrum == {"skipped": f"the smoke budget takes no Arnoldi spectrum ({size} parameters, more than "
                                          f"the {DENSE_LIMIT} of a dense one); run `stabench spectrum --at RUN_DIR`"}
    assert not (Path(record.path) / SPECTRUM_FILE).exists()


def test_a_smoke_run_of_a_small_game_keeps_its_dense_spectrum(tmp_path):
    record = stabench.run("gradreg", "mog", budget="smoke", steps=2, out=tmp_path, progress=False, overrides=TINY)
    assert record.spectrum["solver"] == "dense" and record.spectrum["n_parameters"] <= DENSE_LIMIT
    assert record.spectrum["complete"]
    assert (Path(record.path) / SPECTRUM_FILE).is_file()
