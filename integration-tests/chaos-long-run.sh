#!/usr/bin/env bash
# The long chaos run (RELIABILITY.md), several seeds at once: every fault kind of each seed of FIRST..LAST,
# one test invocation per seed, WORKERS of them at a time (default 4; a run mostly waits, so four fit on two
# cores). Logs go to OUT (default target/chaos-long-run/): seed-<n>.log per seed, progress.log, and
# table.md, the per-kind table the runs add up to, written at the end (and again with `--table`).
#
#   integration-tests/chaos-long-run.sh 1 50            # from the repository root
#   WORKERS=3 OUT=/tmp/chaos integration-tests/chaos-long-run.sh 51 60
#   integration-tests/chaos-long-run.sh --table         # the table of what OUT holds so far
#   RELEASE=1 integration-tests/chaos-long-run.sh 1 50  # the services built optimised: a run then mostly
#                                                       # waits even six at a time on two cores
#
# A failing run is replayed with the FLOTILLA_CHAOS_SEED/FLOTILLA_CHAOS_FAULT its log names.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/chaos-long-run}
WORKERS=${WORKERS:-4}
mkdir -p "$OUT"

table() {
    python3 - "$OUT" <<'EOF'
import collections, glob, re, sys
out = sys.argv[1]
rows = collections.defaultdict(lambda: [set(), 0, 0, []])
run = re.compile(r"chaos run: seed (\d+) faults (\S+): (\d+) fault\(s\) injected, (\d+) violation\(s\)")
for path in glob.glob(f"{out}/seed-*.log"):
    for seed, kind, faults, violations in run.findall(open(path, errors="replace").read()):
        r = rows[kind]
        r[0].add(int(seed)); r[1] += int(faults); r[2] += int(violations)
        if int(violations):
            r[3].append(seed)
lines = ["| fault kind | seeds run | faults injected | invariant violations | failing seeds |", "|---|---|---|---|---|"]
for kind in sorted(rows):
    seeds, faults, violations, failing = rows[kind]
    lines.append(f"| {kind} | {len(seeds)} ({min(seeds)}–{max(seeds)}) | {faults} | {violations} | {', '.join(failing) or '–'} |")
text = "\n".join(lines) + "\n"
open(f"{out}/table.md", "w").write(text)
print(text, end="")
EOF
}

if [[ ${1:-} == --table ]]; then
    table
    exit 0
fi
FIRST=${1:?first seed}
LAST=${2:?last seed}

PROFILE=()
[[ -n ${RELEASE:-} ]] && PROFILE=(--release)
cargo test "${PROFILE[@]}" -p flotilla-integration-tests --test chaos --no-run
BIN=$(cargo test "${PROFILE[@]}" -p flotilla-integration-tests --test chaos --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "chaos" and m.get("executable"):
        print(m["executable"])')
# The test binary starts the services from the package's own binary; it runs from the package directory.
seq "$FIRST" "$LAST" > "$OUT/queue"
: > "$OUT/queue.lock"
worker() {
    while true; do
        seed=$(flock "$OUT/queue.lock" bash -c "head -1 '$OUT/queue'; sed -i 1d '$OUT/queue'")
        [[ -z $seed ]] && return 0
        echo "seed $seed started $(date +%T)" >> "$OUT/progress.log"
        status=0
        (cd integration-tests && FLOTILLA_CHAOS_SEEDS="$seed-$seed" FLOTILLA_CHAOS_FAULT=all "$BIN" --nocapture) \
            > "$OUT/seed-$seed.log" 2>&1 || status=$?
        echo "seed $seed ended $(date +%T) status $status" >> "$OUT/progress.log"
    done
}
for _ in $(seq "$WORKERS"); do
    worker &
done
wait
table
