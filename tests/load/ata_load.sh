#!/usr/bin/env bash
# The load generator at full size: `dialtone-ata load` holds CALLS concurrent G.711 calls
# through a proxy (dialtone-proxy, or Kamailio with PROXY=kamailio), CALLS caller lines in the
# load process and CALLS callee lines in the process it starts. Once every call is answered
# and has run SETTLE seconds, it reads utime+stime of both processes from /proc/PID/stat over
# MEASURE seconds (the plateau: every call connected, none placed or ended), prints each as a
# percentage of one core, then lets the run finish and prints its report.
#
#   bash tests/load/ata_load.sh                    # CALLS=1000 RATE=100 HOLD=40, dialtone-proxy
#   PROXY=kamailio bash tests/load/ata_load.sh     # through Kamailio (tests/kamailio/ata-lab.cfg)
#   PERF=1 bash tests/load/ata_load.sh             # also perf record -g the caller for MEASURE s
#   OUT=report.json bash tests/load/ata_load.sh    # keep the JSON report
#
# Bounded in time (every wait has a deadline); it stops only the processes it started, by PID.
# Builds the release binaries first (BUILD=0: use those in $CARGO_TARGET_DIR or target/).
set -euo pipefail
cd "$(dirname "$0")/../.."

CALLS=${CALLS:-1000}
RATE=${RATE:-100}
HOLD=${HOLD:-40}
MEASURE=${MEASURE:-10}
SETTLE=${SETTLE:-3}
PROXY=${PROXY:-dialtone}
TARGET=${CARGO_TARGET_DIR:-target}

[ "${BUILD:-1}" = 1 ] && cargo build --release -q -p dialtone-ata -p dialtone-proxy
DIR=$(mktemp -d)
. tests/load/processes.sh

PORT=$((15060 + RANDOM % 1000))
if [ "$PROXY" = kamailio ]; then
    /usr/sbin/kamailio -DD -E -f tests/kamailio/ata-lab.cfg -l "udp:127.0.0.1:$PORT" -m 256 -M 16 \
        -w "$DIR" -Y "$DIR" 2>"$DIR/proxy.log" &
else
    "$TARGET/release/dialtone-proxy" --listen "udp:127.0.0.1:$PORT" --http 127.0.0.1:0 \
        --memory-only 2>"$DIR/proxy.log" &
fi
PROXY_PID=$!
PIDS+=("$PROXY_PID")
sleep 1
kill -0 "$PROXY_PID" || { cat "$DIR/proxy.log" >&2; exit 1; }

"$TARGET/release/dialtone-ata" load --proxy "127.0.0.1:$PORT" --calls "$CALLS" --rate "$RATE" \
    --hold "$HOLD" --lines "$CALLS" --json "$DIR/report.json" >"$DIR/table.txt" 2>"$DIR/progress.txt" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")

# Every call answered: the progress line says so.
for _ in $(seq $((CALLS / RATE * 10 + 600))); do
    grep -q "answered $CALLS " "$DIR/progress.txt" && break
    kill -0 "$LOAD_PID" 2>/dev/null || break
    sleep 0.1
done
tail -n 1 "$DIR/progress.txt"
grep -q "answered $CALLS " "$DIR/progress.txt" || { echo "not every call answered" >&2; cat "$DIR/progress.txt" >&2; exit 1; }
CALLEE_PID=$(pgrep -P "$LOAD_PID" | head -n 1)
sleep "$SETTLE"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
if [ "${PERF:-0}" = 1 ]; then
    perf record -g -o "$DIR/perf.data" -p "$LOAD_PID" -- sleep "$MEASURE" >/dev/null 2>&1 &
    PERF_PID=$!
fi
caller0=$(ticks "$LOAD_PID") callee0=$(ticks "$CALLEE_PID") proxy0=$(ticks "$PROXY_PID")
sleep "$MEASURE"
caller1=$(ticks "$LOAD_PID") callee1=$(ticks "$CALLEE_PID") proxy1=$(ticks "$PROXY_PID")
tail -n 1 "$DIR/progress.txt"
if [ "${PERF:-0}" = 1 ]; then
    wait "$PERF_PID" || true
    perf report -i "$DIR/perf.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null | grep -v '^$' | head -n 80
fi
awk -v a="$((caller1 - caller0))" -v b="$((callee1 - callee0))" -v p="$((proxy1 - proxy0))" \
    -v hz="$HZ" -v s="$MEASURE" -v calls="$CALLS" -v proxy="$PROXY" 'BEGIN {
    printf "%d concurrent G.711 calls through %s, CPU over %d s with every call connected:\n", calls, proxy, s
    printf "  load generator (callers): %.1f %% of one core\n", 100 * a / hz / s
    printf "  callee process:           %.1f %% of one core\n", 100 * b / hz / s
    printf "  proxy:                    %.1f %% of one core\n", 100 * p / hz / s
}'

for _ in $(seq $((HOLD * 10 + 900))); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
wait "$LOAD_PID" || echo "load exited with $?"
cat "$DIR/table.txt"
if [ -n "${OUT:-}" ]; then cp "$DIR/report.json" "$OUT"; fi
