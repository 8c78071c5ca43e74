#!/usr/bin/env bash
# End-to-end benchmark of `tape up --offline` (see `tape bench e2e --help`):
# release build, then 1k, 10k and 100k simulated trades/s, 3 runs each, medians last.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product tape
exec .build/release/tape bench e2e --rates "${RATES:-1000,10000,100000}" --seconds "${SECONDS_PER_RUN:-20}" --runs "${RUNS:-3}" "$@"
