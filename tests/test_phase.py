"""Phase portraits on the Dirac-GAN: Mescheder et al. 2018's figure, one panel per method that runs there."""
import math

import numpy as np
import pytest

from stabench.cell import resolve
from stabench.methods import METHODS
from stabench.phase import dirac_panel, every_method
from stabench.tasks.dirac import MESCHEDER_START

pytestmark = pytest.mark.usefixtures("one_thread")


def sigmoid(t):
    return 1 / (1 + math.exp(-t))


def test_a_dirac_panel_is_simultaneous_steps_of_the_field_from_the_start():
    panel = dirac_panel(resolve("vanilla", "dirac", overrides=MESCHEDER_START), "vanilla", steps=2, resolution=3)
    # the plain GAN's field at (ψ, θ) is σ(ψθ)·(-θ, ψ); one step of lr 0.1 from (1, 1)
    (trajectory,) = panel.trajectories
    step = 0.1 * sigmoid(1.0)
    np.testing.assert_allclose(trajectory[:2], [[1, 1], [1 - step, 1 + step]], rtol=0, atol=1e-15)
    psi, theta = np.meshgrid(panel.d_axis, panel.g_axis)
    weight = 1 / (1 + np.exp(-psi * theta))
    np.testing.assert_allclose(panel.field, [-theta * weight, psi * weight], rtol=0, atol=1e-15)
    assert panel.d_axis.tolist() == [-2, 0, 2] and panel.labels == ("psi", "theta")
    assert panel.equilibrium == (0.0, 0.0) and panel.step_size == 0.1


def test_optimistic_is_drawn_with_the_field_its_spectrum_analyses():
    plain = dirac_panel(resolve("vanilla", "dirac"), "vanilla", steps=20, resolution=3)
    optimistic = dirac_panel(resolve("optimistic", "dirac"), "optimistic", steps=20, resolution=3)
    np.testing.assert_array_equal(optimistic.trajectories[0], plain.trajectories[0])


def test_every_method_gets_a_panel_but_those_that_cannot_run(recwarn):
    panels, skipped = every_method("dirac", overrides={}, seed=0, steps=3, resolution=3)
    assert "vanilla-sn" in skipped and "needs a linear or convolutional layer" in skipped["vanilla-sn"]
    assert [panel.title.splitlines()[0] for panel in panels] == [
        name for name in METHODS.names() if name not in skipped]
    titles = {panel.title.splitlines()[0]: panel.title for panel in panels}
    assert titles["optimistic"] == "optimistic\n(spectrum of the plain GAN field)"
    assert titles["lookahead"] == "lookahead\n(spectrum of the plain GAN field)" and titles["r1"] == "r1"


def grid_on_dirac(invoke, out, monkeypatch):
    """Run `stabench phase --task dirac --grid` into `out`; the panels and the Figure it drew."""
    import stabench.plots

    drawn = []
    original = stabench.plots.phase_portraits
    monkeypatch.setattr(stabench.plots, "phase_portraits", lambda *args, **kwargs: drawn.append(
        (args[0], original(*args, **kwargs))))
    with pytest.warns(UserWarning, match="`vanilla-sn` is not drawn: spectral normalization needs"):
        result = invoke("phase", "--task", "dirac", "--grid", "--steps", "3", "--resolution", "3", "--out", str(out))
    assert result.exit_code == 0 and result.output == f"phase portrait: {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ((panels, figure),) = drawn
    return panels, figure


def test_phase_grid_on_dirac_draws_one_axes_per_runnable_method(invoke, tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    streamed = []  # matplotlib's streamline integration is most of the drawing time; the layout is what is tested
    monkeypatch.setattr(Axes, "streamplot", lambda axes, *args, **kwargs: streamed.append(axes))
    panels, figure = grid_on_dirac(invoke, tmp_path / "dirac.png", monkeypatch)
    assert len(figure.axes) == len(panels) == len(METHODS.names()) - 1  # all but vanilla-sn
    assert streamed == figure.axes
    assert "Not drawn: vanilla-sn (spectral normalization" in figure.texts[0].get_text()


@pytest.mark.slow
def test_phase_grid_on_dirac_draws_streamlines_in_every_panel(invoke, tmp_path, monkeypatch):
    panels, figure = grid_on_dirac(invoke, tmp_path / "dirac.png", monkeypatch)
    assert len(figure.axes) == len(panels) and all(axes.collections for axes in figure.axes)


@pytest.mark.parametrize("args, message", [
    (["--grid", "--method", "vanilla"], "`--grid` on `dirac` draws every registered method; leave out `--method`"),
    (["--grid", "--resolution", "1"], "`--resolution` must be at least 2, got 1"),
])
def test_dirac_phase_mistakes_are_one_line(invoke, tmp_path, args, message):
    result = invoke("phase", "--task", "dirac", *args, "--steps", "1", "--out", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and result.output == f"stabench: error: {message}\n"
