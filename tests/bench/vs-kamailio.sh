#!/bin/sh
# Measures dialtone-proxy and Kamailio with the shared SIPp driver (../shared/bench) and prints
# the side-by-side table: Kamailio, dialtone-proxy as a user starts it (its defaults: only
# --listen, --http, --data-dir and, for the auth scenarios, --auth all --users FILE, so
# registrations are durable in redb, the call recorder keeps 200 calls and logs are at info),
# and dialtone-proxy tuned as Kamailio's reference config is (memory only, no recorder, warn
# logs). The proxies alternate repeat by repeat (Kamailio's first max-rate search, ours,
# Kamailio's second, ...; then the fixed-rate runs the same way), so that all see the same
# machine: on this shared machine the noise drifts over minutes, and running all of one
# proxy's repeats before the other's let that drift decide close rows. Needs sip-tester and
# kamailio (Debian), python3, and ../shared/bench.
#
#   REPEATS (default 1), DURATION (default 5 s per step), FIXED_DURATION (default DURATION: the
#   fixed-rate runs, whose probe takes 20 samples a second), SCENARIOS (default all four),
#   MODES (default "max fixed": the max-rate searches and the fixed reference-rate runs),
#   MAX_RATE (default 64000: the max-rate search never offers more),
#   BENCH_DIR (default ../shared/bench), OUT (default $TMPDIR/dialtone-bench/vs-kamailio-<time>)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/bench"
bench=${BENCH_DIR:-$root/../shared/bench}
out=${OUT:-${TMPDIR:-/tmp}/dialtone-bench/vs-kamailio-$(date +%Y%m%d-%H%M%S)}
scenarios=${SCENARIOS:-register_noauth register_auth call_noauth call_auth}
repeats=${REPEATS:-1}
duration=${DURATION:-5}
fixed_duration=${FIXED_DURATION:-$duration}
modes=${MODES:-max fixed}
# The max-rate search's ceiling: the driver's default (32 000/s) capped the search once our
# proxy passed it.
max_rate=${MAX_RATE:-64000}

cargo build --release -p dialtone-proxy --manifest-path "$root/Cargo.toml"
proxy_bin="$root/target/release/dialtone-proxy"

# Like run-kamailio.sh, credentials are loaded only when the scenario authenticates.
auth_flags="\$( [ \"\$BENCH_AUTH\" = 1 ] && echo --auth all --users \$BENCH_CREDENTIALS || echo --auth none )"
# As installed: the defaults, with a data directory of the step's own.
defaults_cmd="exec $proxy_bin --listen udp:\$PROXY_HOST:\$PROXY_PORT --http 127.0.0.1:0 --data-dir \$BENCH_RUN_DIR/dialtone-data \$( [ \"\$BENCH_AUTH\" = 1 ] && echo --auth all --users \$BENCH_CREDENTIALS )"
# Tuned like Kamailio's reference config (usrloc db_mode 0: registrations in memory).
memory_cmd="exec $proxy_bin --listen udp:\$PROXY_HOST:\$PROXY_PORT --http 127.0.0.1:0 --workers 2 --trace-calls 0 --memory-only --log warn $auth_flags"

# The same start and reference rates as the shared run_all.sh.
start_of() { case $1 in register_noauth) echo 2000;; register_auth) echo 1000;; *) echo 250;; esac; }
ref_of()   { case $1 in register_*) echo 1000;; *) echo 200;; esac; }

# measure PROXY MODE SCENARIO REPEAT: one repeat of one measurement into $out/PROXY/MODE-SCENARIO/rREPEAT
measure() {
    case $1 in
        kamailio) cmd="$bench/kamailio/run-kamailio.sh" name=kamailio-n2;;
        dialtone) cmd="$defaults_cmd" name=dialtone-defaults;;
        dialtone-memory) cmd="$memory_cmd" name=dialtone-memory-n2;;
    esac
    case $2 in
        max) args="--start $(start_of "$3") --duration $duration --max-rate $max_rate";;
        fixed) args="--rate $(ref_of "$3") --duration $fixed_duration";;
    esac
    mkdir -p "$out/$1"
    # shellcheck disable=SC2086 # $args is a list of options
    PROXY_CMD="$cmd" PROXY_NAME="$name" python3 "$bench/sipp/bench.py" "$2" "$3" $args \
        --repeats 1 --out "$out/$1/$2-$3/r$4" 2>>"$out/$1/log.txt" | tee -a "$out/$1/summary.txt"
}

for s in $scenarios; do
    for mode in $modes; do
        for r in $(seq "$repeats"); do
            for proxy in kamailio dialtone dialtone-memory; do
                measure "$proxy" "$mode" "$s" "$r"
            done
        done
        for proxy in kamailio dialtone dialtone-memory; do
            runs=""
            for r in $(seq "$repeats"); do runs="$runs $out/$proxy/$mode-$s/r$r"; done
            # shellcheck disable=SC2086 # a list of directories
            python3 "$here/merge.py" "$out/$proxy/$mode-$s" $runs
        done
    done
done
python3 "$bench/sipp/report.py" "$out/kamailio" "$out/dialtone" "$out/dialtone-memory"
