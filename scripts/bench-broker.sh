#!/usr/bin/env bash
# `tape bench produce|consume` (acks=all) against `tape broker` (--fsync interval, always) and
# against librdkafka's in-memory mock cluster, in the same run (issue #3's bar).
# Usage: scripts/bench-broker.sh [RECORDS] [SIZE] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SIZE=${2:-100}
RUNS=${3:-3}
swift build -c release >/dev/null
TAPE=.build/release/tape
TMP=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $N records of $SIZE bytes, acks=all, $RUNS runs each"
run() { # label brokers
  local p c
  p=$($TAPE bench produce --brokers "$2" --topic bench --count "$N" --size "$SIZE" --acks all --runs "$RUNS" | tail -1)
  c=$($TAPE bench consume --brokers "$2" --topic bench --count "$N" --runs "$RUNS" 2>&1 | tail -1)
  echo "$1 produce: $p"
  echo "$1 consume: $c"
}
for fsync in interval always; do
  $TAPE broker --listen 127.0.0.1:19093 --data-dir "$TMP/data-$fsync" --fsync "$fsync" > "$TMP/broker-$fsync.log" 2>&1 &
  PID=$!
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/19093) 2>/dev/null && break; sleep 0.1; done
  run "tape broker --fsync $fsync" 127.0.0.1:19093
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
done
$TAPE mock-cluster --brokers 1 --topic bench:1 > "$TMP/mock" &
PID=$!
for _ in $(seq 50); do [ -s "$TMP/mock" ] && break; sleep 0.1; done
run "librdkafka mock cluster (keeps only ~5 MB per partition, so consume reads what it kept)" "$(head -1 "$TMP/mock")"
