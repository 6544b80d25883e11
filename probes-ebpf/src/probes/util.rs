//! Small helpers shared by the programs: counters, settings, identity.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use probes_common::ProbeSettings;

use super::maps::{COUNTERS, SETTINGS};

#[inline(always)]
pub fn count(index: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer, no atomic needed.
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
    unsafe { ctx.read_at::<u64>(16 + 8 * i) }.unwrap_or(0)
}

/// Syscall exit return value.
#[inline(always)]
pub fn ret(ctx: &aya_ebpf::programs::TracePointContext) -> i64 {
    unsafe { ctx.read_at::<i64>(16) }.unwrap_or(-1)
}

/// Adds `n` to `*p` and returns the previous value. Not atomic: the probes are
/// built for the generic BPF CPU, where an atomic add cannot return the old value.
/// Two threads moving bytes on the same socket in the same direction at the same
/// instant can therefore race; user space detects the overlap and counts it.
#[inline(always)]
pub unsafe fn fetch_add(p: *mut u64, n: u64) -> u64 {
    unsafe {
        let old = core::ptr::read_volatile(p);
        core::ptr::write_volatile(p, old + n);
        old
    }
}

/// Ring buffer write flags: no wake-up while fewer than `wakeup_bytes` wait
/// (user space drains on a timer too), a forced one beyond.
#[inline(always)]
pub fn ring_flags() -> u64 {
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    const BPF_RB_AVAIL_DATA: u64 = 0;
    let threshold = match settings() {
        Some(s) => s.wakeup_bytes as u64,
        None => 0,
    };
    if super::maps::EVENTS.query(BPF_RB_AVAIL_DATA) >= threshold {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}
