//! Span attributes without an allocation per attribute.
//!
//! A prost `KeyValue` owns a `String` key and a `String` value: about forty
//! allocations per HTTP span, which were a fifth of the agent's CPU (malloc
//! and free) in the overhead benchmark. Here keys are the semantic-convention
//! names (`&'static str`) and values borrow where they can: most are constants
//! (`"GET"`, `"http"`, `"1.1"`) or shared by every span of a connection
//! (addresses). They are written to protobuf directly, as `Span.attributes`
//! entries (field 9), after the span's own `attributes` and before its status,
//! which is where prost writes them.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use std::sync::Arc;

use crate::wire::{varint_len, Out};

/// One attribute value. Compared by content: a `Static` and an `Owned` with
/// the same text are equal (they encode alike).
#[derive(Clone, Debug)]
pub enum AttrValue {
    Static(&'static str),
    Shared(Arc<str>),
    /// A boxed `str`, not a `String`: 24 bytes a value instead of 32, so a
    /// span's ~20 attributes fit an allocation the allocator keeps cached.
    Owned(Box<str>),
    /// Bytes `start..end` of a shared text: values cut from one string (a
    /// URL's path and query) share its allocation. Made by [`AttrValue::part`].
    Part(Arc<str>, u16, u16),
    Int(i64),
}

impl PartialEq for AttrValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (AttrValue::Int(a), AttrValue::Int(b)) => a == b,
            (AttrValue::Int(_), _) | (_, AttrValue::Int(_)) => false,
            (a, b) => a.as_str() == b.as_str(),
        }
    }
}
impl Eq for AttrValue {}

impl AttrValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Static(s) => Some(s),
            AttrValue::Shared(s) => Some(s),
            AttrValue::Owned(s) => Some(s),
            AttrValue::Part(s, start, end) => Some(
                s.get(usize::from(*start)..usize::from(*end))
                    .unwrap_or_default(),
            ),
            AttrValue::Int(_) => None,
        }
    }

    /// `text[start..end]`, sharing `text` when the offsets fit a `u16` (else
    /// a copy). The range must lie on character boundaries; one that does
    /// not reads as "" (never a panic).
    pub fn part(text: &Arc<str>, start: usize, end: usize) -> Self {
        match (u16::try_from(start), u16::try_from(end)) {
            (Ok(s), Ok(e)) => AttrValue::Part(text.clone(), s, e),
            _ => AttrValue::Owned(text.get(start..end).unwrap_or_default().into()),
        }
    }

    fn to_any_value(&self) -> any_value::Value {
        match self {
            AttrValue::Int(v) => any_value::Value::IntValue(*v),
            other => any_value::Value::StringValue(other.as_str().unwrap_or_default().to_string()),
        }
    }

    /// Length of the `AnyValue` message.
    fn any_value_len(&self) -> usize {
        match self {
            // string_value = 1
            AttrValue::Int(v) => 1 + varint_len(*v as u64),
            s => {
                let n = s.as_str().map_or(0, str::len);
                1 + varint_len(n as u64) + n
            }
        }
    }
}

impl From<&'static str> for AttrValue {
    fn from(s: &'static str) -> Self {
        AttrValue::Static(s)
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Owned(s.into_boxed_str())
    }
}
impl From<Arc<str>> for AttrValue {
    fn from(s: Arc<str>) -> Self {
        AttrValue::Shared(s)
    }
}
impl From<crate::Text> for AttrValue {
    fn from(t: crate::Text) -> Self {
        match t {
            crate::Text::Static(s) => AttrValue::Static(s),
            crate::Text::Shared(s) => AttrValue::Shared(s),
            crate::Text::Owned(s) => AttrValue::Owned(s.into_boxed_str()),
        }
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}

/// `Span.attributes` key (field 9, length-delimited; OTLP trace.proto).
const SPAN_ATTRIBUTES: u8 = (9 << 3) | 2;
/// `KeyValue.key` (1) and `KeyValue.value` (2), length-delimited.
const KV_KEY: u8 = (1 << 3) | 2;
const KV_VALUE: u8 = (2 << 3) | 2;
/// `AnyValue.string_value` (1, length-delimited) and `AnyValue.int_value` (3, varint).
const ANY_STRING: u8 = (1 << 3) | 2;
const ANY_INT: u8 = 3 << 3;

/// A span's attributes, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs(pub Vec<(&'static str, AttrValue)>);

impl Attrs {
    pub fn with_capacity(n: usize) -> Self {
        Attrs(Vec::with_capacity(n))
    }

    pub fn push(&mut self, key: &'static str, value: impl Into<AttrValue>) {
        self.0.push((key, value.into()));
    }

    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Removes every attribute named `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| *k != key);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Length of one `KeyValue` message.
    fn key_value_len(key: &str, value: &AttrValue) -> usize {
        let any = value.any_value_len();
        (1 + varint_len(key.len() as u64) + key.len()) + (1 + varint_len(any as u64) + any)
    }

    /// Bytes these attributes add to the encoded `Span` message.
    pub fn encoded_len(&self) -> usize {
        self.0
            .iter()
            .map(|(k, v)| {
                let kv = Self::key_value_len(k, v);
                1 + varint_len(kv as u64) + kv
            })
            .sum()
    }

    /// Appends the attributes as `Span.attributes` entries.
    pub fn encode_raw(&self, buf: &mut Vec<u8>) {
        crate::wire::append(buf, self.encoded_len(), |out| self.encode_to(out));
    }

    /// Writes the attributes as `Span.attributes` entries.
    pub(crate) fn encode_to(&self, out: &mut Out<'_>) {
        out.local(|out| self.encode_local(out));
    }

    #[inline]
    fn encode_local(&self, out: &mut Out<'_>) {
        // Each value's text is looked up once (`as_str` per use cost ~500
        // instructions a span once `Part` values existed).
        for (k, v) in &self.0 {
            let key_len = 1 + varint_len(k.len() as u64) + k.len();
            match v {
                AttrValue::Int(i) => {
                    let i = *i as u64;
                    let any = 1 + varint_len(i);
                    out.byte(SPAN_ATTRIBUTES);
                    out.varint((key_len + 1 + varint_len(any as u64) + any) as u64);
                    out.delimited(KV_KEY, k.as_bytes());
                    out.byte(KV_VALUE);
                    out.varint(any as u64);
                    out.byte(ANY_INT);
                    out.varint(i);
                }
                s => {
                    let s = s.as_str().unwrap_or_default();
                    let any = 1 + varint_len(s.len() as u64) + s.len();
                    out.byte(SPAN_ATTRIBUTES);
                    out.varint((key_len + 1 + varint_len(any as u64) + any) as u64);
                    out.delimited(KV_KEY, k.as_bytes());
                    out.byte(KV_VALUE);
                    out.varint(any as u64);
                    out.delimited(ANY_STRING, s.as_bytes());
                }
            }
        }
    }

    /// As prost `KeyValue`s (allocates: for printing and tests).
    pub fn to_key_values(&self) -> Vec<KeyValue> {
        self.0
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).to_string(),
                value: Some(AnyValue {
                    value: Some(v.to_any_value()),
                }),
                ..Default::default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;

    /// The hand-written encoding is exactly prost's for the same attributes.
    #[test]
    fn encoding_matches_prost() {
        let mut attrs = Attrs::default();
        attrs.push("http.request.method", "GET");
        attrs.push("url.path", "/a/b".to_string());
        attrs.push("network.peer.address", Arc::<str>::from("10.0.0.1"));
        let url: Arc<str> = "/a/b?x=1".into();
        attrs.push("url.query", AttrValue::part(&url, 5, 8));
        attrs.push("x.part.empty", AttrValue::part(&url, 8, 8));
        attrs.push("server.port", 8080i64);
        attrs.push("http.request.body.size", 0i64);
        attrs.push("x.negative", -5i64);
        attrs.push("x.empty", "");
        attrs.push("x.long", "v".repeat(300));
        let base = Span {
            name: "GET".into(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: 5,
            ..Default::default()
        };
        let mut ours = base.encode_to_vec();
        let before = ours.len();
        attrs.encode_raw(&mut ours);
        assert_eq!(ours.len() - before, attrs.encoded_len());
        let mut theirs = base.clone();
        theirs.attributes = attrs.to_key_values();
        assert_eq!(ours, theirs.encode_to_vec());
        assert_eq!(Span::decode(ours.as_slice()).expect("decodes"), theirs);
    }

    #[test]
    fn parts_read_as_their_range() {
        let text: Arc<str> = "/a/b?x=1".into();
        assert_eq!(AttrValue::part(&text, 0, 4).as_str(), Some("/a/b"));
        assert_eq!(AttrValue::part(&text, 5, 8).as_str(), Some("x=1"));
        assert_eq!(AttrValue::part(&text, 5, 8), AttrValue::Static("x=1"));
        assert!(matches!(AttrValue::part(&text, 0, 4), AttrValue::Part(..)));
        let long: Arc<str> = "y".repeat(70_000).into();
        let tail = AttrValue::part(&long, 69_990, 70_000);
        assert!(matches!(tail, AttrValue::Owned(_)));
        assert_eq!(tail.as_str(), Some("yyyyyyyyyy"));
        let multibyte: Arc<str> = "é".into();
        assert_eq!(AttrValue::part(&multibyte, 0, 1).as_str(), Some(""));
    }

    #[test]
    fn get_and_remove() {
        let mut attrs = Attrs::default();
        attrs.push("error.type", "500".to_string());
        attrs.push("a", 1i64);
        assert_eq!(attrs.get("a"), Some(&AttrValue::Int(1)));
        attrs.remove("error.type");
        assert_eq!(attrs.get("error.type"), None);
        assert_eq!(attrs.len(), 1);
    }
}
