#!/usr/bin/env bash
# `tape bench produce|consume` (acks=all) against `tape broker` (--fsync interval, always) and
# against librdkafka's in-memory mock cluster, in the same run (issue #3's bar).
#
# produce: N records into a 1-partition topic, RUNS runs (the median is the figure).
# consume: N records are first produced (once, not timed) into a topic of CONSUME_PARTITIONS
# partitions, then read from the beginning RUNS times. The mock cluster keeps only the last 5 MB
# of each partition (a constant in librdkafka), so the consume topic is spread over enough
# partitions that both sides hold and read all N records (default 64: with 32 the mock kept
# only 734,522 of 1M records of 100 bytes; it stores more than the record bytes per record).
# The mock also answers each fetch with at most one batch per partition, so its consume
# figure is bound by request round trips.
# Usage: scripts/bench-broker.sh [RECORDS] [SIZE] [RUNS] [CONSUME_PARTITIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SIZE=${2:-100}
RUNS=${3:-3}
CP=${4:-64}
swift build -c release --product tape >/dev/null
TAPE=.build/release/tape
TMP=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$N records of $SIZE bytes, acks=all, $RUNS runs each; consume topic: $CP partitions"
run() { # label brokers
  local p c
  p=$($TAPE bench produce --brokers "$2" --topic bench --count "$N" --size "$SIZE" --acks all --runs "$RUNS" | tail -1)
  $TAPE bench produce --brokers "$2" --topic bench-consume --count "$N" --size "$SIZE" --acks all --runs 1 >/dev/null
  c=$($TAPE bench consume --brokers "$2" --topic bench-consume --count "$N" --runs "$RUNS" 2>&1)
  echo "$1 produce: $p"
  echo "$1 consume: $(echo "$c" | tail -1) [$(echo "$c" | grep -m1 -o '[0-9]* records consumed')]"
}
for fsync in interval always; do
  $TAPE broker --listen 127.0.0.1:19093 --data-dir "$TMP/data-$fsync" --fsync "$fsync" > "$TMP/broker-$fsync.log" 2>&1 &
  PID=$!
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/19093) 2>/dev/null && break; sleep 0.1; done
  $TAPE topics create --brokers 127.0.0.1:19093 bench-consume --partitions "$CP" >/dev/null
  run "tape broker --fsync $fsync" 127.0.0.1:19093
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
done
$TAPE mock-cluster --brokers 1 --topic bench:1 --topic "bench-consume:$CP" > "$TMP/mock" &
PID=$!
for _ in $(seq 50); do [ -s "$TMP/mock" ] && break; sleep 0.1; done
run "librdkafka mock cluster" "$(head -1 "$TMP/mock")"
