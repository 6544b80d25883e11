//! Small helpers shared by the programs: counters, settings, identity.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use probes_common::ProbeSettings;

use super::maps::{COUNTERS, PROC_MUTED, PROC_SEEDED, PROC_SOCKETS, PROC_TLS, SETTINGS};

#[inline(always)]
pub fn count(index: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: this CPU's per-CPU counter slot: no other writer while the
        // program runs, so no atomic is needed.
        unsafe { *p += n };
    }
}

#[inline(always)]
pub fn settings() -> Option<&'static ProbeSettings> {
    SETTINGS.get(0)
}

/// (pid_tgid, tgid, tid) of the current task.
#[inline(always)]
pub fn current_ids() -> (u64, u32, u32) {
    let id = bpf_get_current_pid_tgid();
    (id, (id >> 32) as u32, id as u32)
}

/// Syscall enter argument `i`.
#[inline(always)]
pub fn arg(ctx: &aya_ebpf::programs::TracePointContext, i: usize) -> u64 {
    ctx_u64(ctx, 16 + 8 * i)
}

/// Syscall exit return value.
#[inline(always)]
pub fn ret(ctx: &aya_ebpf::programs::TracePointContext) -> i64 {
    ctx_u64(ctx, 16) as i64
}

/// The 8 bytes at `offset` of a syscall tracepoint record, by a plain load
/// from the context (the verifier allows aligned reads of a tracepoint's
/// record), not a `bpf_probe_read` call as `TracePointContext::read_at` does.
#[inline(always)]
pub fn ctx_u64(ctx: &aya_ebpf::programs::TracePointContext, offset: usize) -> u64 {
    use aya_ebpf::EbpfContext;
    // SAFETY: `offset` is a constant, 8-aligned offset inside the syscall
    // record layout (enter: nr at 8, args at 16 + 8*i; exit: nr at 8, ret at 16).
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(offset) as *const u64) }
}

/// Adds `n` to `*p` and returns the previous value. Not atomic: the probes are
/// built for the generic BPF CPU, where an atomic add cannot return the old value.
/// Two threads moving bytes on the same socket in the same direction at the same
/// instant can therefore race; user space detects the overlap and counts it.
///
/// # Safety
/// `p` must point to a live map value (from a lookup in this program run).
#[inline(always)]
pub unsafe fn fetch_add(p: *mut u64, n: u64) -> u64 {
    // SAFETY: the caller passes a map value pointer, valid until the program returns.
    unsafe {
        let old = core::ptr::read_volatile(p);
        core::ptr::write_volatile(p, old + n);
        old
    }
}

/// Ring buffer flags for a record already reserved (`reserve`, then
/// `submit`): the bytes waiting include it.
#[inline(always)]
pub fn ring_flags_reserved(record_bytes: u64) -> u64 {
    let after = super::maps::EVENTS.query(BPF_RB_AVAIL_DATA);
    wake_flags(after.saturating_sub(record_bytes), after)
}

/// Ring buffer flags for a record about to be written with `output`: the
/// bytes waiting do not include it yet.
#[inline(always)]
pub fn ring_flags_output(record_bytes: u64) -> u64 {
    let before = super::maps::EVENTS.query(BPF_RB_AVAIL_DATA);
    wake_flags(before, before + record_bytes)
}

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// `BPF_RB_FORCE_WAKEUP` or `BPF_RB_NO_WAKEUP`, as
/// `probes_common::ring_wakeup::should_wake` decides.
#[inline(always)]
fn wake_flags(before: u64, after: u64) -> u64 {
    let threshold = match settings() {
        Some(s) => s.wakeup_bytes as u64,
        None => 0,
    };
    if probes_common::ring_wakeup::should_wake(before, after, threshold) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Whether process `tgid` may have tracked sockets (see `maps::PROC_SOCKETS`):
/// false means it has none.
#[inline(always)]
pub fn proc_may_have_sockets(tgid: u32) -> bool {
    let slot = probes_common::proc_sockets::slot(tgid);
    let counted = match PROC_SOCKETS.get(slot) {
        Some(n) => *n != 0,
        None => true,
    };
    counted
        || match PROC_SEEDED.get(slot) {
            Some(n) => *n != 0,
            None => true,
        }
}

/// Adds `delta` (1, or `u64::MAX` for -1) to process `tgid`'s count of tracked
/// sockets, atomically (an add whose result is unused: allowed on the
/// generic BPF CPU).
#[inline(always)]
pub fn proc_sockets_add(tgid: u32, delta: u64) {
    if let Some(p) = PROC_SOCKETS.get_ptr_mut(probes_common::proc_sockets::slot(tgid)) {
        // SAFETY: a pointer into an array map value, valid for the program's
        // run; the old value is not used, so this is a single XADD.
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                p, delta,
            );
        }
    }
}

/// The slot of process `tgid` in one of the per-process flag arrays
/// (`PROC_MUTED`, `PROC_TLS`) is set; a missing slot counts as set.
#[inline(always)]
pub fn proc_flag(map: &aya_ebpf::maps::Array<u32>, tgid: u32) -> bool {
    match map.get(probes_common::proc_sockets::slot(tgid)) {
        Some(v) => *v != 0,
        None => true,
    }
}

/// Whether process `tgid` may have muted sockets.
#[inline(always)]
pub fn proc_may_have_muted(tgid: u32) -> bool {
    proc_flag(&PROC_MUTED, tgid)
}

/// Whether process `tgid` may have a TLS call in progress.
#[inline(always)]
pub fn proc_may_use_tls(tgid: u32) -> bool {
    proc_flag(&PROC_TLS, tgid)
}

/// Marks process `tgid` as one whose threads make `TLS_ACTIVE` entries
/// (before the first one is made). A plain store, done once per process.
#[inline(always)]
pub fn mark_proc_tls(tgid: u32) {
    if let Some(p) = PROC_TLS.get_ptr_mut(probes_common::proc_sockets::slot(tgid)) {
        // SAFETY: a pointer into an array map value; a racing store writes
        // the same value.
        unsafe {
            if core::ptr::read_volatile(p) == 0 {
                core::ptr::write_volatile(p, 1);
            }
        }
    }
}
