//! Building and reading OTLP attributes (`KeyValue`) in tests, by borrowing:
//! a reader returns a reference into the slice it is given, so there is no
//! `Box::leak` to get a `&'static` value. For a span whose attributes are
//! assembled on demand (`ExportSpan::attributes()` allocates), keep that
//! `Vec` in a local and read from it, or read the span itself through
//! [`ExportSpanExt`], which borrows from it:
//!
//! ```
//! use test_support::spans::{int_kv, str_value, string_kv, value, AttrsExt};
//! let attrs = vec![string_kv("url.path", "/a"), int_kv("server.port", 80)];
//! assert_eq!(str_value(&attrs, "url.path"), Some("/a"));
//! assert_eq!(attrs.int("server.port"), Some(80));
//! assert!(value(&attrs, "missing").is_none());
//! ```

pub use opentelemetry_proto::tonic::common::v1::any_value::Value;
pub use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use span_model::{AttrValue, ExportSpan};

// === building ===

/// An attribute `key` = `value`.
pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string attribute.
pub fn string_kv(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_string()))
}

/// An integer attribute.
pub fn int_kv(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

// === reading ===

/// The value of the first attribute named `key`, borrowed from `attrs`.
pub fn value<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// The string value of `key`; `None` if absent. Panics if it is not a string.
pub fn str_value<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match value(attrs, key)? {
        Value::StringValue(s) => Some(s),
        other => panic!("attribute {key} is not a string: {other:?}"),
    }
}

/// The integer value of `key`; `None` if absent. Panics if it is not an integer.
pub fn int_value(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match value(attrs, key)? {
        Value::IntValue(v) => Some(*v),
        other => panic!("attribute {key} is not an int: {other:?}"),
    }
}

/// The readers as methods on an attribute slice (`span.attributes.str("k")`).
pub trait AttrsExt {
    fn value(&self, key: &str) -> Option<&Value>;
    fn str(&self, key: &str) -> Option<&str>;
    fn int(&self, key: &str) -> Option<i64>;
}

impl AttrsExt for [KeyValue] {
    fn value(&self, key: &str) -> Option<&Value> {
        value(self, key)
    }
    fn str(&self, key: &str) -> Option<&str> {
        str_value(self, key)
    }
    fn int(&self, key: &str) -> Option<i64> {
        int_value(self, key)
    }
}

// === reading an ExportSpan ===

/// An [`ExportSpan`]'s attributes as exported (its protobuf `span.attributes`
/// first, then its `Attrs`), read by borrowing from the span, so nothing is
/// allocated or leaked to return a `&str`.
pub trait ExportSpanExt {
    /// How many attributes are named `key` (a span should have at most one).
    fn attr_count(&self, key: &str) -> usize;
    /// The string value of `key`; panics if it is not a string.
    fn attr_str(&self, key: &str) -> Option<&str>;
    /// The integer value of `key`; panics if it is not an integer.
    fn attr_int(&self, key: &str) -> Option<i64>;
    /// The value of `key` as exported (a copy).
    fn attr_value(&self, key: &str) -> Option<Value>;
}

impl ExportSpanExt for ExportSpan {
    fn attr_count(&self, key: &str) -> usize {
        let proto = self.span.attributes.iter().filter(|a| a.key == key).count();
        proto + self.attrs.0.iter().filter(|(k, _)| *k == key).count()
    }

    fn attr_str(&self, key: &str) -> Option<&str> {
        if let Some(v) = value(&self.span.attributes, key) {
            return match v {
                Value::StringValue(s) => Some(s),
                other => panic!("attribute {key} is not a string: {other:?}"),
            };
        }
        let v = self.attrs.get(key)?;
        match v.as_str() {
            Some(s) => Some(s),
            None => panic!("attribute {key} is not a string: {v:?}"),
        }
    }

    fn attr_int(&self, key: &str) -> Option<i64> {
        if let Some(v) = value(&self.span.attributes, key) {
            return match v {
                Value::IntValue(i) => Some(*i),
                other => panic!("attribute {key} is not an int: {other:?}"),
            };
        }
        match self.attrs.get(key)? {
            AttrValue::Int(i) => Some(*i),
            other => panic!("attribute {key} is not an int: {other:?}"),
        }
    }

    fn attr_value(&self, key: &str) -> Option<Value> {
        value(&self.attributes(), key).cloned()
    }
}
