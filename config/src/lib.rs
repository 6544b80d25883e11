//! wirespan's configuration: the YAML schema, loading with WIRESPAN_ environment
//! overrides, and validation whose errors name the file, the key and the reason.
//! It does not apply the configuration: each component reads its own section.

pub mod schema;
pub use schema::*;
