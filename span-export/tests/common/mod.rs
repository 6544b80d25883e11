//! Span builders, metric readers and settings shared by the export tests; the
//! OTLP receiver (gRPC and HTTP) is `test_support::otlp`.
#![allow(dead_code, reason = "shared by several test crates, each using a part")]

use span_export::{span, ExportSpan, ProcessResource, SpanData};
use std::sync::Arc;
use std::time::Duration;

pub use test_support::spans::{int_kv as i, string_kv as s};

/// Waits (bounded, 20 s) until `cond` holds, checking every 20 ms.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn resource(id: u64, service: &str, pid: i64) -> Arc<ProcessResource> {
    Arc::new(ProcessResource {
        id,
        attributes: vec![s("service.name", service), i("process.pid", pid)],
    })
}

/// A server span with distinct ids derived from `n`.
pub fn server_span(resource: &Arc<ProcessResource>, n: u64) -> ExportSpan {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&n.to_be_bytes());
    trace_id[15] = 1;
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&(n + 1).to_be_bytes());
    let start = 1_764_099_601_123_000_000 + n * 1_000;
    ExportSpan {
        resource: resource.clone(),
        attrs: Default::default(),
        span: SpanData {
            trace_id,
            span_id,
            name: format!("GET /items/{n}").into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_200_000,
            attributes: vec![
                s("http.request.method", "GET"),
                s("url.path", &format!("/items/{n}")),
                i("http.response.status_code", 200),
            ],
            ..Default::default()
        },
    }
}

pub const METRIC_NAMES: [&str; 3] = [
    "wirespan_spans_exported_total",
    "wirespan_spans_dropped_total",
    "wirespan_export_queue_spans",
];

pub fn exported(r: &self_metrics::Registry) -> i128 {
    r.sum("wirespan_spans_exported_total")
}

pub fn dropped(r: &self_metrics::Registry, reason: &str) -> i128 {
    r.value("wirespan_spans_dropped_total", &[("reason", reason)])
        .unwrap_or(0)
}

pub fn requests(r: &self_metrics::Registry, result: &str) -> i128 {
    r.value("wirespan_export_requests_total", &[("result", result)])
        .unwrap_or(0)
}

/// The invariant: every span offered is exported, dropped, or still queued.
pub fn assert_balanced(r: &self_metrics::Registry, offered: u64) {
    let exported = exported(r);
    let dropped = r.sum("wirespan_spans_dropped_total");
    let queued = r.sum("wirespan_export_queue_spans");
    assert_eq!(
        exported + dropped + queued,
        offered as i128,
        "exported {exported} + dropped {dropped} + queued {queued} != offered {offered}\n{}",
        r.render()
    );
}

/// Settings pointing at a receiver, with fast retries for tests.
pub fn settings(
    protocol: wirespan_config::OtlpProtocol,
    endpoint: &str,
) -> span_export::ExportSettings {
    let cfg = wirespan_config::ExportConfig {
        otlp: Some(wirespan_config::OtlpConfig {
            endpoint: endpoint.to_string(),
            protocol,
            timeout: Duration::from_secs(5),
            ..Default::default()
        }),
        batch_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let mut s = span_export::ExportSettings::resolve(&cfg, &|_| None).expect("settings");
    s.initial_backoff = Duration::from_millis(10);
    s.max_backoff = Duration::from_millis(50);
    s
}
