#!/usr/bin/env bash
# The overhead benchmark: nginx under load (wrk, h2load) and dd, with the wirespan agent off and on.
# Run as root from anywhere:  bench/overhead/run.sh [--quick] [--cases keepalive,close,...]
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
    stale="$(cd "$repo" && find . \( -path ./target -o -path ./fuzz -o -path ./integration \
        -o -path ./.git \) -prune -o \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) \
        -newer "$bin" -type f -print -quit 2>/dev/null || true)"
fi
if [[ -n "$stale" ]]; then
    echo "[overhead] building the agent ($stale is newer than $bin)" >&2
    (cd "$repo" && cargo build --release -p wirespan --locked)
fi

exec python3 "$here/overhead.py" --agent "$bin" "$@"
