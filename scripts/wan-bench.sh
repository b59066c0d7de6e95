#!/usr/bin/env bash
# Sync over long round trips: the sending device in network namespace cobox-wa, the receiving
# one in cobox-wb, and target/release/udpdelay (in the root namespace, with IP forwarding off)
# the only path between them, adding DELAY ms each way. Needs root and a release build
# (`cargo build --release -p cobox -p cobox-benches`).
# Each delay also times one raw iroh stream moving the same bytes through the same relay.
# usage: scripts/wan-bench.sh DIR [ONE-WAY DELAYS IN MS...]   (default 0 10 25 50)
#        LOSS=1 scripts/wan-bench.sh ...   also drops 1% of datagrams each way
#        CC=cubic|bbr|auto scripts/wan-bench.sh ...   congestion control for cobox and the raw stream
#                                                    (default: cobox's own default, auto)
#        SYNCTHING=1 scripts/wan-bench.sh ...   also times Syncthing (Debian's) over QUIC through the same
#                                               kind of relay (scripts/syncthing-bench.py --wan)
set -euo pipefail
src=$(realpath "$1"); shift
delays=("${@:-0 10 25 50}"); delays=(${delays[@]})
bin=$(realpath "$(dirname "$0")/../target/release")
cobox=${COBOX_BIN:-$bin/cobox}   # another build to compare
work=$(mktemp -d "${COBOX_BENCH_WORK:-/tmp}/wan.XXXXXX")
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  ip netns del cobox-wa 2>/dev/null || true
  ip netns del cobox-wb 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cc=(); [ -z "${CC:-}" ] || cc=(--congestion "$CC")
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 0 ] || { echo "IP forwarding is on: the namespaces would reach each other directly" >&2; exit 1; }
for n in a b; do
  ip link del cbx-${n}0 2>/dev/null || true # left by a run just before, if its netns was slow to go
  ip netns add cobox-w$n
  ip link add cbx-${n}0 type veth peer name cbx-${n}1
  ip link set cbx-${n}1 netns cobox-w$n
  net=$([ $n = a ] && echo 10.77.1 || echo 10.77.2)
  ip addr add $net.1/24 dev cbx-${n}0 && ip link set cbx-${n}0 up
  ip netns exec cobox-w$n ip addr add $net.2/24 dev cbx-${n}1
  ip netns exec cobox-w$n ip link set cbx-${n}1 up
  ip netns exec cobox-w$n ip link set lo up
done
bytes=$(du -sb "$src" | cut -f1)
echo "folder $src: $((bytes / 1048576)) MiB"
for d in "${delays[@]}"; do
  w="$work/$d"; mkdir -p "$w"
  COBOX_HOME="$w/a" "$cobox" space create wan --path "$src" >/dev/null
  scan_start=$(date +%s.%N)
  COBOX_HOME="$w/a" "$cobox" scan wan >/dev/null
  scan=$(python3 -c "print($(date +%s.%N) - $scan_start)")
  ip netns exec cobox-wa env COBOX_HOME="$w/a" "$cobox" up --bind 10.77.1.2:7777 --no-relay --interval 3600 "${cc[@]}" \
    >"$w/up.out" 2>/dev/null &
  up=$!
  "$bin/udpdelay" 10.77.2.1:9000 10.77.1.2:7777 10.77.1.1 "$d" "${LOSS:-0}" &
  relay=$!
  for _ in $(seq 50); do grep -q listening "$w/up.out" 2>/dev/null && break; sleep 0.1; done
  id=$(head -1 "$w/up.out" | sed 's/^listening //; s/@.*//')
  code=$(COBOX_HOME="$w/a" "$cobox" --json invite wan | python3 -c 'import json,sys; print(json.load(sys.stdin)["code"])')
  COBOX_HOME="$w/b" "$cobox" join "$code" --path "$w/dest" >/dev/null 2>&1
  sleep 1 # the daemon's start-up rescan
  start=$(date +%s.%N)
  ip netns exec cobox-wb env COBOX_HOME="$w/b" "$cobox" sync wan --peer "$id@10.77.2.1:9000" --no-relay "${cc[@]}" \
    >/dev/null 2>"$w/sync.err" || { cat "$w/sync.err" >&2; exit 1; }
  end=$(date +%s.%N)
  kill $up $relay; wait $up 2>/dev/null || true
  diff -r -q "$src" "$w/dest" >/dev/null || { echo "delay $d ms: the copy differs" >&2; exit 1; }
  # The comparison: one raw iroh stream moving the folder's size through the same relay.
  ip netns exec cobox-wa "$bin/workflow" raw-sink 10.77.1.2:7778 ${CC:-} >"$w/sink.out" &
  sink=$!
  "$bin/udpdelay" 10.77.2.1:9001 10.77.1.2:7778 10.77.1.1 "$d" "${LOSS:-0}" &
  relay=$!
  for _ in $(seq 50); do grep -q listening "$w/sink.out" 2>/dev/null && break; sleep 0.1; done
  sid=$(head -1 "$w/sink.out" | sed 's/^listening //; s/@.*//')
  raw=$(ip netns exec cobox-wb "$bin/workflow" raw-send "$sid@10.77.2.1:9001" "$bytes" ${CC:-} | sed 's/.*: \([0-9.]*\) s,.*/\1/') ||
    { echo "delay $d ms: the raw stream failed" >&2; exit 1; }
  kill $relay; wait $sink 2>/dev/null || true
  python3 -c "t=$end-$start; r=$raw; print(f'round trip +{2*$d} ms, loss ${LOSS:-0}%, congestion ${CC:-auto}: cobox sync {t:.2f} s = {$bytes/t/1e6:.1f} MB/s; one raw stream {r:.2f} s = {$bytes/r/1e6:.1f} MB/s; cobox at {100*r/t:.0f}% of the raw stream')"
  if [ -n "${SYNCTHING:-}" ]; then
    "$bin/udpdelay" 10.77.2.1:9002 10.77.1.2:22001 10.77.1.1 "$d" "${LOSS:-0}" &
    relay=$!
    st=$(python3 "$(dirname "$0")/syncthing-bench.py" --wan "$src" "$w") || { echo "delay $d ms: syncthing failed" >&2; exit 1; }
    kill $relay
    python3 -c "t=$end-$start; s=$scan; st=$st; print(f'  syncthing (QUIC, its scan included) {st:.2f} s = {$bytes/st/1e6:.1f} MB/s; cobox sync is {st/t:.2f}x faster, {st/(s+t):.2f}x with its scan ({s:.2f} s)')"
  fi
  rm -rf "$w"
done
