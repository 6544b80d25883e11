//! Connection lifecycle: connect (client), accept/accept4 (server), close.
//!
//! Kernel signatures relied on:
//!   connect(fd, struct sockaddr *uservaddr, int addrlen)  (fd in pt_regs di)
//!   accept(fd, struct sockaddr *upeer_sockaddr, int *upeer_addrlen)
//!   accept4(fd, struct sockaddr *upeer_sockaddr, int *upeer_addrlen, int flags)
//!   close(fd)
//! The 4-tuple is read from the socket's `struct sock` (found through the task's
//! fd table), with field offsets from the running kernel's BTF: both ends are
//! known even when the application passes no address buffer to accept.

use aya_ebpf::{
    helpers::{
        bpf_get_current_task, bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use probes_common::{
    counter, kind, origin, pt_regs, role, ConnCloseRecord, ConnOpenRecord, KernelOffsets,
    ProbeSettings, SockAddr, SocketKey, SocketState,
};

use super::{
    data::{user_reg, user_regs},
    maps::{CONN_SEQ, EVENTS, MUTED, PID_FILTER, PORT_FILTER, SOCKETS},
    util::{
        arg, count, current_ids, proc_may_have_muted, proc_may_have_sockets, proc_sockets_add, ret,
        ring_flags_reserved, settings,
    },
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u16 = 1;
const EINPROGRESS: i64 = 115;

#[inline(always)]
fn read_kernel<T: Copy>(addr: u64) -> Option<T> {
    // SAFETY: the helper checks the address; a bad one returns an error, never a fault.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// The `struct sock *` behind `fd` of the current task, or None.
#[inline(always)]
fn sock_of_fd(off: &KernelOffsets, fd: i32) -> Option<u64> {
    // SAFETY: a helper call the verifier checks; no pointer of ours is passed.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = read_kernel(task + off.task_files as u64)?;
    let fdt: u64 = read_kernel(files + off.files_fdt as u64)?;
    // struct fdtable { unsigned int max_fds; struct file **fd; ... }: where
    // `fd` is the next word after `max_fds` (as on x86-64), one read for both.
    let (max_fds, fd_array) = if off.fdtable_fd == off.fdtable_max_fds.wrapping_add(8) {
        let [w0, w1]: [u64; 2] = read_kernel(fdt + off.fdtable_max_fds as u64)?;
        (w0 as u32, w1)
    } else {
        (
            read_kernel::<u32>(fdt + off.fdtable_max_fds as u64)?,
            read_kernel::<u64>(fdt + off.fdtable_fd as u64)?,
        )
    };
    if fd < 0 || fd as u32 >= max_fds {
        return None;
    }
    let file: u64 = read_kernel(fd_array + 8 * fd as u64)?;
    if file == 0 {
        return None;
    }
    let socket: u64 = read_kernel(file + off.file_private_data as u64)?;
    if socket == 0 {
        return None;
    }
    let sk: u64 = read_kernel(socket + off.socket_sk as u64)?;
    if sk == 0 {
        None
    } else {
        Some(sk)
    }
}

/// Fills both endpoints from `sk`. Returns false for anything but a TCP/IP
/// stream socket (unix sockets, UDP), which are not traced.
#[inline(always)]
fn read_endpoints(
    off: &KernelOffsets,
    sk: u64,
    local: &mut SockAddr,
    remote: &mut SockAddr,
) -> bool {
    // struct sock_common begins { skc_daddr, skc_rcv_saddr; skc_hash;
    // skc_dport, skc_num; skc_family; ... }: where the offsets say so, one
    // 24-byte read gives all five (little-endian words), else one read each.
    let d = off.sk_daddr;
    let packed = off.sk_rcv_saddr == d.wrapping_add(4)
        && off.sk_dport == d.wrapping_add(12)
        && off.sk_num == d.wrapping_add(14)
        && off.sk_family == d.wrapping_add(16);
    let (v4_daddr, v4_saddr, dport, num, family) = if packed {
        let [w0, w1, w2]: [u64; 3] = match read_kernel(sk + d as u64) {
            Some(w) => w,
            None => return false,
        };
        (
            (w0 as u32).to_le_bytes(),
            ((w0 >> 32) as u32).to_le_bytes(),
            (w1 >> 32) as u16,
            (w1 >> 48) as u16,
            w2 as u16,
        )
    } else {
        let family: u16 = match read_kernel(sk + off.sk_family as u64) {
            Some(f) => f,
            None => return false,
        };
        if family != AF_INET && family != AF_INET6 {
            return false;
        }
        (
            read_kernel(sk + off.sk_daddr as u64).unwrap_or([0; 4]),
            read_kernel(sk + off.sk_rcv_saddr as u64).unwrap_or([0; 4]),
            read_kernel(sk + off.sk_dport as u64).unwrap_or(0),
            read_kernel(sk + off.sk_num as u64).unwrap_or(0),
            family,
        )
    };
    if family != AF_INET && family != AF_INET6 {
        return false;
    }
    let sk_type: u16 = read_kernel(sk + off.sk_type as u64).unwrap_or(0);
    if sk_type != SOCK_STREAM {
        return false;
    }
    remote.port = u16::from_be(dport);
    local.port = num;
    remote.family = family;
    local.family = family;
    if family == AF_INET {
        let (d, s) = (v4_daddr, v4_saddr);
        // IPv4-mapped IPv6, so that user space handles one address shape.
        remote.addr = [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, d[0], d[1], d[2], d[3],
        ];
        local.addr = [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, s[0], s[1], s[2], s[3],
        ];
    } else {
        remote.addr = read_kernel(sk + off.sk_v6_daddr as u64).unwrap_or([0; 16]);
        local.addr = read_kernel(sk + off.sk_v6_rcv_saddr as u64).unwrap_or([0; 16]);
    }
    true
}

#[inline(always)]
fn port_allowed(s: &ProbeSettings, a: u16, b: u16) -> bool {
    // SAFETY: a map value reference from this lookup, valid until the program returns; it is copied out at once.
    let rule_a = unsafe { PORT_FILTER.get(&a) }.copied().unwrap_or(0);
    let rule_b = unsafe { PORT_FILTER.get(&b) }.copied().unwrap_or(0);
    if (rule_a | rule_b) & 2 != 0 {
        return false;
    }
    if s.port_filter_enabled != 0 && (rule_a | rule_b) & 1 == 0 {
        return false;
    }
    true
}

#[inline(always)]
fn register(fd: i32, conn_role: u32, conn_origin: u32) {
    let s = match settings() {
        Some(s) => s,
        None => return,
    };
    let (_, tgid, tid) = current_ids();
    let own = tgid == s.self_tgid;
    // SAFETY: a map value reference from this lookup, valid until the program returns; it is copied out at once.
    if !own && s.pid_filter_enabled != 0 && unsafe { PID_FILTER.get(&tgid) }.is_none() {
        return;
    }
    let sk = match sock_of_fd(&s.offsets, fd) {
        Some(sk) => sk,
        None => {
            count(counter::READ_KERNEL_FAILED, 1);
            return;
        }
    };
    // Built in place in the ring buffer: the record does not fit the BPF stack
    // next to everything else.
    let mut entry = match EVENTS.reserve::<ConnOpenRecord>(0) {
        Some(e) => e,
        None => {
            count(counter::RINGBUF_FULL_CONTROL, 1);
            return;
        }
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points to a ring-buffer reservation of exactly this record type, ours until it is submitted.
    let accepted = unsafe {
        (*rec).local = SockAddr::default();
        (*rec).remote = SockAddr::default();
        read_endpoints(&s.offsets, sk, &mut (*rec).local, &mut (*rec).remote)
            && (own || port_allowed(s, (*rec).local.port, (*rec).remote.port))
    };
    if !accepted {
        entry.discard(0);
        return;
    }
    let conn_id = next_conn_id();
    if !own {
        let key = SocketKey { tgid, fd };
        let state = SocketState {
            conn_id,
            role: conn_role,
            ..SocketState::default()
        };
        // A reused fd starts unmuted. Only a process whose `PROC_MUTED` slot
        // is set can have a MUTED entry (user space sets it before muting).
        if proc_may_have_muted(tgid) {
            let _ = MUTED.remove(&key);
        }
        // Counted before the entry exists, so the per-process test never
        // rejects a call on a tracked socket.
        proc_sockets_add(tgid, 1);
        if SOCKETS.insert(&key, &state, 0).is_err() {
            proc_sockets_add(tgid, u64::MAX);
            count(counter::SOCKET_MAP_FULL, 1);
            entry.discard(0);
            return;
        }
    }
    // SAFETY: `rec` points to a ring-buffer reservation of exactly this record type, ours until it is submitted.
    unsafe {
        (*rec).header = probes_common::RecordHeader {
            kind: kind::CONN_OPEN,
            tgid,
            tid,
            fd,
            ts_ns: bpf_ktime_get_ns(),
        };
        (*rec).conn_id = conn_id;
        (*rec).role = conn_role;
        (*rec).origin = if own { origin::AGENT_OWN } else { conn_origin };
    }
    entry.submit(ring_flags_reserved(
        core::mem::size_of::<ConnOpenRecord>() as u64
    ));
}

/// A connection id unique for this load of the programs without atomics: the
/// CPU number in the top bits, a per-CPU sequence below. User space seeds its
/// own ids with the top bit set, so the two never collide.
#[inline(always)]
fn next_conn_id() -> u64 {
    // SAFETY: a helper call the verifier checks; no pointer of ours is passed.
    let cpu = unsafe { bpf_get_smp_processor_id() } as u64;
    let seq = match CONN_SEQ.get_ptr_mut(0) {
        // SAFETY: this CPU's per-CPU slot: no other writer while the program runs.
        Some(p) => unsafe {
            *p += 1;
            *p
        },
        None => 0,
    };
    (cpu << 48) | (seq & 0xffff_ffff_ffff)
}

/// The fd is connect's first argument, read from the saved user registers
/// (see `data::user_regs`): no enter hook, so a connect already blocked when
/// the probes attach is caught too.
#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    let r = ret(&ctx);
    // Non-blocking connects return EINPROGRESS with the local port already bound.
    if r != 0 && r != -EINPROGRESS {
        return 0;
    }
    register(
        user_reg(user_regs(), pt_regs::DI) as i32,
        role::CLIENT,
        origin::CONNECT,
    );
    0
}

/// Serves accept and accept4: the new connection's fd is the return value.
/// No enter hook is needed (the socket is read through the returned fd), so a
/// server thread already blocked in accept when the probes attach is caught too.
#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    let r = ret(&ctx);
    if r >= 0 {
        register(r as i32, role::SERVER, origin::ACCEPT);
    }
    0
}

#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let (_, tgid, tid) = current_ids();
    if !proc_may_have_sockets(tgid) {
        return 0;
    }
    let fd = arg(&ctx, 0) as i32;
    let key = SocketKey { tgid, fd };
    // SAFETY: a map value reference from this lookup, valid until the program returns; it is copied out at once.
    let state = match unsafe { SOCKETS.get(&key) } {
        Some(s) => *s,
        None => return 0,
    };
    if SOCKETS.remove(&key).is_ok() {
        proc_sockets_add(tgid, u64::MAX);
    }
    // As in `register`: no MUTED entry without the process's flag.
    if proc_may_have_muted(tgid) {
        let _ = MUTED.remove(&key);
    }
    match EVENTS.reserve::<ConnCloseRecord>(0) {
        Some(mut entry) => {
            entry.write(ConnCloseRecord {
                header: probes_common::RecordHeader {
                    kind: kind::CONN_CLOSE,
                    tgid,
                    tid,
                    fd,
                    // SAFETY: a helper call the verifier checks; no pointer of ours is passed.
                    ts_ns: unsafe { bpf_ktime_get_ns() },
                },
                conn_id: state.conn_id,
                egress_total: state.egress_offset,
                ingress_total: state.ingress_offset,
            });
            entry.submit(ring_flags_reserved(
                core::mem::size_of::<ConnCloseRecord>() as u64
            ));
        }
        None => count(counter::RINGBUF_FULL_CONTROL, 1),
    }
    0
}
