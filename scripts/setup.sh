#!/usr/bin/env bash
# Installs everything wirespan needs on a fresh Debian machine of this kind and
# builds the agent. With `--run`, starts the agent afterwards (spans are printed
# to stdout unless OTEL_EXPORTER_OTLP_ENDPOINT or a config file says otherwise).
#
#   scripts/setup.sh              install + build
#   scripts/setup.sh --run        install + build + run (as root)
#   scripts/setup.sh --deps-only  install only (what scripts/test.sh needs)
#
# Idempotent: a second run skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (it installs Debian packages, and the agent loads eBPF programs)" >&2
  exit 1
fi

# Real peer programs for the tests and the benchmark, from Debian.
DEBIAN_PACKAGES=(nginx-light nghttp2-server nghttp2-client wrk curl golang-1.19-go libssl-dev gcc binutils chromium)
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# nginx-light's package starts a server on port 80; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
pkill -x nginx >/dev/null 2>&1 || true

# A real OTLP collector (rotel) and YAML parsing for the deployment-file checks.
python3 -m pip install --quiet --disable-pip-version-check rotel pyyaml kubernetes-validate grpcio 2>&1 | grep -v "WARNING: Running pip as" || true
# grpcio for integration/scripts/grpc_cart.py, in the interpreter the
# integration tests run (integration/src/python.rs: /usr/bin/python3 when it
# exists, which Debian marks externally managed).
if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c "import grpc" 2>/dev/null; then
  /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --break-system-packages grpcio 2>&1 | grep -v "WARNING: Running pip as" || true
fi

# The eBPF toolchain: rust-src and a bpf-linker on the nightly's own LLVM.
scripts/setup-toolchain.sh

# aya needs tracefs for tracepoint ids; the agent mounts it itself too.
if [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi

if [ "${1:-}" = "--deps-only" ]; then
  log "dependencies installed"
  exit 0
fi

log "building wirespan (release)"
cargo build --release -p wirespan --locked

if [ "${1:-}" = "--run" ]; then
  log "starting: target/release/wirespan run (Ctrl-C stops it)"
  exec target/release/wirespan run
fi
log "done: run the agent with  sudo target/release/wirespan run"
