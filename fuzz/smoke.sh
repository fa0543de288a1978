#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for a short time, so the targets cannot rot.
# Usage: fuzz/smoke.sh [SECONDS]   (default 30)
#
# cargo-fuzz needs a nightly compiler: the nightly toolchain when rustup has one, otherwise the
# stable one with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

for target in sip_message digest_credentials sdp; do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    case "$target" in
        sip_message)
            find ../tests/data/seed-flows ../tests/data/torture -type f \( -name '*.sip' -o -name '*.dat' \) \
                -exec cp {} "$corpus/" \; ;;
        sdp)
            for f in ../tests/data/seed-flows/D-3-call-noauth/01.sip ../tests/data/seed-flows/D-3-call-noauth/07.sip; do
                awk 'body{print} /^\r?$/{body=1}' "$f" > "$corpus/$(basename "$f").sdp"
            done ;;
        digest_credentials)
            grep -h '^Proxy-Authorization:' -r ../tests/data/seed-flows | sed 's/^Proxy-Authorization: //' \
                | split -l 1 - "$corpus/seed-" ;;
    esac
    echo "fuzz target $target: ${seconds}s"
    log="$(mktemp)"
    set +e
    cargo "${toolchain[@]}" fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    grep -E 'Done [0-9]+ runs|stat::number_of_executed_units' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target failed (exit $status)" >&2
        exit 1
    fi
done
