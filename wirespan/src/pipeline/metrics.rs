//! The pipeline's counters: records, bytes and spans by kind, and each family
//! of things it counts by a label (tracker events, parser issues, the agent's
//! own traffic, unusable records), registered once.

use conn_tracker::TrackerEvent;
use self_metrics::{Counter, Gauge, Registry};
use std::collections::HashMap;

/// Counters the pipeline keeps, registered once.
pub(super) struct PipelineMetrics {
    registry: Registry,
    pub(super) records: [Counter; 8],
    pub(super) bytes: [Counter; 2],
    pub(super) spans_built: [Counter; 2],
    pub(super) spans_not_queued: Counter,
    pub(super) sampled_out: Counter,
    pub(super) connections: Gauge,
    pub(super) processes: Gauge,
    by_label: HashMap<(Family, &'static str), Counter>,
}

impl PipelineMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let rec = |k: &str| {
            registry.counter(
                "wirespan_records_total",
                "Probe records received, by kind.",
                &[("kind", k)],
            )
        };
        let bytes = |d: &str| {
            registry.counter(
                "wirespan_captured_bytes_total",
                "Socket payload bytes received from the probes, by direction.",
                &[("direction", d)],
            )
        };
        let built = |k: &str| {
            registry.counter(
                "wirespan_spans_built_total",
                "Spans built from request/response pairs, by span kind.",
                &[("kind", k)],
            )
        };
        let m = Self {
            registry: registry.clone(),
            records: [
                rec("data"),
                rec("conn_open"),
                rec("conn_close"),
                rec("proc_exec"),
                rec("proc_exit"),
                rec("proc_map"),
                rec("tls_sample"),
                rec("tls_bind"),
            ],
            bytes: [bytes("egress"), bytes("ingress")],
            spans_built: [built("server"), built("client")],
            sampled_out: registry.counter(
                "wirespan_spans_sampled_out_total",
                "Spans built but left out by sampling (export.sample_ratio or the caller's traceparent).",
                &[],
            ),
            spans_not_queued: registry.counter(
                "wirespan_pipeline_spans_not_queued_total",
                "Spans the export queue refused (also counted as dropped by the exporter).",
                &[],
            ),
            connections: registry.gauge(
                "wirespan_connections",
                "Connections tracked in user space.",
                &[],
            ),
            processes: registry.gauge(
                "wirespan_processes",
                "Processes with a known identity.",
                &[],
            ),
            by_label: HashMap::new(),
        };
        // Register every reason up front so a scrape shows zeros, not absences.
        for label in TrackerEvent::LABELS {
            let _ = m.tracker_counter(label);
        }
        m
    }

    fn tracker_counter(&self, label: &str) -> Counter {
        let (name, help) = if label.ends_with("_bytes") || label == "closed_with_missing_tail" {
            (
                "wirespan_stream_bytes_not_parsed_total",
                "Stream bytes not parsed, by reason (lost, duplicated, of an unparsed protocol, or \
                 body the probes skipped on purpose: skipped_body_bytes).",
            )
        } else {
            (
                "wirespan_connection_events_total",
                "Connection tracker events, by reason (evictions, stale generations, upgrades).",
            )
        };
        self.registry.counter(name, help, &[("reason", label)])
    }

    pub(super) fn count(&mut self, family: Family, label: &'static str, n: u64) {
        if let Some(c) = self.by_label.get(&(family, label)) {
            c.add(n);
            return;
        }
        let c = match family.series() {
            Some((name, help, key)) => self.registry.counter(name, help, &[(key, label)]),
            None => self.tracker_counter(label),
        };
        c.add(n);
        self.by_label.insert((family, label), c);
    }
}

/// Each family of things the pipeline counts by a label: its metric, help
/// text and label key, in one place. A family is a value of this type, so a
/// misspelt one cannot compile (it used to be a string, and an unknown one
/// fell silently into the record errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Family {
    /// Connection tracker events (`TrackerEvent::label`): two metrics, by label.
    Tracker,
    HpackMidstream,
    OwnTraffic,
    OwnConnections,
    /// Parser issues (`ParseIssue::label`).
    Parse,
    /// Records that could not be used.
    Record,
}

impl Family {
    /// (metric name, help, label key); `None` for `Tracker`, whose metric
    /// depends on the label.
    fn series(self) -> Option<(&'static str, &'static str, &'static str)> {
        Some(match self {
            Family::Tracker => return None,
            Family::HpackMidstream => (
                "wirespan_hpack_midstream_references_total",
                "References to HPACK dynamic-table entries on HTTP/2 connections joined midway, by result: resolved (entries inserted after the join) or unknown (from before it; those fields are left out of spans).",
                "result",
            ),
            Family::OwnTraffic => (
                "wirespan_own_traffic_bytes_total",
                "Bytes of other processes' connections to and from the agent's own sockets (metrics scrapes, probes, exports) that reached user space and were dropped without spans, by direction (to_agent, from_agent).",
                "direction",
            ),
            Family::OwnConnections => (
                "wirespan_own_traffic_connections_total",
                "Other processes' connections to and from the agent's own sockets, ignored (no spans, muted in the kernel), by how they were recognised: listen_address (at open) or agent_socket (when the agent's own end was seen).",
                "via",
            ),
            Family::Parse => (
                "wirespan_parse_issues_total",
                "Protocol parser issues, by reason (malformed, oversized, unpaired, resynchronised).",
                "reason",
            ),
            Family::Record => (
                "wirespan_record_errors_total",
                "Probe records that could not be used, by reason.",
                "reason",
            ),
        })
    }
}
