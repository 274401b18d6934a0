"""Launch overhead on CUDA: a training iteration recorded once as a CUDA graph, then replayed.

The small games spend their GPU time launching hundreds of tiny kernels per iteration; a graph launches
them as one. A graph replays what the iteration did to memory, so only a method that says it is
`capturable` (the `Method` docstring) is recorded: its iteration reads nothing that changes between
iterations besides the parameters, the optimizers' state (kept on the GPU: `capturable` optimizers)
and module buffers. The batches are drawn eagerly, from each seed's own generator as in a single run,
and copied into the graph's inputs before each replay. Elsewhere (the CPU, any other method, a capture
that fails) the iteration runs as it is.
"""
from __future__ import annotations

import warnings

import torch

from stabench.methods.base import vouches

WARM_UP = 3  # eager iterations on a side stream before recording (lazy optimizer state, library handles)


class Eager:
    """The trainer's own iteration."""

    note = ""

    def __init__(self, trainer):
        self.trainer = trainer

    def __call__(self):
        return self.trainer.step()


def iteration(trainer, device: torch.device):
    """A callable running one training iteration of `trainer` (returning its last batch): a replayed CUDA
    graph where the device and the method allow, else the trainer's own step. `.note` says which."""
    if device.type != "cuda" or not vouches(trainer.cell.method, "capturable"):
        return Eager(trainer)
    return Graphed(trainer)


class Graphed(Eager):
    """Warm-up iterations, then one recorded and replayed with fresh batches (eager if recording fails)."""

    note = "; iterations replayed as a CUDA graph"

    def __init__(self, trainer):
        super().__init__(trainer)
        for optimizer in trainer.ctx.optimizers.values():
            for group in optimizer.param_groups:
                if "capturable" in group:  # steps and bias corrections on the GPU, so that a replay advances them
                    group["capturable"] = True
        schedule = trainer.schedule
        self.batches_per_iteration = (schedule.d_steps - 1 if schedule.simultaneous else schedule.d_steps) + 1
        self.warm, self.graph, self.inputs, self.failed = 0, None, [], False
        self.stream = torch.cuda.Stream()

    def __call__(self):
        if self.failed:
            return self.trainer.step()
        if self.warm < WARM_UP:
            self.warm += 1
            return self._on_side_stream()
        if self.graph is None:
            try:
                self._record()
            except Exception as error:  # noqa: BLE001 - a method that cannot be recorded still trains
                self.failed, self.note = True, f"; recording a CUDA graph failed ({type(error).__name__}), eager"
                warnings.warn(f"training without a CUDA graph: recording one failed: {error}", stacklevel=2)
                return self.trainer.step()
        trainer = self.trainer
        for static in self.inputs:  # drawn in the order a single run draws them
            fresh = trainer.batch()
            static.real.copy_(fresh.real)
            static.latent.copy_(fresh.latent)
        self.graph.replay()
        trainer.iterations += 1
        return self.inputs[-1]

    def _on_side_stream(self):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            batch = self.trainer.step()
        torch.cuda.current_stream().wait_stream(self.stream)
        self.last = batch
        return batch

    def _record(self):
        trainer = self.trainer
        self.inputs = [type(self.last)(torch.empty_like(self.last.real), torch.empty_like(self.last.latent), 0)
                       for _ in range(self.batches_per_iteration)]
        supply = iter(self.inputs)
        counters = trainer.batches, trainer.iterations
        trainer.batch = lambda: next(supply)  # the recorded iteration reads the static inputs
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                trainer.step()
        finally:
            del trainer.batch
            trainer.batches, trainer.iterations = counters  # recording ran no iteration
        self.graph = graph
