//! TLS plaintext from the library's own API: uprobes on SSL_write, SSL_read,
//! SSL_write_ex and SSL_read_ex (OpenSSL and BoringSSL share these), and one
//! uretprobe for all four.
//!
//! The socket is found without reading the library's private structs:
//! - "BIO native": the library does its own I/O, so the read/write syscall it
//!   makes inside the call names the fd (`data::enter` records it);
//! - remembered: an SSL* whose fd was learned once keeps it (`TLS_SSL_FD`);
//! - "custom BIO" (the application does the I/O, as Node.js does): the tracked
//!   socket this thread last read from. Every path is counted, so /metrics shows
//!   how much plaintext was attributed each way and how much could not be.
//!
//! Signatures relied on (OpenSSL 1.1/3.x, BoringSSL):
//!   int SSL_write(SSL *s, const void *buf, int num)
//!   int SSL_read(SSL *s, void *buf, int num)
//!   int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written)
//!   int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes)

use aya_ebpf::{
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use probes_common::{counter, direction, socket_flag, source, SocketKey};

use super::{
    data::{data_header, emit, read_user_u64},
    maps::{shape, tls_call_kind, TlsCall, SOCKETS, THREAD_LAST_FD, TLS_ACTIVE, TLS_SSL_FD},
    util::{count, current_ids, fetch_add, mark_proc_tls},
};

#[inline(always)]
fn enter(ctx: &ProbeContext, dir: u32, is_ex: bool) -> u32 {
    let (id, _, _) = current_ids();
    if let Some(active) = TLS_ACTIVE.get_ptr_mut(&id) {
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
    };
    mark_proc_tls((id >> 32) as u32);
    let _ = TLS_ACTIVE.insert(&id, &call, 0);
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
    let call = match TLS_ACTIVE.get_ptr_mut(&id) {
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
    let _ = TLS_ACTIVE.remove(&id);
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

    let fd = if call.fd >= 0 {
        count(counter::TLS_FD_NESTED, 1);
        let _ = TLS_SSL_FD.insert(&call.ssl, &call.fd, 0);
        call.fd
        // SAFETY: a map value reference from this lookup, valid until the program returns; it is copied out at once.
    } else if let Some(fd) = unsafe { TLS_SSL_FD.get(&call.ssl) } {
        count(counter::TLS_FD_CACHED, 1);
        *fd
        // SAFETY: a map value reference from this lookup, valid until the program returns; it is copied out at once.
    } else if let Some(fd) = unsafe { THREAD_LAST_FD.get(&id) } {
        count(counter::TLS_FD_THREAD, 1);
        let fd = *fd;
        let _ = TLS_SSL_FD.insert(&call.ssl, &fd, 0);
        fd
    } else {
        count(counter::TLS_FD_UNKNOWN, 1);
        return 0;
    };

    emit_plaintext(tgid, tid, fd, call.direction, call.buf, len);
    0
}

/// Emits `len` plaintext bytes at `buf` as the TLS twin stream of socket
/// (`tgid`, `fd`) in direction `dir`, and marks the socket so that its
/// ciphertext is counted, not copied. Shared by the OpenSSL and Go probes.
#[inline(always)]
pub(super) fn emit_plaintext(tgid: u32, tid: u32, fd: i32, dir: u32, buf: u64, len: u64) {
    emit_twin(tgid, tid, fd, dir, buf, len, shape::BUFFER);
}

/// Advances the TLS twin stream by `len` bytes that could not be copied: a
/// header-only record, which user space treats as an exact gap.
#[inline(always)]
pub(super) fn emit_plaintext_gap(tgid: u32, tid: u32, fd: i32, dir: u32, len: u64) {
    emit_twin(tgid, tid, fd, dir, 0, len, shape::NONE);
}

#[inline(always)]
fn emit_twin(tgid: u32, tid: u32, fd: i32, dir: u32, buf: u64, len: u64, buf_shape: u32) {
    let key = SocketKey { tgid, fd };
    let state = match SOCKETS.get_ptr_mut(&key) {
        Some(p) => p,
        None => {
            count(counter::TLS_SOCKET_UNTRACKED, 1);
            return;
        }
    };
    // SAFETY: a map value pointer from a lookup in this run, valid until the program returns; other CPUs may update it (see ARCHITECTURE.md on offsets).
    let (conn_id, offset) = unsafe {
        (*state).flags |= socket_flag::TLS;
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
    emit(header, buf_shape, buf, 0);
}
