//! Building and reading OTLP attributes (`KeyValue`) in tests, by borrowing:
//! a reader returns a reference into the slice it is given, so there is no
//! `Box::leak` to get a `&'static` value. For a span whose attributes are
//! assembled on demand (`ExportSpan::attributes()` allocates), keep that
//! `Vec` in a local and read from it:
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
