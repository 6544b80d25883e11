//! Turning a batch of spans into one OTLP request, one `ResourceSpans` per
//! distinct process resource: as prost messages ([`encode_request`]) or
//! straight into protobuf bytes ([`encode_request_bytes`], what the exporter
//! sends).

use crate::wire::{varint_len, Out};
use crate::{ExportSpan, PendingSpan, ProcessResource};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use std::collections::HashMap;

/// The instrumentation scope every span is reported under.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "wirespan".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    }
}

/// Builds the request for `batch`, grouping spans by `ProcessResource::id` in
/// the order each resource first appears. Spans are moved into their prost
/// form (their ids and name are copied); each resource's attributes are
/// copied once per request. For tests and comparisons: the exporter sends
/// [`encode_request_bytes`].
pub fn encode_request(batch: Vec<ExportSpan>) -> ExportTraceServiceRequest {
    let mut resource_spans: Vec<ResourceSpans> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    let scope = scope();
    for ExportSpan {
        resource,
        span,
        attrs,
    } in batch
    {
        let mut span = span.into_proto();
        span.attributes.extend(attrs.to_key_values());
        let i = *index.entry(resource.id).or_insert_with(|| {
            resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: resource.attributes.clone(),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope.clone()),
                    ..Default::default()
                }],
                ..Default::default()
            });
            resource_spans.len() - 1
        });
        resource_spans[i].scope_spans[0].spans.push(span);
    }
    ExportTraceServiceRequest { resource_spans }
}

/// Number of spans in a request.
pub fn span_count(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

// Field numbers of the enclosing messages, from the OTLP protos.
/// `ExportTraceServiceRequest.resource_spans`, `ResourceSpans.resource`,
/// `ScopeSpans.scope`, `Resource.attributes`.
const FIELD_1: u8 = 1;
/// `ResourceSpans.scope_spans`, `ScopeSpans.spans`.
const FIELD_2: u8 = 2;

/// Bytes taken by a length-delimited field with a one-byte key.
fn delimited_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The key and length of a length-delimited field (`field` < 16).
fn put_delimited_header(out: &mut Out<'_>, field: u8, len: usize) {
    out.byte((field << 3) | 2);
    out.varint(len as u64);
}

/// The protobuf encoding of `encode_request(batch)`, byte for byte, without
/// building the request: spans are borrowed (not moved or cloned), each span's
/// encoded length is computed once (prost's nested `encoded_len` would compute
/// it again at every enclosing level), resource attributes are written from
/// the shared [`ProcessResource`](crate::ProcessResource), and the output is
/// allocated once, at its exact size, and filled without growing.
pub fn encode_request_bytes(batch: &[ExportSpan]) -> Vec<u8> {
    encode_batch(batch)
}

/// [`encode_request_bytes`] for spans on their way to export, some of them
/// already encoded ([`PendingSpan`]): the same bytes as encoding each span
/// as built.
pub fn encode_pending_request_bytes(batch: &[PendingSpan]) -> Vec<u8> {
    encode_batch(batch)
}

/// What [`encode_batch`] needs of one span.
trait SpanFields {
    fn resource(&self) -> &ProcessResource;
    fn encoded_len(&self) -> usize;
    fn encode_to(&self, out: &mut Out<'_>);
}

impl SpanFields for ExportSpan {
    fn resource(&self) -> &ProcessResource {
        &self.resource
    }
    fn encoded_len(&self) -> usize {
        ExportSpan::encoded_len(self)
    }
    fn encode_to(&self, out: &mut Out<'_>) {
        ExportSpan::encode_to(self, out)
    }
}

impl SpanFields for PendingSpan {
    fn resource(&self) -> &ProcessResource {
        match self {
            PendingSpan::Built(s) => &s.resource,
            PendingSpan::Encoded(e) => &e.resource,
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            PendingSpan::Built(s) => s.encoded_len(),
            PendingSpan::Encoded(e) => e.fields.len(),
        }
    }
    fn encode_to(&self, out: &mut Out<'_>) {
        match self {
            PendingSpan::Built(s) => s.encode_to(out),
            PendingSpan::Encoded(e) => out.bytes(&e.fields),
        }
    }
}

fn encode_batch<S: SpanFields>(batch: &[S]) -> Vec<u8> {
    struct Group<'a, S> {
        attributes: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
        resource_len: usize,
        spans: Vec<(&'a S, usize)>,
        scope_spans_len: usize,
        resource_spans_len: usize,
    }
    let scope = scope();
    let scope_len = scope.encoded_len();
    let mut groups: Vec<Group<'_, S>> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    for s in batch {
        let resource = s.resource();
        let i = *index.entry(resource.id).or_insert_with(|| {
            let resource_len = resource
                .attributes
                .iter()
                .map(|kv| delimited_len(kv.encoded_len()))
                .sum();
            groups.push(Group {
                attributes: &resource.attributes,
                resource_len,
                spans: Vec::new(),
                scope_spans_len: 0,
                resource_spans_len: 0,
            });
            groups.len() - 1
        });
        groups[i].spans.push((s, s.encoded_len()));
    }
    let mut total = 0;
    for g in &mut groups {
        g.scope_spans_len = delimited_len(scope_len)
            + g.spans
                .iter()
                .map(|&(_, len)| delimited_len(len))
                .sum::<usize>();
        g.resource_spans_len = delimited_len(g.resource_len) + delimited_len(g.scope_spans_len);
        total += delimited_len(g.resource_spans_len);
    }
    let mut buf = Vec::new();
    crate::wire::append(&mut buf, total, |out| {
        for g in &groups {
            put_delimited_header(out, FIELD_1, g.resource_spans_len);
            put_delimited_header(out, FIELD_1, g.resource_len);
            for kv in g.attributes {
                let len = kv.encoded_len();
                put_delimited_header(out, FIELD_1, len);
                out.message(kv, len);
            }
            put_delimited_header(out, FIELD_2, g.scope_spans_len);
            put_delimited_header(out, FIELD_1, scope_len);
            out.message(&scope, scope_len);
            // `encode_length_delimited` would compute each span's length again.
            // (`encode_to` writes the fields only; the key and length are ours.)
            for &(s, len) in &g.spans {
                put_delimited_header(out, FIELD_2, len);
                s.encode_to(out);
            }
        }
    });
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttrValue, Attrs, ProcessResource, SpanData, Text};
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use std::sync::Arc;

    fn kv(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    /// Spans that set every field `SpanData` has, in every combination that
    /// changes the encoding (absent, default, long, negative).
    fn spans() -> Vec<ExportSpan> {
        let a = Arc::new(ProcessResource {
            id: 1,
            attributes: vec![kv("service.name", "a")],
        });
        let b = Arc::new(ProcessResource {
            id: 2,
            attributes: vec![kv("service.name", "b"), kv("host.name", "h")],
        });
        let mut out = Vec::new();
        for n in 0u8..12 {
            let mut attrs = Attrs::default();
            if n % 2 == 0 {
                attrs.push("http.request.method", "GET");
                attrs.push("url.path", format!("/p/{n}"));
                attrs.push("server.address", Arc::<str>::from("h.example"));
                attrs.push("server.port", 8080i64);
                attrs.push("x.negative", -(n as i64));
                attrs.push("x.long", AttrValue::Owned("v".repeat(200).into()));
            }
            let span = SpanData {
                trace_id: [n; 16],
                span_id: [n.wrapping_add(1); 8],
                parent_span_id: (n % 3 == 0).then_some([0xab; 8]),
                trace_state: if n % 4 == 1 {
                    "k=v".into()
                } else {
                    String::new()
                },
                name: match n % 3 {
                    0 => Text::Static("GET"),
                    1 => Text::Owned("x".repeat(150)),
                    _ => Text::Static(""),
                },
                kind: match n % 4 {
                    0 => 2,
                    1 => 3,
                    2 => 0,
                    _ => -1,
                },
                start_time_unix_nano: if n == 5 {
                    0
                } else {
                    1_700_000_000_000_000_000 + n as u64
                },
                end_time_unix_nano: if n == 6 { 0 } else { u64::MAX - n as u64 },
                attributes: if n % 5 == 0 {
                    vec![kv("proto.attr", "1")]
                } else {
                    Vec::new()
                },
                status: match n % 4 {
                    0 => Some(Status::default()),
                    1 => Some(Status {
                        message: "no such cart".into(),
                        code: 2,
                    }),
                    2 => None,
                    _ => Some(Status {
                        message: String::new(),
                        code: 1,
                    }),
                },
            };
            out.push(ExportSpan {
                resource: if n % 3 == 1 { b.clone() } else { a.clone() },
                span,
                attrs,
            });
        }
        out
    }

    /// The hand-written request is prost's encoding of `encode_request`, byte
    /// for byte, and decodes back to the same spans.
    #[test]
    fn request_bytes_match_prost_for_every_field() {
        let batch = spans();
        let ours = encode_request_bytes(&batch);
        let req = encode_request(batch.clone());
        assert_eq!(ours, req.encode_to_vec());
        let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).expect("decodes");
        assert_eq!(decoded, req);
        assert_eq!(span_count(&decoded), batch.len() as u64);
    }

    /// One span's encoding and length are prost's for `to_proto()`.
    #[test]
    fn span_bytes_match_prost() {
        for s in spans() {
            let mut ours = Vec::new();
            s.encode_raw(&mut ours);
            assert_eq!(ours.len(), s.encoded_len());
            let proto: Span = s.to_proto();
            assert_eq!(ours, proto.encode_to_vec(), "{s:?}");
        }
    }

    /// Spans encoded ahead give the request the same bytes as spans encoded
    /// with it, whatever the mix, and an encoded span keeps its resource.
    #[test]
    fn pending_spans_encode_as_built_ones() {
        let batch = spans();
        let expected = encode_request_bytes(&batch);
        let mixes: [fn(usize) -> bool; 3] = [|_| true, |_| false, |i| i % 3 == 1];
        for encode_this in mixes {
            let pending: Vec<PendingSpan> = batch
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    if encode_this(i) {
                        let e = s.encode();
                        assert_eq!(e.resource, s.resource);
                        assert_eq!(e.fields().len(), s.encoded_len());
                        PendingSpan::Encoded(e)
                    } else {
                        PendingSpan::Built(s.clone())
                    }
                })
                .collect();
            assert_eq!(encode_pending_request_bytes(&pending), expected);
        }
        assert!(encode_pending_request_bytes(&[]).is_empty());
    }
}
