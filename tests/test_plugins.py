"""Third-party methods, from a file, a module, $STABENCH_PLUGINS and an installed entry point."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "r1_plugin.py"
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
        "[stabench.methods]\nr1 = demo_plugin:R1\nbroken = broken_plugin\n"
    )
    return folder


def test_plugin_from_a_file_runs(tmp_path):
    result = stabench("run", "--method", "r1", "--task", "mog", "--plugin", str(EXAMPLE),
                      "--out", str(tmp_path), *TINY)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["method"] == "r1" and record["status"] == "completed"
    assert record["config"]["gamma"] == 10.0


def test_plugin_from_a_module_and_from_the_environment(tmp_path):
    folder = tmp_path / "mods"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "my_method.py")
    env = {"PYTHONPATH": str(folder)}
    by_option = stabench("list", "methods", "--plugin", "my_method", env=env)
    assert by_option.returncode == 0 and "r1  (version 1)\n" in by_option.stdout
    by_environment = stabench("list", "methods", env={**env, "STABENCH_PLUGINS": "my_method"})
    assert by_environment.returncode == 0 and "r1  (version 1)\n" in by_environment.stdout


def test_missing_plugin_file_is_one_line(tmp_path):
    result = stabench("list", "methods", "--plugin", str(tmp_path / "nope.py"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"stabench: error: plugin file `{tmp_path / 'nope.py'}` does not exist"


@pytest.mark.slow
def test_entry_point_plugin_runs_and_a_broken_one_only_warns(site, tmp_path):
    env = {"PYTHONPATH": str(site)}
    result = stabench("run", "--method", "r1", "--task", "mog", "--out", str(tmp_path), *TINY, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    assert "broken" not in result.stderr  # loaded lazily: only the plugin asked for is imported

    listing = stabench("list", "methods", env=env)
    assert listing.returncode == 0
    assert "r1  (version 1)\n" in listing.stdout and "gradreg  (version 1)\n" in listing.stdout
    warnings = [line for line in listing.stderr.splitlines() if line]
    assert len(warnings) == 1
    assert warnings[0].startswith("stabench: warning: method plugin `broken` (broken_plugin) failed to load")
