//! The capture side of wirespan: loading and attaching the embedded eBPF
//! programs (built by `build.rs` from `probes-ebpf`), the checks that turn a
//! missing privilege or kernel feature into one sentence, finding TLS
//! libraries, Go executables and stripped TLS code (located by `tls-locate`
//! on a background thread, then checked at run time) to hook, seeding the connections open before
//! start, the kernel maps user space writes, and the probes' counters as
//! metrics. The only crate that depends on aya.
//!
//! It does not parse payloads or build spans: records leave through
//! [`probes::EventRing`] as bytes, decoded by `probes_common::records`.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]

pub mod clock;
pub mod drain_pace;
pub mod kernel_counters;
pub mod kernel_maps;
pub mod probes;
pub mod seed;
pub mod tls_integrity;
pub mod tls_locator;
pub mod tls_targets;
