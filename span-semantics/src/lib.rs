//! What a captured request/response pair means, as an OpenTelemetry span:
//! ids and trace context, the semantic conventions of each protocol (HTTP,
//! gRPC) with their error verdicts, same-host links and in-process causality,
//! routes, redaction, and who the process and its peer are (process table,
//! cgroups and Kubernetes identities, peer rules).
//!
//! Pure logic: no eBPF, no async runtime, no I/O beyond reading `/proc` and
//! the cgroup tree for identities. It does not capture, parse bytes or export;
//! it turns what the parsers report into `span_export` spans. New protocol
//! conventions, identity sources and link rules land here, tested by unit
//! tests and by the replay fixtures in `wirespan/tests/`.
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]

pub mod causality;
pub mod cgroups;
pub mod host;
pub mod identity;
pub mod links;
pub mod local_peers;
pub mod peer_naming;
pub mod peers;
pub mod process_table;
pub mod redact;
pub mod routes;
pub mod sampling;
pub mod span_builder;
pub mod span_composer;
pub mod tls_twin;
