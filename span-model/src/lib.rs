//! The span as wirespan exports it: a finished span with its process's
//! resource ([`ExportSpan`], [`ProcessResource`]), its own fields without an
//! allocation for ids or a constant name ([`SpanData`], [`Text`]), attributes
//! that cost no allocation each ([`Attrs`]), their protobuf encoding into an OTLP export
//! request ([`encode_request_bytes`]), and the one-line text form printed to
//! stdout ([`format_span_line`]).
//!
//! Data and encoding only: no I/O, no async runtime. Building spans is
//! `span-semantics`' job; queuing and sending them is `span-export`'s.
#![deny(unsafe_code)]

mod attrs;
mod encode;
mod span_data;
mod stdout;
mod wire;

pub use attrs::{AttrValue, Attrs};
pub use encode::{
    encode_pending_request_bytes, encode_pending_requests, encode_request, encode_request_bytes,
    scope, span_count,
};
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use opentelemetry_proto::tonic::{
    common::v1::{any_value, AnyValue, KeyValue},
    trace::v1::{span, status, Span, Status},
};
pub use span_data::{SpanData, Text};
pub use stdout::format_span_line;

use std::sync::Arc;

/// One observed process's resource, shared by all its spans. `id` is unique per
/// distinct resource: spans are grouped by it, not by comparing attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessResource {
    pub id: u64,
    pub attributes: Vec<KeyValue>,
}

/// A finished span and the process it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSpan {
    pub resource: Arc<ProcessResource>,
    /// The span's own fields; its `attributes` are exported first, then `attrs`.
    pub span: SpanData,
    /// More attributes, without an allocation each (see [`Attrs`]).
    pub attrs: Attrs,
}

impl ExportSpan {
    /// A span whose attributes are all in `span.attributes`.
    pub fn new(resource: Arc<ProcessResource>, span: SpanData) -> Self {
        ExportSpan {
            resource,
            span,
            attrs: Attrs::default(),
        }
    }

    /// Every attribute, as exported, as prost `KeyValue`s (allocates: for
    /// printing and tests).
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut all = self.span.attributes.clone();
        all.extend(self.attrs.to_key_values());
        all
    }

    /// The span as exported, attributes included (allocates).
    pub fn to_proto(&self) -> Span {
        Span {
            attributes: self.attributes(),
            ..self.span.to_proto()
        }
    }

    /// Length of the encoded `Span` message.
    pub fn encoded_len(&self) -> usize {
        self.span.encoded_len() + self.attrs.encoded_len()
    }

    /// Writes the `Span` message's fields (no key or length of its own): the
    /// same bytes as prost's encoding of [`to_proto`](Self::to_proto).
    pub fn encode_raw(&self, buf: &mut Vec<u8>) {
        wire::append(buf, self.encoded_len(), |out| self.encode_to(out));
    }

    /// The span encoded now, for export later: its own fields become bytes
    /// and its attributes' shared text is let go (see [`EncodedSpan`]).
    pub fn encode(&self) -> EncodedSpan {
        let mut fields = Vec::new();
        self.encode_raw(&mut fields);
        EncodedSpan {
            resource: self.resource.clone(),
            fields: fields.into_boxed_slice(),
        }
    }

    /// [`encode_raw`](Self::encode_raw) into bytes sized beforehand.
    pub(crate) fn encode_to(&self, out: &mut wire::Out<'_>) {
        self.span.encode_head(out);
        self.attrs.encode_to(out);
        self.span.encode_tail(out);
    }
}

/// A span already encoded: the fields of its OTLP `Span` message (no key or
/// length of its own), and its process's resource, by which the request
/// groups it. Encoding when the span is built, while everything it points to
/// is still in cache, and sending these bytes later costs less than keeping
/// the built span (and the request heads its attributes share) queued and
/// encoding it cold (BENCHMARKS.md, session 8).
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedSpan {
    pub resource: Arc<ProcessResource>,
    fields: Box<[u8]>,
}

impl EncodedSpan {
    /// The `Span` message's fields, as [`ExportSpan::encode_raw`] wrote them.
    pub fn fields(&self) -> &[u8] {
        &self.fields
    }
}

/// A span on its way to export: as built (when something still needs its
/// fields, such as the stdout lines), or already encoded.
#[derive(Clone, Debug, PartialEq)]
pub enum PendingSpan {
    Built(ExportSpan),
    Encoded(EncodedSpan),
}
