#!/bin/sh
# Measures dialtone-proxy and Kamailio with the shared SIPp driver (../shared/bench), scenario by
# scenario, alternating the two proxies so that both see the same machine load, then prints the
# side-by-side table. Needs sip-tester and kamailio (Debian), python3, and ../shared/bench.
#
#   REPEATS (default 1), DURATION (default 5 s per step), SCENARIOS (default all four)
#   BENCH_DIR (default ../shared/bench), OUT (default $TMPDIR/dialtone-bench/vs-kamailio-<time>)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bench=${BENCH_DIR:-$root/../shared/bench}
out=${OUT:-${TMPDIR:-/tmp}/dialtone-bench/vs-kamailio-$(date +%Y%m%d-%H%M%S)}
scenarios=${SCENARIOS:-register_noauth register_auth call_noauth call_auth}
export REPEATS=${REPEATS:-1} DURATION=${DURATION:-5}

cargo build --release -p dialtone-proxy --manifest-path "$root/Cargo.toml"
proxy_bin="$root/target/release/dialtone-proxy"

# Like run-kamailio.sh, credentials are loaded only when the scenario authenticates; like its
# usrloc db_mode 0, registrations stay in memory (--memory-only).
dialtone_cmd="exec $proxy_bin --listen udp:\$PROXY_HOST:\$PROXY_PORT --http 127.0.0.1:0 --workers 2 --trace-calls 0 --memory-only --log warn \$( [ \"\$BENCH_AUTH\" = 1 ] && echo --auth all --users \$BENCH_CREDENTIALS || echo --auth none )"

for s in $scenarios; do
    PROXY_CMD="$bench/kamailio/run-kamailio.sh" PROXY_NAME=kamailio-n2 SCENARIOS=$s \
        OUT="$out/kamailio" sh "$bench/sipp/run_all.sh"
    PROXY_CMD="$dialtone_cmd" PROXY_NAME=dialtone-n2 SCENARIOS=$s \
        OUT="$out/dialtone" sh "$bench/sipp/run_all.sh"
done
python3 "$bench/sipp/report.py" "$out/kamailio" "$out/dialtone"
