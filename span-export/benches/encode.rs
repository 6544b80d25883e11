//! Spans per second turned into an `ExportTraceServiceRequest` (and into its
//! protobuf bytes), and straight into the bytes the exporter sends
//! (`request_bytes`): batches of 512 spans with ~20 attributes, 4 resources.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prost::Message;
use span_export::{
    any_value, encode_request, span, AnyValue, ExportSpan, KeyValue, ProcessResource, SpanData,
};
use std::hint::black_box;
use std::sync::Arc;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn str_kv(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_string()))
}

fn batch(size: usize, resources: usize) -> Vec<ExportSpan> {
    let resources: Vec<Arc<ProcessResource>> = (0..resources as u64)
        .map(|id| {
            Arc::new(ProcessResource {
                id,
                attributes: vec![
                    str_kv("service.name", &format!("service-{id}")),
                    kv("process.pid", any_value::Value::IntValue(1000 + id as i64)),
                    str_kv("process.executable.name", "nginx"),
                    str_kv("host.name", "bench-host"),
                    str_kv("telemetry.sdk.name", "wirespan"),
                ],
            })
        })
        .collect();
    (0..size as u64)
        .map(|n| {
            let mut attributes = vec![
                str_kv("http.request.method", "GET"),
                str_kv("url.path", &format!("/api/v1/items/{n}")),
                str_kv("url.query", "page=2&limit=50"),
                str_kv("url.scheme", "http"),
                str_kv("http.route", "/api/v1/items/{id}"),
                kv("http.response.status_code", any_value::Value::IntValue(200)),
                str_kv("network.protocol.version", "1.1"),
                str_kv("network.peer.address", "10.1.2.3"),
                kv("network.peer.port", any_value::Value::IntValue(51234)),
                str_kv("server.address", "api.internal"),
                kv("server.port", any_value::Value::IntValue(8080)),
                str_kv("client.address", "10.1.2.3"),
                kv("client.port", any_value::Value::IntValue(51234)),
                str_kv("user_agent.original", "curl/8.5.0"),
                kv("http.request.body.size", any_value::Value::IntValue(0)),
                kv("http.response.body.size", any_value::Value::IntValue(5120)),
                str_kv("service.peer.name", "frontend"),
            ];
            attributes.extend((0..3).map(|k| str_kv(&format!("wirespan.extra.{k}"), "value")));
            ExportSpan {
                resource: resources[n as usize % resources.len()].clone(),
                attrs: Default::default(),
                span: SpanData {
                    trace_id: [n as u8; 16],
                    span_id: [n as u8 ^ 0x5a; 8],
                    name: "GET /api/v1/items/{id}".into(),
                    kind: span::SpanKind::Server as i32,
                    start_time_unix_nano: 1_700_000_000_000_000_000 + n,
                    end_time_unix_nano: 1_700_000_000_001_000_000 + n,
                    attributes,
                    ..Default::default()
                },
            }
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let input = batch(512, 4);
    let mut group = c.benchmark_group("encode_512_spans_4_resources");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("build_request", |b| {
        b.iter_batched(
            || input.clone(),
            |spans| black_box(encode_request(spans)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("build_request_and_protobuf", |b| {
        b.iter_batched(
            || input.clone(),
            |spans| black_box(encode_request(spans).encode_to_vec()),
            BatchSize::SmallInput,
        )
    });
    // What the exporter sends: the batch borrowed, straight to bytes.
    group.bench_function("request_bytes", |b| {
        b.iter(|| black_box(span_export::encode_request_bytes(black_box(&input))))
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
