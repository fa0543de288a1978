#!/usr/bin/env bash
# The project's test command (see README): formatting, the structure checks, lints, every
# crate's tests with and without the optional features, the memory goals with a release
# build, and a short smoke run of each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "formatting"
cargo fmt --all -- --check

step "structure (no non-test source file over 600 lines, no module cycle in any crate)"
python3 -m unittest discover -s tests/checks -q
python3 tests/checks/structure.py

# dialtone-g729 links the system libbcg729, so only the g729 steps build it: the default
# build needs no C codec library.
step "lints (default features)"
cargo clippy --workspace --exclude dialtone-g729 --all-targets -- -D warnings

step "lints (opus, g729, usb-handset)"
cargo clippy -p dialtone-g729 -p dialtone-media -p dialtone-ata --all-targets \
    --features dialtone-media/opus,dialtone-media/g729,dialtone-ata/opus,dialtone-ata/g729,dialtone-ata/usb-handset \
    -- -D warnings
cargo clippy -p dialtone-e2e --all-targets --features opus,g729 -- -D warnings

step "tests (default features)"
cargo test --workspace --exclude dialtone-g729

step "tests (opus, g729, usb-handset)"
cargo test -p dialtone-g729
cargo test -p dialtone-media --features opus,g729
cargo test -p dialtone-ata --features opus,g729,usb-handset
cargo test -p dialtone-e2e --features opus,g729 --test ata_opus --test ata_speech --test ata_g729
cargo test -p dialtone-e2e --features opus,g729 --test ata_load -- opus

# A release build, as a user runs it: the allocator's behaviour decides these figures, which
# no heap count in a test sees (an exact-size copy of each AOR's packed bindings once doubled
# the bytes per binding with the same requested sizes).
step "memory per binding, ringing INVITE and idle TCP connection within the goals (release build)"
cargo build --release -p dialtone-proxy
python3 tests/bench/memory.py --check

step "fuzz smoke (${FUZZ_SECONDS:-30} s per target)"
bash fuzz/smoke.sh "${FUZZ_SECONDS:-30}"
