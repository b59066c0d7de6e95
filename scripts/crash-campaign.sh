#!/usr/bin/env bash
# kill -9 campaigns with real processes, TRIALS each (default 100): the receiver of a sync (a
# one-off `cobox sync`, and a daemon mid-transfer or mid-write), the sender, `gc`, and a ledger
# write (`agreement propose`). After every kill both stores must verify; after each scenario one
# more sync must complete and the receiver's folder must equal the sender's, byte for byte.
# `cargo test` runs a few of each (cli/tests/cli/crash.rs). Usage: scripts/crash-campaign.sh [TRIALS]
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS="${1:-100}"
cargo build --release -q -p cobox
BIN="$PWD/target/release/cobox"
WORK="$(mktemp -d)"
trap 'pkill -f "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT
A="$WORK/a"; B="$WORK/b"
run() { local home="$1"; shift; COBOX_HOME="$home" "$BIN" "$@"; }
rnd_sleep() { sleep "0.$(printf '%03d' $(( RANDOM % ${1:-800} + 20 )))"; }
verify_both() {
  for h in "$A" "$B"; do
    if ! run "$h" verify s >"$WORK/verify.log" 2>&1; then echo "$1: verify failed in $h"; cat "$WORK/verify.log"; exit 1; fi
  done
}
start_daemon() { # home -> prints the address
  COBOX_HOME="$1" "$BIN" up --bind 127.0.0.1:0 --no-relay --interval 3600 >"$WORK/up.out" 2>"$WORK/up.err" &
  echo $! >"$WORK/up.pid"
  for _ in $(seq 100); do
    grep -q '^listening ' "$WORK/up.out" 2>/dev/null && break; sleep 0.05
  done
  sed -n 's/^listening //p' "$WORK/up.out" | head -1
}
stop_daemon() { # [-9]: the daemon started in a subshell is not our child, so wait for it by polling
  local pid; pid=$(cat "$WORK/up.pid")
  kill "${1:--TERM}" "$pid" 2>/dev/null || true
  for _ in $(seq 400); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true; sleep 0.2
}

mkdir -p "$WORK/fa/small" "$WORK/fb"
for i in 0 1 2; do head -c $((16 << 20)) /dev/urandom >"$WORK/fa/big$i.bin"; done
for i in $(seq 1 200); do echo "small $i $RANDOM" >"$WORK/fa/small/$i.txt"; done
run "$A" space create s --path "$WORK/fa" >/dev/null
run "$B" join "$(run "$A" invite s)" --path "$WORK/fb" >/dev/null

for scenario in receiver receiver-daemon sender; do
  for t in $(seq 1 "$TRIALS"); do
    head -c $((16 << 20)) /dev/urandom >"$WORK/fa/big$((t % 3)).bin"
    run "$A" scan s >/dev/null
    case "$scenario" in
      receiver)
        addr=$(start_daemon "$A")
        COBOX_HOME="$B" "$BIN" sync s --peer "$addr" --no-relay >/dev/null 2>&1 & pid=$!
        rnd_sleep; kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        stop_daemon ;;
      receiver-daemon)
        addr=$(start_daemon "$B")
        COBOX_HOME="$A" "$BIN" sync s --peer "$addr" --no-relay >/dev/null 2>&1 & pid=$!
        rnd_sleep; stop_daemon -9
        kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true ;;
      sender)
        addr=$(start_daemon "$B")
        COBOX_HOME="$A" "$BIN" sync s --peer "$addr" --no-relay >/dev/null 2>&1 & pid=$!
        rnd_sleep; kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        stop_daemon ;;
    esac
    verify_both "$scenario trial $t"
  done
  addr=$(start_daemon "$A")
  run "$B" sync s --peer "$addr" --no-relay >/dev/null
  stop_daemon
  diff -r "$WORK/fa" "$WORK/fb" >/dev/null || { echo "$scenario: folders differ after the last sync"; exit 1; }
  echo "$scenario: $TRIALS kills, verify passed after each, the next sync completed, no file lost"
done

for t in $(seq 1 "$TRIALS"); do
  head -c $((4 << 20)) /dev/urandom >"$WORK/fa/v$((t % 3)).bin"
  run "$A" scan s >/dev/null
  COBOX_HOME="$A" "$BIN" gc s --keep-within 0 >/dev/null 2>&1 & pid=$!
  rnd_sleep 300; kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  run "$A" verify s >"$WORK/verify.log" 2>&1 || { echo "gc trial $t: verify failed"; cat "$WORK/verify.log"; exit 1; }
done
rm -rf "$WORK/restored"; run "$A" restore s "$WORK/restored" >/dev/null
diff -r "$WORK/fa" "$WORK/restored" >/dev/null || { echo "gc: the restore differs from the folder"; exit 1; }
echo "gc: $TRIALS kills, verify passed after each, the latest state restores byte for byte"

seeder=$(COBOX_HOME="$WORK/seeder" "$BIN" id)
for t in $(seq 1 "$TRIALS"); do
  COBOX_HOME="$A" "$BIN" agreement propose s --seeder "$seeder" --quota 1M --days 1 >/dev/null 2>&1 & pid=$!
  sleep "0.0$(( RANDOM % 9 ))"; kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  run "$A" agreement list >/dev/null 2>"$WORK/list.err" || { echo "ledger trial $t: agreement list failed"; cat "$WORK/list.err"; exit 1; }
done
n=$(run "$A" agreement list --json | grep -o '"state"' | wc -l)
echo "ledger: $TRIALS kills of a proposal, the ledger read after each ($n proposals recorded)"
