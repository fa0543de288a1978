#!/bin/sh
# Measures dialtone-proxy and Kamailio with the shared SIPp driver (../shared/bench) and prints
# the side-by-side table. The two proxies alternate repeat by repeat (Kamailio's first max-rate
# search, ours, Kamailio's second, ...; then the fixed-rate runs the same way), so that both see
# the same machine: on this shared machine the noise drifts over minutes, and running all of
# one proxy's repeats before the other's let that drift decide close rows. Needs sip-tester and
# kamailio (Debian), python3, and ../shared/bench.
#
#   REPEATS (default 1), DURATION (default 5 s per step), FIXED_DURATION (default DURATION: the
#   fixed-rate runs, whose probe takes 20 samples a second), SCENARIOS (default all four),
#   MODES (default "max fixed": the max-rate searches and the fixed reference-rate runs),
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

cargo build --release -p dialtone-proxy --manifest-path "$root/Cargo.toml"
proxy_bin="$root/target/release/dialtone-proxy"

# Like run-kamailio.sh, credentials are loaded only when the scenario authenticates; like its
# usrloc db_mode 0, registrations stay in memory (--memory-only).
dialtone_cmd="exec $proxy_bin --listen udp:\$PROXY_HOST:\$PROXY_PORT --http 127.0.0.1:0 --workers 2 --trace-calls 0 --memory-only --log warn \$( [ \"\$BENCH_AUTH\" = 1 ] && echo --auth all --users \$BENCH_CREDENTIALS || echo --auth none )"

# The same start and reference rates as the shared run_all.sh.
start_of() { case $1 in register_noauth) echo 2000;; register_auth) echo 1000;; *) echo 250;; esac; }
ref_of()   { case $1 in register_*) echo 1000;; *) echo 200;; esac; }

# measure PROXY MODE SCENARIO REPEAT: one repeat of one measurement into $out/PROXY/MODE-SCENARIO/rREPEAT
measure() {
    case $1 in
        kamailio) cmd="$bench/kamailio/run-kamailio.sh" name=kamailio-n2;;
        dialtone) cmd="$dialtone_cmd" name=dialtone-n2;;
    esac
    case $2 in
        max) args="--start $(start_of "$3") --duration $duration";;
        fixed) args="--rate $(ref_of "$3") --duration $fixed_duration";;
    esac
    mkdir -p "$out/$1"
    # shellcheck disable=SC2086 # $args is a list of options
    PROXY_CMD="$cmd" PROXY_NAME="$name" python3 "$bench/sipp/bench.py" "$2" "$3" $args \
        --repeats 1 --out "$out/$1/$2-$3/r$4" 2>>"$out/$1/log.txt" | tee -a "$out/$1/summary.txt"
}

for s in $scenarios; do
    for mode in $modes; do
        runs_k="" runs_d=""
        for r in $(seq "$repeats"); do
            measure kamailio "$mode" "$s" "$r"
            measure dialtone "$mode" "$s" "$r"
            runs_k="$runs_k $out/kamailio/$mode-$s/r$r" runs_d="$runs_d $out/dialtone/$mode-$s/r$r"
        done
        # shellcheck disable=SC2086 # lists of directories
        python3 "$here/merge.py" "$out/kamailio/$mode-$s" $runs_k
        # shellcheck disable=SC2086
        python3 "$here/merge.py" "$out/dialtone/$mode-$s" $runs_d
    done
done
python3 "$bench/sipp/report.py" "$out/kamailio" "$out/dialtone"
