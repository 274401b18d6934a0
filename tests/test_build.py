"""What identifies the code behind a record (its version and commit), and a smoke run that takes seconds."""
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import stabench
from stabench.cell import resolve
from stabench.records import SPECTRUM_FILE, checkout
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


def git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


ROOT = Path(stabench.__file__).resolve().parent.parent
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@needs_git
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="the tests run from an installed copy, not a checkout")
def test_a_record_carries_the_commit_of_the_checkout_it_ran_from(tmp_path):
    record = stabench.run("gradreg", "dirac", budget="smoke", steps=2, out=tmp_path, progress=False)
    assert record.versions["git_commit"] == git(ROOT, "rev-parse", "HEAD")
    assert record.versions["git_dirty"] == bool(git(ROOT, "status", "--porcelain", "--", "stabench", "pyproject.toml"))


@needs_git
def test_the_checkout_is_found_from_the_package_folder_and_its_code_changes_make_it_dirty(tmp_path, monkeypatch):
    package = tmp_path / "clone" / "stabench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.chdir(Path(stabench.__file__).parent)  # another checkout as the current directory changes nothing
    assert checkout(package) == {"git_commit": "none: not run from a git checkout", "git_dirty": None}
    git(package.parent, "init", "-q")
    assert checkout(package) == {"git_commit": "unknown: git exited with 128", "git_dirty": None}  # no commit yet
    git(package.parent, "add", ".")
    git(package.parent, "commit", "-qm", "first")
    assert checkout(package) == {"git_commit": git(package.parent, "rev-parse", "HEAD"), "git_dirty": False}
    (package.parent / "notes.txt").write_text("not code")
    assert checkout(package)["git_dirty"] is False
    (package / "__init__.py").write_text("x = 1\n")
    assert checkout(package)["git_dirty"] is True


def test_a_machine_without_git_says_so_and_still_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    record = stabench.run("gradreg", "dirac", budget="smoke", steps=2, out=tmp_path, progress=False)
    assert record.status == "completed"
    assert {key: record.versions[key] for key in ("git_commit", "git_dirty")} == {
        "git_commit": "unknown: git is not installed", "git_dirty": None}
