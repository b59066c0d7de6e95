#!/usr/bin/env bash
# The co-op's week with more rounds of offline edits than CI runs (default 8):
#   scripts/week.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
COBOX_WEEK_ROUNDS="${1:-8}" cargo test -p cobox --test cli -- --exact week::the_coops_week --nocapture
