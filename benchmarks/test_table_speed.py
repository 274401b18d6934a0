"""Seconds to tabulate records with many metrics (a plugin task may declare thousands).

Run with `python -m pytest benchmarks/test_table_speed.py`; before the fix 1,000 metrics took about 26 s and
3,000 over 300 s (pandas copied the table's metadata on every column read).
"""
import json

import pytest

from stabench.table import load_runs, render


def write_records(root, metrics: int):
    values = {f"m{index}": index / metrics for index in range(metrics)}
    for seed in range(3):
        folder = root / "lq" / "vanilla" / f"run{seed}"
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({
            "run_id": f"run{seed}", "method": "vanilla", "task": "lq", "task_version": 1, "seed": seed,
            "budget": "quick", "steps_planned": 100, "config": {}, "status": "completed", "metrics": values,
            "metric_directions": {name: "max" for name in values}, "timing": {"wall_seconds": 1.0}}))


@pytest.mark.parametrize("metrics", [1000, 3000])
def test_tabulating_many_metrics(benchmark, tmp_path, metrics):
    write_records(tmp_path, metrics)
    benchmark.extra_info["metrics"] = metrics
    table = benchmark.pedantic(lambda: render(load_runs(tmp_path), fmt="md"), rounds=1, iterations=1)
    assert f"m{metrics - 1} ↑" in table
