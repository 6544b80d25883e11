//! End-to-end tests of the wirespan agent: real eBPF probes, real programs
//! (curl, Python, nginx, rotel), a real in-process OTLP receiver.
//!
//! # What the tests need
//!
//! * **root** (loading eBPF programs). Every test starts with
//!   [`root::require_root`], which FAILS (never skips) when not root: CI runs as root.
//! * **the agent binary built**: `cargo build -p wirespan`. The tests run
//!   `$WIRESPAN_BIN`, else `<workspace>/target/debug/wirespan` ([`binary`]).
//! * **Debian packages**: `python3` (3.11), `curl`, `nginx-light`.
//! * **pip**: `pip install rotel` (for the real-collector test, `tests/rotel.rs`)
//!   and `grpcio` in the interpreter the tests run (`tests/midway.rs`);
//!   `scripts/setup.sh` installs both. Also `node` (`tests/tls.rs`, `tests/midway.rs`).
//! * **Go**: Debian's `golang-1.19-go` ([`go`] builds the programs in `integration/go/`).
//!
//! # How to run
//!
//! ```text
//! cargo build -p wirespan && cargo test -p integration
//! ```
//!
//! Tests that load the probes run one at a time: each takes [`serial::serial`]
//! first (a process-wide mutex plus an `flock` on a file in the temp directory,
//! so separate test binaries never overlap either). Plain `cargo test` is
//! therefore fine; `--test-threads=1` is not needed.
//!
//! Assertions never compare timings; waits are bounded and fail with the
//! agent's stderr and its `/metrics`.
//!
//! # Layout
//!
//! One concept per module: [`binary`] finds the agent, [`agent`] starts and
//! stops it, [`metrics`] reads `/metrics`, [`otlp_receiver`] is the in-process
//! OTLP receiver, [`spans`] flattens what it received, [`capture`] rebuilds
//! streams from a recording, [`servers`] starts real servers, [`python`] runs
//! the helper scripts in `integration/scripts/`, [`net`] has port helpers,
//! [`rotel`] runs the real collector, [`go`] builds the Go test programs,
//! [`c_program`] the stripped C programs in `integration/c/`.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]

pub mod agent;
pub mod binary;
pub mod c_program;
pub mod capture;
pub mod curl;
pub mod go;
pub mod http_expect;
pub mod metrics;
pub mod net;
pub mod otlp_receiver;
pub mod process;
pub mod python;
pub mod root;
pub mod rotel;
pub mod serial;
pub mod servers;
pub mod span_run;
pub mod spans;
pub mod stdin_client;
pub mod transcript;
pub mod wait;

/// Everything a test file usually needs.
pub mod prelude {
    pub use crate::agent::{Agent, AgentExit, AgentOptions};
    pub use crate::capture::Capture;
    pub use crate::curl::{curl, CurlRun, Transfer};
    pub use crate::http_expect::{Exchange, Proc};
    pub use crate::metrics::Metrics;
    pub use crate::net::{free_port, http_get, wait_port};
    pub use crate::otlp_receiver::{OtlpProtocol, Receiver};
    pub use crate::process::Guarded;
    pub use crate::python::{python, script};
    pub use crate::root::require_root;
    pub use crate::serial::serial;
    pub use crate::span_run::SpanRun;
    pub use crate::spans::{assert_spans, ExpectedSpan};
    pub use crate::spans::{AttrValue, FlatSpan};
    pub use crate::wait::wait_until;
}
