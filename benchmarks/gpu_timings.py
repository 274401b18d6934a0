"""The GPU goals of issue 15, measured in one go (run by benchmarks/gpu.sh; a benchmark, not a test).

Each line of `<out>/gpu_timings.jsonl` is one measurement, appended as soon as it is made (a run stopped by
its time limit keeps what it measured), and `<out>/gpu_timings.md` is the table so far. Every number is
training seconds (`timing.wall_seconds`: evaluation excluded) unless it says `total`; the single-seed eager
run, today's `stabench run`, is the baseline, measured in the same call on the same device.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import stabench
from stabench.batched import run_seeds
from stabench.methods import METHODS
from stabench.sweep import plan, sweep

QUICK = 20_000  # G steps of a quick mog run


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"


class Report:
    def __init__(self, out: Path, device: str):
        self.out = out
        self.rows: list[dict[str, Any]] = []
        self.device = device_name(device)
        (out / "gpu_timings.jsonl").write_text("")

    def add(self, **row) -> None:
        row = {"device": self.device, **row}
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        with open(self.out / "gpu_timings.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")
        lines = [f"# Issue 15 timings on {self.device}, torch {torch.__version__}", "",
                 "| measurement | method | seeds | steps | training s | total s | steps/s | note |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in self.rows:
            lines.append(f"| {r['what']} | {r.get('method', '')} | {r.get('seeds', '')} | {r.get('steps', '')} | "
                         f"{r.get('train_s', float('nan')):.2f} | {r.get('total_s', float('nan')):.1f} | "
                         f"{r.get('steps_per_s', float('nan')):.1f} | {r.get('note', '')} |")
        (self.out / "gpu_timings.md").write_text("\n".join(lines) + "\n")


def cell_seconds(method, seeds, steps, device, folder, batched):
    """(training seconds, total seconds, records) of `seeds` of a quick mog cell run for `steps`."""
    began = time.perf_counter()
    options = dict(budget="quick", steps=steps, device=device, out=folder, progress=False, spectrum=False,
                   force=True, checkpoints=0)
    if batched:
        records = run_seeds(method, "mog", seeds=seeds, batched=True, **options)
    else:
        records = [stabench.run(method, "mog", seed=seed, **options) for seed in seeds]
    total = time.perf_counter() - began
    return sum(r.timing["wall_seconds"] for r in records) / (1 if not batched else len(records)), total, records


def measure(report, what, method, seeds, steps, device, folder, batched, note=""):
    train, total, records = cell_seconds(method, seeds, steps, device, folder, batched)
    report.add(what=what, method=method, seeds=len(seeds), steps=steps, train_s=train, total_s=total,
               steps_per_s=steps / train if train else float("nan"), status=[r.status for r in records],
               note=note or "; ".join(records[0].notes))
    return train


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dry-run", action="store_true", help="tiny step counts: check that everything runs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, args.device)
    probe, many, sweep_steps = (20, 4, 4) if args.dry_run else (2000, 32, 500)
    folder = Path(tempfile.mkdtemp(prefix="stabench-gpu-"))
    for method in ("vanilla", "gradreg"):
        # The baseline: one seed as `stabench run` trains it today, short, then extrapolated to a quick run.
        eager = measure(report, "1 seed, eager (baseline)", method, [0], probe, args.device, folder / "eager", False)
        report.add(what="1 seed, eager, extrapolated to a quick run", method=method, seeds=1, steps=QUICK,
                   train_s=eager * QUICK / probe, note="linear extrapolation of the line above")
        one = measure(report, "1 seed, stacked", method, [0], probe, args.device, folder / "one", True)
        full = QUICK if not args.dry_run and one * QUICK / probe < 60 else probe
        if full != probe:
            measure(report, "1 seed, stacked, a whole quick run (goal < 20 s)", method, [0], full, args.device,
                    folder / "one", True)
        stacked = measure(report, f"{many} seeds, stacked", method, list(range(many)), probe, args.device,
                          folder / "many", True)
        report.add(what=f"{many} seeds stacked / 1 seed eager (goal <= 2)", method=method, seeds=many, steps=probe,
                   train_s=stacked / eager, note="a ratio of training seconds")
        report.add(what=f"{many} seeds stacked / 1 seed stacked", method=method, seeds=many, steps=probe,
                   train_s=stacked / one, note="a ratio of training seconds")
    methods = ["vanilla", "gradreg", "wgan-gp"] if args.dry_run else METHODS.names()
    seeds = [0, 1] if args.dry_run else list(range(10))
    cells = plan(methods, ["mog"], seeds, budget="quick", steps=sweep_steps, out=folder / "sweep")
    began = time.perf_counter()
    outcome = sweep(cells, device=args.device, spectrum=False, progress=False, spectrum_every=0)
    seconds = time.perf_counter() - began
    report.add(what="quick mog sweep, every method x seeds, short", seeds=len(seeds), steps=sweep_steps,
               total_s=seconds, note=f"{len(methods)} methods; {outcome.line()}; no spectra")
    report.add(what="... extrapolated to quick (goal < 15 min)", seeds=len(seeds), steps=QUICK,
               total_s=seconds * QUICK / sweep_steps,
               note="linear in steps: an upper estimate (start-up counted each time)")


if __name__ == "__main__":
    main()
