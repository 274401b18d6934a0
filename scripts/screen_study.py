"""The screening study behind `stabench compare --protocol screen`: results/screen/ (table, figure) from the
published records' curves; no training. Usage: python scripts/screen_study.py [RECORDS] [OUT]."""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

from stabench.screen import COST_LIMIT, split, study  # noqa: E402
from stabench.table import load_runs  # noqa: E402


def main(records="results/records", out="results/screen"):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table, chosen = study(records)
    table.to_csv(out / "screen.csv", index=False)
    choosing, judging = split(sorted(set(load_runs(records).method)))
    row = table[table.screen == chosen.label()].iloc[0]
    lines = ["# The screening protocol, chosen from the published curves", "",
             "Made by `python scripts/screen_study.py` from `results/records` (no training). A screen's score "
             "for a run is its modes captured averaged over its last 5 evaluations up to the screen's step, over "
             "the task's modes; the full protocol is every mode-coverage task at 20,000 steps and all its seeds "
             "(mog 10, grid25 5). Kendall τ: of the methods' IQM ranks, screen against full. Verdicts: the share "
             "of methods whose P(method > vanilla) interval is above, below or across 1/2 under both alike. "
             "Cost: wall-clock seconds on 2 CPU cores, one run per core, as the published runs took them "
             "(seeds 0-4 of mog trained in one sitting, later seeds in sittings 1.1-1.7 times slower).", "",
             f"Methods that chose the screen (alphabetical, even positions): {', '.join(choosing[1:])}. "
             f"Held out (odd positions): {', '.join(judging[1:])}. vanilla is the baseline of both.", "",
             f"**Chosen: {chosen.label()}**, the best verdict agreement on the choosing half within "
             f"{COST_LIMIT:.0f} s for vanilla: held out, τ = {row.tau_held_out:.2f} and "
             f"{row.verdicts_held_out:.0%} of verdicts the same; cost {row.vanilla_seconds:.0f} s for vanilla, "
             f"{row.unrolled10_seconds:.0f} s for unrolled10.", "",
             "| screen | τ choosing | verdicts choosing | τ held out | verdicts held out | vanilla s | unrolled10 s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for item in table.sort_values(["vanilla_seconds"]).itertuples():
        lines.append(f"| {item.screen} | {item.tau_choosing:.2f} | {item.verdicts_choosing:.0%} | "
                     f"{item.tau_held_out:.2f} | {item.verdicts_held_out:.0%} | {item.vanilla_seconds:.0f} | "
                     f"{item.unrolled10_seconds:.0f} |")
    (out / "screen.md").write_text("\n".join(lines) + "\n")

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for panel, (column, name) in zip(axes, (("tau_held_out", "Kendall τ with the full ranking (held out)"),
                                            ("verdicts_held_out", "verdicts as the full protocol (held out)"))):
        for tasks, rows in table.groupby("tasks"):
            panel.scatter(rows.vanilla_seconds, rows[column], label=tasks, s=18 + 6 * rows.seeds, alpha=0.75)
        panel.axvline(COST_LIMIT, color="grey", linestyle=":", linewidth=1)
        panel.scatter([row.vanilla_seconds], [row[column]], marker="*", s=220, color="black", label="chosen")
        panel.set_xscale("log")
        panel.set_xlabel("cost for vanilla: seconds on 2 CPU cores")
        panel.set_title(name, fontsize=10)
    axes[0].legend(fontsize=8, title="tasks (size: seeds)", title_fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "tau_vs_cost.png", dpi=110)
    print(f"chosen: {chosen.label()}; wrote {out / 'screen.md'}, {out / 'screen.csv'}, {out / 'tau_vs_cost.png'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
