"""Third-party methods, from a file, a module, $STABENCH_PLUGINS and an installed entry point; the example
plugins against their definitions."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stabench import references
from stabench.cell import resolve
from stabench.context import Context
from stabench.methods import METHODS
from stabench.registry import load_plugin
from stabench.runner import Trainer, make_context
from stabench.spectra import analysis_field, dense_jacobian, game_spectrum

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "instance_noise_plugin.py"
HAMILTONIAN = EXAMPLES / "hamiltonian_plugin.py"
TINY = ["--steps", "5", "--set", "batch_size=16", "--set", "latent_dim=4", "--set", "hidden=8", "--json"]


def stabench(*args, env=None, cwd=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "stabench", *args], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=300)


@pytest.fixture
def site(tmp_path):
    """A folder on PYTHONPATH holding an installed distribution with stabench entry points."""
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "demo_plugin.py")
    (folder / "broken_plugin.py").write_text("raise ImportError('needs a package that is not installed')\n")
    info = folder / "demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[stabench.methods]\ninstance-noise = demo_plugin:InstanceNoise\nbroken = broken_plugin\n"
    )
    return folder


def test_plugin_from_a_file_runs(tmp_path):
    result = stabench("run", "--method", "instance-noise", "--task", "mog", "--plugin", str(EXAMPLE),
                      "--out", str(tmp_path), *TINY)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["method"] == "instance-noise" and record["status"] == "completed"
    assert record["config"]["sigma"] == 0.1


def test_plugin_from_a_module_and_from_the_environment(tmp_path):
    folder = tmp_path / "mods"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "my_method.py")
    env = {"PYTHONPATH": str(folder)}
    by_option = stabench("list", "methods", "--verbose", "--plugin", "my_method", env=env)
    assert by_option.returncode == 0 and "instance-noise  (version 1)\n" in by_option.stdout
    by_environment = stabench("list", "methods", "--verbose", env={**env, "STABENCH_PLUGINS": "my_method"})
    assert by_environment.returncode == 0 and "instance-noise  (version 1)\n" in by_environment.stdout


def test_missing_plugin_file_is_one_line(tmp_path):
    result = stabench("list", "methods", "--plugin", str(tmp_path / "nope.py"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"stabench: error: plugin file `{tmp_path / 'nope.py'}` does not exist"


@pytest.mark.slow
def test_entry_point_plugin_runs_and_a_broken_one_only_warns(site, tmp_path):
    env = {"PYTHONPATH": str(site)}
    result = stabench("run", "--method", "instance-noise", "--task", "mog", "--out", str(tmp_path), *TINY, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    assert "broken" not in result.stderr  # loaded lazily: only the plugin asked for is imported

    listing = stabench("list", "methods", "--verbose", env=env)
    assert listing.returncode == 0
    assert "instance-noise  (version 1)\n" in listing.stdout and "gradreg  (version 1)\n" in listing.stdout
    warnings = [line for line in listing.stderr.splitlines() if line]
    assert len(warnings) == 1
    assert warnings[0].startswith("stabench: warning: method plugin `broken` (broken_plugin) failed to load")


# --- the examples against their definitions, loaded in this process as `--plugin FILE` loads them ----------

@pytest.fixture
def example(monkeypatch):
    """Load an example plugin file; what it registered is gone after the test (other tests list every method)."""
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    monkeypatch.setattr(references, "_REFERENCES", dict(references._REFERENCES))
    modules = set(sys.modules)
    yield lambda path: load_plugin(str(path))
    for name in set(sys.modules) - modules:
        if name.startswith("stabench_plugin_"):  # else a later test's load_plugin would find it and not register
            del sys.modules[name]


MOG_TINY = {"batch_size": 16, "latent_dim": 4, "hidden": 8}


def test_instance_noise_without_noise_is_the_plain_gan(example):
    example(EXAMPLE)
    plain, _ = analysis_field(resolve("vanilla", "mog", overrides=MOG_TINY))
    theta = plain.flatten(plain.game.point())
    silent, _ = analysis_field(resolve("instance-noise", "mog", overrides={**MOG_TINY, "sigma": 0}))
    assert torch.equal(silent.at(theta), plain.at(theta))
    noisy, _ = analysis_field(resolve("instance-noise", "mog", overrides=MOG_TINY))
    assert not torch.equal(noisy.at(theta), plain.at(theta))
    assert torch.equal(noisy.at(theta), noisy.at(theta))  # the noise is seeded by the batch


def test_instance_noise_damps_the_dirac_gan_as_mescheder_et_al_derive(example):
    """At (ψ, θ) = (0, 0), J = [[2f''(0)σ²·m, -f'(0)], [f'(0), 0]] with m the batch's mean of (ε² + ε'²)/2,
    about 1: eigenvalues about -σ²/4 ± i√(1/4 - σ⁴/16) for f'(0) = 1/2, f''(0) = -1/4."""
    example(EXAMPLE)
    cell = resolve("instance-noise", "dirac", overrides={"batch_size": 1_000_000})
    assert cell.method_params.sigma == 0.7  # the reference setting the plugin registered
    field_map, equilibrium = analysis_field(cell)
    jacobian = dense_jacobian(field_map, field_map.flatten(equilibrium)).numpy()
    sigma = 0.7
    np.testing.assert_allclose(jacobian[:, 1], [-0.5, 0.0], atol=1e-12)  # exact but for the mean's rounding
    np.testing.assert_allclose(jacobian[1, 0], 0.5, atol=1e-12)
    np.testing.assert_allclose(jacobian[0, 0], -sigma**2 / 2, rtol=1e-2)  # m = 1 ± 0.1 % at this batch
    root = np.sqrt(complex(sigma**4 / 16 - 0.25))
    np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(jacobian)),
                               np.sort_complex(np.array([-sigma**2 / 4 - root, -sigma**2 / 4 + root])), atol=2e-3)


def test_hamiltonian_field_is_the_gradient_of_half_the_squared_plain_field(example):
    example(HAMILTONIAN)
    plain, _ = analysis_field(resolve("vanilla", "lq"))
    hamiltonian, _ = analysis_field(resolve("hamiltonian", "lq"))
    theta = plain.flatten(plain.game.point())  # the initial point: no equilibrium, v ≠ 0

    def half_squared_norm(at):
        return 0.5 * float(plain.at(at).square().sum())

    step, units = 1e-6, torch.eye(len(theta), dtype=theta.dtype)
    gradient = torch.tensor([(half_squared_norm(theta + step * unit) - half_squared_norm(theta - step * unit))
                             / (2 * step) for unit in units], dtype=theta.dtype)
    torch.testing.assert_close(-hamiltonian.at(theta), gradient, rtol=1e-6, atol=1e-8)


def test_a_hamiltonian_training_step_descends_the_hamiltonian(example):
    example(HAMILTONIAN)
    cell = resolve("hamiltonian", "dirac")  # SGD at lr 0.1 from (ψ, θ) = (1, 1)
    field_map, _ = analysis_field(cell)
    start = field_map.flatten(field_map.game.point())
    game = cell.build_game(torch.device("cpu"))
    Trainer(cell, game, make_context(cell, game)).step()
    after = torch.cat([game.discriminator.psi.detach(), game.generator.theta.detach()]).double()
    torch.testing.assert_close(after, start + cell.task_params.lr * field_map.at(start), rtol=1e-6, atol=1e-7)


def test_hamiltonian_equilibrium_jacobian_is_minus_jt_j(example):
    example(HAMILTONIAN)
    plain, equilibrium = analysis_field(resolve("vanilla", "lq"))
    hamiltonian, _ = analysis_field(resolve("hamiltonian", "lq"))
    theta = plain.flatten(equilibrium)
    J = dense_jacobian(plain, theta)
    torch.testing.assert_close(dense_jacobian(hamiltonian, theta), -J.T @ J, rtol=1e-9, atol=1e-12)

    # The Dirac-GAN: J = [[0, -1/2], [1/2, 0]], so -JᵀJ = -I/4.
    cell = resolve("hamiltonian", "dirac")
    game = cell.build_game(torch.device("cpu"))
    spectrum = game_spectrum(cell, game, Context(game, cell.task_params, 0), at_equilibrium=True)
    np.testing.assert_allclose(spectrum.eigenvalues, [-0.25, -0.25], atol=1e-15)
    assert spectrum.field_norm == 0.0
