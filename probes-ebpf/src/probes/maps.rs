//! Every map the programs use. Sizes marked "set by the loader" are overridden
//! from the configuration before load.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use probes_common::{
    counter, proc_sockets::SLOTS as PROC_SOCKETS_SLOTS, BodySkip, ProbeSettings, SocketKey,
    SocketState, MAX_CHUNK,
};

use probes_common::DataHeader;

/// All records to user space. Size set by the loader.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Sockets being captured. Size set by the loader (capture.max_sockets).
#[map]
pub static SOCKETS: HashMap<SocketKey, SocketState> = HashMap::with_max_entries(65536, 0);

/// How many tracked sockets each process has, by `tgid % PROC_SOCKETS_SLOTS`:
/// the cheap first test of every data call and close. Zero means "no entry
/// of this process is in `SOCKETS`", exactly: every insert into `SOCKETS`
/// (probes and user space, see `probes_common::proc_sockets`) adds one first,
/// every successful remove takes one after. Processes that share a slot,
/// or an insert over an existing key, only make the test pass where it could
/// have failed: the `SOCKETS` lookup still decides.
#[map]
pub static PROC_SOCKETS: Array<u64> = Array::with_max_entries(PROC_SOCKETS_SLOTS, 0);

/// Set to 1 (never cleared) by user space, before it seeds a socket of a
/// process in that slot into `SOCKETS`: a map of its own, because a user
/// space read-modify-write of `PROC_SOCKETS` would race with the probes'
/// atomic adds.
#[map]
pub static PROC_SEEDED: Array<u32> = Array::with_max_entries(PROC_SOCKETS_SLOTS, 0);

/// Set to 1 (never cleared) by user space before it mutes a socket of a
/// process in that slot: a process with none skips the `MUTED` lookup.
#[map]
pub static PROC_MUTED: Array<u32> = Array::with_max_entries(PROC_SOCKETS_SLOTS, 0);

/// Set to 1 (never cleared) by the TLS uprobes (OpenSSL and Go) of a
/// process in that slot before they make a `TLS_ACTIVE` entry: the data
/// hooks of a process that never ran one skip that lookup.
#[map]
pub static PROC_TLS: Array<u32> = Array::with_max_entries(PROC_SOCKETS_SLOTS, 0);

/// Sockets user space asked to stop copying (not HTTP). A map of its own, not a
/// flag in `SOCKETS`, so user space never writes a `SOCKETS` value back over
/// offsets the probes advanced meanwhile.
#[map]
pub static MUTED: LruHashMap<SocketKey, u8> = LruHashMap::with_max_entries(65536, 0);

/// Bodies user space only counts, by socket (see `probes_common::BodySkip`):
/// written by user space alone, a map of its own for the same reason as
/// `MUTED`. Looked up only for calls of at least
/// `probes_common::BODY_SKIP_MIN_CALL` bytes.
#[map]
pub static BODY_SKIP: LruHashMap<SocketKey, BodySkip> = LruHashMap::with_max_entries(16384, 0);

/// One entry: the settings user space wrote before attaching.
#[map]
pub static SETTINGS: Array<ProbeSettings> = Array::with_max_entries(1, 0);

/// Loss and activity counters, indexed by `probes_common::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Per-CPU connection sequence (index 0), see `conn::next_conn_id`.
#[map]
pub static CONN_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Processes to trace when the pid filter is on.
#[map]
pub static PID_FILTER: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// Port rules: value bit 1 = include, bit 2 = exclude.
#[map]
pub static PORT_FILTER: HashMap<u16, u8> = HashMap::with_max_entries(1024, 0);

/// What `data::check_user_regs` read from the registers at start-up: di,
/// si, dx, r10, orig_ax of the agent's known call.
#[map]
pub static REGS_CHECK: Array<[u64; 5]> = Array::with_max_entries(1, 0);

/// Integrity check of TLS functions located without a symbol: user space
/// sets a file's slot (its uprobes' cookie) to 1 while it verifies that
/// file, and the return probe then sends a [`probes_common::TlsSampleRecord`]
/// per call. 0 (every slot of a verified or symbol-hooked file) costs one
/// array lookup per call of a located function, nothing for the others.
#[map]
pub static TLS_VERIFY: Array<u32> = Array::with_max_entries(probes_common::TLS_VERIFY_SLOTS, 0);

/// Per-CPU staging area for a data record: the verifier allows a variable-size
/// ring buffer write only from memory like this, and the stack is 512 bytes.
#[map]
pub static DATA_SCRATCH: PerCpuArray<DataScratch> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
pub struct DataScratch {
    pub header: DataHeader,
    pub payload: [u8; MAX_CHUNK],
}

/// The buffer argument's shape.
pub mod shape {
    pub const BUFFER: u32 = 0;
    pub const IOVEC: u32 = 1;
    pub const MSGHDR: u32 = 2;
    /// No user buffer to copy (sendfile): only the length is accounted.
    pub const NONE: u32 = 3;
}

/// A TLS library call in progress on a thread (between uprobe and uretprobe).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsCall {
    /// The SSL* argument.
    pub ssl: u64,
    /// The plaintext buffer.
    pub buf: u64,
    /// For SSL_read_ex/SSL_write_ex: where the library stores the byte count.
    pub len_ptr: u64,
    /// The socket the library used inside the call, or -1 (custom BIO).
    pub fd: i32,
    pub direction: u32,
    /// Nested SSL_* calls on the same thread: only the outermost one emits.
    pub depth: u32,
    /// One of [`tls_call_kind`].
    pub is_ex: u32,
    /// The buffer size the caller passed (`num`), for the integrity check.
    pub requested: u64,
    /// The located file's integrity slot (the uprobe's cookie); 0 for a
    /// file hooked at its symbols.
    pub slot: u32,
    pub _pad: u32,
}

/// What kind of call a [`TlsCall`] is.
pub mod tls_call_kind {
    /// SSL_read / SSL_write: the length is the return value.
    pub const PLAIN: u32 = 0;
    /// SSL_read_ex / SSL_write_ex: the length is stored through `len_ptr`.
    pub const EX: u32 = 1;
    /// A Go crypto/tls call on this thread: only its nested socket is learned
    /// here (`ssl` is the `*tls.Conn`); the call itself lives in `GO_TLS_ACTIVE`.
    pub const GO: u32 = 2;
}

/// Which goroutine: Go moves goroutines between threads, so a Go call's state
/// is keyed by its `g` (R14 in the register ABI), not by the thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoroutineKey {
    pub g: u64,
    pub tgid: u32,
    pub _pad: u32,
}

/// A `*tls.Conn` of one process (heap addresses repeat across Go processes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoConnKey {
    pub conn: u64,
    pub tgid: u32,
    pub _pad: u32,
}

/// A Go crypto/tls `Read`/`Write` between its entry and one of its `RET`s.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoTlsCall {
    /// The `*tls.Conn` receiver.
    pub conn: u64,
    /// The plaintext buffer (`b []byte`'s data pointer and length).
    pub buf: u64,
    pub len: u64,
    /// The entry probe's cookie: kind and struct offsets of this binary.
    pub cookie: u64,
    pub direction: u32,
    /// The socket a `Write` was emitted on at its entry, or -1.
    pub emitted_fd: i32,
}

/// Go TLS calls in progress, per goroutine. A goroutine parked in `Read` on an
/// idle keep-alive connection holds its entry, hence the size; LRU so that a
/// goroutine that never returns cannot leak one.
#[map]
pub static GO_TLS_ACTIVE: LruHashMap<GoroutineKey, GoTlsCall> =
    LruHashMap::with_max_entries(65536, 0);

/// `*tls.Conn` → socket (fd and connection id), learned at a connection's
/// first call and used first afterwards while that socket still has the
/// connection id: no struct walk per call (three user reads).
#[map]
pub static GO_CONN_FD: LruHashMap<GoConnKey, SslSocket> = LruHashMap::with_max_entries(65536, 0);

/// TLS calls in progress, per thread (see `THREAD_LAST_FD` for the layout).
#[map]
pub static TLS_ACTIVE: Array<ThreadSlot<TlsCall>> = Array::with_max_entries(TLS_ACTIVE_SLOTS, 0);

/// Slots of `TLS_ACTIVE`.
pub const TLS_ACTIVE_SLOTS: u32 = 16384;

/// The TLS call thread `id` is inside, if any.
#[inline(always)]
pub fn tls_active(id: u64) -> Option<*mut TlsCall> {
    let p = TLS_ACTIVE.get_ptr_mut((id as u32) % TLS_ACTIVE_SLOTS)?;
    // SAFETY: a pointer into an array map value, valid for this run.
    unsafe { ((*p).id == id).then_some(&raw mut (*p).value) }
}

/// Thread `id` entered `call`. Taking a slot that still holds another
/// thread's call loses that call (counted).
#[inline(always)]
pub fn tls_active_begin(id: u64, call: &TlsCall) {
    if let Some(p) = TLS_ACTIVE.get_ptr_mut((id as u32) % TLS_ACTIVE_SLOTS) {
        // SAFETY: a pointer into an array map value, valid for this run.
        unsafe {
            if (*p).id != 0 && (*p).id != id {
                super::util::count(probes_common::counter::TLS_CALL_SLOT_TAKEN, 1);
            }
            *p = ThreadSlot { id, value: *call };
        }
    }
}

/// Thread `id`'s call returned: its slot is emptied (if still its own).
#[inline(always)]
pub fn tls_active_end(id: u64) {
    if let Some(p) = TLS_ACTIVE.get_ptr_mut((id as u32) % TLS_ACTIVE_SLOTS) {
        // SAFETY: a pointer into an array map value, valid for this run.
        unsafe {
            if (*p).id == id {
                (*p).id = 0;
            }
        }
    }
}

/// An `SSL*` of one process: heap addresses repeat across processes, so the
/// pointer alone could give one process's socket to another's call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SslKey {
    pub ssl: u64,
    pub tgid: u32,
    pub _pad: u32,
}

impl SslKey {
    #[inline(always)]
    pub fn new(ssl: u64, tgid: u32) -> Self {
        Self { ssl, tgid, _pad: 0 }
    }
}

/// The socket an `SSL*` was found on, with that socket's connection id: a
/// later `SSL*` at the same address (the old one freed) on another socket
/// must not inherit it, so a use checks the id against `SOCKETS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SslSocket {
    pub fd: i32,
    pub _pad: u32,
    pub conn_id: u64,
}

/// SSL* → socket, learned once and reused for calls that make no syscall.
#[map]
pub static TLS_SSL_FD: LruHashMap<SslKey, SslSocket> = LruHashMap::with_max_entries(65536, 0);

/// A thread's run of SSL_write plaintext whose socket was not known at
/// return (custom BIO): sent to user space already, bound to a socket by the
/// thread's next write to a tracked socket (`data::sys_exit_data`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UnboundTlsWrite {
    /// The SSL* of the run (a new SSL* starts a new run).
    pub ssl: u64,
    /// Bytes in the run so far.
    pub len: u64,
}

/// Deferred SSL_write plaintext per thread (see `THREAD_LAST_FD` for the
/// layout). Fixed size: a thread that never writes to a socket again cannot
/// leak one.
#[map]
pub static TLS_UNBOUND: Array<ThreadSlot<UnboundTlsWrite>> =
    Array::with_max_entries(TLS_ACTIVE_SLOTS, 0);

/// The tracked socket each thread last read from: the custom-BIO association
/// (the application reads ciphertext, then asks the library to decrypt it).
/// Per-thread maps here are arrays direct-mapped by thread id
/// (`tid % slots`), each value naming its thread (`pid_tgid`): an array load
/// the verifier inlines, where a hash lookup cost ~100 ns on every socket
/// read of every process (and an insert and a delete per TLS call). A slot
/// holding another thread reads as empty.
#[map]
pub static THREAD_LAST_FD: Array<ThreadSlot<i32>> = Array::with_max_entries(THREAD_FD_SLOTS, 0);

/// Slots of `THREAD_LAST_FD`.
pub const THREAD_FD_SLOTS: u32 = 65536;

/// One slot of a per-thread array: the thread (`pid_tgid`, 0 when empty)
/// and its value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ThreadSlot<T> {
    pub id: u64,
    pub value: T,
}

/// Records that thread `id` last read socket `fd`; stores only on a change.
#[inline(always)]
pub fn set_thread_last_fd(id: u64, fd: i32) {
    if let Some(p) = THREAD_LAST_FD.get_ptr_mut((id as u32) % THREAD_FD_SLOTS) {
        // SAFETY: a pointer into an array map value, valid for this run; a
        // thread writes only the slot of its own tid.
        unsafe {
            if (*p).id != id || (*p).value != fd {
                *p = ThreadSlot { id, value: fd };
            }
        }
    }
}

/// The socket thread `id` last read, if its slot still names it.
#[inline(always)]
pub fn thread_last_fd(id: u64) -> Option<i32> {
    let slot = THREAD_LAST_FD.get((id as u32) % THREAD_FD_SLOTS)?;
    (slot.id == id).then_some(slot.value)
}

/// The state of one call's copy loop (see `data::copy_iov`), per CPU.
#[repr(C)]
pub struct CopyState {
    pub header: DataHeader,
    /// The iovec array, the next entry to read, and the count to stop at.
    pub iov: u64,
    pub next_iov: u64,
    pub iov_limit: u64,
    /// Current contiguous source and its bytes left.
    pub base: u64,
    pub left: u64,
    /// Bytes of the call delivered so far, and the most to deliver.
    pub done: u64,
    pub limit: u64,
}

#[map]
pub static COPY_STATE: PerCpuArray<CopyState> = PerCpuArray::with_max_entries(1, 0);
