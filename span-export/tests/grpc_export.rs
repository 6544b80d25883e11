//! Export over OTLP/gRPC to a real tonic receiver on a loopback port.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use common::*;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use span_export::{start, ExportSettings};
use std::time::Duration;
use test_support::otlp::{Inbox, Receiver, Reply};
use wirespan_config::{ExportConfig, OtlpConfig, OtlpProtocol};

const GRPC: OtlpProtocol = OtlpProtocol::Grpc;

#[tokio::test]
async fn groups_spans_by_resource_with_scope_and_headers() {
    let rx = Receiver::start(GRPC).await;
    let cfg = ExportConfig {
        otlp: Some(OtlpConfig {
            endpoint: rx.endpoint(),
            ..Default::default()
        }),
        max_batch_size: 5,
        // Only a full batch is sent, so exactly one request arrives.
        batch_timeout: Duration::from_secs(3600),
        ..Default::default()
    };
    let env = |k: &str| match k {
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-api-key=abc%20def,tenant=t1".to_string()),
        "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("gzip".to_string()),
        _ => None,
    };
    let settings = ExportSettings::resolve(&cfg, &env).unwrap();
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(settings, &metrics);

    let nginx = resource(1, "nginx", 100);
    let api = resource(2, "api", 200);
    let spans = [
        server_span(&nginx, 1),
        server_span(&api, 2),
        server_span(&nginx, 3),
        server_span(&api, 4),
        server_span(&nginx, 5),
    ];
    for s in &spans {
        assert!(queue.try_send(s.clone()));
    }
    wait_for("5 spans", || rx.inbox.span_count() == 5).await;

    let got = rx.inbox.requests();
    assert_eq!(got.len(), 1);
    let rs = &got[0].resource_spans;
    assert_eq!(rs.len(), 2, "one ResourceSpans per resource");
    let scope = InstrumentationScope {
        name: "wirespan".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    for (group, res, idx) in [
        (&rs[0], &nginx, [0, 2, 4].as_slice()),
        (&rs[1], &api, &[1, 3]),
    ] {
        assert_eq!(group.resource.as_ref().unwrap().attributes, res.attributes);
        assert_eq!(group.scope_spans.len(), 1);
        assert_eq!(group.scope_spans[0].scope.as_ref(), Some(&scope));
        let want: Vec<_> = idx.iter().map(|&i| spans[i].to_proto()).collect();
        assert_eq!(group.scope_spans[0].spans, want);
    }
    let headers = rx.inbox.headers()[0].clone();
    assert!(
        headers.contains(&("x-api-key".into(), "abc def".into())),
        "{headers:?}"
    );
    assert!(headers.contains(&("tenant".into(), "t1".into())));
    assert!(
        headers.contains(&("grpc-encoding".into(), "gzip".into())),
        "{headers:?}"
    );

    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (report.exported, report.dropped, report.clean),
        (5, 0, true)
    );
    assert_eq!(exported(&metrics), 5);
    assert_eq!(requests(&metrics, "ok"), 1);
    assert_balanced(&metrics, 5);
}

#[tokio::test]
async fn unavailable_then_ok_is_retried() {
    let rx = Receiver::start(GRPC).await;
    rx.inbox.script([
        Reply::Grpc {
            code: tonic::Code::Unavailable,
            retry_after: None,
        },
        Reply::Grpc {
            code: tonic::Code::ResourceExhausted,
            retry_after: Some(Duration::from_millis(20)),
        },
        Reply::Ok,
    ]);
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(settings(GRPC, &rx.endpoint()), &metrics);
    let res = resource(7, "svc", 1);
    for n in 0..3 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("3 spans delivered", || exported(&metrics) == 3).await;
    assert_eq!(rx.inbox.span_count(), 3);
    assert_eq!(requests(&metrics, "retryable_error"), 2);
    assert_eq!(requests(&metrics, "ok"), 1);
    handle.shutdown(Duration::from_secs(5)).await;
    assert_balanced(&metrics, 3);
}

#[tokio::test]
async fn non_retryable_errors_drop_the_batch() {
    let rx = Receiver::start(GRPC).await;
    rx.inbox.script([
        Reply::Grpc {
            code: tonic::Code::InvalidArgument,
            retry_after: None,
        },
        // Without RetryInfo, RESOURCE_EXHAUSTED is not retryable.
        Reply::Grpc {
            code: tonic::Code::ResourceExhausted,
            retry_after: None,
        },
    ]);
    let metrics = self_metrics::Registry::new();
    let mut s = settings(GRPC, &rx.endpoint());
    s.max_batch_size = 2;
    let (queue, handle) = start(s, &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..4 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("two failed batches", || {
        dropped(&metrics, "export_failed") == 4
    })
    .await;
    assert_eq!(requests(&metrics, "error"), 2);
    assert_eq!(rx.inbox.attempts(), 2, "no retries");
    assert_eq!(rx.inbox.span_count(), 0);
    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.exported, report.dropped), (0, 4));
    assert_balanced(&metrics, 4);
}

#[tokio::test]
async fn partial_success_counts_rejected_spans() {
    let rx = Receiver::start(GRPC).await;
    rx.inbox.script([Reply::Partial {
        rejected: 2,
        message: "too old".into(),
    }]);
    let metrics = self_metrics::Registry::new();
    let mut s = settings(GRPC, &rx.endpoint());
    s.max_batch_size = 5;
    s.batch_timeout = Duration::from_secs(3600);
    let (queue, handle) = start(s, &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..5 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("batch answered", || exported(&metrics) == 3).await;
    assert_eq!(dropped(&metrics, "rejected_by_receiver"), 2);
    assert_eq!(requests(&metrics, "ok"), 1);
    handle.shutdown(Duration::from_secs(5)).await;
    assert_balanced(&metrics, 5);
}

#[tokio::test]
async fn receiver_down_at_start_then_up() {
    // Reserve a port, then free it so nothing listens there yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(settings(GRPC, &format!("http://{addr}")), &metrics);
    let res = resource(3, "late", 1);
    for n in 0..3 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("failed attempts", || {
        requests(&metrics, "retryable_error") >= 2
    })
    .await;
    assert_eq!(exported(&metrics), 0);
    assert_balanced(&metrics, 3);

    let rx = Receiver::start_on(GRPC, &addr.to_string(), Inbox::default()).await;
    wait_for("delivery after the receiver came up", || {
        exported(&metrics) == 3
    })
    .await;
    assert_eq!(rx.inbox.span_count(), 3);
    // Spans offered later go straight through.
    assert!(queue.try_send(server_span(&res, 10)));
    wait_for("the later span", || rx.inbox.span_count() == 4).await;
    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.exported, report.dropped), (4, 0));
    assert_balanced(&metrics, 4);
}

#[tokio::test]
async fn retry_budget_exhausted_drops_and_counts() {
    let rx = Receiver::start(GRPC).await;
    rx.inbox.script(std::iter::repeat_n(
        Reply::Grpc {
            code: tonic::Code::Unavailable,
            retry_after: None,
        },
        1000,
    ));
    let metrics = self_metrics::Registry::new();
    let mut s = settings(GRPC, &rx.endpoint());
    s.max_retry_time = Duration::from_millis(200);
    let (queue, handle) = start(s, &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..3 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("retry_exhausted", || {
        dropped(&metrics, "retry_exhausted") == 3
    })
    .await;
    assert!(requests(&metrics, "retryable_error") >= 2);
    handle.shutdown(Duration::from_secs(5)).await;
    assert_balanced(&metrics, 3);
}

#[tokio::test]
async fn shutdown_flushes_a_partial_batch() {
    let rx = Receiver::start(GRPC).await;
    let metrics = self_metrics::Registry::new();
    let mut s = settings(GRPC, &rx.endpoint());
    s.batch_timeout = Duration::from_secs(3600);
    let (queue, handle) = start(s, &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..7 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    let report = handle.shutdown(Duration::from_secs(10)).await;
    assert_eq!(rx.inbox.span_count(), 7);
    assert_eq!(
        (
            report.exported,
            report.dropped,
            report.dropped_at_shutdown,
            report.clean
        ),
        (7, 0, 0, true)
    );
    // After shutdown the queue refuses and counts.
    assert!(!queue.try_send(server_span(&res, 99)));
    assert_eq!(dropped(&metrics, "shutdown"), 1);
    assert_balanced(&metrics, 8);
}

#[tokio::test]
async fn shutdown_deadline_drops_what_cannot_be_sent() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let metrics = self_metrics::Registry::new();
    let mut s = settings(GRPC, &format!("http://{addr}"));
    s.max_batch_size = 2;
    let (queue, handle) = start(s, &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..5 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    let report = handle.shutdown(Duration::from_millis(300)).await;
    assert!(report.clean);
    assert_eq!(report.exported, 0);
    assert_eq!(report.dropped, 5);
    assert_eq!(report.dropped_at_shutdown, 5);
    assert_eq!(dropped(&metrics, "shutdown"), 5);
    assert_eq!(metrics.sum("wirespan_export_queue_spans"), 0);
    assert_balanced(&metrics, 5);
}

#[tokio::test]
async fn spans_queue_up_to_the_bound_while_a_batch_is_retried() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let metrics = self_metrics::Registry::new();
    let mut s = settings(GRPC, &format!("http://{addr}"));
    s.queue_size = 3;
    s.max_batch_size = 1;
    let (queue, handle) = start(s, &metrics);
    let res = resource(1, "svc", 1);
    assert!(queue.try_send(server_span(&res, 0)));
    // The exporter now holds span 0 and retries it; the queue fills behind it.
    wait_for("retrying", || requests(&metrics, "retryable_error") >= 1).await;
    let accepted: Vec<bool> = (1..=5)
        .map(|n| queue.try_send(server_span(&res, n)))
        .collect();
    assert_eq!(accepted, [true, true, true, false, false]);
    assert_eq!(dropped(&metrics, "queue_full"), 2);
    assert_balanced(&metrics, 6);

    let rx = Receiver::start_on(GRPC, &addr.to_string(), Inbox::default()).await;
    wait_for("the 4 queued spans", || rx.inbox.span_count() == 4).await;
    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.exported, report.dropped), (4, 2));
    assert_balanced(&metrics, 6);
}
