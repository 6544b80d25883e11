//! Several export requests in flight (`export.max_concurrent_exports`): the
//! bound holds, requests really overlap, every span is still accounted for
//! when the receiver fails, and shutdown still flushes within its deadline.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use common::*;
use span_export::{encode_request, encode_request_bytes, start, ExportSettings};
use std::time::Duration;
use test_support::otlp::{Receiver, Reply};
use wirespan_config::OtlpProtocol;

const GRPC: OtlpProtocol = OtlpProtocol::Grpc;
const HTTP: OtlpProtocol = OtlpProtocol::HttpProtobuf;

/// Settings for `rx`, one span per request, `concurrent` requests at once.
fn one_span_batches(protocol: OtlpProtocol, rx: &Receiver, concurrent: usize) -> ExportSettings {
    let mut s = settings(protocol, &rx.endpoint());
    s.max_batch_size = 1;
    s.max_concurrent_exports = concurrent;
    s
}

/// With the receiver holding every request, exactly `concurrent` requests
/// arrive before any is answered, and no more; once it answers, all spans go.
async fn requests_overlap_up_to_the_bound(protocol: OtlpProtocol, concurrent: usize) {
    let rx = Receiver::start(protocol).await;
    rx.inbox.gate().close();
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(one_span_batches(protocol, &rx, concurrent), &metrics);
    let nginx = resource(1, "nginx", 100);
    let offered = 3 * concurrent as u64 + 2;
    for n in 0..offered {
        assert!(queue.try_send(server_span(&nginx, n)));
    }
    wait_for("requests held at the gate", || {
        rx.inbox.gate().inside() == concurrent as u64
    })
    .await;
    // The exporter now waits for an answer before it starts another request:
    // the spans not yet sent are still queued.
    assert_eq!(rx.inbox.span_count(), 0);
    assert_balanced(&metrics, offered);
    rx.inbox.gate().open();
    wait_for("every span", || rx.inbox.span_count() == offered).await;
    assert_eq!(
        rx.inbox.gate().most_inside(),
        concurrent as u64,
        "never more requests at once than export.max_concurrent_exports"
    );
    assert_eq!(
        rx.inbox.attempts(),
        offered,
        "one request per span, none retried"
    );
    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert!(report.clean);
    assert_eq!((report.exported, report.dropped), (offered, 0));
    assert_balanced(&metrics, offered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requests_overlap_up_to_the_bound() {
    requests_overlap_up_to_the_bound(GRPC, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_overlap_up_to_the_bound() {
    requests_overlap_up_to_the_bound(HTTP, 3).await;
}

#[tokio::test]
async fn one_at_a_time_when_the_bound_is_one() {
    requests_overlap_up_to_the_bound(GRPC, 1).await;
    requests_overlap_up_to_the_bound(HTTP, 1).await;
}

/// A receiver failing in every way, retried concurrently, with a queue small
/// enough to overflow: each span offered ends exported or dropped (none left
/// queued after shutdown), and each failure is counted under its reason.
async fn books_balance_under_a_failing_receiver(protocol: OtlpProtocol) {
    let rx = Receiver::start(protocol).await;
    let (retryable, fatal) = match protocol {
        OtlpProtocol::Grpc => (
            Reply::Grpc {
                code: tonic::Code::Unavailable,
                retry_after: None,
            },
            Reply::Grpc {
                code: tonic::Code::InvalidArgument,
                retry_after: None,
            },
        ),
        OtlpProtocol::HttpProtobuf => (
            Reply::Http {
                status: 503,
                retry_after: None,
            },
            Reply::Http {
                status: 400,
                retry_after: None,
            },
        ),
    };
    let mut script = Vec::new();
    for k in 0..60 {
        script.push(match k % 5 {
            0 => fatal.clone(),
            1 => Reply::Partial {
                rejected: 1,
                message: "one bad span".into(),
            },
            _ => retryable.clone(),
        });
    }
    rx.inbox.script(script);

    let mut s = settings(protocol, &rx.endpoint());
    s.queue_size = 40;
    s.max_batch_size = 4;
    s.max_concurrent_exports = 4;
    s.initial_backoff = Duration::from_millis(1);
    s.max_backoff = Duration::from_millis(5);
    // Short enough that some batches run out of retries.
    s.max_retry_time = Duration::from_millis(20);
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(s, &metrics);
    let nginx = resource(1, "nginx", 100);
    // Bursts of 16 spans (some may overflow the queue: counted too) until the receiver has given every scripted reply.
    let mut offered = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while rx.inbox.attempts() < 60 {
        assert!(tokio::time::Instant::now() < deadline, "script not used up");
        for _ in 0..16 {
            queue.try_send(server_span(&nginx, offered));
            offered += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let report = handle.shutdown(Duration::from_secs(10)).await;
    assert!(report.clean);
    assert_eq!(report.exported + report.dropped, offered);
    assert_eq!(
        metrics.sum("wirespan_export_queue_spans"),
        0,
        "{}",
        metrics.render()
    );
    assert_balanced(&metrics, offered);
    // Each of the 12 partial replies rejected one span of an accepted request.
    assert_eq!(dropped(&metrics, "rejected_by_receiver"), 12);
    assert_eq!(exported(&metrics), rx.inbox.span_count() as i128 - 12);
    assert!(
        dropped(&metrics, "export_failed") > 0,
        "{}",
        metrics.render()
    );
    assert!(requests(&metrics, "retryable_error") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_books_balance_under_a_failing_receiver() {
    books_balance_under_a_failing_receiver(GRPC).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_books_balance_under_a_failing_receiver() {
    books_balance_under_a_failing_receiver(HTTP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn books_balance_when_the_receiver_is_down() {
    // Bind and close: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut s = settings(GRPC, &format!("http://{addr}"));
    s.max_batch_size = 10;
    s.max_concurrent_exports = 8;
    s.max_retry_time = Duration::from_millis(50);
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(s, &metrics);
    let nginx = resource(1, "nginx", 100);
    for n in 0..200 {
        queue.try_send(server_span(&nginx, n));
    }
    wait_for("retries to run out", || {
        dropped(&metrics, "retry_exhausted") > 0
    })
    .await;
    let report = handle.shutdown(Duration::from_millis(500)).await;
    assert!(report.clean);
    assert_eq!(report.exported, 0);
    assert_eq!(report.dropped, 200);
    assert_balanced(&metrics, 200);
    assert_eq!(metrics.sum("wirespan_export_queue_spans"), 0);
}

/// Many batches queued behind a long batch timeout: shutdown sends them all,
/// several at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_every_queued_batch() {
    for protocol in [GRPC, HTTP] {
        let rx = Receiver::start(protocol).await;
        let mut s = one_span_batches(protocol, &rx, 4);
        s.max_batch_size = 7;
        s.batch_timeout = Duration::from_secs(3600);
        let metrics = self_metrics::Registry::new();
        let (queue, handle) = start(s, &metrics);
        let api = resource(2, "api", 200);
        for n in 0..500 {
            assert!(queue.try_send(server_span(&api, n)));
        }
        let report = handle.shutdown(Duration::from_secs(10)).await;
        assert!(report.clean);
        assert_eq!((report.exported, report.dropped), (500, 0));
        assert_eq!(rx.inbox.span_count(), 500);
        assert_balanced(&metrics, 500);
    }
}

/// Requests held by the receiver past the shutdown deadline: shutdown returns
/// (cleanly, the requests give up at the deadline) and counts their spans, and
/// those still queued, as dropped at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_bounds_requests_in_flight() {
    for protocol in [GRPC, HTTP] {
        let rx = Receiver::start(protocol).await;
        rx.inbox.gate().close();
        let metrics = self_metrics::Registry::new();
        let (queue, handle) = start(one_span_batches(protocol, &rx, 4), &metrics);
        let nginx = resource(1, "nginx", 100);
        for n in 0..20 {
            assert!(queue.try_send(server_span(&nginx, n)));
        }
        wait_for("4 requests held", || rx.inbox.gate().inside() == 4).await;
        let report = handle.shutdown(Duration::from_millis(300)).await;
        assert!(report.clean, "requests honor the deadline themselves");
        assert_eq!(report.exported, 0);
        assert_eq!(report.dropped, 20);
        assert_eq!(report.dropped_at_shutdown, 20);
        assert_balanced(&metrics, 20);
        assert_eq!(metrics.sum("wirespan_export_queue_spans"), 0);
        rx.inbox.gate().open();
    }
}

/// The bytes the exporter sends are exactly prost's encoding of the request.
#[test]
fn request_bytes_match_prost() {
    use prost::Message;
    let nginx = resource(1, "nginx", 100);
    let api = resource(2, "api", 200);
    let batch: Vec<_> = (0..50)
        .map(|n| server_span(if n % 3 == 0 { &api } else { &nginx }, n))
        .collect();
    assert_eq!(
        encode_request_bytes(&batch),
        encode_request(batch.clone()).encode_to_vec()
    );
    assert!(encode_request_bytes(&[]).is_empty());
}
