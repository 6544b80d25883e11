#!/usr/bin/env bash
# Installs what building wirespan's eBPF probes needs, from the project's own files:
# rust-src for the nightly (or stable with RUSTC_BOOTSTRAP as a fallback) and a
# bpf-linker linked against that toolchain's own LLVM 22 (Debian has no LLVM 22).
# Idempotent: each step is skipped when its result is already present.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

pick_toolchain() {
  if rustup toolchain list | grep -q '^nightly-x86_64-unknown-linux-gnu'; then
    echo nightly
  else
    echo stable
  fi
}

TC="$(pick_toolchain)"
log "probe toolchain: $TC"
rustup component add rust-src --toolchain "$TC" >/dev/null 2>&1 || {
  log "could not add rust-src to the $TC toolchain"; exit 1; }

SYSROOT_LIB="$(rustc +"$TC" --print sysroot)/lib"
LLVM_SO="$(ls "$SYSROOT_LIB"/libLLVM.so.22.1-rust-* 2>/dev/null | head -n1 || true)"
if [ -z "$LLVM_SO" ]; then
  log "the $TC toolchain ships no libLLVM.so.22 in $SYSROOT_LIB; bpf-linker cannot be built"; exit 1
fi

want_linker_version="0.13.0"
if command -v bpf-linker >/dev/null 2>&1 && bpf-linker --version 2>/dev/null | grep -q "$want_linker_version" \
   && ldd "$(command -v bpf-linker)" 2>/dev/null | grep -q "$(basename "$LLVM_SO")"; then
  log "bpf-linker $want_linker_version already linked against $(basename "$LLVM_SO")"
else
  log "building bpf-linker $want_linker_version against $(basename "$LLVM_SO") (about 70 s)"
  D="$(mktemp -d)"
  ln -s "$LLVM_SO" "$D/libLLVM.so"
  RUSTFLAGS="-L $D -l dylib=LLVM -C link-arg=-Wl,-rpath,$SYSROOT_LIB" \
    cargo +stable install --locked bpf-linker --version "$want_linker_version" \
      --no-default-features --features llvm-22,no-llvm-linking --force
  rm -rf "$D"
fi
if [ "$TC" = stable ]; then
  log "no nightly: probes build on stable with RUSTC_BOOTSTRAP=1 (see capture/build.rs)"
fi
