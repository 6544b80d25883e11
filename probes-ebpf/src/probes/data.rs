//! read/write-family syscalls on tracked sockets: one exit hook per call,
//! which reads the call's arguments from the task's saved user registers and
//! copies the bytes the call actually moved.
//!
//! No enter hook: the arguments are still in the user `pt_regs` at the top of
//! the task's kernel stack when the exit tracepoint runs (the kernel keeps
//! them for syscall restart). So a call on a file or a pipe costs one exit
//! program that returns after one register read and one map lookup, and a
//! call already blocked when the probes attach is captured too.
//!
//! Kernel signatures relied on (include/linux/syscalls.h), with their x86-64
//! syscall numbers; arguments 1–4 are in di, si, dx, r10:
//!   read(fd, buf, count) 0            write(fd, buf, count) 1
//!   readv(fd, iov, iovcnt) 19         writev(fd, iov, iovcnt) 20
//!   sendfile64(out_fd, in_fd, offset, count) 40
//!   sendto(fd, buf, len, flags, ..) 44  recvfrom(fd, buf, len, flags, ..) 45
//!   sendmsg(fd, msg, flags) 46        recvmsg(fd, msg, flags) 47
//! Tracepoint layout (events/syscalls/sys_exit_*/format): `__syscall_nr`
//! (int) at 8, `ret` (long) at 16.

use aya_ebpf::{
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_get_current_task_btf, bpf_loop, bpf_probe_read_user, bpf_task_pt_regs},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use probes_common::{
    counter, direction, kind, pt_regs, socket_flag, source, syscall_nr, DataHeader, SocketKey,
    BODY_SKIP_MIN_CALL, MAX_CHUNK, MAX_CHUNKS_PER_CALL, MAX_IOV,
};

use super::{
    maps::{
        set_thread_last_fd, shape, tls_active, CopyState, DataScratch, BODY_SKIP, COPY_STATE,
        DATA_SCRATCH, EVENTS, MUTED, REGS_CHECK, SOCKETS,
    },
    util::{
        count, ctx_u64, current_ids, fetch_add, proc_may_have_muted, proc_may_have_sockets,
        proc_may_use_tls, ret, ring_flags_output, ring_flags_reserved, settings,
    },
};

const MSG_PEEK: u64 = 2;
const HEADER_LEN: u64 = core::mem::size_of::<DataHeader>() as u64;

/// The current task's saved user registers: `task_pt_regs(current)`, a
/// pointer the verifier knows by its BTF type (`struct pt_regs`), so its
/// fields are read with plain loads (which the JIT turns into fault-tolerant
/// loads) instead of a `bpf_probe_read_kernel` call each.
#[inline(always)]
pub fn user_regs() -> *const u8 {
    // SAFETY: both helpers take no user input: the first returns `current`,
    // the second `task_pt_regs(task)` of that (always valid) task.
    unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) as *const u8 }
}

/// Syscall argument register at byte offset `off` of the saved user
/// `struct pt_regs` (offsets in `probes_common::pt_regs`, checked against the
/// kernel's BTF and with a known call at start-up).
#[inline(always)]
pub fn user_reg(regs: *const u8, off: u64) -> u64 {
    // SAFETY: `regs` is the BTF-typed pt_regs of the current task and `off` a
    // constant field offset within it; the verifier checks the access against
    // the kernel's BTF and the JIT makes it a load that cannot fault.
    unsafe { core::ptr::read_volatile(regs.add(off as usize) as *const u64) }
}

/// Serves the exit of every call below; the syscall number says which.
/// Order is cheapest rejection first: a failed call, then a process with no
/// tracked socket (one array load), then a call that is not on a tracked
/// socket (one register load and one hash lookup).
#[tracepoint]
pub fn sys_exit_data(ctx: TracePointContext) -> u32 {
    let r = ret(&ctx);
    if r <= 0 {
        return 0;
    }
    // `__syscall_nr` is an int at offset 8 of every sys_exit record (the
    // upper half of the 8 bytes is padding before `ret`).
    let nr = ctx_u64(&ctx, 8) as u32;
    let (src, dir, call_shape) = match nr {
        syscall_nr::READ => (source::READ, direction::INGRESS, shape::BUFFER),
        syscall_nr::WRITE => (source::WRITE, direction::EGRESS, shape::BUFFER),
        syscall_nr::READV => (source::READV, direction::INGRESS, shape::IOVEC),
        syscall_nr::WRITEV => (source::WRITEV, direction::EGRESS, shape::IOVEC),
        syscall_nr::RECVFROM => (source::RECVFROM, direction::INGRESS, shape::BUFFER),
        syscall_nr::SENDTO => (source::SENDTO, direction::EGRESS, shape::BUFFER),
        syscall_nr::RECVMSG => (source::RECVMSG, direction::INGRESS, shape::MSGHDR),
        syscall_nr::SENDMSG => (source::SENDMSG, direction::EGRESS, shape::MSGHDR),
        syscall_nr::SENDFILE => (source::SENDFILE, direction::EGRESS, shape::NONE),
        _ => return 0,
    };
    let (id, tgid, tid) = current_ids();
    if !proc_may_have_sockets(tgid) {
        return 0;
    }
    let regs = user_regs();
    let fd = user_reg(regs, pt_regs::DI) as i32;
    let key = SocketKey { tgid, fd };
    let state = match SOCKETS.get_ptr_mut(&key) {
        Some(p) => p,
        None => return 0,
    };
    // The rest of the arguments, only for a tracked socket.
    let ptr = user_reg(regs, pt_regs::SI);
    let arg2 = user_reg(regs, pt_regs::DX);
    if nr == syscall_nr::RECVFROM && user_reg(regs, pt_regs::R10) & MSG_PEEK != 0 {
        return 0;
    }
    if nr == syscall_nr::RECVMSG && arg2 & MSG_PEEK != 0 {
        return 0;
    }
    // A TLS library call on this thread that has not seen its socket yet: this
    // syscall is the library doing its own I/O ("BIO native"), or Go's.
    if !proc_may_use_tls(tgid) {
        // No TLS call has ever been entered in this process: no entry.
    } else if let Some(tls) = tls_active(id) {
        // SAFETY: a pointer into this thread's own map value.
        unsafe {
            if (*tls).fd < 0 {
                (*tls).fd = fd;
            }
        }
    } else if dir == direction::EGRESS {
        // Outside any TLS call: the ciphertext of plaintext this thread gave
        // the library earlier (custom BIO), if it has any waiting.
        super::tls::bind_deferred_writes(id, tgid, tid, fd);
    }
    // The socket this thread last read, for custom-BIO TLS (the application
    // reads ciphertext, then asks the library to decrypt it) and Go's orphan
    // reads: one array load, and a store only when it changed.
    if dir == direction::INGRESS {
        set_thread_last_fd(id, fd);
    }
    let len = r as u64;
    // SAFETY: `state` points into the SOCKETS value of this (tgid, fd); the
    // offsets race only with another thread of the same socket (see fetch_add).
    let (conn_id, flags, stream_offset) = unsafe {
        let offset = if dir == direction::EGRESS {
            &raw mut (*state).egress_offset
        } else {
            &raw mut (*state).ingress_offset
        };
        ((*state).conn_id, (*state).flags, fetch_add(offset, len))
    };
    if flags & socket_flag::TLS != 0 {
        // The plaintext comes from the TLS library probes.
        count(counter::TLS_CIPHERTEXT_BYTES, len);
        return 0;
    }
    if flags & socket_flag::MUTED != 0
        || (proc_may_have_muted(tgid) && MUTED.get_ptr(&key).is_some())
    {
        count(counter::MUTED_BYTES, len);
        return 0;
    }
    let header = data_header(tgid, tid, fd, conn_id, stream_offset, len, dir, src);
    if !skipped_as_body(header, &key) {
        emit(header, call_shape, ptr, arg2);
    }
    0
}

/// If the call's bytes lie wholly inside a body user space only counts
/// (`BODY_SKIP` under `key`: the socket's, or its TLS plaintext's), sends
/// the header-only record that says so, copies nothing, and returns true.
#[inline(always)]
pub fn skipped_as_body(mut header: DataHeader, key: &SocketKey) -> bool {
    let len = header.call_len;
    if len < BODY_SKIP_MIN_CALL
        || !body_skips(
            key,
            header.conn_id,
            header.direction,
            header.call_stream_offset + len,
        )
    {
        return false;
    }
    count(counter::BODY_SKIPPED_BYTES, len);
    header.source |= source::BODY_SKIPPED;
    if EVENTS
        .output::<DataHeader>(header, ring_flags_output(HEADER_LEN))
        .is_err()
    {
        count(counter::RINGBUF_FULL_DATA, 1);
    }
    true
}

/// Whether user space said the bytes of `dir` up to stream offset `end` in
/// connection `conn_id` are body it only counts (`BODY_SKIP`). A call that
/// reaches past that point is copied whole: its tail may be the next head.
#[inline(always)]
fn body_skips(key: &SocketKey, conn_id: u64, dir: u32, end: u64) -> bool {
    // SAFETY: a map value pointer, read within this program run.
    match unsafe { BODY_SKIP.get(key) } {
        Some(skip) if skip.conn_id == conn_id => {
            let until = if dir == direction::EGRESS {
                skip.until[0]
            } else {
                skip.until[1]
            };
            end <= until
        }
        _ => false,
    }
}

/// Start-up check of the register offsets: attached by user space to
/// `syscalls:sys_exit_fadvise64` for the moment it makes one call with known
/// arguments, `fadvise64(fd, offset, len, advice)`; stores what it read.
#[tracepoint]
pub fn check_user_regs(_ctx: TracePointContext) -> u32 {
    let (_, tgid, _) = current_ids();
    match settings() {
        Some(s) if s.self_tgid == tgid => {}
        _ => return 0,
    }
    let regs = user_regs();
    if let Some(out) = REGS_CHECK.get_ptr_mut(0) {
        let seen = [
            user_reg(regs, pt_regs::DI),
            user_reg(regs, pt_regs::SI),
            user_reg(regs, pt_regs::DX),
            user_reg(regs, pt_regs::R10),
            user_reg(regs, pt_regs::ORIG_AX),
        ];
        // SAFETY: the one entry of an array map.
        unsafe { *out = seen };
    }
    0
}

/// The header shared by every chunk of one call.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn data_header(
    tgid: u32,
    tid: u32,
    fd: i32,
    conn_id: u64,
    stream_offset: u64,
    len: u64,
    dir: u32,
    src: u32,
) -> DataHeader {
    let mut header = DataHeader::default();
    header.header.kind = kind::DATA;
    header.header.tgid = tgid;
    header.header.tid = tid;
    header.header.fd = fd;
    // SAFETY: a helper call the verifier checks; no pointer of ours is passed.
    header.header.ts_ns = unsafe { bpf_ktime_get_ns() };
    header.conn_id = conn_id;
    header.call_stream_offset = stream_offset;
    header.call_len = len;
    header.direction = dir;
    header.source = src;
    header
}

/// Copies one call's bytes (up to the per-call cap) into chunk records, then,
/// if anything was left out, one header-only record saying exactly what.
///
/// When the bytes to copy sit in one contiguous user range of at most
/// [`SMALL_MAX`] bytes (a plain buffer, or the first iovec holds them all),
/// they are read straight into a ring-buffer reservation of the next size
/// class up: one copy, no scratch buffer, no `bpf_loop`. The class's unused
/// tail is not part of the record (`chunk_len` says where the payload ends).
/// Anything else takes the chunked path.
#[inline(always)]
pub fn emit(mut header: DataHeader, call_shape: u32, ptr: u64, n: u64) {
    let len = header.call_len;
    let cap = match settings() {
        Some(s) => s.per_call_cap as u64,
        None => 0,
    };
    let want = if cap < len { cap } else { len };
    // The first contiguous segment: (base, bytes in it). Each user read
    // takes two adjacent words at once: on the machine measured, a
    // `bpf_probe_read_user` costs ~300 ns however small (BENCHMARKS.md).
    let (iov, iovcnt) = match call_shape {
        shape::IOVEC => (ptr, n),
        // struct user_msghdr: msg_iov at 16, msg_iovlen at 24 (stable ABI).
        shape::MSGHDR => read_user_pair(ptr + 16),
        _ => (0, 0),
    };
    let (base, seg) = match call_shape {
        shape::BUFFER => (ptr, len),
        // struct iovec { void *iov_base; size_t iov_len; }
        shape::IOVEC | shape::MSGHDR if iovcnt > 0 => read_user_pair(iov),
        _ => (0, 0),
    };
    let copied = if want == 0 {
        0
    } else if call_shape != shape::NONE && want <= seg && want <= SMALL_MAX {
        copy_small(&mut header, base, want)
    } else {
        match call_shape {
            shape::BUFFER => copy_iov(&mut header, ptr, 0, len, cap),
            shape::IOVEC | shape::MSGHDR => copy_iov(&mut header, 0, iov, iovcnt, cap),
            _ => 0,
        }
    };
    // Below the cap, a short copy was a failure (already counted as such);
    // at the cap, the rest is truncation.
    let capped = copied >= cap;
    if copied < len {
        if call_shape != shape::NONE && capped {
            count(counter::TRUNCATED_CALLS, 1);
            count(counter::TRUNCATED_BYTES, len - copied);
        }
        // A header-only record tells user space at once that the rest of the
        // call, [chunk_offset, call_len), was not copied.
        header.chunk_offset = copied as u32;
        header.chunk_len = 0;
        if EVENTS
            .output::<DataHeader>(header, ring_flags_output(HEADER_LEN))
            .is_err()
        {
            count(counter::RINGBUF_FULL_DATA, 1);
        }
    }
}

/// Largest payload copied straight into a reservation: one less than the
/// biggest class, so that a mask bounds the length for the verifier.
pub const SMALL_MAX: u64 = 4095;

/// A data record of payload class `N`: the header, then up to `N` bytes.
#[repr(C)]
struct SmallRecord<const N: usize> {
    header: DataHeader,
    payload: [u8; N],
}

/// Copies `n` (1..=SMALL_MAX) bytes at `base` as the call's one chunk, in a
/// record of the smallest class (128 … 4096, powers of two) longer than the
/// payload: at most twice the ring space of an exact record. Returns the
/// bytes delivered (0 on failure, counted).
#[inline(always)]
fn copy_small(header: &mut DataHeader, base: u64, n: u64) -> u64 {
    if n < 128 {
        copy_class::<128>(header, base, n)
    } else if n < 256 {
        copy_class::<256>(header, base, n)
    } else if n < 512 {
        copy_class::<512>(header, base, n)
    } else if n < 1024 {
        copy_class::<1024>(header, base, n)
    } else if n < 2048 {
        copy_class::<2048>(header, base, n)
    } else {
        copy_class::<4096>(header, base, n)
    }
}

/// Not inlined: one BPF function per class, so that LLVM cannot merge the
/// classes' reservations and bounds into one path the verifier rejects.
#[inline(never)]
fn copy_class<const N: usize>(header: &mut DataHeader, base: u64, n: u64) -> u64 {
    if n == 0 || n >= N as u64 {
        return 0;
    }
    // N is a power of two: the mask is what bounds the length for the
    // verifier, whatever LLVM does with the comparison above.
    let n32 = (n as u32) & (N as u32 - 1);
    let mut entry = match EVENTS.reserve::<SmallRecord<N>>(0) {
        Some(e) => e,
        None => {
            count(counter::RINGBUF_FULL_DATA, 1);
            count(counter::RINGBUF_FULL_BYTES, header.call_len);
            return 0;
        }
    };
    header.chunk_offset = 0;
    header.chunk_len = n32;
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is a reservation of size_of::<SmallRecord<N>>() bytes; the
    // header is written whole, and the helper writes n32 < N payload bytes
    // (checked above) from user memory, failing (not faulting) on a bad address.
    let rc = unsafe {
        (&raw mut (*rec).header).write(*header);
        bpf_probe_read_user(
            (&raw mut (*rec).payload) as *mut core::ffi::c_void,
            n32,
            base as *const core::ffi::c_void,
        )
    };
    if rc != 0 {
        entry.discard(0);
        count(counter::READ_USER_FAILED, 1);
        return 0;
    }
    entry.submit(ring_flags_reserved(
        core::mem::size_of::<SmallRecord<N>>() as u64
    ));
    count(counter::DATA_RECORDS, 1);
    count(counter::DATA_BYTES, n);
    n
}

#[inline(always)]
pub fn read_user_u64(addr: u64) -> u64 {
    // SAFETY: bpf_probe_read_user checks the address; a fault is an Err.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(addr as *const u64) }.unwrap_or(0)
}

/// Two adjacent user words (an iovec, or msghdr's msg_iov and msg_iovlen) in
/// one helper call; (0, 0) when the read fails.
#[inline(always)]
pub fn read_user_pair(addr: u64) -> (u64, u64) {
    // SAFETY: bpf_probe_read_user checks the address; a fault is an Err.
    match unsafe { aya_ebpf::helpers::bpf_probe_read_user(addr as *const [u64; 2]) } {
        Ok([a, b]) => (a, b),
        Err(_) => (0, 0),
    }
}

/// Copies up to `cap` bytes of the call into chunk records. The source is either
/// one buffer (`buf`, `iov` = 0) or an iovec array of `iovcnt` entries. Returns the
/// number of bytes delivered to the ring buffer, from the start of the call.
///
/// The loop runs in `bpf_loop` with its state in a per-CPU map, not on the
/// stack: values loaded from a map are unknown to the verifier, so every
/// iteration looks the same to it and verification takes one pass. With the
/// state on the stack it tracked exact values, no two iterations matched, and
/// loading took seconds to minutes.
#[inline(always)]
fn copy_iov(header: &mut DataHeader, buf: u64, iov: u64, iovcnt: u64, cap: u64) -> u64 {
    let total = header.call_len;
    let st: *mut CopyState = match COPY_STATE.get_ptr_mut(0) {
        Some(p) => p,
        None => return 0,
    };
    // SAFETY: `st` is this CPU's per-CPU map slot (no other writer while this program runs), valid until it returns.
    unsafe {
        (*st).header = *header;
        (*st).iov = iov;
        (*st).next_iov = 0;
        (*st).iov_limit = if iov == 0 {
            0
        } else if iovcnt < MAX_IOV as u64 {
            iovcnt
        } else {
            MAX_IOV as u64
        };
        (*st).base = buf;
        (*st).left = if iov == 0 { total } else { 0 };
        (*st).done = 0;
        (*st).limit = if cap < total { cap } else { total };
        bpf_loop(
            MAX_CHUNKS_PER_CALL + MAX_IOV,
            copy_step as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        );
        (*st).done
    }
}

/// One step of `copy_iov`: read the next iovec entry, or copy one chunk.
/// Returns 0 to continue, 1 to stop.
#[inline(never)]
extern "C" fn copy_step(_index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let st: *mut CopyState = match COPY_STATE.get_ptr_mut(0) {
        Some(p) => p,
        None => return 1,
    };
    let scratch: *mut DataScratch = match DATA_SCRATCH.get_ptr_mut(0) {
        Some(p) => p,
        None => return 1,
    };
    // SAFETY: `st` is this CPU's per-CPU map slot (no other writer while this program runs), valid until it returns.
    unsafe {
        if (*st).done >= (*st).limit {
            return 1;
        }
        if (*st).left == 0 {
            if (*st).next_iov >= (*st).iov_limit {
                return 1;
            }
            // struct iovec { void *iov_base; size_t iov_len; }
            let (base, left) = read_user_pair((*st).iov + (*st).next_iov * 16);
            (*st).base = base;
            (*st).left = left;
            (*st).next_iov += 1;
            return 0;
        }
        let mut n = (*st).limit - (*st).done;
        if n > (*st).left {
            n = (*st).left;
        }
        if n > MAX_CHUNK as u64 {
            n = MAX_CHUNK as u64;
        }
        // The length goes through map memory on its way to the helper: a value
        // loaded from a map is an unknown scalar to the verifier, so bounding it
        // does not make `done`/`left`/`limit` precise. Were they precise, no two
        // iterations' states would match and verification would explode.
        (*st).header.chunk_offset = (*st).done as u32;
        (*st).header.chunk_len = n as u32;
        (*scratch).header = (*st).header;
        let laundered = core::ptr::read_volatile(&raw const (*scratch).header.chunk_len);
        let n32 = laundered & (2 * MAX_CHUNK as u32 - 1);
        if n32 == 0 || n32 > MAX_CHUNK as u32 {
            return 1;
        }
        let dst = (&raw mut (*scratch).payload) as *mut core::ffi::c_void;
        if bpf_probe_read_user(dst, n32, (*st).base as *const core::ffi::c_void) != 0 {
            count(counter::READ_USER_FAILED, 1);
            return 1;
        }
        let size = HEADER_LEN as usize + n32 as usize;
        let record = core::slice::from_raw_parts(scratch as *const u8, size);
        if EVENTS
            .output::<[u8]>(record, ring_flags_output(size as u64))
            .is_err()
        {
            count(counter::RINGBUF_FULL_DATA, 1);
            count(
                counter::RINGBUF_FULL_BYTES,
                (*st).header.call_len - (*st).done,
            );
            return 1;
        }
        count(counter::DATA_RECORDS, 1);
        count(counter::DATA_BYTES, n32 as u64);
        (*st).done += n32 as u64;
        (*st).base += n32 as u64;
        (*st).left -= n32 as u64;
    }
    0
}
