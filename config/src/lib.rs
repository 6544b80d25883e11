//! wirespan's configuration: the YAML schema, loading with WIRESPAN_ environment
//! overrides, and validation whose errors name the file, the key and the reason.
//! It does not apply the configuration: each component reads its own section.
//!
//! * [`load`] reads the file (if any) and the process environment;
//!   [`load_from_str`] takes the text and the environment explicitly (tests).
//! * Environment overrides: `WIRESPAN_` + the key path in upper case with `__`
//!   between parts, e.g. `WIRESPAN_EXPORT__QUEUE_SIZE=100`,
//!   `WIRESPAN_EXPORT__OTLP__ENDPOINT=http://collector:4317`. The lists
//!   `capture.pids`, `capture.ports`, `capture.exclude_ports` and `http.routes` take
//!   comma-separated values (`WIRESPAN_CAPTURE__PORTS=80,443`; empty: an empty list).
//!   Only variables containing `__` or naming a whole section (`WIRESPAN_LOG`) are
//!   overrides; other `WIRESPAN_` variables (such as one naming the file) are ignored.
//! * Errors read `ORIGIN: KEY: REASON`, where ORIGIN is the file path or
//!   `environment WIRESPAN_...`, KEY is dotted (`export.otlp.protocol`,
//!   `capture.ports[1]`), one line per problem. Unknown keys are refused; all
//!   validation problems are reported together ([`Config::validate`]).
//! * [`default_yaml`] is the documented default file, every key at its default.
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]

mod load;
pub mod schema;
mod validate;

pub use load::{
    load, load_from_str, ConfigError, Origin, Problem, ENV_LIST_KEYS, ENV_PREFIX, ENV_SEPARATOR,
    SECTIONS,
};
pub use schema::*;
pub use validate::{
    check_endpoint, ValidationError, MAX_HEADER_BYTES, MAX_PER_CALL_CAP_BYTES, MAX_QUEUE_BYTES,
    MAX_REQUEST_BYTES, MAX_RING_BUFFER_BYTES, MIN_HEADER_BYTES, MIN_MEMORY_LIMIT_BYTES,
    MIN_QUEUE_BYTES, MIN_REQUEST_BYTES, MIN_RING_BUFFER_BYTES,
};

/// The default `wirespan.yaml`: every key at its default value, each commented.
/// Loading it gives `Config::default()`.
pub fn default_yaml() -> &'static str {
    include_str!("default.yaml")
}
