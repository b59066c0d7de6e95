#!/usr/bin/env bash
# A libFuzzer campaign over every target in fuzz-targets (the same functions `cargo test` runs a
# bounded few thousand inputs of). Needs the nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# Usage: scripts/fuzz-campaign.sh [SECONDS_PER_TARGET] [TARGET...]
# Prints executions and findings per target; crashes are kept under fuzz/artifacts/TARGET/ and
# replay with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...`.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
printf '%-16s %12s %8s %s\n' target executions crashes corpus
for t in "${targets[@]}"; do
  log="$(mktemp)"
  mkdir -p "fuzz/corpus/$t"
  # Memory capped: a target that allocates without bound is a finding, not a dead machine.
  if (cd fuzz && cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
    crashes=0
  else
    crashes=$(ls "fuzz/artifacts/$t" 2>/dev/null | wc -l)
  fi
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  printf '%-16s %12s %8s %s\n' "$t" "${execs:-?}" "$crashes" "$(ls "fuzz/corpus/$t" | wc -l)"
  if [ "$crashes" != 0 ]; then tail -30 "$log"; fi
  rm -f "$log"
done
