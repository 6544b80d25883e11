//! OTLP/gRPC: tonic's generated `TraceServiceClient` over a lazily connected
//! plain-text (h2c) channel.

use crate::retry::{grpc_code_retryable, Outcome};
use crate::settings::{Compression, OtlpSettings};
use crate::ExportError;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

pub(crate) struct GrpcTransport {
    client: TraceServiceClient<Channel>,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
}

impl GrpcTransport {
    /// Never connects here: the channel connects on first use and reconnects
    /// after failures, so a collector that is down at start costs nothing.
    pub(crate) fn new(s: &OtlpSettings) -> Result<Self, ExportError> {
        let endpoint = endpoint(&s.endpoint)?
            .connect_timeout(s.timeout)
            .tcp_nodelay(true);
        let mut client = TraceServiceClient::new(endpoint.connect_lazy());
        if s.compression == Compression::Gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        let metadata = s
            .headers
            .iter()
            .map(|(k, v)| {
                let bad = |reason: &str| ExportError::InvalidHeader {
                    name: k.clone(),
                    reason: reason.to_string(),
                };
                Ok((
                    AsciiMetadataKey::from_bytes(k.as_bytes()).map_err(|_| bad("invalid name"))?,
                    AsciiMetadataValue::try_from(v.as_str()).map_err(|_| bad("invalid value"))?,
                ))
            })
            .collect::<Result<_, ExportError>>()?;
        Ok(Self { client, metadata })
    }

    pub(crate) async fn send(
        &mut self,
        req: &ExportTraceServiceRequest,
        timeout: Duration,
    ) -> Outcome {
        // tonic takes the message by value; a retry needs it again.
        let mut request = tonic::Request::new(req.clone());
        request.set_timeout(timeout);
        for (k, v) in &self.metadata {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        // grpc-timeout only bounds the server; this bounds connecting and the
        // whole call on our side.
        let result = match tokio::time::timeout(timeout, self.client.export(request)).await {
            Ok(r) => r,
            Err(_) => {
                return Outcome::Retryable {
                    after: None,
                    reason: format!("no answer within {timeout:?}"),
                }
            }
        };
        match result {
            Ok(response) => {
                let partial = response.into_inner().partial_success.unwrap_or_default();
                Outcome::Ok {
                    rejected: partial.rejected_spans.max(0) as u64,
                    message: partial.error_message,
                }
            }
            Err(status) => classify(&status),
        }
    }
}

/// Checks that tonic accepts the URL (used by settings resolution as well).
pub(crate) fn endpoint(url: &str) -> Result<Endpoint, ExportError> {
    Endpoint::from_shared(url.to_string()).map_err(|e| ExportError::InvalidEndpoint {
        endpoint: url.to_string(),
        reason: e.to_string(),
    })
}

fn classify(status: &tonic::Status) -> Outcome {
    let retry_delay = status.get_details_retry_info().and_then(|r| r.retry_delay);
    let reason = format!("gRPC {:?}: {}", status.code(), status.message());
    if grpc_code_retryable(status.code(), retry_delay.is_some()) {
        Outcome::Retryable {
            after: retry_delay,
            reason,
        }
    } else {
        Outcome::Fatal { reason }
    }
}
