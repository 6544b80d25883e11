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
