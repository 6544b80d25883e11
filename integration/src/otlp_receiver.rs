//! An in-process OTLP trace receiver (gRPC or HTTP/protobuf) that keeps every
//! `ExportTraceServiceRequest`. It runs on its own Tokio runtime so the tests
//! themselves stay plain blocking `#[test]` functions.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::spans::{flatten, FlatSpan};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The `OTEL_EXPORTER_OTLP_PROTOCOL` value.
    pub fn env_value(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

type Inbox = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    pub protocol: OtlpProtocol,
    inbox: Inbox,
    runtime: Option<tokio::runtime::Runtime>,
}

struct Grpc(Inbox);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn handle_http(
    inbox: Inbox,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let respond = |status: u16, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    if req.method() != hyper::Method::POST || req.uri().path() != "/v1/traces" {
        return Ok(respond(404, Vec::new()));
    }
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let body = req.into_body().collect().await?.to_bytes();
    let body = if gzip {
        use std::io::Read;
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return Ok(respond(400, Vec::new()));
        }
        Bytes::from(out)
    } else {
        body
    };
    match ExportTraceServiceRequest::decode(body) {
        Ok(r) => {
            inbox.lock().unwrap().push(r);
            Ok(respond(
                200,
                ExportTraceServiceResponse::default().encode_to_vec(),
            ))
        }
        Err(_) => Ok(respond(400, Vec::new())),
    }
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 (any free port).
    pub fn start(protocol: OtlpProtocol) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("receiver runtime");
        let inbox: Inbox = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().unwrap();
        let inbox2 = inbox.clone();
        match protocol {
            OtlpProtocol::Grpc => {
                let service = TraceServiceServer::new(Grpc(inbox2))
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                    .max_decoding_message_size(64 << 20);
                runtime.spawn(async move {
                    let _ = tonic::transport::Server::builder()
                        .add_service(service)
                        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                            listener,
                        ))
                        .await;
                });
            }
            OtlpProtocol::HttpProtobuf => {
                runtime.spawn(async move {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let inbox = inbox2.clone();
                        tokio::spawn(async move {
                            let svc = service_fn(move |req| handle_http(inbox.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                });
            }
        }
        Receiver {
            addr,
            protocol,
            inbox,
            runtime: Some(runtime),
        }
    }

    /// The URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends
    /// `/v1/traces` for HTTP).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.inbox.lock().unwrap().clone()
    }

    /// Every span received so far, with its resource.
    pub fn spans(&self) -> Vec<FlatSpan> {
        self.inbox
            .lock()
            .unwrap()
            .iter()
            .flat_map(flatten)
            .collect()
    }

    /// Waits (bounded) until `pred` holds for the received spans; returns them.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[FlatSpan]) -> bool,
    ) -> Result<Vec<FlatSpan>, Vec<FlatSpan>> {
        let mut spans = Vec::new();
        let ok = crate::wait::wait_until(timeout, || {
            spans = self.spans();
            pred(&spans)
        });
        if ok {
            Ok(spans)
        } else {
            Err(spans)
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
