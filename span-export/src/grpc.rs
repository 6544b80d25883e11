//! OTLP/gRPC: `TraceService/Export` calls over a lazily connected plain-text
//! (h2c) tonic channel. Requests are sent as protobuf bytes encoded once per
//! batch (see [`crate::encode_pending_request_bytes`]), so a retry or a call in flight
//! beside others needs no copy of the request message; the channel multiplexes
//! concurrent calls over one HTTP/2 connection.

use crate::retry::{grpc_code_retryable, Outcome};
use crate::settings::{Compression, OtlpSettings};
use crate::ExportError;
use bytes::{BufMut, Bytes};
use hyper::http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::time::Duration;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

pub(crate) struct GrpcTransport {
    client: tonic::client::Grpc<Channel>,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
}

impl GrpcTransport {
    /// Never connects here: the channel connects on first use and reconnects
    /// after failures, so a collector that is down at start costs nothing.
    pub(crate) fn new(s: &OtlpSettings) -> Result<Self, ExportError> {
        let endpoint = endpoint(&s.endpoint)?
            .connect_timeout(s.timeout)
            .tcp_nodelay(true);
        let mut client = tonic::client::Grpc::new(endpoint.connect_lazy());
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

    /// One call with `body`, an encoded `ExportTraceServiceRequest` (shared,
    /// not copied, by retries). Takes `&self`: concurrent calls each use a
    /// clone of the client, which shares the channel.
    pub(crate) async fn send(&self, body: &Bytes, timeout: Duration) -> Outcome {
        let mut request = tonic::Request::new(body.clone());
        request.set_timeout(timeout);
        for (k, v) in &self.metadata {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        let mut client = self.client.clone();
        let call = async move {
            client
                .ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("gRPC channel not ready: {e}")))?;
            client
                .unary(request, PathAndQuery::from_static(EXPORT_PATH), PreEncoded)
                .await
        };
        // grpc-timeout only bounds the server; this bounds connecting and the
        // whole call on our side.
        let result = match tokio::time::timeout(timeout, call).await {
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

// === impl PreEncoded ===

/// A tonic codec whose requests are already protobuf bytes; responses are
/// decoded with prost.
#[derive(Clone, Copy, Debug, Default)]
struct PreEncoded;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PreEncoded;
    type Decoder = PreEncoded;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        PreEncoded
    }
}

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.reserve(item.len());
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for PreEncoded {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        let response = ExportTraceServiceResponse::decode(&mut *src)
            .map_err(|e| tonic::Status::internal(format!("undecodable response: {e}")))?;
        Ok(Some(response))
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
