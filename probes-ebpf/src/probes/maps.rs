//! Every map the programs use. Sizes marked "set by the loader" are overridden
//! from the configuration before load.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use probes_common::{counter, ProbeSettings, SocketKey, SocketState, MAX_CHUNK};

use probes_common::DataHeader;

/// All records to user space. Size set by the loader.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Sockets being captured. Size set by the loader (capture.max_sockets).
#[map]
pub static SOCKETS: HashMap<SocketKey, SocketState> = HashMap::with_max_entries(65536, 0);

/// Arguments of a read/write-family call between its enter and exit, per thread.
/// LRU so that a thread killed inside a syscall cannot leak an entry.
#[map]
pub static INFLIGHT: LruHashMap<u64, InflightCall> = LruHashMap::with_max_entries(16384, 0);

/// Arguments of connect/accept between enter and exit, per thread.
#[map]
pub static CONNECTING: LruHashMap<u64, ConnectCall> = LruHashMap::with_max_entries(16384, 0);

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

/// Per-CPU staging area for a data record: the verifier allows a variable-size
/// ring buffer write only from memory like this, and the stack is 512 bytes.
#[map]
pub static DATA_SCRATCH: PerCpuArray<DataScratch> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
pub struct DataScratch {
    pub header: DataHeader,
    pub payload: [u8; MAX_CHUNK],
}

/// What the enter hook of a read/write-family call saves for its exit hook.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct InflightCall {
    /// Buffer, iovec array, or msghdr, depending on `shape`.
    pub ptr: u64,
    /// iovec count for readv/writev.
    pub count: u64,
    pub fd: i32,
    pub source: u32,
    pub direction: u32,
    pub shape: u32,
}

/// The buffer argument's shape.
pub mod shape {
    pub const BUFFER: u32 = 0;
    pub const IOVEC: u32 = 1;
    pub const MSGHDR: u32 = 2;
    /// No user buffer to copy (sendfile): only the length is accounted.
    pub const NONE: u32 = 3;
}

/// What connect/accept enter saves for exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConnectCall {
    pub fd: i32,
    pub role: u32,
}
