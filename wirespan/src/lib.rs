//! The wirespan agent as a library: probe loading, the record pipeline, span
//! building and the admin endpoint. `main.rs` is the command line on top; the
//! end-to-end tests in `integration/` use the recording and replay parts.

pub mod admin_server;
pub mod agent;
pub mod dump;
pub mod pipeline;
pub mod probes;
pub mod recording;
pub mod seed;
pub mod tls_targets;
