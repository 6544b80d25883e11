//! The one-line, human-readable form of a span, printed when no OTLP endpoint is
//! configured (or `export.stdout: true`).
//!
//! ```text
//! 2026-11-25T19:40:01.123Z SERVER nginx GET /index.html 200 1.2ms peer=curl client=10.0.0.7:51234 trace=4bf9…4736 span=00f0…02b7
//! ```
//! Fields: start time (UTC, milliseconds), kind, `service.name`, span name, HTTP
//! status (`-` if none; `ERROR` appended when the span status is an error),
//! duration, then whichever key attributes the span has, then the ids.

use crate::ExportSpan;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use std::fmt::Write as _;

/// The stdout line for one span (no trailing newline).
pub fn format_span_line(s: &ExportSpan) -> String {
    let span = &s.span;
    let all = s.attributes();
    let attrs = &all;
    let mut line = String::with_capacity(160);
    push_timestamp(&mut line, span.start_time_unix_nano);
    line.push(' ');
    line.push_str(kind_name(span.kind));
    line.push(' ');
    match attr(&s.resource.attributes, "service.name") {
        Some(name) if !name.is_empty() => push_clean(&mut line, &name),
        _ => line.push_str("unknown_service"),
    }
    line.push(' ');
    push_clean(&mut line, &span.name);
    line.push(' ');
    match attr(attrs, "http.response.status_code") {
        Some(code) => line.push_str(&code),
        None => line.push('-'),
    }
    if span.status.as_ref().map(|st| st.code) == Some(StatusCode::Error as i32) {
        line.push_str(" ERROR");
    }
    line.push(' ');
    push_duration(
        &mut line,
        span.end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano),
    );

    let peer = attr(attrs, "service.peer.name").or_else(|| attr(attrs, "peer.service"));
    push_field(&mut line, "peer", peer);
    push_field(&mut line, "client", address(attrs, "client"));
    push_field(&mut line, "server", address(attrs, "server"));
    // The name is usually `METHOD route`; show the concrete path when it differs.
    let path = attr(attrs, "url.path").map(|p| match attr(attrs, "url.query") {
        Some(q) if !q.is_empty() => format!("{p}?{q}"),
        _ => p,
    });
    push_field(
        &mut line,
        "path",
        path.filter(|p| !span.name.contains(p.as_str())),
    );
    let error = attr(attrs, "error.type").or_else(|| {
        span.status
            .as_ref()
            .filter(|st| !st.message.is_empty())
            .map(|st| st.message.clone())
    });
    push_field(&mut line, "error", error);

    line.push_str(" trace=");
    push_hex(&mut line, &span.trace_id);
    line.push_str(" span=");
    push_hex(&mut line, &span.span_id);
    if let Some(parent) = &span.parent_span_id {
        line.push_str(" parent=");
        push_hex(&mut line, parent);
    }
    line
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "SERVER",
        Ok(SpanKind::Client) => "CLIENT",
        Ok(SpanKind::Internal) => "INTERNAL",
        Ok(SpanKind::Producer) => "PRODUCER",
        Ok(SpanKind::Consumer) => "CONSUMER",
        _ => "UNSPECIFIED",
    }
}

/// A string, integer, double or bool attribute as text.
fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    let value = attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `client.address`/`client.port` (or `server.*`) as `addr:port`.
fn address(attrs: &[KeyValue], side: &str) -> Option<String> {
    let addr = attr(attrs, &format!("{side}.address"))?;
    Some(match attr(attrs, &format!("{side}.port")) {
        Some(port) if addr.contains(':') => format!("[{addr}]:{port}"),
        Some(port) => format!("{addr}:{port}"),
        None => addr,
    })
}

fn push_field(line: &mut String, key: &str, value: Option<String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        push_clean(line, &v);
    }
}

/// Keeps the output one line per span: control characters become `\xNN`.
fn push_clean(line: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_control() {
            write!(line, "\\x{:02x}", c as u32).ok();
        } else {
            line.push(c);
        }
    }
}

fn push_hex(line: &mut String, bytes: &[u8]) {
    if bytes.is_empty() {
        line.push('-');
    }
    for b in bytes {
        write!(line, "{b:02x}").ok();
    }
}

fn push_duration(line: &mut String, nanos: u64) {
    (if nanos < 1_000_000 {
        write!(line, "{}µs", nanos / 1_000)
    } else if nanos < 1_000_000_000 {
        write!(line, "{:.1}ms", nanos as f64 / 1e6)
    } else {
        write!(line, "{:.2}s", nanos as f64 / 1e9)
    })
    .ok();
}

/// RFC 3339 UTC with milliseconds, without a date-time dependency.
fn push_timestamp(line: &mut String, unix_nanos: u64) {
    let secs = unix_nanos / 1_000_000_000;
    let millis = (unix_nanos % 1_000_000_000) / 1_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    write!(
        line,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
    .ok();
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let mut s = String::new();
        push_timestamp(&mut s, 0);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        s.clear();
        // 2000-02-29T12:34:56.789Z, a leap day.
        push_timestamp(&mut s, 951_827_696_789_000_000);
        assert_eq!(s, "2000-02-29T12:34:56.789Z");
    }

    #[test]
    fn durations() {
        let mut s = String::new();
        for n in [350_000, 1_234_000, 2_500_000_000] {
            push_duration(&mut s, n);
            s.push(' ');
        }
        assert_eq!(s, "350µs 1.2ms 2.50s ");
    }
}
