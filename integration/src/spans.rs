//! Received spans flattened with their resource, and readable attribute values.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, status};
use std::collections::BTreeMap;
use std::fmt;

/// An attribute value, as the tests compare it.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    Other(String),
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => write!(f, "{s:?}"),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Double(d) => write!(f, "{d}"),
            AttrValue::Other(o) => write!(f, "{o}"),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_string())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}
impl From<u16> for AttrValue {
    fn from(v: u16) -> Self {
        AttrValue::Int(v as i64)
    }
}
impl From<u32> for AttrValue {
    fn from(v: u32) -> Self {
        AttrValue::Int(v as i64)
    }
}
impl From<u64> for AttrValue {
    fn from(v: u64) -> Self {
        AttrValue::Int(v as i64)
    }
}
impl From<usize> for AttrValue {
    fn from(v: usize) -> Self {
        AttrValue::Int(v as i64)
    }
}

pub type Attrs = BTreeMap<String, AttrValue>;

fn attrs(kvs: &[KeyValue]) -> Attrs {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
                Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
                Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
                Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(*d),
                other => AttrValue::Other(format!("{other:?}")),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

/// One span with its resource's attributes.
#[derive(Clone, Debug)]
pub struct FlatSpan {
    pub resource: Attrs,
    pub name: String,
    /// `span::SpanKind` as i32.
    pub kind: i32,
    pub attrs: Attrs,
    /// `status::StatusCode` as i32 (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    pub status_message: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub start_ns: u64,
    pub end_ns: u64,
}

pub const KIND_SERVER: i32 = span::SpanKind::Server as i32;
pub const KIND_CLIENT: i32 = span::SpanKind::Client as i32;
pub const STATUS_UNSET: i32 = status::StatusCode::Unset as i32;
pub const STATUS_ERROR: i32 = status::StatusCode::Error as i32;

/// Every span of a request, each with its resource.
pub fn flatten(req: &ExportTraceServiceRequest) -> Vec<FlatSpan> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let (status_code, status_message) = s
                    .status
                    .as_ref()
                    .map(|st| (st.code, st.message.clone()))
                    .unwrap_or_default();
                out.push(FlatSpan {
                    resource: resource.clone(),
                    name: s.name.clone(),
                    kind: s.kind,
                    attrs: attrs(&s.attributes),
                    status_code,
                    status_message,
                    trace_id: s.trace_id.clone(),
                    span_id: s.span_id.clone(),
                    parent_span_id: s.parent_span_id.clone(),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                });
            }
        }
    }
    out
}

impl FlatSpan {
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attrs.get(key)
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attrs.get(key) {
            Some(AttrValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn res_str(&self, key: &str) -> Option<&str> {
        match self.resource.get(key) {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn is_server(&self) -> bool {
        self.kind == KIND_SERVER
    }

    pub fn is_client(&self) -> bool {
        self.kind == KIND_CLIENT
    }

    /// Spans of HTTP traffic to/from server port `port`: the server side's
    /// local port (`server.port` when the agent runs with its default
    /// attributes, which leave out `network.local.port`) or the client side's
    /// peer port.
    pub fn involves_port(&self, port: u16) -> bool {
        let p = port as i64;
        let local = self
            .int("network.local.port")
            .or_else(|| self.int("server.port"));
        (self.is_server() && local == Some(p))
            || (self.is_client() && self.int("network.peer.port") == Some(p))
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            KIND_SERVER => "SERVER",
            KIND_CLIENT => "CLIENT",
            _ => "OTHER",
        }
    }
}

impl fmt::Display for FlatSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {:?} status={} {:?}",
            self.kind_name(),
            self.name,
            self.status_code,
            self.status_message
        )?;
        for (k, v) in &self.attrs {
            writeln!(f, "    {k} = {v}")?;
        }
        let r: Vec<String> = ["service.name", "process.pid", "process.executable.name"]
            .iter()
            .filter_map(|k| self.resource.get(*k).map(|v| format!("{k}={v}")))
            .collect();
        writeln!(f, "    resource: {}", r.join(" "))
    }
}

/// All spans, printed, for failure messages.
pub fn show(spans: &[FlatSpan]) -> String {
    if spans.is_empty() {
        return "  (no spans)\n".to_string();
    }
    spans.iter().map(|s| format!("  {s}")).collect()
}

/// The span the test expects: kind, name, status, every attribute, and the
/// resource attributes it checks.
#[derive(Clone, Debug)]
pub struct ExpectedSpan {
    pub kind: i32,
    pub name: String,
    pub status_code: i32,
    pub attrs: Attrs,
    pub resource: Attrs,
}

impl ExpectedSpan {
    pub fn new(kind: i32, name: &str) -> Self {
        Self {
            kind,
            name: name.to_string(),
            status_code: STATUS_UNSET,
            attrs: Attrs::new(),
            resource: Attrs::new(),
        }
    }

    pub fn attr(mut self, k: &str, v: impl Into<AttrValue>) -> Self {
        self.attrs.insert(k.to_string(), v.into());
        self
    }

    pub fn res(mut self, k: &str, v: impl Into<AttrValue>) -> Self {
        self.resource.insert(k.to_string(), v.into());
        self
    }

    pub fn error(mut self, error_type: &str) -> Self {
        self.status_code = STATUS_ERROR;
        self.attrs
            .insert("error.type".into(), AttrValue::Str(error_type.into()));
        self
    }

    /// Differences with a received span ("" when equal). Every attribute of
    /// the span must be expected (exact set); resource keys are the ones listed.
    pub fn diff(&self, got: &FlatSpan) -> String {
        let mut d = String::new();
        if got.kind != self.kind {
            d += &format!("kind {} != expected {}\n", got.kind, self.kind);
        }
        if got.name != self.name {
            d += &format!("name {:?} != expected {:?}\n", got.name, self.name);
        }
        if got.status_code != self.status_code {
            d += &format!(
                "status {} != expected {}\n",
                got.status_code, self.status_code
            );
        }
        for (k, v) in &self.attrs {
            match got.attrs.get(k) {
                Some(g) if g == v => {}
                Some(g) => d += &format!("attribute {k} = {g}, expected {v}\n"),
                None => d += &format!("attribute {k} missing, expected {v}\n"),
            }
        }
        for (k, g) in &got.attrs {
            if !self.attrs.contains_key(k) {
                d += &format!("unexpected attribute {k} = {g}\n");
            }
        }
        for (k, v) in &self.resource {
            match got.resource.get(k) {
                Some(g) if g == v => {}
                Some(g) => d += &format!("resource {k} = {g}, expected {v}\n"),
                None => d += &format!("resource {k} missing, expected {v}\n"),
            }
        }
        d
    }
}

/// Asserts that `got` is exactly `expected` as a multiset (any order): each
/// expected span matches one received span with no difference.
pub fn assert_spans(expected: &[ExpectedSpan], got: &[FlatSpan], context: &str) {
    let mut unused: Vec<&FlatSpan> = got.iter().collect();
    let mut report = String::new();
    for (i, e) in expected.iter().enumerate() {
        let pos = unused.iter().position(|g| e.diff(g).is_empty());
        match pos {
            Some(p) => {
                unused.remove(p);
            }
            None => {
                // Show the closest candidate (same kind and name, fewest diffs).
                let best = unused
                    .iter()
                    .min_by_key(|g| e.diff(g).lines().count())
                    .map(|g| e.diff(g))
                    .unwrap_or_else(|| "no span left to compare\n".into());
                report += &format!(
                    "expected span #{i} ({} {:?}) not received; closest differs by:\n{best}\n",
                    if e.kind == KIND_SERVER {
                        "SERVER"
                    } else {
                        "CLIENT"
                    },
                    e.name
                );
            }
        }
    }
    if !unused.is_empty() && report.is_empty() {
        report += &format!("{} unexpected extra span(s)\n", unused.len());
    }
    assert!(
        report.is_empty(),
        "spans differ from what the test sent:\n{report}\nreceived spans:\n{}\n{context}",
        show(got)
    );
}
