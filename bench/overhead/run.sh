#!/usr/bin/env bash
# The overhead benchmark: nginx + wrk with the wirespan agent off and on.
# Run as root from anywhere:  bench/overhead/run.sh [--rounds 3 --duration 20 ...]
# (options: bench/overhead/run.sh --help). Builds target/release/wirespan first
# when it is missing or older than the sources.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/target/release/wirespan"

stale=""
if [[ ! -x "$bin" ]]; then
    stale="missing"
else
    stale="$(cd "$repo" && find Cargo.toml Cargo.lock collector probes-ebpf probes-common \
        conn-tracker protocol-parsers config self-metrics span-export kernel-btf \
        -newer "$bin" -type f -not -path '*/target/*' -print -quit 2>/dev/null || true)"
fi
if [[ -n "$stale" ]]; then
    echo "[overhead] building the agent ($stale is newer than $bin)" >&2
    (cd "$repo" && cargo build --release -p wirespan --locked)
fi

exec python3 "$here/overhead.py" --agent "$bin" "$@"
