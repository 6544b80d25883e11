//! The three `u64`s a record carries that must never be swapped for one
//! another: which connection, where in its stream, and when. Each is its own
//! type at the public boundaries (the table's calls, span meaning's), so a
//! call with two of them in the wrong order does not compile. The `.0` is
//! there for the arithmetic inside.

/// A connection's generation (the probes' `conn_id`): unique per agent run,
/// so an fd number reused after close is another connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A position in one direction of a connection's byte stream: bytes moved
/// that way since the probes first saw the socket. At close, the stream's
/// final offset is the number of bytes moved in total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamOffset(pub u64);

/// A time on the records' monotonic clock (the kernel's `CLOCK_MONOTONIC`,
/// as the probes stamp records), in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonotonicNs(pub u64);
