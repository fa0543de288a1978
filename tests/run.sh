#!/usr/bin/env bash
# The project's test command (see README): formatting, the structure checks, lints, every
# crate's tests with and without the optional features, and a short smoke run of each fuzz
# target.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "formatting"
cargo fmt --all -- --check

step "structure (no non-test source file over 600 lines, no module cycle in any crate)"
python3 -m unittest discover -s tests/checks -q
python3 tests/checks/structure.py

step "lints (default features)"
cargo clippy --workspace --all-targets -- -D warnings

step "lints (opus, usb-handset)"
cargo clippy -p dialtone-media -p dialtone-ata --all-targets \
    --features dialtone-media/opus,dialtone-ata/opus,dialtone-ata/usb-handset -- -D warnings
cargo clippy -p dialtone-e2e --all-targets --features opus -- -D warnings

step "tests (default features)"
cargo test --workspace

step "tests (opus, usb-handset)"
cargo test -p dialtone-media --features opus
cargo test -p dialtone-ata --features opus,usb-handset
cargo test -p dialtone-e2e --features opus --test ata_opus --test ata_speech

step "fuzz smoke (${FUZZ_SECONDS:-30} s per target)"
bash fuzz/smoke.sh "${FUZZ_SECONDS:-30}"
