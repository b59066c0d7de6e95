#!/usr/bin/env bash
# The deterministic simulation (engine/core/tests/simulation.rs) over many seeds, optimised.
# Usage: scripts/simulate.sh [SEEDS]          (default 20000; CI runs 200 in `cargo test`)
#        COBOX_SIM_SEED=K scripts/simulate.sh  replays seed K exactly
set -euo pipefail
cd "$(dirname "$0")/.."
COBOX_SIM_SEEDS="${1:-20000}" cargo test --release -p cobox-core --test simulation -- --nocapture 2>&1 |
  grep -E '^simulation:|panicked|seed [0-9]+ failed|test result'
