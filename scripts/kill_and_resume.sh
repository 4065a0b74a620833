#!/usr/bin/env bash
# Kill ./run_all.sh with SIGKILL (its whole process group) at random moments until one attempt finishes by itself,
# then compare its tables byte for byte with a reference run and check the judge cache for repeated calls.
#   git clone . /tmp/ref && (cd /tmp/ref && ./run_all.sh)            # the uninterrupted reference
#   git clone . /tmp/kill && scripts/kill_and_resume.sh /tmp/kill /tmp/ref [RANDOM_SEED] [MIN_S] [MAX_S]
# The clone's .venv is set up first, uninterrupted (a SIGKILL inside pip is not what this checks).
set -u
DIR="$(cd "$1" && pwd)"; REF="$(cd "$2" && pwd)"
RANDOM=${3:-7}; MIN_S=${4:-15}; MAX_S=${5:-90}
cd "$DIR"
bash scripts/setup.sh > setup.log 2>&1 || { echo "setup failed: see $DIR/setup.log"; exit 1; }
n=0
while :; do
    n=$((n + 1))
    rm -f .rc
    setsid bash -c './run_all.sh >> run.log 2>&1; echo $? > .rc' &
    pid=$!
    t=$(( MIN_S + RANDOM % (MAX_S - MIN_S + 1) ))
    for ((i = 0; i < t; i++)); do sleep 1; [ -f .rc ] && break; done
    if [ -f .rc ]; then
        echo "attempt $n finished by itself (exit $(cat .rc))" | tee -a kills.log
        break
    fi
    echo "attempt $n: SIGKILL after ${t}s during: $(grep -a '^\[stage\]' run.log | tail -1 | cut -c1-120)" | tee -a kills.log
    kill -9 -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    sleep 3
done
status=0
for f in "$REF"/results/*.csv "$REF"/results/*.md "$REF"/results/*.png "$REF"/results/*.json; do
    name=$(basename "$f")
    [ "$name" = REPORT.md ] && continue  # holds this run's wall time
    if cmp -s "$f" "results/$name"; then echo "identical  $name"; else echo "DIFFERENT  $name"; status=1; fi
done
python3 - "$REF" "$DIR" <<'EOF' || status=1
import json, sys
counts = []
for root in sys.argv[1:]:
    keys, torn = [], 0
    for line in open(f"{root}/runs/tiny/judge-cache.jsonl", "rb"):
        try:
            keys.append(json.loads(line)["key"])
        except (ValueError, KeyError):
            torn += bool(line.strip())  # a line cut by a kill mid-write; its request was not answered
    counts.append((len(keys), len(set(keys))))
    print(f"{root}: {len(keys)} judge replies stored, {len(set(keys))} distinct requests, {torn} torn lines")
sys.exit(0 if counts[0] == counts[1] and counts[1][0] == counts[1][1] else 1)
EOF
exit $status
