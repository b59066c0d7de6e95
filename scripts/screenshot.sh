#!/usr/bin/env bash
# Run the real desktop app under Xvfb against a prepared home and save PNGs of its main screens
# (spaces and files, conflicts, seeders, the seeders you administer, network, activity) in ${1:-target/screenshots}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/screenshots}"
mkdir -p "$OUT"
cargo build -q -p cobox -p cobox-gui
BIN="$PWD/target/debug/cobox"
GUI="$PWD/target/debug/cobox-gui"
WORK="$(mktemp -d)"
XPID=""
cleanup() { [ -n "$XPID" ] && kill "$XPID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# A space on a desk, a laptop that edited the same file while apart, and a proposed seeder.
export COBOX_HOME="$WORK/desk"
mkdir -p "$WORK/folder/minutes" "$WORK/folder/accounts"
echo "minutes of the general assembly, 12 November" > "$WORK/folder/minutes/2026-11-12.txt"
echo "budget: 1200" > "$WORK/folder/accounts/budget.txt"
head -c 3000000 /dev/urandom > "$WORK/folder/photo-of-the-garden.jpg"
"$BIN" space create "Garden co-op" --path "$WORK/folder" >/dev/null
"$BIN" scan "Garden co-op" >/dev/null
echo "budget: 1500 (amended)" > "$WORK/folder/accounts/budget.txt"
"$BIN" scan "Garden co-op" >/dev/null
CODE="$("$BIN" invite "Garden co-op")"
"$BIN" up --bind 127.0.0.1:0 --no-relay --interval 3600 > "$WORK/up.out" 2>/dev/null &
UP=$!
for _ in $(seq 50); do grep -q listening "$WORK/up.out" 2>/dev/null && break; sleep 0.1; done
PEER="$(sed -n 's/^listening //p' "$WORK/up.out")"
COBOX_HOME="$WORK/laptop" "$BIN" join "$CODE" --path "$WORK/laptop-folder" >/dev/null 2>&1
COBOX_HOME="$WORK/laptop" "$BIN" sync "Garden co-op" --peer "$PEER" --no-relay >/dev/null 2>&1
kill "$UP"; wait "$UP" 2>/dev/null || true
echo "budget: 1350 (laptop)" > "$WORK/laptop-folder/accounts/budget.txt"
echo "budget: 1400 (desk)" > "$WORK/folder/accounts/budget.txt"
"$BIN" scan "Garden co-op" >/dev/null
"$BIN" up --bind 127.0.0.1:0 --no-relay --interval 3600 > "$WORK/up.out" 2>/dev/null &
UP=$!
for _ in $(seq 50); do grep -q "listening" "$WORK/up.out" 2>/dev/null && break; sleep 0.1; done
PEER="$(sed -n 's/^listening //p' "$WORK/up.out" | tail -1)"
COBOX_HOME="$WORK/laptop" "$BIN" sync "Garden co-op" --peer "$PEER" --no-relay >/dev/null 2>&1
SEEDER="$(COBOX_HOME="$WORK/seeder" "$BIN" id)"
"$BIN" agreement propose "Garden co-op" --seeder "$SEEDER" --quota 20G --days 365 --terms "nightly backup" >/dev/null 2>&1
kill "$UP"; wait "$UP" 2>/dev/null || true

Xvfb :77 -screen 0 1100x720x24 >/dev/null 2>&1 &
XPID=$!
sleep 1
for screen in spaces conflicts seeders my-seeders network activity; do
  DISPLAY=:77 COBOX_GUI_SCREEN="$screen" "$GUI" >"$WORK/gui.log" 2>&1 &
  G=$!
  sleep 4
  if ! kill -0 "$G" 2>/dev/null; then
    echo "cobox-gui exited early:" >&2; cat "$WORK/gui.log" >&2; exit 1
  fi
  DISPLAY=:77 import -window root "$OUT/$screen.png"
  kill "$G"; wait "$G" 2>/dev/null || true
  echo "$OUT/$screen.png"
done
