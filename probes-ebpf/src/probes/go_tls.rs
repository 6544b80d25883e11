//! Go crypto/tls plaintext: uprobes on the entry and on every `RET`
//! instruction of `crypto/tls.(*Conn).Write` and `crypto/tls.(*Conn).Read` in
//! each Go executable. No uretprobe: it rewrites the return address on the
//! stack, and Go moves goroutine stacks, which then crashes the program.
//!
//! One program serves every probe; its BPF cookie says which instruction it
//! is on and carries that binary's struct offsets (`probes_common::go_cookie`).
//!
//! The call's state is keyed by goroutine (a goroutine parked inside `Read`
//! resumes on any thread). A `Read` is emitted at a RET (the plaintext is
//! there only then); a `Write` at its entry when its socket is already known
//! (so that the request precedes the response in the ring), else at a RET.
//! The socket comes from, in order:
//! - the `tls.Conn` itself: `conn` (a `net.Conn` interface; its data word is
//!   the `*net.TCPConn`) → `fd *netFD` → `pfd poll.FD` → `Sysfd`, when user
//!   space knows the offsets (DWARF or its version table) and the fd found is
//!   a tracked socket of this process;
//! - the syscall Go made on this thread inside the call (the marker left in
//!   `TLS_ACTIVE`, filled by `data::enter`), also a cross-check of the first;
//! - the fd remembered for this `tls.Conn` from an earlier call.
//!
//! Relied on (Go ≥ 1.17 on amd64, register ABI "ABIInternal"):
//!   func (c *Conn) Write(b []byte) (int, error)
//!   func (c *Conn) Read(b []byte) (int, error)
//!   at entry: RAX = c, RBX = b's data pointer, RCX = len(b);
//!   at each RET: RAX = the int result; R14 = the current goroutine's g
//!   throughout Go code.

use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated::bpf_get_attach_cookie},
    macros::uprobe,
    programs::ProbeContext,
    EbpfContext,
};
use probes_common::{counter, direction, go_cookie, SocketKey, SocketState};

use super::{
    maps::{
        shape, thread_last_fd, tls_active, tls_active_begin, tls_active_end, tls_call_kind,
        GoConnKey, GoTlsCall, GoroutineKey, SslSocket, TlsCall, GO_CONN_FD, GO_TLS_ACTIVE, SOCKETS,
    },
    tls::{emit_plaintext_at, emit_plaintext_gap, socket_with_id},
    util::{count, current_ids, mark_proc_tls},
};

/// Largest fd taken from a `poll.FD` as plausible (the kernel's default
/// `nr_open` is 1 Mi).
const MAX_FD: i64 = 1 << 20;

#[uprobe]
pub fn go_tls(ctx: ProbeContext) -> u32 {
    // SAFETY: the helper only reads the cookie of the link that ran us.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    match go_cookie::kind(cookie) {
        go_cookie::kind::WRITE_ENTRY => entry(&ctx, cookie, direction::EGRESS),
        go_cookie::kind::READ_ENTRY => entry(&ctx, cookie, direction::INGRESS),
        go_cookie::kind::WRITE_RETURN => on_return(&ctx, direction::EGRESS),
        go_cookie::kind::READ_RETURN => on_return(&ctx, direction::INGRESS),
        _ => 0,
    }
}

#[inline(always)]
fn entry(ctx: &ProbeContext, cookie: u64, dir: u32) -> u32 {
    // SAFETY: a uprobe's context is the task's saved user registers.
    let (g, conn, buf, len) = unsafe {
        (
            (*ctx.regs).r14,
            (*ctx.regs).rax,
            (*ctx.regs).rbx,
            (*ctx.regs).rcx,
        )
    };
    if g == 0 || conn == 0 {
        return 0;
    }
    let (id, tgid, tid) = current_ids();
    let mut call = GoTlsCall {
        conn,
        buf,
        len,
        cookie,
        direction: dir,
        emitted_fd: -1,
    };
    // A write is emitted at its entry when its socket is known already: the
    // request must be in the ring before the response, which another thread
    // can read before this one reaches the RET.
    if dir == direction::EGRESS && len > 0 {
        if let Some((fd, st)) = conn_socket(conn, tgid, cookie) {
            count(counter::GO_TLS_CALLS, 1);
            emit_plaintext_at(st, tgid, tid, fd, dir, buf, len, shape::BUFFER);
            call.emitted_fd = fd;
        }
    }
    let key = GoroutineKey { g, tgid, _pad: 0 };
    // A second entry for the same goroutine (the prologue grew the stack and
    // restarted the function) replaces the first with the same arguments.
    let _ = GO_TLS_ACTIVE.insert(&key, &call, 0);
    // Lets the syscall hook note the socket this thread uses inside the call.
    let marker = TlsCall {
        ssl: conn,
        buf: 0,
        len_ptr: 0,
        fd: -1,
        direction: dir,
        depth: 0,
        is_ex: tls_call_kind::GO,
        requested: 0,
        slot: 0,
        _pad: 0,
    };
    mark_proc_tls(tgid);
    tls_active_begin(id, &marker);
    0
}

/// The socket of `conn` and its SOCKETS value: the one remembered for this
/// `tls.Conn` while that socket still has the same connection id (counted
/// `TLS_FD_GO_CACHED`; no user memory read), else the one read from the
/// `tls.Conn` itself (`TLS_FD_GO_CONN`, then remembered), when it is a
/// tracked socket of this process. The first call on each connection reads
/// the struct, so the offsets are still cross-checked against the nested
/// syscall; a new `tls.Conn` at a freed one's address has another socket,
/// whose connection id differs, and is read again.
#[inline(always)]
fn conn_socket(conn: u64, tgid: u32, cookie: u64) -> Option<(i32, *mut SocketState)> {
    let conn_key = GoConnKey {
        conn,
        tgid,
        _pad: 0,
    };
    // SAFETY: a map value reference from this lookup, copied out at once.
    let cached = unsafe { GO_CONN_FD.get(&conn_key) }.copied();
    if let Some(c) = cached {
        if let Some(st) = socket_with_id(tgid, c.fd, c.conn_id) {
            count(counter::TLS_FD_GO_CACHED, 1);
            return Some((c.fd, st));
        }
    }
    let o = go_cookie::offsets(cookie)?;
    let fd = conn_fd(conn, o);
    if fd < 0 {
        return None;
    }
    let st = SOCKETS.get_ptr_mut(&SocketKey { tgid, fd })?;
    count(counter::TLS_FD_GO_CONN, 1);
    remember_conn(&conn_key, fd, st);
    Some((fd, st))
}

/// Remembers socket `fd` (SOCKETS value `st`) for a `tls.Conn`.
#[inline(always)]
fn remember_conn(conn_key: &GoConnKey, fd: i32, st: *mut SocketState) {
    // SAFETY: a map value pointer from a lookup in this run.
    let conn_id = unsafe { (*st).conn_id };
    let _ = GO_CONN_FD.insert(
        conn_key,
        &SslSocket {
            fd,
            _pad: 0,
            conn_id,
        },
        0,
    );
}

#[inline(always)]
fn on_return(ctx: &ProbeContext, dir: u32) -> u32 {
    // SAFETY: as in `entry`.
    let (g, n) = unsafe { ((*ctx.regs).r14, (*ctx.regs).rax as i64) };
    let (id, tgid, tid) = current_ids();
    let key = GoroutineKey { g, tgid, _pad: 0 };
    // SAFETY: a map value reference from this lookup, valid until the program returns; it is copied out at once.
    let call = match unsafe { GO_TLS_ACTIVE.get(&key) } {
        Some(c) => *c,
        None => {
            if n > 0 {
                orphan_return(tgid, tid, dir, n as u64);
            }
            return 0;
        }
    };
    let _ = GO_TLS_ACTIVE.remove(&key);
    let nested = take_nested_fd(id, call.conn);
    if call.emitted_fd >= 0 {
        if nested >= 0 {
            cross_check(nested, call.emitted_fd);
        }
        if n < call.len as i64 {
            count(counter::GO_WRITE_SHORT, 1);
        }
        return 0;
    }
    if n <= 0 {
        return 0;
    }
    let (fd, st) = match conn_socket(call.conn, tgid, call.cookie) {
        Some(found) => {
            if nested >= 0 {
                cross_check(nested, found.0);
            }
            found
        }
        None if nested >= 0 => {
            let Some(st) = SOCKETS.get_ptr_mut(&SocketKey { tgid, fd: nested }) else {
                count(counter::TLS_SOCKET_UNTRACKED, 1);
                return 0;
            };
            count(counter::TLS_FD_NESTED, 1);
            remember_conn(
                &GoConnKey {
                    conn: call.conn,
                    tgid,
                    _pad: 0,
                },
                nested,
                st,
            );
            (nested, st)
        }
        None => {
            count(counter::TLS_FD_UNKNOWN, 1);
            return 0;
        }
    };
    count(counter::GO_TLS_CALLS, 1);
    emit_plaintext_at(
        st,
        tgid,
        tid,
        fd,
        call.direction,
        call.buf,
        n as u64,
        shape::BUFFER,
    );
    0
}

#[inline(always)]
fn cross_check(nested: i32, used: i32) {
    count(
        if nested == used {
            counter::GO_FD_CHECK_AGREED
        } else {
            counter::GO_FD_CHECK_DISAGREED
        },
        1,
    );
}

/// A call returned `n` bytes but its entry was never seen: it began before
/// the probes were attached (a goroutine parked in `Read` on a keep-alive
/// connection). Its bytes cannot be copied (the buffer is unknown), but for
/// a `Read` the socket is the one this thread just read the ciphertext from:
/// an exact gap is marked there, so the parsers know a message is missing
/// instead of pairing around it.
#[inline(always)]
fn orphan_return(tgid: u32, tid: u32, dir: u32, n: u64) {
    if dir == direction::INGRESS {
        if let Some(fd) = thread_last_fd((u64::from(tgid) << 32) | u64::from(tid)) {
            if is_tracked(tgid, fd) {
                count(counter::GO_ORPHAN_READ_GAP, 1);
                emit_plaintext_gap(tgid, tid, fd, dir, n);
                return;
            }
        }
    }
    count(counter::GO_ORPHAN_LOST, 1);
}

/// The socket this thread's syscall hook saw inside the call on `conn`, and
/// the marker removed; -1 when there is none (no syscall, or the goroutine
/// came back on another thread).
#[inline(always)]
fn take_nested_fd(id: u64, conn: u64) -> i32 {
    let marker = match tls_active(id) {
        // SAFETY: a map value pointer from this lookup, copied out at once.
        Some(p) => unsafe { *p },
        None => return -1,
    };
    if marker.is_ex != tls_call_kind::GO {
        return -1;
    }
    tls_active_end(id);
    if marker.ssl == conn {
        marker.fd
    } else {
        -1
    }
}

/// `c.conn.(*net.TCPConn).fd.pfd.Sysfd`, or -1 where a read fails or the
/// value is not a plausible fd.
#[inline(always)]
fn conn_fd(conn: u64, o: go_cookie::ConnFdOffsets) -> i32 {
    // The interface's second word is its data pointer: the *net.TCPConn.
    let Some(tcp_conn) = read_u64(conn + o.tls_conn_conn as u64 + 8) else {
        return -1;
    };
    let Some(net_fd) = read_u64(tcp_conn + o.net_conn_fd as u64) else {
        return -1;
    };
    let Some(sysfd) = read_u64(net_fd + o.netfd_pfd as u64 + o.pfd_sysfd as u64) else {
        return -1;
    };
    let sysfd = sysfd as i64;
    if (0..MAX_FD).contains(&sysfd) {
        sysfd as i32
    } else {
        -1
    }
}

#[inline(always)]
fn read_u64(addr: u64) -> Option<u64> {
    if addr < 4096 {
        return None;
    }
    // SAFETY: bpf_probe_read_user checks the address; a fault is an Err.
    unsafe { bpf_probe_read_user(addr as *const u64) }.ok()
}

#[inline(always)]
fn is_tracked(tgid: u32, fd: i32) -> bool {
    SOCKETS.get_ptr(&SocketKey { tgid, fd }).is_some()
}
