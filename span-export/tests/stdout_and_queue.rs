//! The stdout line format, stdout-only export, queue bounds and shutdown.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use common::*;
use span_export::{
    format_span_line, span, start_with_line_writer, status, ExportSettings, PendingSpan, Status,
};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wirespan_config::ExportConfig;

/// A `Write` whose bytes the test can read back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn stdout_settings(queue_size: usize) -> ExportSettings {
    let cfg = ExportConfig {
        queue_size,
        batch_timeout: Duration::from_secs(3600),
        ..Default::default()
    };
    ExportSettings::resolve(&cfg, &|_| None).unwrap()
}

#[test]
fn server_span_line() {
    let res = resource(1, "nginx", 4242);
    let mut s = server_span(&res, 0);
    s.span.name = "GET /index.html".into();
    s.span.start_time_unix_nano = 1_795_635_601_123_456_789; // 2026-11-25T19:40:01.123Z
    s.span.end_time_unix_nano = s.span.start_time_unix_nano + 1_234_567;
    s.span.attributes = vec![
        common::s("http.request.method", "GET"),
        common::s("url.path", "/index.html"),
        i("http.response.status_code", 200),
        common::s("service.peer.name", "curl"),
        common::s("client.address", "10.0.0.7"),
        i("client.port", 51234),
    ];
    s.span.trace_id = std::array::from_fn(|i| i as u8 + 1);
    s.span.span_id = std::array::from_fn(|i| 0xa0 + i as u8);
    assert_eq!(
        format_span_line(&s),
        "2026-11-25T19:40:01.123Z SERVER nginx GET /index.html 200 1.2ms peer=curl \
         client=10.0.0.7:51234 trace=0102030405060708090a0b0c0d0e0f10 span=a0a1a2a3a4a5a6a7"
    );
}

#[test]
fn client_error_span_line() {
    let res = Arc::new(span_export::ProcessResource {
        id: 9,
        attributes: vec![],
    });
    let s = span_export::ExportSpan {
        resource: res,
        attrs: Default::default(),
        span: span_export::SpanData {
            trace_id: [0xff; 16],
            span_id: [0x11; 8],
            parent_span_id: Some([0x22; 8]),
            name: "POST /api/{id}\nx".into(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: 0,
            end_time_unix_nano: 2_500_000_000,
            attributes: vec![
                i("http.response.status_code", 503),
                common::s("url.path", "/api/7"),
                common::s("url.query", "q=1"),
                common::s("server.address", "::1"),
                i("server.port", 8080),
                common::s("error.type", "503"),
            ],
            status: Some(Status {
                code: status::StatusCode::Error as i32,
                message: String::new(),
            }),
            ..Default::default()
        },
    };
    assert_eq!(
        format_span_line(&s),
        "1970-01-01T00:00:00.000Z CLIENT unknown_service POST /api/{id}\\x0ax 503 ERROR 2.50s \
         server=[::1]:8080 path=/api/7?q=1 error=503 trace=ffffffffffffffffffffffffffffffff \
         span=1111111111111111 parent=2222222222222222"
    );
}

#[tokio::test]
async fn stdout_only_prints_every_span() {
    let buf = Buffer::default();
    let metrics = self_metrics::Registry::new();
    let (queue, handle) =
        start_with_line_writer(stdout_settings(100), &metrics, Box::new(buf.clone()));
    let res = resource(1, "svc", 1);
    let spans: Vec<_> = (0..5).map(|n| server_span(&res, n)).collect();
    for s in &spans {
        assert!(queue.try_send(s.clone()));
    }
    let report = handle.shutdown(Duration::from_secs(5)).await;
    let want: String = spans.iter().map(|s| format_span_line(s) + "\n").collect();
    assert_eq!(buf.text(), want);
    assert_eq!((report.exported, report.dropped), (5, 0));
    assert_balanced(&metrics, 5);
}

#[tokio::test]
async fn batch_timeout_sends_a_partial_batch() {
    let buf = Buffer::default();
    let metrics = self_metrics::Registry::new();
    let mut s = stdout_settings(100);
    s.batch_timeout = Duration::from_millis(20);
    let (queue, handle) = start_with_line_writer(s, &metrics, Box::new(buf.clone()));
    let res = resource(1, "svc", 1);
    assert!(queue.try_send(server_span(&res, 1)));
    wait_for("timer flush", || exported(&metrics) == 1).await;
    assert_eq!(buf.text().lines().count(), 1);
    handle.shutdown(Duration::from_secs(5)).await;
    assert_balanced(&metrics, 1);
}

// On the current-thread test runtime the exporter task cannot run between
// these try_sends, so the queue bound is hit exactly.
#[tokio::test]
async fn full_queue_drops_and_counts() {
    let buf = Buffer::default();
    let metrics = self_metrics::Registry::new();
    let (queue, handle) =
        start_with_line_writer(stdout_settings(4), &metrics, Box::new(buf.clone()));
    let res = resource(1, "svc", 1);
    let accepted: Vec<bool> = (0..10)
        .map(|n| queue.clone().try_send(server_span(&res, n)))
        .collect();
    assert_eq!(
        accepted,
        [true, true, true, true, false, false, false, false, false, false]
    );
    assert_eq!(dropped(&metrics, "queue_full"), 6);
    assert_eq!(metrics.sum("wirespan_export_queue_spans"), 4);
    assert_balanced(&metrics, 10);

    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (report.exported, report.dropped, report.dropped_at_shutdown),
        (4, 6, 0)
    );
    assert_eq!(buf.text().lines().count(), 4);
    assert_eq!(metrics.sum("wirespan_export_queue_spans"), 0);
    assert_balanced(&metrics, 10);
}

// Spans printed to stdout wait as built; each counts against
// `max_queue_bytes` as its protobuf size plus its queue slot, until its batch
// is printed. Current-thread runtime: the exporter runs only when awaited.
#[tokio::test]
async fn full_queue_bytes_drop_and_count_until_a_batch_gives_them_back() {
    let res = resource(1, "svc", 1);
    let held = |n| server_span(&res, n).encoded_len() + std::mem::size_of::<PendingSpan>();
    // Room for spans 0..3 and not for span 3 (ids of equal length: equal sizes).
    let bound = held(0) + held(1) + held(2);
    assert_eq!(held(3), held(0));
    let buf = Buffer::default();
    let metrics = self_metrics::Registry::new();
    let mut settings = stdout_settings(100);
    settings.max_queue_bytes = bound;
    settings.max_batch_size = 3;
    let (queue, handle) = start_with_line_writer(settings, &metrics, Box::new(buf.clone()));
    let accepted: Vec<bool> = (0..5)
        .map(|n| queue.try_send(server_span(&res, n)))
        .collect();
    assert_eq!(accepted, [true, true, true, false, false]);
    assert_eq!(dropped(&metrics, "queue_bytes_full"), 2);
    assert_eq!(dropped(&metrics, "queue_full"), 0);
    assert_eq!(metrics.sum("wirespan_export_queue_bytes"), bound as i128);
    assert_balanced(&metrics, 5);

    // The full batch is printed, and its bytes are free again.
    wait_for("the batch printed", || buf.text().lines().count() == 3).await;
    assert_eq!(metrics.sum("wirespan_export_queue_bytes"), 0);
    assert!(queue.try_send(server_span(&res, 5)));
    assert_eq!(metrics.sum("wirespan_export_queue_bytes"), held(5) as i128);

    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.exported, report.dropped), (4, 2));
    assert_eq!(metrics.sum("wirespan_export_queue_bytes"), 0);
    assert_balanced(&metrics, 6);
}

#[tokio::test]
async fn metrics_are_registered_with_prometheus_names() {
    let metrics = self_metrics::Registry::new();
    let (_queue, handle) =
        start_with_line_writer(stdout_settings(4), &metrics, Box::new(Buffer::default()));
    let text = metrics.render();
    for reason in [
        "queue_full",
        "queue_bytes_full",
        "export_failed",
        "retry_exhausted",
        "rejected_by_receiver",
        "shutdown",
    ] {
        assert!(
            text.contains(&format!(
                "wirespan_spans_dropped_total{{reason=\"{reason}\"}} 0"
            )),
            "{text}"
        );
    }
    for result in ["ok", "retryable_error", "error"] {
        assert!(text.contains(&format!(
            "wirespan_export_requests_total{{result=\"{result}\"}} 0"
        )));
    }
    assert!(text.contains("# TYPE wirespan_spans_exported_total counter"));
    assert!(text.contains("# TYPE wirespan_export_queue_spans gauge"));
    assert!(text.contains("# TYPE wirespan_export_queue_bytes gauge"));
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn dropping_every_queue_flushes_and_stops() {
    let buf = Buffer::default();
    let metrics = self_metrics::Registry::new();
    let (queue, handle) =
        start_with_line_writer(stdout_settings(100), &metrics, Box::new(buf.clone()));
    let res = resource(1, "svc", 1);
    assert!(queue.try_send(server_span(&res, 1)));
    drop(queue);
    wait_for("flush after the last queue is gone", || {
        exported(&metrics) == 1
    })
    .await;
    let report = handle.shutdown(Duration::from_secs(1)).await;
    assert!(report.clean);
    assert_balanced(&metrics, 1);
}
