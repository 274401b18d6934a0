import contextlib

import pytest
import torch
from click.testing import CliRunner

from stabench.cli import cli


@pytest.fixture
def invoke(tmp_path):
    """Run the `stabench` command in-process; records go under tmp_path unless --out is given."""

    def call(*args):
        args = list(args)
        if args and args[0] == "run" and "--out" not in args:
            args += ["--out", str(tmp_path / "runs")]
        return CliRunner().invoke(cli, args, catch_exceptions=False)

    return call


@pytest.fixture(scope="session", autouse=True)
def torch_on_one_thread():
    """The tests' networks are tiny: a second thread only adds contention (runs use one thread anyway)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: threads only contend with each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def interrupt_at():
    """`with interrupt_at(n):` a run trained inside raises Ctrl-C in its training iteration n."""
    from stabench import runner

    @contextlib.contextmanager
    def at(iteration):
        step = runner.Trainer.step

        def stopping(self):
            if self.iterations + 1 == iteration:
                raise KeyboardInterrupt
            return step(self)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(runner.Trainer, "step", stopping)
            yield

    return at
