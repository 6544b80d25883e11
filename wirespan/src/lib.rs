//! The wirespan agent as a library: the run loop (`agent`), the record
//! pipeline that dispatches records to the connection tracker and span
//! meaning (`pipeline`), recording and replay, and the admin endpoint. Probe
//! loading lives in `wirespan-capture`, span meaning in `span-semantics`. `main.rs` is the command line on top; the
//! end-to-end tests in `integration/` use the recording and replay parts.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]

// Dependencies of the binary (`main.rs`) alone, which the library build sees too.
use clap as _;
use tracing_subscriber as _;

pub mod admin_server;
pub mod agent;
pub mod deferred_tls;
pub mod dump;
pub mod pipeline;
pub mod recording;
