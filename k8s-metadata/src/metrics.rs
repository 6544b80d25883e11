//! The counters of one watched resource, registered once at start.

use crate::error::RESTART_REASONS;
use crate::records::Resource;
use self_metrics::{Counter, Gauge, Registry};

#[derive(Clone, Debug)]
pub(crate) struct ResourceMetrics {
    restarts: Vec<(&'static str, Counter)>,
    pub lists: Counter,
    pub objects: Gauge,
    pub refused: Counter,
    pub events_skipped: Counter,
}

impl ResourceMetrics {
    pub(crate) fn new(registry: &Registry, resource: Resource) -> Self {
        let r = resource.name();
        let restarts = RESTART_REASONS
            .iter()
            .map(|&reason| {
                let c = registry.counter(
                    "wirespan_k8s_watch_restarts_total",
                    "Kubernetes list or watch requests that ended and were made again, by reason \
                     (end_of_stream: the server's normal watch timeout; expired: 410 Gone, which forces a new list; \
                     the others are failures, retried with backoff).",
                    &[("resource", r), ("reason", reason)],
                );
                (reason, c)
            })
            .collect();
        Self {
            restarts,
            lists: registry.counter(
                "wirespan_k8s_lists_total",
                "Complete lists of a Kubernetes resource (the first, and one after each 410 Gone or failed watch resume).",
                &[("resource", r)],
            ),
            objects: registry.gauge(
                "wirespan_k8s_objects",
                "Kubernetes objects held in memory for lookups.",
                &[("resource", r)],
            ),
            refused: registry.counter(
                "wirespan_k8s_objects_refused_total",
                "Kubernetes objects not stored because max_objects was reached (counted at each list or event that brought one).",
                &[("resource", r)],
            ),
            events_skipped: registry.counter(
                "wirespan_k8s_events_skipped_total",
                "Kubernetes watch events skipped because their object or type could not be decoded.",
                &[("resource", r), ("reason", "decode")],
            ),
        }
    }

    pub(crate) fn restart(&self, reason: &str) {
        if let Some((_, c)) = self.restarts.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
    }
}
