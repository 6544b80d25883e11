//! Reverse DNS names for remote peer addresses (`service.peer.name` when no
//! `service.peers` rule matches), resolved in the background through the host's
//! resolver and kept in a bounded cache, so the capture path never waits on DNS.
//! It sends no DNS queries of its own and does not confirm names forward.
//!
//! # What it does
//!
//! - [`ReverseDns::lookup`] is synchronous and never waits for the resolver. A
//!   fresh cached answer is returned at once. On a miss it starts one
//!   background lookup and returns `None`; for a stale entry it starts a
//!   refresh and returns the stale name meanwhile. **So the first span to a new
//!   peer has no name; later spans do** (once the lookup has finished).
//! - A lookup is `getnameinfo(NI_NAMEREQD)` on Tokio's blocking pool, so
//!   `/etc/hosts`, `nsswitch.conf`, `resolv.conf` (timeouts, attempts), nscd
//!   and systemd-resolved all apply. IPv4-mapped IPv6 addresses are looked up
//!   (and cached) as IPv4. Loopback and other special addresses are resolved
//!   too: which addresses to ask about is the caller's decision.
//! - Bounds: at most `max_entries` cached addresses (CLOCK eviction, counted),
//!   at most `max_in_flight` resolver calls at a time, at most one per address.
//!   A request beyond `max_in_flight` is dropped and counted (`dropped`), and
//!   nothing is queued. A call that outlives `lookup_timeout` is counted
//!   (`timeout`) and cached negatively, but `spawn_blocking` cannot be
//!   cancelled: it keeps its in-flight slot until getnameinfo returns (glibc
//!   gives up after `resolv.conf`'s `timeout × attempts` per server).
//! - Answers: a name (one trailing dot removed) that is a valid hostname is
//!   cached for `positive_ttl`; no name, an invalid name, a timeout or a
//!   failure is cached for `negative_ttl`. When the refresh of a known name
//!   times out or fails, the old name is kept for `negative_ttl` instead, so a
//!   DNS outage does not wipe names; "no name" does replace it.
//! - Counters in the self-metrics registry:
//!   `wirespan_reverse_dns_lookups_total{result="found|not_found|timeout|failed|invalid|dropped"}`,
//!   `wirespan_reverse_dns_cache_evictions_total{reason="capacity"}`, and the
//!   gauges `wirespan_reverse_dns_cache_entries` and
//!   `wirespan_reverse_dns_lookups_in_flight`.
//!
//! # What it does not do
//!
//! - No DNS packets of its own (no PTR queries, no resolver library): what
//!   the host's resolver answers is what you get, including its latency.
//! - No forward confirmation: a PTR name is whatever the owner of the reverse
//!   zone published. Treat it as a label, never as an identity.
//! - No waiting: there is no call that blocks until a name is known.
//!
//! # Configuring it in the agent
//!
//! Suggested keys (off by default, because reverse lookups send the peers'
//! addresses to the configured DNS servers and cost resolver traffic):
//!
//! ```yaml
//! service:
//!   reverse_dns:
//!     enabled: false       # name unmatched peers from PTR / /etc/hosts
//!     max_entries: 4096    # cached addresses, at least 1
//!     positive_ttl: 5m     # how long a found name is fresh
//!     negative_ttl: 1m     # how long "no name" (or a timeout) is remembered
//!     max_in_flight: 4     # concurrent resolver calls, at least 1
//!     lookup_timeout: 2s   # after this a lookup counts as timed out, > 0
//! ```
//!
//! The agent builds one [`ReverseDns`] inside its Tokio runtime (the runtime
//! must have its timer enabled, as `enable_all()` does) and calls
//! [`ReverseDns::lookup`] only after the `service.peers` rules found no name.
//! At exit a getnameinfo call may still be running on the blocking pool;
//! dropping a runtime waits for it, `Runtime::shutdown_timeout` does not.

mod cache;
mod hostname;
mod metrics;
mod resolver;
mod reverse_dns;

pub use metrics::{
    LookupResult, CACHE_ENTRIES, CACHE_EVICTIONS_TOTAL, LOOKUPS_IN_FLIGHT, LOOKUPS_TOTAL,
};
pub use resolver::{Resolve, ResolveError, SystemResolver};
pub use reverse_dns::ReverseDns;

use std::time::Duration;

/// The limits and lifetimes of a [`ReverseDns`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReverseDnsSettings {
    /// Addresses cached, fresh or stale; at least 1. Full means CLOCK eviction.
    pub max_entries: usize,
    /// How long a found name is used without asking again.
    pub positive_ttl: Duration,
    /// How long "no name", an invalid name, a timeout or a failure is
    /// remembered before the address is asked about again.
    pub negative_ttl: Duration,
    /// Resolver calls running at once (timed-out calls included); at least 1.
    pub max_in_flight: usize,
    /// How long a lookup may take before it is counted as timed out; above 0.
    pub lookup_timeout: Duration,
}

impl Default for ReverseDnsSettings {
    fn default() -> Self {
        Self {
            max_entries: 4096,
            positive_ttl: Duration::from_secs(5 * 60),
            negative_ttl: Duration::from_secs(60),
            max_in_flight: 4,
            lookup_timeout: Duration::from_secs(2),
        }
    }
}

impl ReverseDnsSettings {
    /// Checks the settings that must not be zero.
    pub fn validate(&self) -> Result<(), ReverseDnsError> {
        if self.max_entries == 0 {
            return Err(ReverseDnsError::Zero("max_entries"));
        }
        if self.max_in_flight == 0 {
            return Err(ReverseDnsError::Zero("max_in_flight"));
        }
        if self.lookup_timeout.is_zero() {
            return Err(ReverseDnsError::Zero("lookup_timeout"));
        }
        Ok(())
    }
}

/// Why a [`ReverseDns`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReverseDnsError {
    /// A setting that must be positive is zero.
    #[error("reverse_dns.{0} must be greater than zero")]
    Zero(&'static str),
    /// Built outside a Tokio runtime: lookups run on a runtime's blocking pool.
    #[error("reverse DNS must be set up inside a Tokio runtime")]
    NoRuntime,
}
