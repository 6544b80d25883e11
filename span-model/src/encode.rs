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

/// [`encode_pending_request_bytes`] cut into requests of at most `max_bytes`
/// each (exact protobuf lengths), with how many spans each carries, in
/// order. A batch that fits is one request, encoded as
/// [`encode_pending_request_bytes`] does (one pass to size it, one to write);
/// only one that does not is sized again, to find the cuts and per part. A span too large
/// for `max_bytes` by itself is sent alone (the receiver decides).
///
/// Why: gRPC receivers refuse messages over 4 MiB by default (the
/// OpenTelemetry Collector's `max_recv_msg_size_mib`, Jaeger, Tempo), and a
/// refused request loses its whole batch; spans of up to
/// `http.max_header_bytes` of URL and user agent make that reachable.
pub fn encode_pending_requests(batch: &[PendingSpan], max_bytes: usize) -> Vec<(Vec<u8>, usize)> {
    let plan = Plan::of(batch);
    if plan.total <= max_bytes || batch.len() <= 1 {
        return vec![(plan.write(), batch.len())];
    }
    request_cuts(batch, max_bytes)
        .into_iter()
        .map(|part| (Plan::of(part).write(), part.len()))
        .collect()
}

/// The longest prefixes of `batch`, one after the other, whose requests are
/// at most `max_bytes` (each at least one span). Exact: each span's addition
/// updates its resource group's length and the request's total.
fn request_cuts<S: SpanFields>(batch: &[S], max_bytes: usize) -> Vec<&[S]> {
    let scope_len = scope().encoded_len();
    // Per resource in the current request: (its resource message length,
    // the sum of its spans' delimited lengths).
    let mut groups: HashMap<u64, (usize, usize)> = HashMap::new();
    let group_len = |resource_len: usize, spans: usize| {
        delimited_len(resource_spans_len(
            resource_len,
            scope_spans_len(scope_len, spans),
        ))
    };
    let mut parts = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, s) in batch.iter().enumerate() {
        let resource = s.resource();
        let span = delimited_len(s.encoded_len());
        let (resource_len, spans) = groups
            .get(&resource.id)
            .copied()
            .unwrap_or_else(|| (resource_len(resource), 0));
        let before = if spans == 0 {
            0
        } else {
            group_len(resource_len, spans)
        };
        let grown = total - before + group_len(resource_len, spans + span);
        if grown > max_bytes && i > start {
            parts.push(&batch[start..i]);
            start = i;
            groups.clear();
            total = group_len(resource_len, span);
            groups.insert(resource.id, (resource_len, span));
        } else {
            total = grown;
            groups.insert(resource.id, (resource_len, spans + span));
        }
    }
    parts.push(&batch[start..]);
    parts
}

/// Length of a `ScopeSpans` message: the scope and `spans`, the spans'
/// delimited lengths summed.
fn scope_spans_len(scope_len: usize, spans: usize) -> usize {
    delimited_len(scope_len) + spans
}

/// Length of a `ResourceSpans` message: the resource and one `ScopeSpans`.
fn resource_spans_len(resource_len: usize, scope_spans_len: usize) -> usize {
    delimited_len(resource_len) + delimited_len(scope_spans_len)
}

/// Length of a resource's `Resource` message.
fn resource_len(resource: &ProcessResource) -> usize {
    resource
        .attributes
        .iter()
        .map(|kv| delimited_len(kv.encoded_len()))
        .sum()
}

fn encode_batch<S: SpanFields>(batch: &[S]) -> Vec<u8> {
    Plan::of(batch).write()
}

/// A request's layout: spans grouped by resource (in order of first
/// appearance) with every enclosing message's length, so the bytes can be
/// written in one pass into an allocation of exactly `total`.
struct Plan<'a, S> {
    groups: Vec<Group<'a, S>>,
    scope: InstrumentationScope,
    scope_len: usize,
    total: usize,
}

struct Group<'a, S> {
    attributes: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
    resource_len: usize,
    spans: Vec<(&'a S, usize)>,
    scope_spans_len: usize,
    resource_spans_len: usize,
}

impl<'a, S: SpanFields> Plan<'a, S> {
    fn of(batch: &'a [S]) -> Self {
        let scope = scope();
        let scope_len = scope.encoded_len();
        let mut groups: Vec<Group<'_, S>> = Vec::new();
        let mut index: HashMap<u64, usize> = HashMap::new();
        for s in batch {
            let resource = s.resource();
            let i = *index.entry(resource.id).or_insert_with(|| {
                groups.push(Group {
                    attributes: &resource.attributes,
                    resource_len: resource_len(resource),
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
            let spans = g.spans.iter().map(|&(_, len)| delimited_len(len)).sum();
            g.scope_spans_len = scope_spans_len(scope_len, spans);
            g.resource_spans_len = resource_spans_len(g.resource_len, g.scope_spans_len);
            total += delimited_len(g.resource_spans_len);
        }
        Plan {
            groups,
            scope,
            scope_len,
            total,
        }
    }

    fn write(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        crate::wire::append(&mut buf, self.total, |out| {
            for g in &self.groups {
                put_delimited_header(out, FIELD_1, g.resource_spans_len);
                put_delimited_header(out, FIELD_1, g.resource_len);
                for kv in g.attributes {
                    let len = kv.encoded_len();
                    put_delimited_header(out, FIELD_1, len);
                    out.message(kv, len);
                }
                put_delimited_header(out, FIELD_2, g.scope_spans_len);
                put_delimited_header(out, FIELD_1, self.scope_len);
                out.message(&self.scope, self.scope_len);
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
    /// Requests cut by size: in order, covering the batch, each the bytes of
    /// its own spans encoded alone, each within the bound (or one span), and
    /// each as long as the bound allows (one more span would not fit). Every
    /// bound from below one span to above the whole batch.
    #[test]
    fn requests_are_cut_at_the_longest_prefix_that_fits() {
        let pending: Vec<PendingSpan> = spans()
            .into_iter()
            .map(|s| {
                if s.span.span_id[0] % 2 == 0 {
                    PendingSpan::Encoded(s.encode())
                } else {
                    PendingSpan::Built(s)
                }
            })
            .collect();
        let whole = encode_pending_request_bytes(&pending).len();
        let mut cuts_seen = std::collections::BTreeSet::new();
        for max in 1..=whole + 8 {
            let parts = encode_pending_requests(&pending, max);
            let mut at = 0;
            for (bytes, n) in &parts {
                assert!(*n >= 1, "max {max}: an empty request");
                let slice = &pending[at..at + n];
                assert_eq!(bytes, &encode_pending_request_bytes(slice), "max {max}");
                assert!(
                    bytes.len() <= max || *n == 1,
                    "max {max}: {} bytes",
                    bytes.len()
                );
                if at + n < pending.len() {
                    let one_more = encode_pending_request_bytes(&pending[at..=at + n]);
                    assert!(
                        one_more.len() > max,
                        "max {max}: cut too early at {}",
                        at + n
                    );
                }
                at += n;
            }
            assert_eq!(at, pending.len(), "max {max}: spans lost");
            cuts_seen.insert(parts.len());
        }
        // The bounds went from one span per request to the whole batch in one.
        assert!(cuts_seen.contains(&1) && cuts_seen.contains(&pending.len()));
    }
}
