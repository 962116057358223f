#!/usr/bin/env python3
"""Keeps a fuzz target's corpus under a byte budget, losing as little coverage as it can.

`cargo fuzz cmin` keeps every input that adds a feature, and a target such as `proto` (62 message types,
each decoder its own code) keeps thousands. This picks, from a libFuzzer merge control file, the named
inputs (`seed-*`, `regression-*` and the like: every file whose name is not a hash) and then, greedily, the
input that adds the most uncovered features per byte, until the budget is spent; the rest of the directory
is deleted. An optional fourth argument is what each file costs on top of its bytes (the budget counts
both), to keep fewer, larger files.

    cd fuzz
    B=target/x86_64-unknown-linux-gnu/release
    mkdir -p /tmp/merge-out
    $B/proto -merge=1 -use_counters=0 -merge_control_file=/tmp/proto.ctl /tmp/merge-out corpus/proto
    python3 trim-corpus.py /tmp/proto.ctl corpus/proto 400000 200
"""

import heapq
import os
import re
import sys

HASH = re.compile(r"^[0-9a-f]{40}$")


def read_control(path):
    """Input paths and the features of each, from a merge control file."""
    with open(path) as f:
        lines = f.read().splitlines()
    count = int(lines[0])
    files = lines[2 : 2 + count]
    features = {}
    for line in lines[2 + count :]:
        if line.startswith("FT "):
            parts = line.split()
            features[int(parts[1])] = set(map(int, parts[2:]))
    return files, features


def main():
    control, corpus, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # What a file costs besides its bytes (a file in the repository, a run of the smoke test).
    overhead = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    files, features = read_control(control)
    here = {os.path.basename(f): f for f in files if os.path.dirname(os.path.abspath(f)) == os.path.abspath(corpus)}
    size = {name: os.path.getsize(path) + overhead for name, path in here.items()}
    index = {os.path.basename(f): i for i, f in enumerate(files)}
    feats = {name: features.get(index[name], set()) for name in here}
    chosen = [name for name in here if not HASH.match(name)]
    covered = set().union(*(feats[n] for n in chosen)) if chosen else set()
    spent = sum(size[n] for n in chosen)
    # Lazy greedy: a file's gain only shrinks as coverage grows, so a stale score is an upper bound.
    heap = [(-len(feats[n]) / max(size[n], 1), n) for n in set(here) - set(chosen)]
    heapq.heapify(heap)
    while heap:
        _, name = heapq.heappop(heap)
        if spent + size[name] > budget:
            continue
        gain = len(feats[name] - covered)
        if not gain:
            continue
        score = gain / max(size[name], 1)
        if heap and score < -heap[0][0]:
            heapq.heappush(heap, (-score, name))
            continue
        chosen.append(name)
        covered |= feats[name]
        spent += size[name]
    total = set().union(*feats.values()) if feats else set()
    for name in set(here) - set(chosen):
        os.remove(here[name])
    kept = sum(os.path.getsize(here[n]) for n in chosen)
    print(
        f"{corpus}: kept {len(chosen)} of {len(here)} files, {kept} bytes, "
        f"{len(covered)} of {len(total)} features ({100 * len(covered) / max(len(total), 1):.1f}%)"
    )


if __name__ == "__main__":
    main()
