#!/usr/bin/env bash
# The whole leaderboard: every cell of results/LEADERBOARD.md, cheapest first, then `stabench publish`.
# Resumable: rerun after an interruption and finished cells are skipped. Runs go to $1 (default results/runs);
# one thread per run, one run per core.
set -euo pipefail
out=${1:-results/runs}
sweep() { stabench sweep --budget quick --threads 1 --spectrum-every 0 --quiet --out "$out" "$@" || [ $? -eq 1 ]; }
sweep --methods all --tasks dirac --seeds 0-9
sweep --methods all --tasks lq --seeds 0-9
sweep --methods all --tasks mog --seeds 0-4
sweep --methods wgan,wgan-gp --tasks mog --seeds 0-4 --recipe gulrajani-toy
sweep --methods all --tasks grid25 --seeds 0-4
sweep --methods vanilla,unrolled1,unrolled10,gradreg,r1,wgan-gp --tasks stacked-mnist --seeds 0-4 --steps 5000 \
    --recipe metz-quarter --no-spectrum
# Metz et al.'s comparison at their budget (20,000 steps): about 12 core-hours, unrolled10 2.3 h a seed
sweep --methods vanilla,gradreg,unrolled1,unrolled10 --tasks stacked-mnist --seeds 0-2 --budget paper \
    --recipe metz-quarter --no-spectrum
sweep --methods all --tasks mog --seeds 5-9
sweep --methods wgan,wgan-gp --tasks mog --seeds 5-9 --recipe gulrajani-toy
stabench publish --results "$out" --to results --command "bash scripts/leaderboard.sh $out"
