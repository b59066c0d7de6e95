#!/usr/bin/env bash
# Whole-workflow benchmarks, each beside its reference in the same run. Needs restic for the
# comparisons (apt-get install restic) and root for cold-cache runs and tmpfs restores.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-/work/bench/mixed}"
cargo build --release -q -p cobox -p cobox-benches
[ -d "$DATA" ] || python3 ../shared/tools/gen-data.py "$DATA" --gib 1 --small 10000
W=target/release/workflow
$W ingest "$DATA"
$W rescan 100000
$W dedup
$W manifest 100000
prlimit --as=8000000000 -- $W manifest 1000000
