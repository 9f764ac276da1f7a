#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the API docs, unit, doc,
# conformance (mem, SQLite, etcd, PostgreSQL) and CLI tests, and every fuzz target
# briefly (scripts/fuzz.sh; STRATA_FUZZ_SECONDS each, default 5).
# Tests that need a server start their own; this script installs what they need
# when it is missing (as root, through apt-get), so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --test

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
# The public API's docs build clean (intra-doc links checked); doc tests run below.
RUSTDOCFLAGS="-D warnings -D rustdoc::broken_intra_doc_links" cargo doc --workspace --no-deps --quiet
cargo test --workspace --all-features
# The fuzz crate is outside the workspace: its own format and lint check, then a short
# run of every target (a crash fails the run).
(cd fuzz && cargo fmt -- --check && cargo clippy --locked -q -- -D warnings)
bash scripts/fuzz.sh "${STRATA_FUZZ_SECONDS:-5}"
