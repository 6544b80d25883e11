//! OTLP/HTTP with binary protobuf bodies, over a small hyper client (HTTP/1.1,
//! plain http, pooled keep-alive connections).

use crate::retry::{http_status_retryable, parse_retry_after, Outcome};
use crate::settings::{Compression, OtlpSettings};
use crate::ExportError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::io::Write as _;
use std::time::Duration;

/// Largest response body read; OTLP responses are tiny.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

pub(crate) struct HttpTransport {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    gzip: bool,
}

impl HttpTransport {
    pub(crate) fn new(s: &OtlpSettings) -> Result<Self, ExportError> {
        let uri: Uri = s
            .endpoint
            .parse()
            .map_err(
                |e: hyper::http::uri::InvalidUri| ExportError::InvalidEndpoint {
                    endpoint: s.endpoint.clone(),
                    reason: e.to_string(),
                },
            )?;
        let mut headers = HeaderMap::new();
        for (k, v) in &s.headers {
            let bad = |reason: &str| ExportError::InvalidHeader {
                name: k.clone(),
                reason: reason.to_string(),
            };
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad("invalid name"))?,
                HeaderValue::from_str(v).map_err(|_| bad("invalid value"))?,
            );
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(s.timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            uri,
            headers,
            gzip: s.compression == Compression::Gzip,
        })
    }

    /// The request body from the encoded request: compressed here (once per
    /// batch) when gzip is on, and reused by retries.
    pub(crate) fn body(&self, raw: Vec<u8>) -> Bytes {
        if !self.gzip {
            return raw.into();
        }
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(raw.len() / 4),
            flate2::Compression::fast(),
        );
        // Writing into a Vec cannot fail.
        enc.write_all(&raw).ok();
        enc.finish().unwrap_or_default().into()
    }

    /// One POST of `body`. Takes `&self`: concurrent calls share the client's
    /// connection pool (one keep-alive connection per request in flight).
    pub(crate) async fn send(&self, body: &Bytes, timeout: Duration) -> Outcome {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "application/x-protobuf");
        if self.gzip {
            builder = builder.header(CONTENT_ENCODING, "gzip");
        }
        let mut request = match builder.body(Full::new(body.clone())) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Fatal {
                    reason: e.to_string(),
                }
            }
        };
        request.headers_mut().extend(self.headers.clone());

        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, body))
        };
        let (status, retry_after, body) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Outcome::Retryable {
                    after: None,
                    reason: format!("no answer within {timeout:?}"),
                }
            }
            // Connection refused/reset and the like are transient.
            Ok(Err(e)) => {
                return Outcome::Retryable {
                    after: None,
                    reason: format!("HTTP request failed: {}", error_chain(&e)),
                }
            }
            Ok(Ok(r)) => r,
        };
        if status.is_success() {
            // An empty body is a full success; a body we cannot decode is too
            // (the receiver did say 2xx).
            let partial = ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .unwrap_or_default();
            return Outcome::Ok {
                rejected: partial.rejected_spans.max(0) as u64,
                message: partial.error_message,
            };
        }
        // Error bodies are google.rpc.Status in protobuf.
        let detail = tonic_types::pb::Status::decode(body)
            .map(|s| s.message)
            .unwrap_or_default();
        let reason = format!("HTTP {status}: {detail}");
        if http_status_retryable(status.as_u16()) {
            Outcome::Retryable {
                after: retry_after,
                reason,
            }
        } else {
            Outcome::Fatal { reason }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
