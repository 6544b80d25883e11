//! What span meaning takes from the host it runs on: the host's name
//! (`host.name`, `service.instance.id`), the agent's own
//! `OTEL_RESOURCE_ATTRIBUTES`, the seed of the trace and span ids, and whether
//! `/proc` may name processes the records did not introduce.
//!
//! Everything the pipeline would otherwise read behind its caller's back is
//! gathered here, once: production passes [`HostFacts::of_this_host`], tests
//! and benches [`HostFacts::hermetic`], so their spans do not depend on the
//! machine, its environment or chance.

use crate::process_table::parse_resource_attributes;

/// See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// `host.name` of every resource.
    pub host_name: String,
    /// Added to every resource (the agent's own `OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: Vec<(String, String)>,
    /// Seed of the trace and span ids.
    pub id_seed: u64,
    /// Name a process without an exec record from `/proc/<pid>` (live capture
    /// only: a recording's pids belong to another host or time).
    pub read_proc: bool,
}

impl HostFacts {
    /// The real host: its name from `/proc/sys/kernel/hostname`, the
    /// `OTEL_RESOURCE_ATTRIBUTES` of this process's environment, a seed from
    /// the kernel's entropy, and `/proc` read.
    pub fn of_this_host() -> Self {
        Self {
            host_name: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "localhost".to_string()),
            resource_attributes: std::env::var("OTEL_RESOURCE_ATTRIBUTES")
                .map(|v| parse_resource_attributes(&v))
                .unwrap_or_default(),
            id_seed: entropy_seed(),
            read_proc: true,
        }
    }

    /// Nothing read from the machine: host `test-host`, no resource
    /// attributes, id seed 3, `/proc` not read.
    pub fn hermetic() -> Self {
        Self {
            host_name: "test-host".to_string(),
            resource_attributes: Vec::new(),
            id_seed: 3,
            read_proc: false,
        }
    }
}

/// A seed from `/dev/urandom`, else from the clock.
fn entropy_seed() -> u64 {
    let mut seed = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
        .is_ok();
    let state = u64::from_ne_bytes(seed);
    if ok && state != 0 {
        return state;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
        | 1
}
