//! HTTP/2 (RFC 9113) parsing for one connection: frames, HPACK, and pairing
//! of streams into [`HttpExchange`](crate::HttpExchange)s.
//!
//! Entry point: [`Http2Session`]. The lower layers ([`frame`], [`hpack`]) are
//! public so tests, benches and tools can build and inspect fixtures.

pub mod frame;
pub mod grpc_wire;
pub mod hpack;
mod hunt;
mod session;
mod streams;

pub use session::{
    Fatal as Http2Error, HpackRefs, Http2Limits, Http2Session, HPACK_ACCOUNTING_STEP,
};
