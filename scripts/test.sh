#!/usr/bin/env bash
# Runs every check and test of wirespan: formatting, clippy, unit and property
# tests, replay tests, the root-only end-to-end tests with real probes, the
# deployment-file checks and short fuzz runs. CI runs exactly this (.ci/run).
# Needs root: the end-to-end tests load eBPF programs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s ===\n' "$*"; }

step "setup (idempotent)"
scripts/setup.sh --deps-only

step "cargo fmt --check"
cargo fmt --all -- --check
# fuzz/ is a workspace of its own (cargo-fuzz's layout): checked here too.
cargo fmt --all --manifest-path fuzz/Cargo.toml -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets --locked -- -D warnings

step "build the agent for the end-to-end tests"
cargo build -p wirespan --locked
export WIRESPAN_BIN="$PWD/target/debug/wirespan"

step "cargo test (unit, property, replay, end-to-end)"
cargo test --locked --no-fail-fast

if [ -f docker/test_deploy_files.py ]; then
  step "deployment files"
  python3 docker/test_deploy_files.py
fi

if [ -x scripts/fuzz-smoke.sh ]; then
  step "fuzz smoke runs"
  scripts/fuzz-smoke.sh
fi
