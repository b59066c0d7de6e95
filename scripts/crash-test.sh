#!/usr/bin/env bash
# Kill -9 `cobox scan` at random moments, ROUNDS times (default 100); after every kill `verify` must
# pass, and at the end a scan must complete and a restore must equal the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-100}"
cargo build --release -q -p cobox
BIN="$PWD/target/release/cobox"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export COBOX_HOME="$WORK/home"
mkdir -p "$WORK/folder/small"
for i in 0 1 2 3 4 5; do head -c $((24 << 20)) /dev/urandom > "$WORK/folder/big$i.bin"; done
for i in $(seq 1 500); do echo "small file $i $RANDOM" > "$WORK/folder/small/$i.txt"; done
"$BIN" space create crash --path "$WORK/folder" >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  # New content each round so every scan writes packs.
  head -c $((24 << 20)) /dev/urandom > "$WORK/folder/big$((r % 6)).bin"
  echo "round $r" > "$WORK/folder/small/$((r % 500 + 1)).txt"
  "$BIN" scan crash >/dev/null 2>&1 &
  pid=$!
  sleep "0.$(printf '%03d' $((RANDOM % 900 + 10)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if ! "$BIN" verify crash >"$WORK/verify.log" 2>&1; then
    echo "round $r: verify failed after kill -9"; cat "$WORK/verify.log"; exit 1
  fi
done
"$BIN" scan crash >/dev/null
"$BIN" verify crash >/dev/null
"$BIN" restore crash "$WORK/restored" >/dev/null
diff -r "$WORK/folder" "$WORK/restored"
echo "$ROUNDS kills: verify passed after each, final scan and restore are byte-identical"
