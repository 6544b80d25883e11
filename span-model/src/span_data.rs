//! The span's own fields ([`SpanData`]), kept compact and written to protobuf
//! directly.
//!
//! The prost `Span` allocates for every span: three id `Vec`s and the name
//! `String`. Here ids are arrays and the name is a [`Text`] (usually a
//! constant such as `"GET"`). The encoding is prost's, byte for byte, for the
//! fields wirespan sets: fields in number order, proto3 defaults left out
//! (tests compare the two).

use crate::wire::{varint_len, Out};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use prost::Message;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A string that is a constant, shared, or owned: only the last allocates
/// per value. Compared by content.
#[derive(Clone)]
pub enum Text {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(String),
}

impl Text {
    pub fn as_str(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
            Text::Owned(s) => s,
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::Static("")
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text::Static(s)
    }
}
impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::Owned(s)
    }
}
impl From<Arc<str>> for Text {
    fn from(s: Arc<str>) -> Self {
        Text::Shared(s)
    }
}

/// A span's own fields (OTLP `Span` without events, links, flags and dropped
/// counts, which wirespan never sets). Attributes beyond `attributes` are in [`ExportSpan::attrs`](crate::ExportSpan).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanData {
    /// Always written, as are `span_id`'s 8 bytes (prost leaves out only
    /// empty ids; wirespan never makes an all-zero one).
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// None: a root span (the field is left out).
    pub parent_span_id: Option<[u8; 8]>,
    pub trace_state: String,
    pub name: Text,
    /// `span::SpanKind` as its number.
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// Attributes as prost messages (tests, rare callers); exported before
    /// the span's `Attrs`.
    pub attributes: Vec<KeyValue>,
    pub status: Option<Status>,
}

// Keys (field number << 3 | wire type) of `Span`'s fields, from trace.proto.
const TRACE_ID: u8 = (1 << 3) | 2;
const SPAN_ID: u8 = (2 << 3) | 2;
const TRACE_STATE: u8 = (3 << 3) | 2;
const PARENT_SPAN_ID: u8 = (4 << 3) | 2;
const NAME: u8 = (5 << 3) | 2;
const KIND: u8 = 6 << 3;
const START_TIME: u8 = (7 << 3) | 1;
const END_TIME: u8 = (8 << 3) | 1;
const ATTRIBUTES: u8 = (9 << 3) | 2;
/// `Span.status` (15), and `Status.message` (2) and `Status.code` (3).
const STATUS: u8 = (15 << 3) | 2;
const STATUS_MESSAGE: u8 = (2 << 3) | 2;
const STATUS_CODE: u8 = 3 << 3;

/// A length-delimited field with a one-byte key, `len` bytes long.
fn delimited(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// An `int32`/enum as protobuf writes it (negative: sign-extended, 10 bytes).
fn int32_varint(v: i32) -> u64 {
    i64::from(v) as u64
}

fn status_len(st: &Status) -> usize {
    let mut n = 0;
    if !st.message.is_empty() {
        n += delimited(st.message.len());
    }
    if st.code != 0 {
        n += 1 + varint_len(int32_varint(st.code));
    }
    n
}

impl SpanData {
    /// Bytes of these fields in the encoded `Span` (without `ExportSpan::attrs`).
    pub fn encoded_len(&self) -> usize {
        // Both ids are always present (fixed size): 2 + 16 and 2 + 8.
        let mut n = 18 + 10;
        if !self.trace_state.is_empty() {
            n += delimited(self.trace_state.len());
        }
        if self.parent_span_id.is_some() {
            n += 10;
        }
        if !self.name.is_empty() {
            n += delimited(self.name.len());
        }
        if self.kind != 0 {
            n += 1 + varint_len(int32_varint(self.kind));
        }
        if self.start_time_unix_nano != 0 {
            n += 9;
        }
        if self.end_time_unix_nano != 0 {
            n += 9;
        }
        for kv in &self.attributes {
            n += delimited(kv.encoded_len());
        }
        if let Some(st) = &self.status {
            n += delimited(status_len(st));
        }
        n
    }

    /// Writes fields 1 to 8 (those before the attributes).
    pub(crate) fn encode_head(&self, out: &mut Out<'_>) {
        out.local(|out| self.encode_head_local(out));
    }

    #[inline]
    fn encode_head_local(&self, out: &mut Out<'_>) {
        out.byte(TRACE_ID);
        out.byte(16);
        out.bytes(&self.trace_id);
        out.byte(SPAN_ID);
        out.byte(8);
        out.bytes(&self.span_id);
        if !self.trace_state.is_empty() {
            out.delimited(TRACE_STATE, self.trace_state.as_bytes());
        }
        if let Some(p) = &self.parent_span_id {
            out.byte(PARENT_SPAN_ID);
            out.byte(8);
            out.bytes(p);
        }
        if !self.name.is_empty() {
            out.delimited(NAME, self.name.as_bytes());
        }
        if self.kind != 0 {
            out.byte(KIND);
            out.varint(int32_varint(self.kind));
        }
        if self.start_time_unix_nano != 0 {
            out.byte(START_TIME);
            out.bytes(&self.start_time_unix_nano.to_le_bytes());
        }
        if self.end_time_unix_nano != 0 {
            out.byte(END_TIME);
            out.bytes(&self.end_time_unix_nano.to_le_bytes());
        }
        for kv in &self.attributes {
            out.byte(ATTRIBUTES);
            let len = kv.encoded_len();
            out.varint(len as u64);
            out.message(kv, len);
        }
    }

    /// Writes the fields after the attributes (the status).
    pub(crate) fn encode_tail(&self, out: &mut Out<'_>) {
        if let Some(st) = &self.status {
            out.byte(STATUS);
            out.varint(status_len(st) as u64);
            if !st.message.is_empty() {
                out.delimited(STATUS_MESSAGE, st.message.as_bytes());
            }
            if st.code != 0 {
                out.byte(STATUS_CODE);
                out.varint(int32_varint(st.code));
            }
        }
    }

    /// As a prost `Span`, with `attributes` only (allocates: for tests and
    /// readers of the prost form).
    pub fn to_proto(&self) -> Span {
        self.clone().into_proto()
    }

    /// As a prost `Span`, moving the attributes, trace state and status.
    pub fn into_proto(self) -> Span {
        Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            trace_state: self.trace_state,
            parent_span_id: self.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            name: self.name.to_string(),
            kind: self.kind,
            start_time_unix_nano: self.start_time_unix_nano,
            end_time_unix_nano: self.end_time_unix_nano,
            attributes: self.attributes,
            status: self.status,
            ..Default::default()
        }
    }
}
