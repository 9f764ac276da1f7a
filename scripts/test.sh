#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit, conformance (mem, SQLite,
# etcd) and CLI tests.
# Tests that need a server start their own; this script installs what they need
# when it is missing (as root, through apt-get), so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --test

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-features
