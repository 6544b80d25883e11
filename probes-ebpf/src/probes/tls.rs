//! TLS plaintext from the library's own API: uprobes on SSL_write, SSL_read,
//! SSL_write_ex and SSL_read_ex (OpenSSL and BoringSSL share these), and one
//! uretprobe for all four.
//!
//! The socket is found without reading the library's private structs:
//! - "BIO native": the library does its own I/O, so the read/write syscall it
//!   makes inside the call names the fd (`data::enter` records it);
//! - remembered: an SSL* whose fd was learned once keeps it (`TLS_SSL_FD`,
//!   keyed by (SSL*, tgid));
//! - "custom BIO" (the application does the I/O, as Node.js does): the tracked
//!   socket this thread last read from. Every path is counted, so /metrics shows
//!   how much plaintext was attributed each way and how much could not be.
//!
//! Functions located by analysis in a stripped file (`tls-locate`) carry
//! their file's integrity slot in the uprobe cookie; while user space
//! verifies that file, each call also sends a `TlsSampleRecord`.
//!
//! Signatures relied on (OpenSSL 1.1/3.x, BoringSSL):
//!   int SSL_write(SSL *s, const void *buf, int num)
//!   int SSL_read(SSL *s, void *buf, int num)
//!   int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written)
//!   int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes)

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user_buf, generated::bpf_get_attach_cookie},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
    EbpfContext,
};
use probes_common::{
    counter, direction, kind, socket_flag, source, RecordHeader, SocketKey, SocketState,
    TlsBindRecord, TlsSampleRecord, TLS_SAMPLE_BYTES, TLS_TWIN_FD_BIT, TLS_VERIFY_SLOTS,
};

use super::{
    data::{data_header, emit, read_user_u64, skipped_as_body},
    maps::{
        shape, thread_last_fd, tls_active, tls_active_begin, tls_active_end, tls_call_kind, SslKey,
        SslSocket, ThreadSlot, TlsCall, UnboundTlsWrite, EVENTS, SOCKETS, TLS_ACTIVE_SLOTS,
        TLS_SSL_FD, TLS_UNBOUND, TLS_VERIFY,
    },
    util::{count, current_ids, fetch_add, mark_proc_tls, ring_flags_reserved},
};

#[inline(always)]
fn enter(ctx: &ProbeContext, dir: u32, is_ex: bool) -> u32 {
    let (id, _, _) = current_ids();
    if let Some(active) = tls_active(id) {
        // An SSL_* call inside another (a library calling its own API): only
        // the outermost call's return emits. A Go call's marker is not a
        // call of this library: replace it.
        // SAFETY: a map value pointer from a lookup in this run, valid until the program returns; other CPUs may update it (see ARCHITECTURE.md on offsets).
        if unsafe { (*active).is_ex } != tls_call_kind::GO {
            unsafe { (*active).depth += 1 };
            return 0;
        }
    }
    let ssl: u64 = ctx.arg(0).unwrap_or(0);
    let buf: u64 = ctx.arg(1).unwrap_or(0);
    let len_ptr: u64 = if is_ex { ctx.arg(3).unwrap_or(0) } else { 0 };
    let requested: u64 = if is_ex {
        ctx.arg(2).unwrap_or(0)
    } else {
        // `int num`: the low 32 bits, sign-extended.
        ctx.arg::<u64>(2).unwrap_or(0) as i32 as i64 as u64
    };
    // SAFETY: the helper only reads the cookie of the link that ran us.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let call = TlsCall {
        ssl,
        buf,
        len_ptr,
        fd: -1,
        direction: dir,
        depth: 0,
        is_ex: if is_ex {
            tls_call_kind::EX
        } else {
            tls_call_kind::PLAIN
        },
        requested,
        slot: (cookie as u32) % TLS_VERIFY_SLOTS,
        _pad: 0,
    };
    mark_proc_tls((id >> 32) as u32);
    tls_active_begin(id, &call);
    0
}

#[uprobe]
pub fn ssl_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::EGRESS, false)
}

#[uprobe]
pub fn ssl_write_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::EGRESS, true)
}

#[uprobe]
pub fn ssl_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::INGRESS, false)
}

#[uprobe]
pub fn ssl_read_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::INGRESS, true)
}

/// Serves all four functions' returns.
#[uretprobe]
pub fn ssl_return(ctx: RetProbeContext) -> u32 {
    let (id, tgid, tid) = current_ids();
    let call = match tls_active(id) {
        // SAFETY: a map value pointer from a lookup in this run, valid until the program returns; other CPUs may update it (see ARCHITECTURE.md on offsets).
        Some(p) => unsafe {
            if (*p).is_ex == tls_call_kind::GO {
                return 0;
            }
            if (*p).depth > 0 {
                (*p).depth -= 1;
                return 0;
            }
            *p
        },
        None => return 0,
    };
    tls_active_end(id);
    let ret: i64 = ctx.ret::<i32>() as i64;
    let len: u64 = if call.is_ex == tls_call_kind::EX {
        if ret != 1 {
            return 0;
        }
        read_user_u64(call.len_ptr)
    } else if ret > 0 {
        ret as u64
    } else {
        return 0;
    };
    if len == 0 {
        return 0;
    }
    count(counter::TLS_CALLS, 1);

    let key = SslKey::new(call.ssl, tgid);
    // SAFETY: a map value reference from this lookup, valid until the program returns; it is copied out at once.
    let cached = unsafe { TLS_SSL_FD.get(&key) }.copied();
    // The socket, and its SOCKETS value looked up once for the check, the
    // memory and the emit.
    let (fd, state) = if call.fd >= 0 {
        count(counter::TLS_FD_NESTED, 1);
        (call.fd, remember_socket(&key, cached, call.fd))
    } else if let Some((c, st)) =
        cached.and_then(|c| socket_with_id(tgid, c.fd, c.conn_id).map(|st| (c, st)))
    {
        count(counter::TLS_FD_CACHED, 1);
        (c.fd, Some(st))
    } else if let Some(fd) = thread_last_fd(id) {
        count(counter::TLS_FD_THREAD, 1);
        (fd, remember_socket(&key, cached, fd))
    } else if call.direction == direction::EGRESS {
        count(counter::TLS_FD_DEFERRED, 1);
        (-1, None)
    } else {
        count(counter::TLS_FD_UNKNOWN, 1);
        (-1, None)
    };
    if call.slot != 0 {
        sample_if_verifying(&call, tgid, tid, fd, len);
    }
    if fd >= 0 {
        match state {
            Some(st) => emit_plaintext_at(
                st,
                tgid,
                tid,
                fd,
                call.direction,
                call.buf,
                len,
                shape::BUFFER,
            ),
            None => count(counter::TLS_SOCKET_UNTRACKED, 1),
        }
    } else if call.direction == direction::EGRESS {
        defer_write(id, tgid, tid, call.ssl, call.buf, len);
    }
    0
}

/// The SOCKETS value of (`tgid`, `fd`) if that socket is tracked and still
/// has connection id `conn_id` (not a later socket that reused the fd).
#[inline(always)]
pub(super) fn socket_with_id(tgid: u32, fd: i32, conn_id: u64) -> Option<*mut SocketState> {
    let st = SOCKETS.get_ptr_mut(&SocketKey { tgid, fd })?;
    // SAFETY: a map value pointer from this lookup, valid until the program returns.
    (unsafe { (*st).conn_id } == conn_id).then_some(st)
}

/// Remembers that the `SSL*` of `key` uses socket `fd` (with the socket's
/// connection id), unless that is already what is remembered. Returns the
/// socket's SOCKETS value; None when it is not tracked.
#[inline(always)]
fn remember_socket(key: &SslKey, cached: Option<SslSocket>, fd: i32) -> Option<*mut SocketState> {
    let st = SOCKETS.get_ptr_mut(&SocketKey { tgid: key.tgid, fd })?;
    // SAFETY: a map value pointer from this lookup, valid until the program returns.
    let conn_id = unsafe { (*st).conn_id };
    if !cached.is_some_and(|c| c.fd == fd && c.conn_id == conn_id) {
        let _ = TLS_SSL_FD.insert(
            key,
            &SslSocket {
                fd,
                _pad: 0,
                conn_id,
            },
            0,
        );
    }
    Some(st)
}

/// An SSL_write whose socket is not known yet: a custom BIO (gRPC, Chromium
/// for some calls) sends the ciphertext after the call returns, usually from
/// the same thread. The plaintext is copied now (the caller may reuse its
/// buffer) and sent as `TLS_WRITE_UNBOUND`; the thread's next write to a
/// tracked socket binds the run to that socket (`bind_deferred_writes`).
#[inline(always)]
fn defer_write(id: u64, tgid: u32, tid: u32, ssl: u64, buf: u64, len: u64) {
    let position = match TLS_UNBOUND.get_ptr_mut((id as u32) % TLS_ACTIVE_SLOTS) {
        // SAFETY: a pointer into an array map value, valid for this run.
        Some(p) => unsafe {
            if (*p).id == id && (*p).value.ssl == ssl {
                let at = (*p).value.len;
                (*p).value.len = at + len;
                at
            } else {
                if (*p).id != 0 && (*p).id != id {
                    count(counter::TLS_CALL_SLOT_TAKEN, 1);
                }
                *p = ThreadSlot {
                    id,
                    value: UnboundTlsWrite { ssl, len },
                };
                0
            }
        },
        None => 0,
    };
    let header = data_header(
        tgid,
        tid,
        -1,
        0,
        position,
        len,
        direction::EGRESS,
        source::TLS_WRITE_UNBOUND,
    );
    emit(header, shape::BUFFER, buf, 0);
}

/// Called by the data hook when a thread of a TLS process writes to tracked
/// socket `fd`: a run of deferred plaintext on this thread gets that socket
/// (its SSL* remembers it too), its twin stream advances by the run's
/// length, and user space is told where the run's bytes go.
#[inline(always)]
pub(super) fn bind_deferred_writes(id: u64, tgid: u32, tid: u32, fd: i32) {
    let run = match TLS_UNBOUND.get_ptr_mut((id as u32) % TLS_ACTIVE_SLOTS) {
        // SAFETY: a pointer into an array map value, valid for this run; the
        // run is taken (the slot emptied) at once.
        Some(p) if unsafe { (*p).id } == id => unsafe {
            (*p).id = 0;
            (*p).value
        },
        _ => return,
    };
    let Some(state) = SOCKETS.get_ptr_mut(&SocketKey { tgid, fd }) else {
        return;
    };
    // SAFETY: a map value pointer from a lookup in this run, valid until the program returns; other CPUs may update it (see ARCHITECTURE.md on offsets).
    let (conn_id, offset) = unsafe {
        (*state).flags |= socket_flag::TLS;
        (
            (*state).conn_id,
            fetch_add(&raw mut (*state).tls_egress_offset, run.len),
        )
    };
    let _ = TLS_SSL_FD.insert(
        &SslKey::new(run.ssl, tgid),
        &SslSocket {
            fd,
            _pad: 0,
            conn_id,
        },
        0,
    );
    count(counter::TLS_FD_BOUND, 1);
    let rec = TlsBindRecord {
        header: RecordHeader {
            kind: kind::TLS_BIND,
            tgid,
            tid,
            fd,
            // SAFETY: a helper call the verifier checks; no pointer of ours is passed.
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        conn_id,
        stream_offset: offset,
        len: run.len,
    };
    match EVENTS.reserve::<TlsBindRecord>(0) {
        Some(mut entry) => {
            entry.write(rec);
            entry.submit(ring_flags_reserved(
                core::mem::size_of::<TlsBindRecord>() as u64
            ));
        }
        None => count(counter::RINGBUF_FULL_CONTROL, 1),
    }
}

/// The integrity check's view of one call of a located function, sent only
/// while user space verifies its file. Made before the plaintext record, so
/// `plaintext_offset` is where this call's bytes start.
#[inline(always)]
fn sample_if_verifying(call: &TlsCall, tgid: u32, tid: u32, fd: i32, len: u64) {
    match TLS_VERIFY.get(call.slot) {
        Some(on) if *on != 0 => {}
        _ => return,
    }
    let mut rec = TlsSampleRecord {
        header: RecordHeader {
            kind: kind::TLS_SAMPLE,
            tgid,
            tid,
            fd,
            // SAFETY: a helper call the verifier checks; no pointer of ours is passed.
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        len,
        requested: call.requested,
        slot: call.slot,
        direction: call.direction,
        ..TlsSampleRecord::default()
    };
    if fd >= 0 {
        if let Some(state) = SOCKETS.get_ptr(&SocketKey { tgid, fd }) {
            // SAFETY: a map value pointer from this lookup, valid until the program returns; read once.
            let st = unsafe { *state };
            rec.tracked = 1;
            rec.conn_id = st.conn_id;
            (rec.wire_offset, rec.plaintext_offset) = if call.direction == direction::EGRESS {
                (st.egress_offset, st.tls_egress_offset)
            } else {
                (st.ingress_offset, st.tls_ingress_offset)
            };
        }
    }
    let n = if len < TLS_SAMPLE_BYTES as u64 {
        len as usize
    } else {
        TLS_SAMPLE_BYTES
    };
    // The verifier wants a constant size: read the whole sample window and
    // report how much of it is the call's.
    // SAFETY: bpf_probe_read_user checks the address; a fault is an Err.
    // A buffer ending within 64 bytes of an unmapped page gives no sample
    // (sample_len 0), which the check treats as saying nothing.
    if unsafe { bpf_probe_read_user_buf(call.buf as *const u8, &mut rec.sample) }.is_ok() {
        rec.sample_len = n as u32;
    }
    match EVENTS.reserve::<TlsSampleRecord>(0) {
        Some(mut entry) => {
            entry.write(rec);
            entry.submit(ring_flags_reserved(
                core::mem::size_of::<TlsSampleRecord>() as u64
            ));
        }
        None => count(counter::RINGBUF_FULL_CONTROL, 1),
    }
}

/// Advances the TLS twin stream by `len` bytes that could not be copied: a
/// header-only record, which user space treats as an exact gap.
#[inline(always)]
pub(super) fn emit_plaintext_gap(tgid: u32, tid: u32, fd: i32, dir: u32, len: u64) {
    match SOCKETS.get_ptr_mut(&SocketKey { tgid, fd }) {
        Some(state) => emit_plaintext_at(state, tgid, tid, fd, dir, 0, len, shape::NONE),
        None => count(counter::TLS_SOCKET_UNTRACKED, 1),
    }
}

/// Emits `len` plaintext bytes at `buf` (`buf_shape` `shape::BUFFER`; or,
/// with `shape::NONE`, a header-only record that user space treats as an
/// exact gap) as the TLS twin stream of socket (`tgid`, `fd`) in direction
/// `dir`, and marks the socket so that its ciphertext is counted, not copied.
/// Shared by the OpenSSL and Go probes; `state` is the socket's SOCKETS
/// value, already looked up.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn emit_plaintext_at(
    state: *mut SocketState,
    tgid: u32,
    tid: u32,
    fd: i32,
    dir: u32,
    buf: u64,
    len: u64,
    buf_shape: u32,
) {
    // SAFETY: a map value pointer from a lookup in this run, valid until the program returns; other CPUs may update it (see ARCHITECTURE.md on offsets).
    let (conn_id, offset) = unsafe {
        if (*state).flags & socket_flag::TLS == 0 {
            (*state).flags |= socket_flag::TLS;
        }
        let off = if dir == direction::EGRESS {
            &raw mut (*state).tls_egress_offset
        } else {
            &raw mut (*state).tls_ingress_offset
        };
        ((*state).conn_id, fetch_add(off, len))
    };
    let src = if dir == direction::EGRESS {
        source::TLS_WRITE
    } else {
        source::TLS_READ
    };
    let header = data_header(tgid, tid, fd, conn_id, offset, len, dir, src);
    let plaintext = SocketKey {
        tgid,
        fd: fd | TLS_TWIN_FD_BIT,
    };
    if !skipped_as_body(header, &plaintext) {
        emit(header, buf_shape, buf, 0);
    }
}
