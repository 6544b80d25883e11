//! Test support for wirespan: the helpers several crates' tests and benches
//! share, kept here once instead of copied into each. **Dev-only**: never a
//! normal dependency of a shipped crate (`publish = false`); only tests,
//! benches and the root-only `integration` harness use it.
//!
//! What it has, by module (turn on the feature a module needs):
//!
//! * [`alloc`] (always): [`CountingAllocator`], a global allocator counting
//!   the live bytes requested, for heap-per-connection measurements.
//! * [`http2`] and [`hpack`] (feature `http2`): HTTP/2 frames built on
//!   `protocol-parsers`' own frame header encoder and [`FrameType`], and HPACK
//!   representations built by hand (RFC 7541), so fixtures never depend on the
//!   decoder under test.
//! * [`otlp`] (feature `otlp`): the one in-process OTLP trace receiver, gRPC or
//!   HTTP/protobuf, recording every request (or only counting spans) and able
//!   to answer with scripted failures.
//! * [`spans`] (feature `spans`): building and reading OTLP attributes, and
//!   reading an `ExportSpan`'s, by borrowing, so nothing is leaked to get a
//!   `&'static` value.
//!
//! It does not contain fixtures specific to one crate (recordings, span
//! templates, metric names): those stay beside their tests.
//!
//! [`FrameType`]: protocol_parsers::http2::frame::FrameType

pub mod alloc;
#[cfg(feature = "http2")]
pub mod hpack;
#[cfg(feature = "http2")]
pub mod http2;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "spans")]
pub mod spans;

pub use alloc::CountingAllocator;
