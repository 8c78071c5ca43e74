#!/usr/bin/env bash
# `tape bench produce|consume` (acks=all) against `tape broker` (--fsync interval, always) and
# against librdkafka's in-memory mock cluster, in the same run (issue #3's bar).
#
# All three servers run at once and the runs are interleaved (interval, always, mock, interval, ...),
# so a slow or fast spell of the machine (figures move ±20% between minutes on the dev VM) hits all
# three alike; each target's figure is the median of its RUNS runs. Each target first gets one
# produce run that is not counted (a fresh partition, cold memory), reported as "warm-up".
#
# produce: N records into a 1-partition topic per run.
# consume: N records are first produced (once, not timed) into a topic of CONSUME_PARTITIONS
# partitions, then read from the beginning once per run. The mock cluster keeps only the last 5 MB
# of each partition (a constant in librdkafka), so the consume topic is spread over enough
# partitions that both sides hold and read all N records (default 64: with 32 the mock kept only
# 734,522 of 1M records of 100 bytes); each consume line says how many records were read. The mock
# also answers each fetch with at most one batch per partition, so its consume figure is bound by
# request round trips.
# With BASELINE_TAPE=/path/to/an/older/tape, that build's broker (--fsync interval) joins the
# interleaving as a fourth target, so a change is compared with the build before it in one run.
# Usage: [BASELINE_TAPE=...] scripts/bench-broker.sh [RECORDS] [SIZE] [RUNS] [CONSUME_PARTITIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SIZE=${2:-100}
RUNS=${3:-5}
CP=${4:-64}
swift build -c release --product tape >/dev/null
TAPE=.build/release/tape
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$N records of $SIZE bytes, acks=all, $RUNS interleaved runs per target; consume topic: $CP partitions"

# A stray process on one of the ports would be measured instead of the broker started here.
for p in 19093 19094 19095; do
  if (echo > "/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p is already in use (ss -ltnp | grep $p); stop that process first" >&2; exit 1; fi
done
wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; exit 1; }
$TAPE broker --listen 127.0.0.1:19093 --data-dir "$TMP/data-interval" --fsync interval > "$TMP/broker-interval.log" 2>&1 &
PIDS+=($!)
$TAPE broker --listen 127.0.0.1:19094 --data-dir "$TMP/data-always" --fsync always > "$TMP/broker-always.log" 2>&1 &
PIDS+=($!)
$TAPE mock-cluster --brokers 1 --topic bench:1 --topic "bench-consume:$CP" > "$TMP/mock" &
PIDS+=($!)
wait_port 19093
wait_port 19094
for _ in $(seq 50); do [ -s "$TMP/mock" ] && break; sleep 0.1; done
$TAPE topics create --brokers 127.0.0.1:19093 bench-consume --partitions "$CP" >/dev/null
$TAPE topics create --brokers 127.0.0.1:19094 bench-consume --partitions "$CP" >/dev/null

NAMES=("tape broker --fsync interval" "tape broker --fsync always" "librdkafka mock cluster")
ADDRS=(127.0.0.1:19093 127.0.0.1:19094 "$(head -1 "$TMP/mock")")
if [ -n "${BASELINE_TAPE:-}" ]; then
  "$BASELINE_TAPE" broker --listen 127.0.0.1:19095 --data-dir "$TMP/data-baseline" --fsync interval > "$TMP/broker-baseline.log" 2>&1 &
  PIDS+=($!)
  wait_port 19095
  $TAPE topics create --brokers 127.0.0.1:19095 bench-consume --partitions "$CP" >/dev/null
  NAMES+=("baseline tape broker --fsync interval ($BASELINE_TAPE)")
  ADDRS+=(127.0.0.1:19095)
fi
TARGETS=$(seq 0 $((${#NAMES[@]} - 1)))

produce_rate() { # brokers topic -> records/s of one run
  $TAPE bench produce --brokers "$1" --topic "$2" --count "$N" --size "$SIZE" --acks all --runs 1 \
    | awk '/^run 1:/ { print $6 }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

for t in $TARGETS; do
  echo "${NAMES[$t]} produce warm-up (not counted): $(produce_rate "${ADDRS[$t]}" bench) records/s"
  produce_rate "${ADDRS[$t]}" bench-consume >/dev/null  # the records consume reads
done
for r in $(seq "$RUNS"); do
  for t in $TARGETS; do produce_rate "${ADDRS[$t]}" bench >> "$TMP/produce-$t"; done
done
for r in $(seq "$RUNS"); do
  for t in $TARGETS; do
    out=$($TAPE bench consume --brokers "${ADDRS[$t]}" --topic bench-consume --count "$N" --runs 1 2>&1 || true)
    echo "$out" | awk '/^run 1:/ { print $3, $6 }' >> "$TMP/consume-$t"
  done
done
mock_p=$(median < "$TMP/produce-2")
mock_c=$(cut -d' ' -f2 "$TMP/consume-2" | median)
for t in $TARGETS; do
  p=$(median < "$TMP/produce-$t")
  c=$(cut -d' ' -f2 "$TMP/consume-$t" | median)
  echo "${NAMES[$t]} produce: median $(printf '%.0f' "$p") records/s ($(awk -v a="$p" -v b="$mock_p" 'BEGIN { printf "%.0f", 100 * a / b }')% of the mock); runs: $(tr '\n' ' ' < "$TMP/produce-$t")"
  echo "${NAMES[$t]} consume: median $(printf '%.0f' "$c") records/s ($(awk -v a="$c" -v b="$mock_c" 'BEGIN { printf "%.0f", 100 * a / b }')% of the mock); records read per run: $(cut -d' ' -f1 "$TMP/consume-$t" | tr '\n' ' ')"
done
