//! The reverse-DNS series in the shared self-metrics registry.

use self_metrics::{Counter, Gauge, Registry};

/// `wirespan_reverse_dns_lookups_total{result}`: one per finished lookup, plus
/// one per lookup request not started because `max_in_flight` was reached.
pub const LOOKUPS_TOTAL: &str = "wirespan_reverse_dns_lookups_total";
/// `wirespan_reverse_dns_cache_entries`: addresses cached (fresh or stale).
pub const CACHE_ENTRIES: &str = "wirespan_reverse_dns_cache_entries";
/// `wirespan_reverse_dns_cache_evictions_total{reason="capacity"}`.
pub const CACHE_EVICTIONS_TOTAL: &str = "wirespan_reverse_dns_cache_evictions_total";
/// `wirespan_reverse_dns_lookups_in_flight`: resolver calls still running,
/// including ones that already timed out (they cannot be cancelled).
pub const LOOKUPS_IN_FLIGHT: &str = "wirespan_reverse_dns_lookups_in_flight";

/// The `result` label of [`LOOKUPS_TOTAL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupResult {
    /// A valid name; cached for `positive_ttl`.
    Found,
    /// The resolver knows no name; cached negatively for `negative_ttl`.
    NotFound,
    /// No answer within `lookup_timeout`; cached negatively for `negative_ttl`
    /// (a stale name, if any, is kept that long instead).
    Timeout,
    /// The resolver failed (for example `EAI_AGAIN`); cached like a timeout.
    Failed,
    /// The answer was not a hostname; cached negatively for `negative_ttl`.
    Invalid,
    /// Not started: `max_in_flight` lookups were already running. Nothing is
    /// cached, so a later `lookup` of the address asks again.
    Dropped,
}

impl LookupResult {
    pub const ALL: [LookupResult; 6] = [
        LookupResult::Found,
        LookupResult::NotFound,
        LookupResult::Timeout,
        LookupResult::Failed,
        LookupResult::Invalid,
        LookupResult::Dropped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LookupResult::Found => "found",
            LookupResult::NotFound => "not_found",
            LookupResult::Timeout => "timeout",
            LookupResult::Failed => "failed",
            LookupResult::Invalid => "invalid",
            LookupResult::Dropped => "dropped",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Metrics {
    lookups: [Counter; 6],
    pub(crate) evictions: Counter,
    pub(crate) entries: Gauge,
    pub(crate) in_flight: Gauge,
}

impl Metrics {
    pub(crate) fn register(registry: &Registry) -> Self {
        Self {
            lookups: LookupResult::ALL.map(|r| {
                registry.counter(
                    LOOKUPS_TOTAL,
                    "Reverse DNS lookups of peer addresses, by result.",
                    &[("result", r.label())],
                )
            }),
            evictions: registry.counter(
                CACHE_EVICTIONS_TOTAL,
                "Reverse DNS cache entries evicted, by reason.",
                &[("reason", "capacity")],
            ),
            entries: registry.gauge(
                CACHE_ENTRIES,
                "Addresses in the reverse DNS cache, fresh or stale.",
                &[],
            ),
            in_flight: registry.gauge(
                LOOKUPS_IN_FLIGHT,
                "Reverse DNS resolver calls running, including timed-out ones not yet returned.",
                &[],
            ),
        }
    }

    pub(crate) fn lookup(&self, result: LookupResult) -> &Counter {
        &self.lookups[result as usize]
    }
}
