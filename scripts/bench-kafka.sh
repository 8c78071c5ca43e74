#!/usr/bin/env bash
# Compares `tape bench produce` with `kcat -P -l FILE` producing the same records to the same
# librdkafka mock cluster in the same run (issue #2's bar), wall time and CPU time.
# Usage: scripts/bench-kafka.sh [RECORDS] [SIZE] [RUNS] [QUEUE]
# QUEUE is queue.buffering.max.messages for both clients (default 100000, librdkafka's default).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SIZE=${2:-100}
RUNS=${3:-5}
QUEUE=${4:-100000}
swift build -c release >/dev/null
TAPE=.build/release/tape
command -v kcat >/dev/null || { echo "kcat is missing: apt-get install -y kcat" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'kill $MOCK_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
$TAPE mock-cluster --brokers 3 --topic tape.bench:1 --topic kcat.bench:1 > "$TMP/mock" &
MOCK_PID=$!
for _ in $(seq 50); do [ -s "$TMP/mock" ] && break; sleep 0.1; done
B=$(head -1 "$TMP/mock")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "mock cluster: $B; $N records of $SIZE bytes, acks=all, idempotent, linger.ms=5, queue.buffering.max.messages=$QUEUE, $RUNS runs"
# Warm-up run that also writes the payload file kcat sends.
$TAPE bench produce --brokers "$B" --topic tape.bench --count "$N" --size "$SIZE" --payload-file "$TMP/payload" >/dev/null
tape_rates=(); tape_wall=(); kcat_rates=()
for run in $(seq "$RUNS"); do
  start=$(date +%s.%N)
  out=$(/usr/bin/time -a -o "$TMP/cpu.tape" -f "%U %S" $TAPE bench produce --brokers "$B" --topic tape.bench --count "$N" --size "$SIZE" --acks all --linger 5 -X queue.buffering.max.messages="$QUEUE")
  end=$(date +%s.%N)
  wall=$(echo "$N / ($end - $start)" | bc -l)
  echo "tape: $out (process start to exit: $(printf '%.1f' "$wall") records/sec)"
  tape_rates+=("$(echo "$out" | sed -E 's/.* ([0-9.]+) records\/sec.*/\1/')")
  tape_wall+=("$wall")
  start=$(date +%s.%N)
  /usr/bin/time -a -o "$TMP/cpu.kcat" -f "%U %S" kcat -b "$B" -P -t kcat.bench -l -X acks=all -X enable.idempotence=true -X linger.ms=5 -X queue.buffering.max.messages="$QUEUE" "$TMP/payload"
  end=$(date +%s.%N)
  rate=$(echo "$N / ($end - $start)" | bc -l)
  printf 'kcat: run %d: %d records sent, %.1f records/sec (process start to exit)\n' "$run" "$N" "$rate"
  kcat_rates+=("$rate")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2==1) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
cpu() { awk '{print $1 + $2}' "$1" | sort -g | awk '{a[NR]=$1} END {print (NR%2==1) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf 'median CPU seconds (user+sys) per run: tape %s, kcat %s\n' "$(cpu "$TMP/cpu.tape")" "$(cpu "$TMP/cpu.kcat")"
printf 'median produce: tape %.0f records/s (in-process timer), tape %.0f records/s (process start to exit), kcat %.0f records/s (process start to exit)\n' "$(median "${tape_rates[@]}")" "$(median "${tape_wall[@]}")" "$(median "${kcat_rates[@]}")"
# Consume is not measured here: the mock cluster keeps only ~5 MB per partition (a few tens of
# thousands of these records). scripts/bench-broker.sh measures consume against `tape broker`.
