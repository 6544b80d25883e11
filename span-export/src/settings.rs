//! Resolving the YAML `export` section and the standard `OTEL_EXPORTER_OTLP_*`
//! variables into the settings the exporter runs with.
//!
//! Precedence, as the OTLP exporter spec says: a `_TRACES_` variable beats the
//! generic one, and any variable beats the YAML. Empty variables count as unset.

use crate::ExportError;
use std::time::Duration;
use wirespan_config::{ExportConfig, OtlpConfig, OtlpProtocol};

/// Where the HTTP exporter posts when only a base endpoint is known.
const TRACES_PATH: &str = "v1/traces";
/// The YAML default endpoint is the gRPC port; HTTP's default port differs.
const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
/// Largest `export.max_concurrent_exports` (the config's validation says the same).
const MAX_CONCURRENT_EXPORTS: usize = 64;

/// Payload compression of export requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

/// The resolved OTLP transport settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpSettings {
    pub protocol: OtlpProtocol,
    /// For gRPC, `http://host:port`; for HTTP, the full URL posted to
    /// (`.../v1/traces` already appended where the spec says so).
    pub endpoint: String,
    /// Extra request headers (gRPC metadata), names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Timeout of one export request (one attempt).
    pub timeout: Duration,
    pub compression: Compression,
}

/// Everything the exporter needs, after env overrides. Fields are public so
/// callers (and tests) can adjust, for example, the retry timings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSettings {
    /// OTLP export; `None` means spans are only printed.
    pub otlp: Option<OtlpSettings>,
    /// Print one line per span to stdout (always true when `otlp` is `None`).
    pub stdout: bool,
    /// Spans waiting in the queue; beyond it new spans are dropped and counted.
    pub queue_size: usize,
    /// Most bytes of spans held from queuing until their batch is settled
    /// ([`crate::SpanQueue::try_send`] says how a span is counted); beyond it
    /// new spans are dropped and counted.
    pub max_queue_bytes: usize,
    /// Most spans in one batch (one export request, unless over `max_request_bytes`).
    pub max_batch_size: usize,
    /// Largest export request (protobuf bytes before compression); a batch
    /// above it goes as several requests.
    pub max_request_bytes: usize,
    /// Longest a span waits before its (partial) batch is sent.
    pub batch_timeout: Duration,
    /// Most export requests in flight at once (1 to 64).
    pub max_concurrent_exports: usize,
    /// First retry delay; it doubles on each retry, with jitter.
    pub initial_backoff: Duration,
    /// Largest delay between two attempts (without a server-given delay).
    pub max_backoff: Duration,
    /// A batch still failing this long after its first attempt is dropped.
    pub max_retry_time: Duration,
}

impl ExportSettings {
    /// Resolve the YAML config and the process environment (`env` looks one
    /// variable up, so tests can pass a table instead of `std::env::var`).
    pub fn resolve(
        cfg: &ExportConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ExportError> {
        if cfg.queue_size == 0 {
            return Err(ExportError::InvalidSetting(
                "export.queue_size must be at least 1",
            ));
        }
        if cfg.max_queue_bytes == 0 {
            return Err(ExportError::InvalidSetting(
                "export.max_queue_bytes must be above zero",
            ));
        }
        if cfg.max_batch_size == 0 {
            return Err(ExportError::InvalidSetting(
                "export.max_batch_size must be at least 1",
            ));
        }
        if cfg.batch_timeout.is_zero() {
            return Err(ExportError::InvalidSetting(
                "export.batch_timeout must be longer than zero",
            ));
        }
        if !(1..=MAX_CONCURRENT_EXPORTS).contains(&cfg.max_concurrent_exports) {
            return Err(ExportError::InvalidSetting(
                "export.max_concurrent_exports must be 1 to 64",
            ));
        }
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let otlp = resolve_otlp(cfg.otlp.as_ref(), &env)?;
        Ok(Self {
            stdout: cfg.stdout || otlp.is_none(),
            otlp,
            queue_size: cfg.queue_size,
            max_queue_bytes: cfg.max_queue_bytes,
            max_batch_size: cfg.max_batch_size,
            max_request_bytes: cfg.max_request_bytes,
            batch_timeout: cfg.batch_timeout,
            max_concurrent_exports: cfg.max_concurrent_exports,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            max_retry_time: Duration::from_secs(30),
        })
    }
}

/// The first of the `_TRACES_` and generic variable that is set, with its name.
fn pick(env: &dyn Fn(&str) -> Option<String>, suffix: &str) -> Option<(String, String)> {
    [
        format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"),
        format!("OTEL_EXPORTER_OTLP_{suffix}"),
    ]
    .into_iter()
    .find_map(|name| env(&name).map(|v| (name, v.trim().to_string())))
}

fn resolve_otlp(
    yaml: Option<&OtlpConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<OtlpSettings>, ExportError> {
    let traces_endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").map(|v| v.trim().to_string());
    let generic_endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|v| v.trim().to_string());
    if yaml.is_none() && traces_endpoint.is_none() && generic_endpoint.is_none() {
        return Ok(None);
    }
    let defaults = OtlpConfig::default();
    let yaml = yaml.unwrap_or(&defaults);

    let protocol = match pick(env, "PROTOCOL") {
        Some((var, value)) => parse_protocol(&var, &value)?,
        None => yaml.protocol,
    };

    // The signal-specific endpoint is used as given; a generic one (env or
    // YAML) is a base URL that HTTP appends the signal path to.
    let (endpoint, is_base) = match (traces_endpoint, generic_endpoint) {
        (Some(e), _) => (e, false),
        (None, Some(e)) => (e, true),
        (None, None) => {
            let e = if protocol == OtlpProtocol::HttpProtobuf
                && yaml.endpoint == DEFAULT_GRPC_ENDPOINT
            {
                // A config that only switched the protocol to HTTP keeps the
                // gRPC port as endpoint default; use HTTP's default port.
                DEFAULT_HTTP_ENDPOINT.to_string()
            } else {
                yaml.endpoint.trim().to_string()
            };
            (e, true)
        }
    };
    let endpoint = normalize_endpoint(&endpoint, protocol, is_base)?;

    let mut headers: Vec<(String, String)> = Vec::new();
    let mut set_header = |k: String, v: String| {
        let k = k.to_ascii_lowercase();
        match headers.iter_mut().find(|(name, _)| *name == k) {
            Some(h) => h.1 = v,
            None => headers.push((k, v)),
        }
    };
    for (k, v) in &yaml.headers {
        set_header(k.trim().to_string(), v.clone());
    }
    // Generic first, then traces, so a traces header overrides the same name.
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Some(value) = env(var) {
            for (k, v) in parse_headers(var, &value)? {
                set_header(k, v);
            }
        }
    }
    for (k, v) in &headers {
        check_header(k, v)?;
    }

    let timeout = match pick(env, "TIMEOUT") {
        Some((var, value)) => match value.parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                return Err(ExportError::InvalidEnv {
                    var,
                    value,
                    reason: "expected a positive number of milliseconds".into(),
                })
            }
        },
        None => yaml.timeout,
    };
    if timeout.is_zero() {
        return Err(ExportError::InvalidSetting(
            "export.otlp.timeout must be longer than zero",
        ));
    }

    let compression = match pick(env, "COMPRESSION") {
        Some((var, value)) => match value.to_ascii_lowercase().as_str() {
            "gzip" => Compression::Gzip,
            "none" => Compression::None,
            _ => {
                return Err(ExportError::InvalidEnv {
                    var,
                    value,
                    reason: "expected `gzip` or `none`".into(),
                })
            }
        },
        None => Compression::None,
    };

    Ok(Some(OtlpSettings {
        protocol,
        endpoint,
        headers,
        timeout,
        compression,
    }))
}

fn parse_protocol(var: &str, value: &str) -> Result<OtlpProtocol, ExportError> {
    match value {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "http/json" => Err(ExportError::UnsupportedProtocol(value.to_string())),
        _ => Err(ExportError::InvalidEnv {
            var: var.to_string(),
            value: value.to_string(),
            reason: "expected `grpc` or `http/protobuf`".into(),
        }),
    }
}

/// Checks the URL and, for an HTTP base endpoint, appends `/v1/traces`.
fn normalize_endpoint(
    raw: &str,
    protocol: OtlpProtocol,
    is_base: bool,
) -> Result<String, ExportError> {
    let invalid = |reason: &str| ExportError::InvalidEndpoint {
        endpoint: raw.to_string(),
        reason: reason.to_string(),
    };
    // gRPC endpoints are often written `host:4317`; accept that as plain http.
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let uri: hyper::Uri = with_scheme
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(ExportError::TlsUnsupported(raw.to_string())),
        _ => return Err(invalid("the scheme must be http")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if protocol == OtlpProtocol::Grpc {
        crate::grpc::endpoint(&with_scheme)?;
        return Ok(with_scheme);
    }
    if !is_base {
        return Ok(with_scheme);
    }
    let mut url = with_scheme;
    if !url.ends_with('/') {
        url.push('/');
    }
    url.push_str(TRACES_PATH);
    Ok(url)
}

/// `k=v,k2=v2` with URL-encoded (percent-encoded) keys and values.
fn parse_headers(var: &str, value: &str) -> Result<Vec<(String, String)>, ExportError> {
    let mut out = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            return Err(ExportError::InvalidEnv {
                var: var.to_string(),
                value: value.to_string(),
                reason: format!("`{item}` is not key=value"),
            });
        };
        let decode = |s: &str| {
            percent_decode(s.trim()).ok_or_else(|| ExportError::InvalidEnv {
                var: var.to_string(),
                value: value.to_string(),
                reason: format!("`{item}` has an invalid percent-encoding"),
            })
        };
        let k = decode(k)?;
        if k.is_empty() {
            return Err(ExportError::InvalidEnv {
                var: var.to_string(),
                value: value.to_string(),
                reason: format!("`{item}` has an empty key"),
            });
        }
        out.push((k, decode(v)?));
    }
    Ok(out)
}

/// Decodes `%XX` escapes; `None` for a broken escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Rejects names and values that neither HTTP nor gRPC metadata can carry, so a
/// bad header is a start-up error rather than every request failing.
fn check_header(name: &str, value: &str) -> Result<(), ExportError> {
    let bad = |reason: &str| ExportError::InvalidHeader {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("invalid name"))?;
    hyper::header::HeaderValue::from_str(value).map_err(|_| bad("invalid value"))?;
    if name.ends_with("-bin") {
        return Err(bad("binary (-bin) metadata is not supported"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%3Dc").as_deref(), Some("a b=c"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
    }
}
