#!/usr/bin/env bash
# A tour of CoBox in a temp dir: create a space, scan, change files, rescan, list history, restore
# an earlier state; then a second device joins with an invite and both edit offline and sync over
# iroh on loopback (a conflict copy keeps both edits); finally a corrupted blob is caught.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p cobox
BIN="$PWD/target/release/cobox"
WORK="$(mktemp -d)"
UP_PID=""
trap '[ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
export COBOX_HOME="$WORK/home"
step() { printf '\n== %s\n' "$*"; }

step "this device"
"$BIN" id

step "a folder with a few files"
mkdir -p "$WORK/folder/notes" "$WORK/folder/bin"
echo "minutes of the general assembly" > "$WORK/folder/notes/assembly.txt"
echo "budget: 1200" > "$WORK/folder/notes/budget.txt"
head -c 5000000 /dev/urandom > "$WORK/folder/photo.raw"
printf '#!/bin/sh\necho hello\n' > "$WORK/folder/bin/hello.sh"; chmod +x "$WORK/folder/bin/hello.sh"
find "$WORK/folder" -type f | sed "s|$WORK/||"

step "create a space over it and scan"
"$BIN" space create coop --path "$WORK/folder"
"$BIN" scan coop
FIRST="$("$BIN" history coop --json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)"

step "edit, delete and rename, then scan again"
echo "budget: 1500 (amended)" > "$WORK/folder/notes/budget.txt"
rm "$WORK/folder/notes/assembly.txt"
mv "$WORK/folder/photo.raw" "$WORK/folder/holiday.raw"
"$BIN" status coop
"$BIN" scan coop

step "history"
"$BIN" history coop
"$BIN" history coop notes/budget.txt

step "restore the first state ($FIRST) elsewhere"
"$BIN" restore coop "$WORK/restored" --at "$FIRST"
cat "$WORK/restored/notes/budget.txt"
ls "$WORK/restored" "$WORK/restored/notes"

step "a second device joins with an invite code"
CODE="$("$BIN" invite coop)"
echo "${CODE:0:60}..."
"$BIN" up --bind 127.0.0.1:0 --no-relay --interval 3600 > "$WORK/up.out" 2> "$WORK/up.log" &
UP_PID=$!
for _ in $(seq 1 50); do grep -q listening "$WORK/up.out" 2>/dev/null && break; sleep 0.1; done
PEER="$(sed -n 's/^listening //p' "$WORK/up.out")"
COBOX_HOME="$WORK/home2" "$BIN" join "$CODE" --path "$WORK/laptop" --name coop
COBOX_HOME="$WORK/home2" "$BIN" sync coop --peer "$PEER" --no-relay 2>/dev/null
ls "$WORK/laptop" "$WORK/laptop/notes"

step "both edit the budget while apart, then sync"
kill "$UP_PID"; wait "$UP_PID" 2>/dev/null || true; UP_PID=""
sleep 0.2
echo "budget: 1500, approved" > "$WORK/folder/notes/budget.txt"
echo "budget: 1600, proposed on the laptop" > "$WORK/laptop/notes/budget.txt"
"$BIN" scan coop > /dev/null
COBOX_HOME="$WORK/home2" "$BIN" scan coop > /dev/null
"$BIN" up --bind 127.0.0.1:0 --no-relay --interval 3600 > "$WORK/up.out" 2> "$WORK/up.log" &
UP_PID=$!
for _ in $(seq 1 50); do grep -q listening "$WORK/up.out" 2>/dev/null && break; sleep 0.1; done
PEER="$(sed -n 's/^listening //p' "$WORK/up.out")"
COBOX_HOME="$WORK/home2" "$BIN" sync coop --peer "$PEER" --no-relay 2>/dev/null
kill "$UP_PID"; wait "$UP_PID" 2>/dev/null || true; UP_PID=""
echo "on both devices now:"
for f in "$WORK"/laptop/notes/budget*; do echo "  $(basename "$f"): $(cat "$f")"; done
diff -r "$WORK/folder" "$WORK/laptop" && echo "the two folders are identical"

step "verify, then flip one byte in a stored pack and verify again"
"$BIN" verify coop
PACK="$(ls -S "$COBOX_HOME"/spaces/*/packs/*.pack | head -1)"
python3 - "$PACK" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 3] ^= 1; open(p, 'wb').write(b)
PY
if "$BIN" verify coop; then echo "corruption was not detected"; exit 1; else echo "(verify failed as it should)"; fi
