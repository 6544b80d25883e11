#!/usr/bin/env bash
# Short fuzz runs of every cargo-fuzz target (fuzz/), from the committed seed
# corpora: builds all targets, runs each for FUZZ_SECONDS (default 15) and
# prints one summary line per target. Exits non-zero if any target crashes,
# hangs, fails an invariant, or does not build. CI runs it from scripts/test.sh.
#
#   scripts/fuzz-smoke.sh                 all targets, 10 s each
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh http1_session hpack_decoder
#
# First run on a clean clone: installs cargo-fuzz (~1-2 min) and builds the
# targets with ASan (the wirespan crate is built with AYA_BUILD_SKIP=1)
# (~5-8 min on 2 cores); later runs reuse fuzz/target and take ~2 min in all.
# Findings land in fuzz/artifacts/<target>/ (git-ignored); see FUZZING.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SECONDS:-10}"
# The targets never load eBPF: skip the probe build in the wirespan crate.
export AYA_BUILD_SKIP=1
ALL_TARGETS=(http1_session http2_session hpack_decoder conn_tracker recording_reader config_loader go_pclntab elf_eh_frame)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

log() { printf 'fuzz-smoke: %s\n' "$*" >&2; }
start=$(date +%s)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  log "cargo-fuzz not installed: installing it (one time, ~1-2 min): cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi

# libFuzzer instrumentation needs -Z flags: the nightly if installed, else
# stable with RUSTC_BOOTSTRAP=1 (as capture/build.rs does for the probes).
if rustup run nightly rustc --version >/dev/null 2>&1; then
  FUZZ=(cargo +nightly fuzz)
else
  log "no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
  FUZZ=(cargo +stable fuzz)
fi

if [ ! -d fuzz/target/x86_64-unknown-linux-gnu/release ]; then
  log "first build of the fuzz targets (dependencies with ASan; the eBPF build is skipped): several minutes"
fi
log "building ${#TARGETS[@]} target(s): ${FUZZ[*]} build -a (debug assertions on)"
build_start=$(date +%s)
build_args=()
if [ "$#" -gt 0 ]; then build_args=("${TARGETS[@]:0:1}"); fi
# One build of every target at once shares the dependency builds (with -a,
# debug assertions on); a single named target builds just that one.
if [ "$#" -gt 1 ]; then build_args=(); fi
if ! "${FUZZ[@]}" build -a "${build_args[@]}" >fuzz/build.log 2>&1; then
  tail -40 fuzz/build.log >&2
  log "FAIL: the fuzz targets do not build (log: fuzz/build.log)"
  exit 1
fi
rm -f fuzz/build.log
log "build took $(( $(date +%s) - build_start )) s"

BIN=fuzz/target/x86_64-unknown-linux-gnu/release
failed=0
summary=()
for t in "${TARGETS[@]}"; do
  corpus=fuzz/corpus-run/$t
  artifacts=fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  out=$(mktemp)
  set +e
  # Seeds are read from fuzz/seeds (never written); new inputs go to corpus-run.
  "$BIN/$t" "$corpus" "fuzz/seeds/$t" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$out" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -1)
  last=$(grep -E '^#[0-9]+' "$out" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then
    line=$(printf '%-17s ok    %9s execs %6s/s  cov %-5s ft %-6s corpus %s' \
      "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")
  else
    failed=1
    grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|Test unit written to|==[0-9]+== ?ERROR' "$out" | head -8 >&2 || true
    tail -30 "$out" >&2
    line=$(printf '%-17s FAIL  exit %s; reproducer in %s/ (see FUZZING.md)' "$t" "$rc" "$artifacts")
  fi
  log "$line"
  summary+=("$line")
  rm -f "$out"
done

printf '\n=== fuzz smoke summary (%s s per target, %s s in all) ===\n' \
  "$SECONDS_PER_TARGET" "$(( $(date +%s) - start ))"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "fuzz-smoke: FAILED: a target crashed or broke an invariant" >&2
  exit 1
fi
