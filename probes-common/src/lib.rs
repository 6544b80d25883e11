//! The `#[repr(C)]` records that cross from wirespan's eBPF programs to user space,
//! and the maps' key/value layouts. Shared by `probes-ebpf` (kernel side, `no_std`)
//! and the `wirespan` collector (user side, with the `user` feature for `aya::Pod`).
//!
//! This crate holds layouts and constants, and (with the `records` feature,
//! part of `user`) the user-space decoder of the records, `records`: the one place that knows
//! their byte layout on both sides. Every struct is padding-free (explicit
//! `_pad` fields) so `Pod` is sound and the kernel never leaks uninitialised
//! stack bytes into the ring buffer.
#![no_std]

#[cfg(feature = "records")]
extern crate std;

#[cfg(feature = "records")]
pub mod records;

/// Largest payload carried by one data record. A syscall that moves more bytes is
/// split into consecutive chunks of at most this size.
pub const MAX_CHUNK: usize = 16 * 1024;

/// Most chunks emitted for one syscall; with `MAX_CHUNK` this bounds the per-call
/// capture cap (`MAX_CHUNK * MAX_CHUNKS_PER_CALL` = 4 MiB).
pub const MAX_CHUNKS_PER_CALL: u32 = 256;

/// Most iovec entries walked for readv/writev/sendmsg/recvmsg. Bytes in later
/// entries are reported in `call_len` but not copied (counted as truncated).
pub const MAX_IOV: u32 = 32;

/// Bytes of the environment block copied at exec, to read OTEL_SERVICE_NAME and
/// OTEL_RESOURCE_ATTRIBUTES for processes too short-lived to read from /proc.
pub const EXEC_ENV_MAX: usize = 8192;
/// Bytes of the executable's path copied at exec.
pub const EXEC_FILENAME_MAX: usize = 256;
/// Bytes of the argv block copied at exec.
pub const EXEC_ARGS_MAX: usize = 512;

/// Byte offsets in the x86-64 `struct pt_regs` (arch/x86/include/asm/ptrace.h,
/// the same order as the ptrace ABI's `user_regs_struct`) of the registers
/// the syscall entry code saves: arguments 1–4 of a syscall are in di, si, dx
/// and r10, its number in orig_ax. The exit hooks read the call's arguments
/// there; user space checks these against the running kernel's BTF and with
/// one known call before attaching.
pub mod pt_regs {
    pub const R10: u64 = 7 * 8;
    pub const DX: u64 = 12 * 8;
    pub const SI: u64 = 13 * 8;
    pub const DI: u64 = 14 * 8;
    pub const ORIG_AX: u64 = 15 * 8;
    /// `sizeof(struct pt_regs)`.
    pub const SIZE: u64 = 21 * 8;
}

/// When a record should wake user space (probes: `ring_flags_*`).
pub mod ring_wakeup {
    /// Whether a record that takes the bytes waiting in the ring buffer from
    /// `before` to `after` should force a wake-up, with user space's
    /// threshold `threshold` (`ProbeSettings::wakeup_bytes`): when it crosses
    /// the threshold, and at each further multiple of four times it while
    /// user space lags. Between those, records wait for the drain timer: a
    /// forced wake-up is an irq_work self-IPI, and one per record above the
    /// threshold cost ~20 % of the data hook (BENCHMARKS "Probe cost,
    /// session 5"). No threshold (0): every record wakes.
    #[inline(always)]
    pub const fn should_wake(before: u64, after: u64, threshold: u64) -> bool {
        if threshold == 0 {
            return true;
        }
        let step = 4 * threshold;
        (before < threshold && after >= threshold) || after / step > before / step
    }
}

/// The per-process count of tracked sockets (`PROC_SOCKETS` map), the first
/// test of every data call: an array indexed by `tgid % SLOTS`.
pub mod proc_sockets {
    pub const SLOTS: u32 = 65536;

    pub const fn slot(tgid: u32) -> u32 {
        tgid % SLOTS
    }
}

/// x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl, ABI).
pub mod syscall_nr {
    pub const READ: u32 = 0;
    pub const WRITE: u32 = 1;
    pub const READV: u32 = 19;
    pub const WRITEV: u32 = 20;
    pub const SENDFILE: u32 = 40;
    pub const CONNECT: u32 = 42;
    pub const SENDTO: u32 = 44;
    pub const RECVFROM: u32 = 45;
    pub const SENDMSG: u32 = 46;
    pub const RECVMSG: u32 = 47;
    /// Used by the start-up check of the register offsets.
    pub const FADVISE64: u32 = 221;
}

/// Record kinds, the first field of every record.
pub mod kind {
    pub const DATA: u32 = 1;
    pub const CONN_OPEN: u32 = 2;
    pub const CONN_CLOSE: u32 = 3;
    pub const PROC_EXEC: u32 = 4;
    pub const PROC_EXIT: u32 = 5;
    /// A process mapped a file executable (`mmap` with `PROT_EXEC`): a
    /// library loaded with `dlopen` after exec may hold a TLS library.
    pub const PROC_MAP: u32 = 6;
    /// One call of a TLS function located by analysis (no symbol), sampled
    /// for the integrity check while that file is being verified.
    pub const TLS_SAMPLE: u32 = 7;
    /// A thread's plaintext written through the TLS library before its
    /// socket was known (`source::TLS_WRITE_UNBOUND`) now has its socket.
    pub const TLS_BIND: u32 = 8;
}

/// Direction of a data record, from the observed process's point of view.
pub mod direction {
    /// Bytes the process wrote to the socket.
    pub const EGRESS: u32 = 0;
    /// Bytes the process read from the socket.
    pub const INGRESS: u32 = 1;
}

/// Which side opened a connection.
pub mod role {
    pub const UNKNOWN: u32 = 0;
    /// The observed process called connect().
    pub const CLIENT: u32 = 1;
    /// The observed process accepted the connection.
    pub const SERVER: u32 = 2;
}

/// How a connection became known to the probes.
pub mod origin {
    pub const CONNECT: u32 = 1;
    pub const ACCEPT: u32 = 2;
    /// Seeded by user space from /proc for sockets open before the agent started.
    pub const SEEDED: u32 = 3;
    /// A connection of the agent itself: never captured, but reported so user
    /// space can ignore the other end when it is a process on this host (the
    /// collector receiving our exports), which would otherwise loop.
    pub const AGENT_OWN: u32 = 4;
}

/// The syscall (or library call) that produced a data record.
pub mod source {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const READV: u32 = 3;
    pub const WRITEV: u32 = 4;
    pub const RECVFROM: u32 = 5;
    pub const SENDTO: u32 = 6;
    pub const RECVMSG: u32 = 7;
    pub const SENDMSG: u32 = 8;
    /// sendfile: bytes moved from a file, never copied (always a counted gap).
    pub const SENDFILE: u32 = 9;
    /// Plaintext returned by SSL_read / SSL_read_ex (uretprobe).
    pub const TLS_READ: u32 = 10;
    /// Plaintext accepted by SSL_write / SSL_write_ex (uretprobe).
    pub const TLS_WRITE: u32 = 11;
    /// Plaintext accepted by SSL_write whose socket is not known yet (a
    /// custom BIO: the application sends the ciphertext after the call).
    /// `fd` is -1, `conn_id` 0, and `call_stream_offset` the position in
    /// this thread's run of such writes (0 starts a new run). A
    /// [`crate::TlsBindRecord`] gives the run its socket and stream offset
    /// when the thread next writes to a tracked socket.
    pub const TLS_WRITE_UNBOUND: u32 = 12;
    /// Flag OR'ed into the source of a header-only record: the call's bytes
    /// lie wholly inside a message body user space said it only counts
    /// ([`crate::BodySkip`]), so they were not copied, on purpose.
    pub const BODY_SKIPPED: u32 = 1 << 8;

    /// True for the TLS plaintext sources, whose offsets are the socket's
    /// plaintext streams rather than its wire streams (flags ignored).
    pub const fn is_tls(source: u32) -> bool {
        let s = source & !BODY_SKIPPED;
        s == TLS_READ || s == TLS_WRITE
    }
}

/// Indexes of the per-CPU loss and activity counters (`COUNTERS` map).
/// Names are what user space exports as the `reason` label.
pub mod counter {
    /// bpf_ringbuf_output failed: the ring buffer was full.
    pub const RINGBUF_FULL_DATA: u32 = 0;
    /// A connection, close, exec or exit record could not be reserved.
    pub const RINGBUF_FULL_CONTROL: u32 = 1;
    /// The socket map was full: a new connection was not tracked.
    pub const SOCKET_MAP_FULL: u32 = 2;
    /// The in-flight syscall map was full: one call's data was not captured.
    /// No longer produced (the exit hooks read the arguments from the saved
    /// registers, no map); the index stays so that counter names keep their
    /// meaning.
    pub const INFLIGHT_MAP_FULL: u32 = 3;
    /// bpf_probe_read_user of a payload failed.
    pub const READ_USER_FAILED: u32 = 4;
    /// Reading a kernel struct (socket address) failed.
    pub const READ_KERNEL_FAILED: u32 = 5;
    /// Syscalls whose payload was cut by the per-call cap or the iovec limit.
    pub const TRUNCATED_CALLS: u32 = 6;
    /// Bytes not copied because of the per-call cap or the iovec limit.
    pub const TRUNCATED_BYTES: u32 = 7;
    /// Bytes not copied because user space muted the connection (not HTTP).
    pub const MUTED_BYTES: u32 = 8;
    /// Data records emitted.
    pub const DATA_RECORDS: u32 = 9;
    /// Payload bytes emitted.
    pub const DATA_BYTES: u32 = 10;
    /// Bytes dropped because the ring buffer was full (after a failed output).
    pub const RINGBUF_FULL_BYTES: u32 = 11;
    /// SSL_read/SSL_write calls that returned data.
    pub const TLS_CALLS: u32 = 12;
    /// ... whose socket was found by the syscall the library made inside the call.
    pub const TLS_FD_NESTED: u32 = 13;
    /// ... whose socket was remembered for that SSL* from an earlier call.
    pub const TLS_FD_CACHED: u32 = 14;
    /// ... whose socket was the one this thread last read from (custom BIO).
    pub const TLS_FD_THREAD: u32 = 15;
    /// ... whose socket could not be found: plaintext dropped.
    pub const TLS_FD_UNKNOWN: u32 = 16;
    /// ... on a socket the probes do not track: plaintext dropped.
    pub const TLS_SOCKET_UNTRACKED: u32 = 17;
    /// Ciphertext bytes not copied because the socket's plaintext is captured.
    pub const TLS_CIPHERTEXT_BYTES: u32 = 18;
    /// Go crypto/tls `(*Conn).Read`/`Write` calls that returned data.
    pub const GO_TLS_CALLS: u32 = 19;
    /// ... whose socket was read from the `tls.Conn` (conn -> netFD -> Sysfd).
    pub const TLS_FD_GO_CONN: u32 = 20;
    /// ... whose socket was remembered for that `tls.Conn` from an earlier call.
    pub const TLS_FD_GO_CACHED: u32 = 21;
    /// Go calls where both the `tls.Conn` and the nested syscall named a
    /// socket and the two agreed (the cross-check of the struct offsets).
    pub const GO_FD_CHECK_AGREED: u32 = 22;
    /// ... and disagreed (the `tls.Conn`'s socket is used).
    pub const GO_FD_CHECK_DISAGREED: u32 = 23;
    /// A Go `Read` returned data but its entry was not seen (it began before
    /// the probes were attached): a gap of that size was marked on the socket
    /// the thread last read, so the stream says exactly what is missing.
    pub const GO_ORPHAN_READ_GAP: u32 = 24;
    /// ... and no socket could be named: the plaintext is lost, unmarked.
    pub const GO_ORPHAN_LOST: u32 = 25;
    /// A Go `Write` emitted at its entry returned fewer bytes than it was
    /// given (the connection failed): the stream holds bytes never sent.
    pub const GO_WRITE_SHORT: u32 = 26;
    /// SSL_write calls whose socket was not known at return: their
    /// plaintext waits (in user space) for the thread's next socket write.
    pub const TLS_FD_DEFERRED: u32 = 27;
    /// ... and that next write bound the waiting plaintext to its socket.
    pub const TLS_FD_BOUND: u32 = 28;
    /// A TLS call's entry took the per-thread slot (`TLS_ACTIVE`, direct-mapped
    /// by thread id) of another thread's call still in progress: that call's
    /// plaintext is lost (or the other thread died inside a call).
    pub const TLS_CALL_SLOT_TAKEN: u32 = 29;
    /// Bytes not copied because they were inside a body user space only
    /// counts (`BODY_SKIP`): not a loss, the stream offsets stay exact.
    pub const BODY_SKIPPED_BYTES: u32 = 30;
    pub const COUNT: u32 = 31;

    /// Label for each index, in order.
    pub const NAMES: [&str; COUNT as usize] = [
        "ringbuf_full_data",
        "ringbuf_full_control",
        "socket_map_full",
        "inflight_map_full",
        "read_user_failed",
        "read_kernel_failed",
        "truncated_calls",
        "truncated_bytes",
        "muted_bytes",
        "data_records",
        "data_bytes",
        "ringbuf_full_bytes",
        "tls_calls",
        "tls_fd_nested",
        "tls_fd_cached",
        "tls_fd_thread",
        "tls_fd_unknown",
        "tls_socket_untracked",
        "tls_ciphertext_bytes",
        "go_tls_calls",
        "tls_fd_go_conn",
        "tls_fd_go_cached",
        "go_fd_check_agreed",
        "go_fd_check_disagreed",
        "go_orphan_read_gap",
        "go_orphan_lost",
        "go_write_short",
        "tls_fd_deferred",
        "tls_fd_bound",
        "tls_call_slot_taken",
        "body_skipped_bytes",
    ];
}

/// Common prefix of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// One of [`kind`].
    pub kind: u32,
    /// Process id (thread group id).
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// File descriptor, or -1 where none applies.
    pub fd: i32,
    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) when the record was made.
    pub ts_ns: u64,
}

/// A chunk of socket payload. `chunk_len` payload bytes follow this header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataHeader {
    pub header: RecordHeader,
    /// Generation of the connection, unique per agent run; tells fd reuse apart.
    pub conn_id: u64,
    /// Offset, in this direction's byte stream, of the first byte of the call.
    pub call_stream_offset: u64,
    /// Bytes the syscall actually moved (its return value).
    pub call_len: u64,
    /// Offset of this chunk's first byte within the call.
    pub chunk_offset: u32,
    /// Payload bytes that follow.
    pub chunk_len: u32,
    /// One of [`direction`].
    pub direction: u32,
    /// One of [`source`].
    pub source: u32,
}

/// A socket address as the probes report it. IPv4 is stored as IPv4-mapped IPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockAddr {
    pub addr: [u8; 16],
    pub port: u16,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u16,
    pub _pad: u32,
}

/// A connection became known (connect, accept, or seeded).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnOpenRecord {
    pub header: RecordHeader,
    pub conn_id: u64,
    pub local: SockAddr,
    pub remote: SockAddr,
    /// One of [`role`].
    pub role: u32,
    /// One of [`origin`].
    pub origin: u32,
}

/// A tracked socket was closed. The stream totals let user space see any tail
/// of either direction that it never received.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnCloseRecord {
    pub header: RecordHeader,
    pub conn_id: u64,
    pub egress_total: u64,
    pub ingress_total: u64,
}

/// A process called exec. Carries what identifies it, read in the kernel so that a
/// process that lives for milliseconds is still named.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcExecRecord {
    pub header: RecordHeader,
    pub ppid: u32,
    pub filename_len: u32,
    pub args_len: u32,
    pub env_len: u32,
    pub comm: [u8; 16],
    pub filename: [u8; EXEC_FILENAME_MAX],
    pub args: [u8; EXEC_ARGS_MAX],
    pub env: [u8; EXEC_ENV_MAX],
    /// The process's cgroup v2 id (`bpf_get_current_cgroup_id`: the inode
    /// number of its directory in the unified hierarchy), so that a process
    /// gone before user space reads `/proc` can still be placed in its
    /// container. Last, so records written before it existed (shorter by 8
    /// bytes, [`PROC_EXEC_V1_LEN`]) still decode, with 0 here.
    pub cgroup_id: u64,
}

/// Length of an exec record before `cgroup_id` was added (old recordings).
pub const PROC_EXEC_V1_LEN: usize = 24 + 16 + 16 + EXEC_FILENAME_MAX + EXEC_ARGS_MAX + EXEC_ENV_MAX;

/// A process (thread group) exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcExitRecord {
    pub header: RecordHeader,
}

/// A process is mapping a file with `PROT_EXEC` (the dynamic loader mapping
/// a library's code, at exec or at `dlopen`), made at the call's entry. The
/// header's fd is the file's; user space reads the process's maps a moment
/// later (the loader closes the fd at once) for files it has not checked.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcMapRecord {
    pub header: RecordHeader,
}

/// The socket of a thread's deferred TLS plaintext (see
/// [`source::TLS_WRITE_UNBOUND`]): the header's `tid` is the thread, `fd`
/// the socket its next write went to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsBindRecord {
    pub header: RecordHeader,
    pub conn_id: u64,
    /// Offset in the socket's plaintext egress stream of the run's first byte.
    pub stream_offset: u64,
    /// Bytes in the run (what the unbound records carried, in order).
    pub len: u64,
}

/// Slots of the TLS integrity check: each file whose TLS functions were
/// located without a symbol gets one while it is attached (the uprobes'
/// cookie), and its calls are sampled while user space sets its entry in
/// the probes' `TLS_VERIFY` array.
pub const TLS_VERIFY_SLOTS: u32 = 1024;

/// Bytes of plaintext a [`TlsSampleRecord`] carries.
pub const TLS_SAMPLE_BYTES: usize = 64;

/// One call of a TLS function located by analysis, while its file is being
/// verified: what user space needs to tell plaintext from a wrong hook
/// (the first bytes, the length against the buffer size asked for, and the
/// plaintext stream against the socket's ciphertext stream).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsSampleRecord {
    /// `fd` is the socket found for the call, or -1.
    pub header: RecordHeader,
    /// The socket's connection id, 0 when the socket is not tracked.
    pub conn_id: u64,
    /// The socket's wire (ciphertext) stream offset in this direction when
    /// the call returned; 0 when the socket is not tracked.
    pub wire_offset: u64,
    /// The plaintext stream offset before this call's bytes.
    pub plaintext_offset: u64,
    /// Plaintext bytes the call returned.
    pub len: u64,
    /// The buffer size the caller passed (`num`).
    pub requested: u64,
    /// The located file's slot (below [`TLS_VERIFY_SLOTS`]).
    pub slot: u32,
    /// One of [`direction`].
    pub direction: u32,
    /// Bytes of `sample` that are valid.
    pub sample_len: u32,
    /// 1 when the socket is tracked (so the offsets mean something).
    pub tracked: u32,
    pub sample: [u8; TLS_SAMPLE_BYTES],
}

impl Default for TlsSampleRecord {
    fn default() -> Self {
        Self {
            header: RecordHeader::default(),
            conn_id: 0,
            wire_offset: 0,
            plaintext_offset: 0,
            len: 0,
            requested: 0,
            slot: 0,
            direction: 0,
            sample_len: 0,
            tracked: 0,
            sample: [0; TLS_SAMPLE_BYTES],
        }
    }
}

/// Key of the socket map: which sockets are captured.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SocketKey {
    pub tgid: u32,
    pub fd: i32,
}

/// The BPF cookie of each Go crypto/tls uprobe: what the hooked instruction
/// is, and the struct offsets that lead from a `*tls.Conn` to its socket fd in
/// that binary. One program serves every Go binary; the cookie carries what
/// differs between them, so no per-binary map is needed.
///
/// Layout: bits 0..8 the [`go_cookie::kind`]; bit 8 set when the offsets are
/// known; then one byte each, from bit 16: `tls.Conn.conn`, `net.conn.fd`,
/// `netFD.pfd`, `poll.FD.Sysfd`.
pub mod go_cookie {
    pub mod kind {
        /// Entry of `crypto/tls.(*Conn).Write`.
        pub const WRITE_ENTRY: u64 = 1;
        /// Entry of `crypto/tls.(*Conn).Read`.
        pub const READ_ENTRY: u64 = 2;
        /// A `RET` instruction of `(*Conn).Write`.
        pub const WRITE_RETURN: u64 = 3;
        /// A `RET` instruction of `(*Conn).Read`.
        pub const READ_RETURN: u64 = 4;
    }
    const OFFSETS_KNOWN: u64 = 1 << 8;

    /// Offsets from a `*tls.Conn` to the socket fd, in bytes.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ConnFdOffsets {
        pub tls_conn_conn: u8,
        pub net_conn_fd: u8,
        pub netfd_pfd: u8,
        pub pfd_sysfd: u8,
    }

    /// The cookie for a probe of `kind` in a binary with `offsets`.
    pub const fn pack(kind: u64, offsets: Option<ConnFdOffsets>) -> u64 {
        match offsets {
            None => kind & 0xff,
            Some(o) => {
                (kind & 0xff)
                    | OFFSETS_KNOWN
                    | (o.tls_conn_conn as u64) << 16
                    | (o.net_conn_fd as u64) << 24
                    | (o.netfd_pfd as u64) << 32
                    | (o.pfd_sysfd as u64) << 40
            }
        }
    }

    pub const fn kind(cookie: u64) -> u64 {
        cookie & 0xff
    }

    pub const fn offsets(cookie: u64) -> Option<ConnFdOffsets> {
        if cookie & OFFSETS_KNOWN == 0 {
            return None;
        }
        Some(ConnFdOffsets {
            tls_conn_conn: (cookie >> 16) as u8,
            net_conn_fd: (cookie >> 24) as u8,
            netfd_pfd: (cookie >> 32) as u8,
            pfd_sysfd: (cookie >> 40) as u8,
        })
    }
}

/// Flags in [`SocketState::flags`].
pub mod socket_flag {
    /// User space decided the connection carries nothing it parses: count its
    /// bytes but stop copying them (TLS plaintext is still copied).
    pub const MUTED: u32 = 1;
    /// The TLS library's plaintext of this socket is captured: its ciphertext
    /// is counted, not copied.
    pub const TLS: u32 = 2;
}

/// Value of the socket map. The probes advance the stream offsets as they copy
/// (a plain read-modify-write, not atomic: see ARCHITECTURE.md), so every byte
/// has an exact position and a lost record is a measurable gap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketState {
    pub conn_id: u64,
    pub egress_offset: u64,
    pub ingress_offset: u64,
    /// Offsets of the TLS plaintext streams (SSL_write / SSL_read).
    pub tls_egress_offset: u64,
    pub tls_ingress_offset: u64,
    pub role: u32,
    pub flags: u32,
}

/// Value of the `BODY_SKIP` map (key: the socket's [`SocketKey`], its fd with
/// [`TLS_TWIN_FD_BIT`] for its TLS plaintext), written by user space only: in connection `conn_id`, the bytes of direction `d`
/// before stream offset `until[d]` (indexed by [`direction`]) are the rest of
/// a message body whose length the parser already knows and whose bytes it
/// only counts. A data call lying wholly below it is not copied: the probes
/// send a header-only record flagged [`source::BODY_SKIPPED`] instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodySkip {
    pub conn_id: u64,
    pub until: [u64; 2],
}

/// Set in the fd of a socket's TLS plaintext stream, which user space tracks
/// as a connection of its own (its "twin"; no real fd is that large): the
/// `BODY_SKIP` key of that stream, and the twin's key in user space.
pub const TLS_TWIN_FD_BIT: i32 = 1 << 30;

/// Data calls shorter than this are copied whatever `BODY_SKIP` says: for
/// them the map lookup would cost about what the copy saves.
pub const BODY_SKIP_MIN_CALL: u64 = 2048;

/// Byte offsets of kernel struct fields, resolved by user space from the running
/// kernel's BTF and handed to the probes (Rust eBPF has no CO-RE relocations).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_files: u32,
    pub task_mm: u32,
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub fdtable_max_fds: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub sk_family: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    pub sk_dport: u32,
    pub sk_num: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_type: u32,
    pub sk_type_bits: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub mm_env_start: u32,
    pub mm_env_end: u32,
}

/// Runtime settings for the probes, in the one-entry `SETTINGS` array map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeSettings {
    /// The agent's own tgid: never traced.
    pub self_tgid: u32,
    /// Most payload bytes copied from one syscall (the rest is counted).
    pub per_call_cap: u32,
    /// When 1, only processes in the `PID_FILTER` map are traced.
    pub pid_filter_enabled: u32,
    /// When 1, only connections with a local or remote port in `PORT_FILTER`.
    pub port_filter_enabled: u32,
    /// Records are written without waking user space until this many bytes
    /// wait in the ring buffer (user space also drains on a short timer): one
    /// wake-up per batch instead of per record. 0 while user space drains on
    /// a long timer because it found nothing: then every record wakes it.
    pub wakeup_bytes: u32,
    pub _pad: u32,
    pub offsets: KernelOffsets,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for RecordHeader {}
    unsafe impl aya::Pod for DataHeader {}
    unsafe impl aya::Pod for SockAddr {}
    unsafe impl aya::Pod for ConnOpenRecord {}
    unsafe impl aya::Pod for ConnCloseRecord {}
    unsafe impl aya::Pod for ProcExitRecord {}
    unsafe impl aya::Pod for ProcMapRecord {}
    unsafe impl aya::Pod for TlsSampleRecord {}
    unsafe impl aya::Pod for TlsBindRecord {}
    unsafe impl aya::Pod for SocketKey {}
    unsafe impl aya::Pod for SocketState {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for ProbeSettings {}
    unsafe impl aya::Pod for BodySkip {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn ring_wakes_at_the_threshold_and_each_fourth_multiple_only() {
        use super::ring_wakeup::should_wake;
        let t = 1000;
        // Below the threshold: the drain timer.
        assert!(!should_wake(0, 999, t));
        // Crossing it (landing on it counts).
        assert!(should_wake(999, 1000, t));
        assert!(should_wake(10, 1500, t));
        // Above it, user space already woken: no wake-up per record...
        assert!(!should_wake(1000, 1100, t));
        assert!(!should_wake(2500, 3999, t));
        // ...until 4x, 8x ... the threshold, while user space lags.
        assert!(should_wake(3999, 4000, t));
        assert!(!should_wake(4000, 7999, t));
        assert!(should_wake(7000, 8100, t));
        // After a drain below the threshold, the next crossing wakes again.
        assert!(should_wake(200, 1000, t));
        // No threshold: every record.
        assert!(should_wake(5, 6, 0));
        // Every record above the threshold, counted: one wake-up per 4x.
        let woken = (0..100_000u64)
            .filter(|i| should_wake(i * 10, (i + 1) * 10, t))
            .count();
        assert_eq!(woken, 1 + 1_000_000 / 4000);
    }

    use super::*;
    use core::mem::size_of;

    // Sizes are part of the wire format of recordings; a change must be deliberate.
    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<RecordHeader>(), 24);
        assert_eq!(size_of::<DataHeader>(), 24 + 8 * 3 + 4 * 4);
        assert_eq!(size_of::<SockAddr>(), 24);
        assert_eq!(size_of::<ConnOpenRecord>(), 24 + 8 + 24 * 2 + 8);
        assert_eq!(size_of::<ConnCloseRecord>(), 24 + 8 * 3);
        assert_eq!(size_of::<ProcExitRecord>(), 24);
        assert_eq!(size_of::<ProcMapRecord>(), 24);
        assert_eq!(size_of::<TlsBindRecord>(), 24 + 24);
        assert_eq!(
            size_of::<TlsSampleRecord>(),
            24 + 8 * 5 + 4 * 4 + TLS_SAMPLE_BYTES
        );
        assert_eq!(
            size_of::<ProcExecRecord>(),
            24 + 16 + 16 + EXEC_FILENAME_MAX + EXEC_ARGS_MAX + EXEC_ENV_MAX + 8
        );
        assert_eq!(size_of::<ProcExecRecord>(), PROC_EXEC_V1_LEN + 8);
        assert_eq!(size_of::<SocketState>(), 48);
        assert_eq!(size_of::<KernelOffsets>(), 22 * 4);
        assert_eq!(size_of::<ProbeSettings>(), 24 + 22 * 4);
    }

    #[test]
    fn counter_names_are_unique_and_named() {
        assert_eq!(counter::NAMES.len(), counter::COUNT as usize);
    }

    #[test]
    fn go_cookie_round_trips() {
        let o = go_cookie::ConnFdOffsets {
            tls_conn_conn: 0,
            net_conn_fd: 8,
            netfd_pfd: 255,
            pfd_sysfd: 16,
        };
        let c = go_cookie::pack(go_cookie::kind::READ_ENTRY, Some(o));
        assert_eq!(go_cookie::kind(c), go_cookie::kind::READ_ENTRY);
        assert_eq!(go_cookie::offsets(c), Some(o));
        let c = go_cookie::pack(go_cookie::kind::READ_RETURN, None);
        assert_eq!(go_cookie::kind(c), go_cookie::kind::READ_RETURN);
        assert_eq!(go_cookie::offsets(c), None);
        for (i, a) in counter::NAMES.iter().enumerate() {
            assert!(!a.is_empty() && a.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            for b in &counter::NAMES[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
