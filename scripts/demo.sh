#!/usr/bin/env bash
# A single-device tour of CoBox on loopback-free local folders: create a space, scan, change files,
# rescan, list history, restore the earlier state, verify, and catch a corrupted blob.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p cobox
BIN="$PWD/target/release/cobox"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
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

step "verify, then flip one byte in a stored pack and verify again"
"$BIN" verify coop
PACK="$(ls -S "$COBOX_HOME"/spaces/*/packs/*.pack | head -1)"
python3 - "$PACK" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 3] ^= 1; open(p, 'wb').write(b)
PY
if "$BIN" verify coop; then echo "corruption was not detected"; exit 1; else echo "(verify failed as it should)"; fi
