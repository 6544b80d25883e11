//! Connection tracking for wirespan: turns the probes' per-socket byte records
//! into ordered per-direction streams, feeds them to the right protocol parser,
//! and tags what comes out with the connection it came from.
//!
//! What it does:
//! - Keeps one entry per socket, keyed by (tgid, fd) and told apart across fd
//!   reuse by the kernel's `conn_id` generation. Events of another generation
//!   are stale and dropped (counted); data for a key with no entry creates one
//!   lazily with [`Role::Unknown`], which detection then fills in.
//! - Places every record by its exact stream offset: a skip ahead is a gap
//!   (counted, and passed to the parser as `on_gap`), a repeat is an overlap
//!   (skipped, counted). There is no reorder buffer. `missing()` reports bytes
//!   that were never copied (header-only records, sendfile, truncation); at
//!   close, a direction total beyond what was seen is a lost tail.
//! - Detects the protocol from the first bytes (at most `detect_window_bytes`
//!   per direction are copied): HTTP/1, HTTP/2 with preface, or — on
//!   connections joined midway — HTTP/2 from plausible frame headers. Anything
//!   else is muted: [`TrackerSink::mute`] is called once and later bytes are
//!   only counted. An HTTP/1 connection upgraded to h2c continues as HTTP/2.
//! - Maps directions to parser sides by role: a client's egress and a server's
//!   ingress are requests. Detection's view of the traffic wins over the role
//!   from connect/accept when they disagree (counted).
//! - Bounds its footprint: `max_connections` (least recently used evicted, O(1)
//!   through an intrusive recency list), `idle_timeout_ns` (`evict_idle`, walked
//!   from the oldest), and `memory_limit_bytes` over the bytes parsers and
//!   detection hold: after every call, the connections holding the most are
//!   evicted until the total is at or under the limit (an O(log n) index). So
//!   **[`ConnectionTable::buffered_bytes`] ≤ `memory_limit_bytes` whenever a call
//!   returns**; within a call it may exceed the limit by what one parser call
//!   buffers (bounded by the parser limits).
//! - Every way a connection ends (close, process exit, eviction, replacement by a
//!   new generation, shutdown) calls the parser's `on_close`, so requests still
//!   waiting are reported with end `ConnectionClosed` instead of vanishing.
//!
//! What it does not do: I/O, clocks (the caller passes timestamps), threads,
//! reading probe records (the collector decodes them and calls the table), or
//! parsing (that is `protocol-parsers`). It never panics on any sequence of calls.
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]

mod backend;
mod detect_state;
mod events;
mod ids;
mod lru;
mod process_map;
mod session;
mod stream;
mod table;
mod types;

pub use events::{TrackerEvent, TrackerSink};

/// The hash map and set of the agent's per-connection indexes: keys are
/// sockets, addresses and ids the agent made itself or read from the
/// kernel, not input a peer can choose to collide, so a fast hash is
/// enough (SipHash cost ~2 % of the pipeline's instructions).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// See [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
pub use ids::{ConnId, MonotonicNs, StreamOffset};
pub use process_map::{OfProcess, ProcessMap};
pub use table::ConnectionTable;
pub use types::{ConnInfo, ConnKey, Direction, Endpoint, Protocol, Role, TrackerLimits};
