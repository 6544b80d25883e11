//! read/write-family syscalls on tracked sockets: enter saves the arguments,
//! exit copies the bytes the call actually moved.
//!
//! Kernel signatures relied on (include/linux/syscalls.h):
//!   read(fd, buf, count)              write(fd, buf, count)
//!   readv(fd, iov, iovcnt)            writev(fd, iov, iovcnt)
//!   recvfrom(fd, buf, len, flags, ..) sendto(fd, buf, len, flags, ..)
//!   recvmsg(fd, msg, flags)           sendmsg(fd, msg, flags)
//!   sendfile64(out_fd, in_fd, offset, count)

use aya_ebpf::{
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_loop, bpf_probe_read_user},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use probes_common::{
    counter, direction, kind, socket_flag, source, DataHeader, SocketKey, MAX_CHUNK,
    MAX_CHUNKS_PER_CALL, MAX_IOV,
};

use super::{
    maps::{
        shape, CopyState, DataScratch, InflightCall, COPY_STATE, DATA_SCRATCH, EVENTS, INFLIGHT,
        MUTED, SOCKETS, THREAD_LAST_FD, TLS_ACTIVE,
    },
    util::{arg, count, current_ids, fetch_add, ret, ring_flags, settings},
};

const MSG_PEEK: u64 = 2;
const HEADER_LEN: u64 = core::mem::size_of::<DataHeader>() as u64;

#[inline(always)]
fn enter(fd: u64, ptr: u64, n: u64, source: u32, direction: u32, shape: u32) -> u32 {
    let (id, tgid, _) = current_ids();
    let key = SocketKey {
        tgid,
        fd: fd as i32,
    };
    if SOCKETS.get_ptr(&key).is_none() {
        return 0;
    }
    // A TLS library call on this thread that has not seen its socket yet: this
    // syscall is the library doing its own I/O ("BIO native").
    if let Some(tls) = TLS_ACTIVE.get_ptr_mut(&id) {
        unsafe {
            if (*tls).fd < 0 {
                (*tls).fd = fd as i32;
            }
        }
    }
    if direction == direction::INGRESS {
        let _ = THREAD_LAST_FD.insert(&id, &(fd as i32), 0);
    }
    let call = InflightCall {
        ptr,
        count: n,
        fd: fd as i32,
        source,
        direction,
        shape,
    };
    if INFLIGHT.insert(&id, &call, 0).is_err() {
        count(counter::INFLIGHT_MAP_FULL, 1);
    }
    0
}

#[inline(always)]
fn exit(ctx: &TracePointContext) -> u32 {
    let (id, tgid, tid) = current_ids();
    let call = match unsafe { INFLIGHT.get(&id) } {
        Some(c) => *c,
        None => return 0,
    };
    let _ = INFLIGHT.remove(&id);
    let r = ret(ctx);
    if r <= 0 {
        return 0;
    }
    let len = r as u64;
    let key = SocketKey { tgid, fd: call.fd };
    let state = match SOCKETS.get_ptr_mut(&key) {
        Some(p) => p,
        // Closed by another thread while this call ran.
        None => return 0,
    };
    let (conn_id, flags, stream_offset) = unsafe {
        let offset = if call.direction == direction::EGRESS {
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
    if flags & socket_flag::MUTED != 0 || MUTED.get_ptr(&key).is_some() {
        count(counter::MUTED_BYTES, len);
        return 0;
    }
    let header = data_header(
        tgid,
        tid,
        call.fd,
        conn_id,
        stream_offset,
        len,
        call.direction,
        call.source,
    );
    emit(header, call.shape, call.ptr, call.count);
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
#[inline(always)]
pub fn emit(mut header: DataHeader, call_shape: u32, ptr: u64, n: u64) {
    let len = header.call_len;
    let cap = match settings() {
        Some(s) => s.per_call_cap as u64,
        None => 0,
    };
    let copied = match call_shape {
        shape::BUFFER => copy_iov(&mut header, ptr, 0, len, cap),
        shape::IOVEC => copy_iov(&mut header, 0, ptr, n, cap),
        shape::MSGHDR => {
            // struct user_msghdr: msg_iov at 16, msg_iovlen at 24 (stable ABI).
            let iov = read_user_u64(ptr + 16);
            let iovlen = read_user_u64(ptr + 24);
            copy_iov(&mut header, 0, iov, iovlen, cap)
        }
        _ => 0,
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
        if EVENTS.output::<DataHeader>(header, ring_flags()).is_err() {
            count(counter::RINGBUF_FULL_DATA, 1);
        }
    }
}

#[inline(always)]
pub fn read_user_u64(addr: u64) -> u64 {
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(addr as *const u64) }.unwrap_or(0)
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
    unsafe {
        if (*st).done >= (*st).limit {
            return 1;
        }
        if (*st).left == 0 {
            if (*st).next_iov >= (*st).iov_limit {
                return 1;
            }
            // struct iovec { void *iov_base; size_t iov_len; }
            let entry = (*st).iov + (*st).next_iov * 16;
            (*st).base = read_user_u64(entry);
            (*st).left = read_user_u64(entry + 8);
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
        if EVENTS.output::<[u8]>(record, ring_flags()).is_err() {
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

// === read family ===

#[tracepoint]
pub fn sys_enter_read(ctx: TracePointContext) -> u32 {
    enter(
        arg(&ctx, 0),
        arg(&ctx, 1),
        0,
        source::READ,
        direction::INGRESS,
        shape::BUFFER,
    )
}

#[tracepoint]
pub fn sys_enter_readv(ctx: TracePointContext) -> u32 {
    enter(
        arg(&ctx, 0),
        arg(&ctx, 1),
        arg(&ctx, 2),
        source::READV,
        direction::INGRESS,
        shape::IOVEC,
    )
}

#[tracepoint]
pub fn sys_enter_recvfrom(ctx: TracePointContext) -> u32 {
    if arg(&ctx, 3) & MSG_PEEK != 0 {
        return 0;
    }
    enter(
        arg(&ctx, 0),
        arg(&ctx, 1),
        0,
        source::RECVFROM,
        direction::INGRESS,
        shape::BUFFER,
    )
}

#[tracepoint]
pub fn sys_enter_recvmsg(ctx: TracePointContext) -> u32 {
    if arg(&ctx, 2) & MSG_PEEK != 0 {
        return 0;
    }
    enter(
        arg(&ctx, 0),
        arg(&ctx, 1),
        0,
        source::RECVMSG,
        direction::INGRESS,
        shape::MSGHDR,
    )
}

// === write family ===

#[tracepoint]
pub fn sys_enter_write(ctx: TracePointContext) -> u32 {
    enter(
        arg(&ctx, 0),
        arg(&ctx, 1),
        0,
        source::WRITE,
        direction::EGRESS,
        shape::BUFFER,
    )
}

#[tracepoint]
pub fn sys_enter_writev(ctx: TracePointContext) -> u32 {
    enter(
        arg(&ctx, 0),
        arg(&ctx, 1),
        arg(&ctx, 2),
        source::WRITEV,
        direction::EGRESS,
        shape::IOVEC,
    )
}

#[tracepoint]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    enter(
        arg(&ctx, 0),
        arg(&ctx, 1),
        0,
        source::SENDTO,
        direction::EGRESS,
        shape::BUFFER,
    )
}

#[tracepoint]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    enter(
        arg(&ctx, 0),
        arg(&ctx, 1),
        0,
        source::SENDMSG,
        direction::EGRESS,
        shape::MSGHDR,
    )
}

/// sendfile moves file bytes to the socket without a user buffer: the stream
/// offset advances and user space sees a counted gap of exactly that size.
#[tracepoint]
pub fn sys_enter_sendfile64(ctx: TracePointContext) -> u32 {
    enter(
        arg(&ctx, 0),
        0,
        0,
        source::SENDFILE,
        direction::EGRESS,
        shape::NONE,
    )
}

/// One exit program serves every call above: the enter hook saved what differs.
#[tracepoint]
pub fn sys_exit_data(ctx: TracePointContext) -> u32 {
    exit(&ctx)
}
