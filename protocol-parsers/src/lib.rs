//! Incremental protocol parsers for wirespan: bytes of each direction of one
//! connection go in, request/response pairs ([`HttpExchange`]) and counted
//! issues ([`ParseIssue`]) come out through an [`ExchangeSink`].
//!
//! No I/O, no clocks, no async: the caller supplies timestamps. Bodies are
//! skipped and measured, never buffered; heads are buffered up to a limit.
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]

pub mod detect;
pub mod exchange;
pub mod http1;
pub mod http2;
mod request_head;

pub use exchange::*;

/// The steps, rounded down, in which request heads waiting for their
/// response count toward a session's held bytes (HTTP/1 pipelining, HTTP/2
/// open streams): the one or few small heads of ordinary traffic count
/// nothing, so the connection table's memory index is not touched per
/// request, while a connection piling up heads (up to `max_pending_requests`
/// or 256 streams of up to 64 KiB of fields) counts all but < 4 KiB of them.
pub const HELD_HEADS_STEP: usize = 4096;
