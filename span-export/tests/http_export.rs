//! Export over OTLP/HTTP (binary protobuf) to a real hyper receiver.
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
use wirespan_config::{ExportConfig, OtlpProtocol};

const HTTP: OtlpProtocol = OtlpProtocol::HttpProtobuf;

#[tokio::test]
async fn env_endpoint_groups_by_resource_over_http() {
    let rx = Receiver::start(HTTP).await;
    let cfg = ExportConfig {
        max_batch_size: 4,
        batch_timeout: Duration::from_secs(3600),
        ..Default::default()
    };
    // No YAML otlp at all: the generic env endpoint enables export, and the
    // receiver only accepts /v1/traces, so arriving proves the path was added.
    let base = rx.endpoint();
    let env = move |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(base.clone()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_string()),
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS" => Some("x-api-key=k%2C1".to_string()),
        _ => None,
    };
    let settings = ExportSettings::resolve(&cfg, &env).unwrap();
    assert!(!settings.stdout);
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(settings, &metrics);

    let a = resource(10, "frontend", 1);
    let b = resource(20, "backend", 2);
    let spans = [
        server_span(&b, 1),
        server_span(&a, 2),
        server_span(&b, 3),
        server_span(&b, 4),
    ];
    for s in &spans {
        assert!(queue.try_send(s.clone()));
    }
    wait_for("4 spans", || rx.inbox.span_count() == 4).await;
    let got = rx.inbox.requests();
    assert_eq!(got.len(), 1);
    let rs = &got[0].resource_spans;
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].resource.as_ref().unwrap().attributes, b.attributes);
    assert_eq!(rs[1].resource.as_ref().unwrap().attributes, a.attributes);
    let scope = InstrumentationScope {
        name: "wirespan".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    for group in rs {
        assert_eq!(group.scope_spans.len(), 1);
        assert_eq!(group.scope_spans[0].scope.as_ref(), Some(&scope));
    }
    let b_spans = [
        spans[0].to_proto(),
        spans[2].to_proto(),
        spans[3].to_proto(),
    ];
    assert_eq!(rs[0].scope_spans[0].spans, b_spans);
    assert_eq!(rs[1].scope_spans[0].spans, [spans[1].to_proto()]);

    let headers = rx.inbox.headers()[0].clone();
    assert!(
        headers.contains(&("x-api-key".into(), "k,1".into())),
        "{headers:?}"
    );
    assert!(headers.contains(&("content-type".into(), "application/x-protobuf".into())));

    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.exported, report.dropped), (4, 0));
    assert_balanced(&metrics, 4);
}

#[tokio::test]
async fn gzip_bodies_arrive() {
    let rx = Receiver::start(HTTP).await;
    let mut s = settings(HTTP, &rx.endpoint());
    s.otlp.as_mut().unwrap().compression = span_export::Compression::Gzip;
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(s, &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..3 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("3 spans", || rx.inbox.span_count() == 3).await;
    let headers = rx.inbox.headers()[0].clone();
    assert!(headers.contains(&("content-encoding".into(), "gzip".into())));
    handle.shutdown(Duration::from_secs(5)).await;
    assert_balanced(&metrics, 3);
}

#[tokio::test]
async fn retryable_statuses_then_ok() {
    let rx = Receiver::start(HTTP).await;
    rx.inbox.script([
        Reply::Http {
            status: 503,
            retry_after: None,
        },
        Reply::Http {
            status: 429,
            retry_after: Some(0),
        },
        Reply::Http {
            status: 502,
            retry_after: None,
        },
        Reply::Ok,
    ]);
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(settings(HTTP, &rx.endpoint()), &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..2 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("delivery", || exported(&metrics) == 2).await;
    assert_eq!(requests(&metrics, "retryable_error"), 3);
    assert_eq!(requests(&metrics, "ok"), 1);
    assert_eq!(rx.inbox.span_count(), 2);
    handle.shutdown(Duration::from_secs(5)).await;
    assert_balanced(&metrics, 2);
}

#[tokio::test]
async fn non_retryable_status_drops() {
    let rx = Receiver::start(HTTP).await;
    rx.inbox.script([Reply::Http {
        status: 400,
        retry_after: None,
    }]);
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(settings(HTTP, &rx.endpoint()), &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..3 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("drop", || dropped(&metrics, "export_failed") == 3).await;
    assert_eq!(requests(&metrics, "error"), 1);
    assert_eq!(rx.inbox.attempts(), 1);
    // The exporter keeps going with the next batch.
    assert!(queue.try_send(server_span(&res, 9)));
    wait_for("next batch", || exported(&metrics) == 1).await;
    handle.shutdown(Duration::from_secs(5)).await;
    assert_balanced(&metrics, 4);
}

#[tokio::test]
async fn partial_success_over_http() {
    let rx = Receiver::start(HTTP).await;
    rx.inbox.script([Reply::Partial {
        rejected: 1,
        message: "bad span".into(),
    }]);
    let metrics = self_metrics::Registry::new();
    let mut s = settings(HTTP, &rx.endpoint());
    s.max_batch_size = 3;
    s.batch_timeout = Duration::from_secs(3600);
    let (queue, handle) = start(s, &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..3 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("answer", || exported(&metrics) == 2).await;
    assert_eq!(dropped(&metrics, "rejected_by_receiver"), 1);
    handle.shutdown(Duration::from_secs(5)).await;
    assert_balanced(&metrics, 3);
}

#[tokio::test]
async fn http_receiver_down_at_start_then_up() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let metrics = self_metrics::Registry::new();
    let (queue, handle) = start(settings(HTTP, &format!("http://{addr}")), &metrics);
    let res = resource(1, "svc", 1);
    for n in 0..3 {
        assert!(queue.try_send(server_span(&res, n)));
    }
    wait_for("failed attempts", || {
        requests(&metrics, "retryable_error") >= 2
    })
    .await;
    let rx = Receiver::start_on(HTTP, &addr.to_string(), Inbox::default()).await;
    wait_for("delivery", || exported(&metrics) == 3).await;
    assert_eq!(rx.inbox.span_count(), 3);
    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.exported, report.dropped), (3, 0));
    assert_balanced(&metrics, 3);
}
