#!/usr/bin/env bash
# Load figure for the ATA: one dialtone-ata process (the caller, lines 1000-1099) holds CALLS
# concurrent G.711 calls to a second process (the callee, lines 2000-2099, auto-answer),
# directly over loopback, each side playing a tone. Once every call is connected and has run
# a moment, it reads utime+stime of both processes from /proc/PID/stat over MEASURE seconds
# and prints each as a percentage of one core, with the RTP packet rate the callee received.
#
#   bash tests/load/ata_100_calls.sh            # CALLS=100 MEASURE=10 by default
#
# Bounded in time (every wait has a deadline) and it stops only the processes it started,
# by PID. Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/../.."

CALLS=${CALLS:-100}
MEASURE=${MEASURE:-10}
SETTLE=${SETTLE:-3}

cargo build --release -q -p dialtone-ata
BIN=target/release/dialtone-ata
DIR=$(mktemp -d)
. tests/load/processes.sh

# Starts the ATA with config $1, output under $2.*; sets PID, SIP and CONTROL.
start_ata() {
    local config=$1 name=$2
    "$BIN" --config "$config" >"$DIR/$name.out" 2>"$DIR/$name.log" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 100); do
        SIP=$(sed -n 's/^sip udp://p' "$DIR/$name.out")
        CONTROL=$(sed -n 's|^control http://||p' "$DIR/$name.out")
        [ -n "$SIP" ] && [ -n "$CONTROL" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not start:" >&2
    cat "$DIR/$name.log" >&2
    exit 1
}

cat >"$DIR/callee.toml" <<TOML
bind = "127.0.0.1:0"
control = "127.0.0.1:0"
register_interval = 0
rtp_ports = "30000-31999"
auto_answer = 0.1
[[line]]
user = "2000"
count = $CALLS
audio_in = "tone:1000"
TOML
start_ata "$DIR/callee.toml" callee
CALLEE_PID=$PID CALLEE_SIP=$SIP CALLEE_CONTROL=$CONTROL

cat >"$DIR/caller.toml" <<TOML
proxy = "$CALLEE_SIP"
bind = "127.0.0.1:0"
control = "127.0.0.1:0"
register_interval = 0
rtp_ports = "20000-21999"
[[line]]
user = "1000"
count = $CALLS
audio_in = "tone:1500"
TOML
start_ata "$DIR/caller.toml" caller
CALLER_PID=$PID CALLER_CONTROL=$CONTROL

for n in $(seq "$CALLS"); do
    curl -sf -o /dev/null -X POST "http://$CALLER_CONTROL/lines/$n/dial?digits=$((1999 + n))%23"
done

connected() { curl -sf "http://$1/calls" | grep -o '"connected":true' | wc -l; }
for _ in $(seq 300); do
    [ "$(connected "$CALLER_CONTROL")" -ge "$CALLS" ] && [ "$(connected "$CALLEE_CONTROL")" -ge "$CALLS" ] && break
    sleep 0.1
done
echo "connected: caller $(connected "$CALLER_CONTROL")/$CALLS, callee $(connected "$CALLEE_CONTROL")/$CALLS"
[ "$(connected "$CALLER_CONTROL")" -ge "$CALLS" ] || { echo "not every call connected" >&2; exit 1; }
sleep "$SETTLE"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
received() {
    curl -sf "http://$1/metrics" | awk '/^dialtone_ata_rtp_packets_received_total/ {s += $2} END {printf "%d", s}'
}
HZ=$(getconf CLK_TCK)
caller0=$(ticks "$CALLER_PID") callee0=$(ticks "$CALLEE_PID") rx0=$(received "$CALLEE_CONTROL")
sleep "$MEASURE"
caller1=$(ticks "$CALLER_PID") callee1=$(ticks "$CALLEE_PID") rx1=$(received "$CALLEE_CONTROL")
still=$(connected "$CALLER_CONTROL")

awk -v a="$((caller1 - caller0))" -v b="$((callee1 - callee0))" -v hz="$HZ" -v s="$MEASURE" \
    -v rx="$((rx1 - rx0))" -v calls="$CALLS" -v still="$still" 'BEGIN {
    printf "calls: %d concurrent G.711 (PCMU, 20 ms), still connected after the window: %d\n", calls, still
    printf "caller CPU: %.1f %% of one core\n", 100 * a / hz / s
    printf "callee CPU: %.1f %% of one core\n", 100 * b / hz / s
    printf "callee received: %.0f RTP packets/s (expected %d)\n", rx / s, calls * 50
}'
