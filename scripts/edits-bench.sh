#!/bin/bash
# Two daemons over an N-file space (default 100,000) on loopback: how long B's daemon takes to fill
# its folder, then how long edits made on one side take to reach the other (watcher, debounce, sync).
# Usage: scripts/edits-bench.sh [N]   (COBOX_BIN= another binary; COBOX_BENCH_WORK= where to work)
set -euo pipefail
N=${1:-100000}
BIN=${COBOX_BIN:-$(dirname "$0")/../target/release/cobox}
W=$(mktemp -d "${COBOX_BENCH_WORK:-/tmp}/cobox-edits.XXXXXX")
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
python3 - "$W/a-files" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = f"{root}/d{i // 1000:04}"
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i:07}.txt", "w") as f:
        f.write(f"file number {i}\n" * (1 + i % 7))
PY
up() { # home, log: start a daemon and wait for its listening line
    COBOX_HOME=$1 "$BIN" up --bind 127.0.0.1:0 --no-relay >"$2" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q '^listening' "$2" && return; sleep 0.2; done
    echo "daemon did not start: $(cat "$2")" >&2; exit 1
}
COBOX_HOME=$W/a "$BIN" space create bench --path "$W/a-files" >/dev/null
COBOX_HOME=$W/a "$BIN" scan bench >/dev/null
up "$W/a" "$W/a.log"
CODE=$(COBOX_HOME=$W/a "$BIN" invite bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["code"])')
COBOX_HOME=$W/b "$BIN" join "$CODE" --path "$W/b-files" >/dev/null 2>&1
same() { # label: wait until both folders are identical, print how long it took
    local t0=$SECONDS start; start=$(date +%s.%N)
    while ! diff -rq "$W/a-files" "$W/b-files" >/dev/null 2>&1; do
        if (( SECONDS - t0 > 300 )); then echo "$1: not identical after 300 s"; exit 1; fi
        sleep 0.2
    done
    python3 -c "import sys; print(f'{sys.argv[1]}: {float(sys.argv[3]) - float(sys.argv[2]):.1f} s')" "$1" "$start" "$(date +%s.%N)"
}
up "$W/b" "$W/b.log"
same "B's daemon filled its folder ($N files)"
sleep 3
mv "$W/a-files/d0001" "$W/a-files/renamed-d0001"
rm -rf "$W/a-files/d0002"
for i in $(seq 3000 3099); do echo "changed $i" >>"$W/a-files/d0003/f000$i.txt"; done
mkdir "$W/a-files/new"; for i in $(seq 100); do echo "new $i" >"$W/a-files/new/n$i.txt"; done
same "A renamed a folder of 1,000 files, deleted 1,000, changed 100, added 100: B identical after"
sleep 3
for i in $(seq 4000 4049); do echo "from b $i" >>"$W/b-files/d0004/f000$i.txt"; done
rm -rf "$W/b-files/d0005"
same "B changed 50 and deleted 1,000: A identical after"
