//! A batch larger than `export.max_request_bytes` goes as several requests,
//! over gRPC and HTTP, to a real receiver: every span arrives once, in order,
//! and no request is over the bound.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use common::*;
use prost::Message;
use span_export::start;
use std::time::Duration;
use test_support::otlp::Receiver;
use wirespan_config::OtlpProtocol;

const SPANS: u64 = 300;
const MAX_REQUEST_BYTES: usize = 64 * 1024;

async fn a_large_batch_is_split(protocol: OtlpProtocol) {
    let rx = Receiver::start(protocol).await;
    let metrics = self_metrics::Registry::new();
    let mut settings = settings(protocol, &rx.endpoint());
    settings.max_batch_size = SPANS as usize;
    settings.max_request_bytes = MAX_REQUEST_BYTES;
    // Only the full batch is sent: one batch, so any second request is a split.
    settings.batch_timeout = Duration::from_secs(3600);
    let (queue, handle) = start(settings, &metrics);
    // Two processes, so requests carry more than one resource.
    let resources = [resource(1, "nginx", 100), resource(2, "api", 200)];
    for n in 0..SPANS {
        let mut span = server_span(&resources[(n % 2) as usize], n);
        // ~1 KiB a span: ~300 KiB in all, five or more requests.
        span.span
            .attributes
            .push(s("url.full", &format!("http://h/{}", "x".repeat(1000))));
        assert!(queue.try_send(span));
    }
    wait_for("every span", || rx.inbox.span_count() == SPANS).await;

    let received = rx.inbox.requests();
    assert!(received.len() >= 5, "{} requests", received.len());
    let mut names = Vec::new();
    for r in &received {
        let len = r.encode_to_vec().len();
        assert!(len <= MAX_REQUEST_BYTES, "a request of {len} bytes");
        // Each request is filled: it is not one span's worth under the bound.
        assert!(
            len > MAX_REQUEST_BYTES - 2 * 1024 || r == received.last().unwrap(),
            "{len}"
        );
        for rs in &r.resource_spans {
            for ss in &rs.scope_spans {
                names.extend(ss.spans.iter().map(|s| s.name.clone()));
            }
        }
    }
    // Every span once; within a request spans are grouped by resource, so
    // compare as sets of names.
    names.sort();
    let mut expected: Vec<String> = (0..SPANS).map(|n| format!("GET /items/{n}")).collect();
    expected.sort();
    assert_eq!(names, expected);

    assert_eq!(
        metrics.value("wirespan_export_batches_split_total", &[]),
        Some(1)
    );
    assert_eq!(requests(&metrics, "ok"), received.len() as i128);
    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.exported, report.dropped), (SPANS, 0));
    assert_balanced(&metrics, SPANS);
}

#[tokio::test]
async fn a_large_batch_is_split_over_grpc() {
    a_large_batch_is_split(OtlpProtocol::Grpc).await;
}

#[tokio::test]
async fn a_large_batch_is_split_over_http() {
    a_large_batch_is_split(OtlpProtocol::HttpProtobuf).await;
}
