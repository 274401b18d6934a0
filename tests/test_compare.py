"""`stabench compare` and a run in context, on tiny published records made here: the screen's premise (a
published curve at step S is what a run of S steps gives), the placing, the verdict, the refusals."""
import json
import shutil
import sys

import pytest

import stabench
from stabench import compare as compare_module
from stabench.compare import Protocol, compare, in_context
from stabench.errors import StabenchError
from stabench.screen import Screen

TINY = {"batch_size": 16, "latent_dim": 4, "hidden": 8, "eval_samples": 200}
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_run(method, seed, out, **options):
    return stabench.run(method, "mog", seed=seed, budget="smoke", overrides=TINY, out=out, progress=False,
                        spectrum=False, **options)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """vanilla and gradreg, 3 seeds each, the smoke budget's 300 steps of tiny networks; and a recipe's row of
    fewer steps (gulrajani-toy's smoke is 100), which is not a protocol cell and must not stop a comparison."""
    out = tmp_path_factory.mktemp("published")
    for method in ("vanilla", "gradreg"):
        for seed in range(3):
            assert tiny_run(method, seed, out).status == "completed"
    assert tiny_run("wgan", 0, out, recipe="gulrajani-toy").steps_planned == 100
    return out


@pytest.fixture
def tiny_protocol(monkeypatch):
    protocol = Protocol("tiny", Screen(("mog",), 150, 3), budget="smoke")
    monkeypatch.setitem(compare_module.PROTOCOLS, "tiny", protocol)
    return protocol


@pytest.fixture(scope="module")
def compared(published, tmp_path_factory):
    """r1 compared on the tiny protocol: the comparison and its folder."""
    out = tmp_path_factory.mktemp("compared")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(compare_module.PROTOCOLS, "tiny", Protocol("tiny", Screen(("mog",), 150, 3), budget="smoke"))
        found = compare("r1", "tiny", against=published, out=out, overrides=TINY, progress=False, workers=1)
    return found, out


def test_a_published_curve_at_step_s_is_the_score_of_a_run_of_s_steps(compared, tmp_path):
    found, out = compared
    vanilla_at_150 = [tiny_run("vanilla", seed, tmp_path / "short", steps=150) for seed in range(3)]
    rows = found.tables["mog"].set_index("method")
    expected = sum(r.metrics["modes_captured_last5"] for r in vanilla_at_150) / 3
    assert rows.at["vanilla", "modes"] == pytest.approx(expected, rel=1e-12)
    r1_records = [stabench.run("r1", "mog", seed=seed, budget="smoke", steps=150, overrides=TINY,
                               out=out / "runs", progress=False, spectrum=False) for seed in range(3)]
    assert all(record.reused for record in r1_records)  # compare's own runs: nothing trained twice
    assert rows.at["r1", "modes"] == pytest.approx(sum(r.metrics["modes_captured_last5"] for r in r1_records) / 3)
    assert list(rows.seeds) == [3, 3, 3] and rows.compared.sum() == 1 and rows.at["r1", "compared"]


def test_compare_places_the_method_and_writes_its_pages(compared):
    found, tmp_path = compared
    assert set(found.improvements) == {"vanilla", "gradreg"}
    for other, estimate in found.improvements.items():
        assert 0 <= estimate.value <= 1
        assert f"{other} (P = " in found.verdict
    assert found.verdict.split(" ")[0] in ("better", "not", "below") and found.verdict.endswith(".")
    markdown = (tmp_path / "compare.md").read_text()
    assert "**r1** ←" in markdown and "## mog: modes captured of 8" in markdown and "**Verdict**" in markdown
    html = (tmp_path / "compare.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<b>r1</b> ←" in html and "<script src" not in html
    assert found.paths == [tmp_path / "compare.md", tmp_path / "compare.html"]


def test_compare_refuses_what_it_cannot_compare_in_one_line(published, tmp_path, tiny_protocol, invoke):
    with pytest.raises(StabenchError, match=r"unknown protocol `scren`\. Did you mean `screen`\?"):
        compare("r1", "scren", against=published, out=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StabenchError, match="no published records in .* results/records folder"):
        compare("r1", "tiny", against=tmp_path / "empty", out=tmp_path)
    older = tmp_path / "older"
    shutil.copytree(published, older)
    for file in older.rglob("run.json"):
        file.write_text(json.dumps({**json.loads(file.read_text()), "task_version": 0}))
    with pytest.raises(StabenchError, match="`mog` runs here have task version 1, the published ones 0"):
        compare("r1", "tiny", against=older, out=tmp_path / "mine", overrides=TINY, progress=False, workers=1)
    assert not (tmp_path / "mine" / "runs").exists()  # refused before any training
    result = invoke("compare", "--method", "r1", "--protocol", "tiny", "--against", str(tmp_path / "empty"),
                    "--out", str(tmp_path / "cli"))
    assert result.exit_code == 2 and result.output.count("\n") == 1


def test_a_run_ends_with_where_it_falls_among_the_published_seeds(published, tmp_path):
    again = tiny_run("vanilla", 1, tmp_path)
    said = in_context(again, against=published)
    published_values = [tiny_run("vanilla", seed, published).metrics["modes_captured_last5"] for seed in range(3)]
    assert said.startswith("published modes_captured_last5 of vanilla on mog (3 seeds): mean ")
    assert f"seeds from {min(published_values):.3g} to {max(published_values):.3g}" in said
    assert "is inside that range" in said and f"(published seed 1: {published_values[1]:.3g})" in said
    other = stabench.run("vanilla", "mog", seed=0, budget="smoke", steps=50, overrides=TINY, out=tmp_path,
                         progress=False, spectrum=False)
    assert in_context(other, against=published) is None  # another step count: nothing comparable


def test_the_screen_protocol_is_the_one_the_published_study_chose():
    import pandas as pd

    from stabench.compare import PROTOCOLS, agreement_text
    from stabench.screen import COST_LIMIT

    study = pd.read_csv(compare_module.PUBLISHED.parent / "screen" / "screen.csv")
    affordable = study[study.vanilla_seconds <= COST_LIMIT]
    best = affordable.sort_values(["verdicts_choosing", "tau_choosing", "vanilla_seconds"],
                                  ascending=[False, False, True]).iloc[0]
    screen = PROTOCOLS["screen"].screen
    assert (best.tasks, best.steps, best.seeds) == ("+".join(screen.tasks), screen.steps, screen.seeds)
    assert f"agree with the full protocol's for {best.verdicts_held_out:.0%}" in agreement_text(PROTOCOLS["screen"])


@pytest.mark.slow
def test_the_published_screen_study_is_what_the_records_give(tmp_path):
    import pandas as pd

    from stabench.screen import study

    table, chosen = study(compare_module.PUBLISHED)
    published = pd.read_csv(compare_module.PUBLISHED.parent / "screen" / "screen.csv")
    pd.testing.assert_frame_equal(table.reset_index(drop=True), published, check_dtype=False)
    assert chosen == compare_module.PROTOCOLS["screen"].screen


@pytest.mark.slow
def test_a_bundle_holds_what_a_maintainer_needs_and_verify_reruns_it(published, tmp_path, tiny_protocol, invoke):
    from stabench.methods import METHODS
    from stabench.registry import load_plugin

    plugin = str(compare_module.PUBLISHED.parent.parent / "examples" / "instance_noise_plugin.py")
    load_plugin(plugin)
    try:
        compare("instance-noise", "tiny", against=published, out=tmp_path / "mine", overrides=TINY, progress=False,
                workers=1, plugins=[plugin], bundle=tmp_path / "bundle")
    finally:
        METHODS.unregister("instance-noise")  # verify loads the bundled copy, as a maintainer's process would
    bundle = tmp_path / "bundle"
    description = json.loads((bundle / "bundle.json").read_text())
    assert description["method"] == "instance-noise" and description["plugins"] == ["plugins/instance_noise_plugin.py"]
    assert description["commands"][0].startswith("stabench compare --method instance-noise --protocol tiny")
    assert {file.name for file in (bundle / "records").rglob("*") if file.is_file()} == {"run.json", "curve.csv"}
    assert len(list((bundle / "records").rglob("run.json"))) == 3
    result = invoke("verify", str(bundle), "--cells", "1")
    assert result.exit_code == 0, result.output
    assert result.output.count("reproduces; largest relative difference 0") == 1
    METHODS.unregister("instance-noise")
    for module in [name for name in sys.modules if name.startswith("stabench_plugin_instance_noise_plugin")]:
        del sys.modules[module]  # a maintainer's next process imports the edited file afresh
    source = bundle / "plugins" / "instance_noise_plugin.py"
    source.write_text(source.read_text().replace("sigma: float = stabench.hyperparameter(0.1",
                                                 "sigma: float = stabench.hyperparameter(0.2"))
    result = invoke("verify", str(bundle), "--cells", "1")
    assert result.exit_code == 2 and "the bundle's plugin source does not match its records" in result.output
    METHODS.unregister("instance-noise")
