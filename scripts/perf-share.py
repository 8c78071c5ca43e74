#!/usr/bin/env python3
"""Share of CPU samples spent in (and under) functions whose name contains PATTERN.

perf's call graphs cannot follow Swift's async functions to their callers, so `perf report
--children` undercounts stages built from them. This reads `perf script` output instead: it counts
the samples with PATTERN anywhere in their stack, and shows what those samples were doing DEPTH
frames below the first matching frame (1 = the function it called).

    perf record -a -g -F 499 -o /tmp/tape.perf -- sleep 15
    perf script -i /tmp/tape.perf > /tmp/tape.txt
    scripts/perf-share.py /tmp/tape.txt ContinuityC5admit        # ingestion's deduplication
    scripts/perf-share.py /tmp/tape.txt _dispatch_mgr_invoke 3   # the dispatch timer thread
"""
import collections
import sys


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, pattern = sys.argv[1], sys.argv[2]
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    below: collections.Counter = collections.Counter()
    samples = matched = 0
    stack: list = []

    def flush() -> None:
        nonlocal samples, matched
        if not stack:
            return
        samples += 1
        for i, frame in enumerate(stack):  # leaf first
            if pattern in frame:
                matched += 1
                j = i - depth
                below[stack[j][:140] if j >= 0 else "(the function itself)"] += 1
                return

    with open(path, errors="replace") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if not line.strip():
                flush()
                stack = []
            elif line[0] in " \t":
                parts = line.split(None, 1)
                if len(parts) == 2:
                    stack.append(parts[1].rsplit(" (", 1)[0])
    flush()
    print(f"{matched} of {samples} samples ({100 * matched / max(samples, 1):.2f}%) have {pattern!r} in their stack")
    for frame, count in below.most_common(20):
        print(f"{100 * count / max(samples, 1):6.2f}%  {frame}")


if __name__ == "__main__":
    main()
