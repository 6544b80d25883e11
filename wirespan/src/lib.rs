//! The wirespan agent as a library: the run loop (`agent`), the record
//! pipeline that dispatches records to the connection tracker and span
//! meaning (`pipeline`), recording and replay, and the admin endpoint. Probe
//! loading lives in `wirespan-capture`, span meaning in `span-semantics`. `main.rs` is the command line on top; the
//! end-to-end tests in `integration/` use the recording and replay parts.

pub mod admin_server;
pub mod agent;
pub mod deferred_tls;
pub mod dump;
pub mod pipeline;
pub mod recording;
