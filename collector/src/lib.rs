//! The wirespan agent as a library: probe loading, the record pipeline, span
//! building and the admin endpoint. `main.rs` is the command line on top; the
//! end-to-end tests in `integration/` use the recording and replay parts.

pub mod admin_server;
pub mod agent;
pub mod causality;
pub mod cgroups;
pub mod dump;
pub mod links;
pub mod peers;
pub mod pipeline;
pub mod probes;
pub mod process_table;
pub mod recording;
pub mod records;
pub mod redact;
pub mod routes;
pub mod seed;
pub mod span_builder;
pub mod tls_targets;
