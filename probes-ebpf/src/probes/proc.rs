//! Process lifecycle. At exec the new program's path, argv and environment are
//! copied in the kernel, so a process that lives for milliseconds is still named
//! (OTEL_SERVICE_NAME included) long after /proc has forgotten it.
//!
//! A file mapped executable is reported too (the path is not copied: user
//! space reads the process's maps), so that a library loaded with `dlopen`
//! long after exec is checked for a TLS library.
//!
//! Tracepoint layouts relied on (events/sched/*/format, events/syscalls/*/format):
//!   sched_process_exec: __data_loc filename @8, pid @12, old_pid @16
//!   sched_process_exit: comm[16] @8, pid @24, prio @28, group_dead @32
//!   sys_enter_mmap: prot @32, fd @48

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use probes_common::{
    counter, kind, ProcExecRecord, ProcExitRecord, ProcMapRecord, RecordHeader, EXEC_ARGS_MAX,
    EXEC_ENV_MAX, EXEC_FILENAME_MAX,
};

use super::{
    maps::EVENTS,
    util::{count, current_ids, ring_flags_reserved, settings},
};

#[inline(always)]
fn read_kernel<T: Copy>(addr: u64) -> Option<T> {
    // SAFETY: the helper checks the address; a bad one returns an error, never a fault.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// Copies the user range [start, end) into `dst`, at most `MAX` bytes. Returns
/// the bytes copied.
#[inline(always)]
fn copy_user_range<const MAX: usize>(dst: *mut u8, start: u64, end: u64) -> u32 {
    if end <= start {
        return 0;
    }
    let mut n = end - start;
    if n > MAX as u64 {
        n = MAX as u64;
    }
    let n32 = (n as u32) & (2 * MAX as u32 - 1);
    if n32 == 0 || n32 > MAX as u32 {
        return 0;
    }
    // SAFETY: the helper checks the address; a bad one returns an error, never a fault.
    let rc = unsafe { bpf_probe_read_user(dst as *mut _, n32, start as *const _) };
    if rc != 0 {
        return 0;
    }
    n32
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let (_, tgid, tid) = current_ids();
    let mut entry = match EVENTS.reserve::<ProcExecRecord>(0) {
        Some(e) => e,
        None => {
            count(counter::RINGBUF_FULL_CONTROL, 1);
            return 0;
        }
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points to a ring-buffer reservation of exactly this record type, ours until it is submitted.
    unsafe {
        (*rec).header = RecordHeader {
            kind: kind::PROC_EXEC,
            tgid,
            tid,
            fd: -1,
            ts_ns: bpf_ktime_get_ns(),
        };
        (*rec).ppid = 0;
        (*rec).filename_len = 0;
        (*rec).args_len = 0;
        (*rec).env_len = 0;
        (*rec).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*rec).cgroup_id = aya_ebpf::helpers::generated::bpf_get_current_cgroup_id();

        let loc: u32 = ctx.read_at::<u32>(8).unwrap_or(0);
        let name_ptr = (ctx.as_ptr_u64()) + (loc & 0xffff) as u64;
        let n = bpf_probe_read_kernel_str(
            (&raw mut (*rec).filename) as *mut _,
            EXEC_FILENAME_MAX as u32,
            name_ptr as *const _,
        );
        if n > 0 {
            // Without the trailing NUL.
            (*rec).filename_len = (n - 1) as u32;
        }

        if let Some(s) = settings() {
            let off = &s.offsets;
            let task = bpf_get_current_task();
            if let Some(parent) = read_kernel::<u64>(task + off.task_real_parent as u64) {
                (*rec).ppid = read_kernel::<u32>(parent + off.task_tgid as u64).unwrap_or(0);
            }
            if let Some(mm) = read_kernel::<u64>(task + off.task_mm as u64) {
                let arg_start: u64 = read_kernel(mm + off.mm_arg_start as u64).unwrap_or(0);
                let arg_end: u64 = read_kernel(mm + off.mm_arg_end as u64).unwrap_or(0);
                let env_start: u64 = read_kernel(mm + off.mm_env_start as u64).unwrap_or(0);
                let env_end: u64 = read_kernel(mm + off.mm_env_end as u64).unwrap_or(0);
                (*rec).args_len = copy_user_range::<EXEC_ARGS_MAX>(
                    (&raw mut (*rec).args) as *mut u8,
                    arg_start,
                    arg_end,
                );
                (*rec).env_len = copy_user_range::<EXEC_ENV_MAX>(
                    (&raw mut (*rec).env) as *mut u8,
                    env_start,
                    env_end,
                );
            }
        }
    }
    // Wake user space now: a new executable with its own TLS (Go, static
    // OpenSSL) must be hooked before a short-lived process's first TLS call.
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    entry.submit(BPF_RB_FORCE_WAKEUP);
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: a fixed offset of the tracepoint record's stable layout (see its format file); the helper bounds the read.
    let group_dead: u8 = unsafe { ctx.read_at::<u8>(32) }.unwrap_or(0);
    if group_dead == 0 {
        return 0;
    }
    let (_, tgid, tid) = current_ids();
    match EVENTS.reserve::<ProcExitRecord>(0) {
        Some(mut entry) => {
            entry.write(ProcExitRecord {
                header: RecordHeader {
                    kind: kind::PROC_EXIT,
                    tgid,
                    tid,
                    fd: -1,
                    // SAFETY: a helper call the verifier checks; no pointer of ours is passed.
                    ts_ns: unsafe { bpf_ktime_get_ns() },
                },
            });
            entry.submit(ring_flags_reserved(
                core::mem::size_of::<ProcExitRecord>() as u64
            ));
        }
        None => count(counter::RINGBUF_FULL_CONTROL, 1),
    }
    0
}

/// `mmap` of a file with `PROT_EXEC`: rare (the dynamic loader, a JIT
/// mapping a file), so an enter hook costs little; anonymous and
/// non-executable mappings (allocators, thread stacks) return after two
/// reads of the tracepoint record.
#[tracepoint]
pub fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    const PROT_EXEC: u64 = 4;
    // SAFETY: fixed offsets of the tracepoint record's stable layout (see its format file); the helper bounds the read.
    let prot: u64 = unsafe { ctx.read_at::<u64>(32) }.unwrap_or(0);
    if prot & PROT_EXEC == 0 {
        return 0;
    }
    // SAFETY: as above.
    let fd = unsafe { ctx.read_at::<u64>(48) }.unwrap_or(u64::MAX) as i64;
    if !(0..=i32::MAX as i64).contains(&fd) {
        return 0;
    }
    let (_, tgid, tid) = current_ids();
    match EVENTS.reserve::<ProcMapRecord>(0) {
        Some(mut entry) => {
            entry.write(ProcMapRecord {
                header: RecordHeader {
                    kind: kind::PROC_MAP,
                    tgid,
                    tid,
                    fd: fd as i32,
                    // SAFETY: a helper call the verifier checks; no pointer of ours is passed.
                    ts_ns: unsafe { bpf_ktime_get_ns() },
                },
            });
            entry.submit(ring_flags_reserved(
                core::mem::size_of::<ProcMapRecord>() as u64
            ));
        }
        None => count(counter::RINGBUF_FULL_CONTROL, 1),
    }
    0
}

trait CtxAddr {
    fn as_ptr_u64(&self) -> u64;
}

impl CtxAddr for TracePointContext {
    fn as_ptr_u64(&self) -> u64 {
        use aya_ebpf::EbpfContext;
        self.as_ptr() as u64
    }
}
