//! The in-process OTLP trace receiver every test and bench uses: gRPC
//! (tonic `TraceService`, gzip accepted, messages up to 64 MiB) or
//! HTTP/protobuf (hyper, `POST /v1/traces`, gzip accepted).
//!
//! What it saw is in an [`Inbox`] shared with the test: every request (or,
//! for throughput benches, only the span count), the headers or gRPC
//! metadata of each, and how many attempts came. The test can make it fail
//! on demand: [`Inbox::script`] queues the [`Reply`] to give the next
//! requests (errors with or without a retry delay, partial success), and
//! [`Gate`] holds requests inside the receiver to see how many are in flight.
//!
//! [`Receiver`] runs on the caller's Tokio runtime (for `#[tokio::test]`);
//! [`BlockingReceiver`] brings its own, for plain blocking tests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use wirespan_config::OtlpProtocol;

/// What the receiver answers to a request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Accepted (the default when nothing is scripted).
    Ok,
    /// Accepted, with `rejected` spans refused (OTLP partial success).
    Partial { rejected: i64, message: String },
    /// A gRPC error status, with `RetryInfo` if `retry_after` (gRPC only).
    Grpc {
        code: tonic::Code,
        retry_after: Option<Duration>,
    },
    /// An HTTP error status with a `google.rpc.Status` body, and a
    /// `Retry-After` header (seconds) if `retry_after` (HTTP only).
    Http {
        status: u16,
        retry_after: Option<u64>,
    },
}

/// Request headers (or gRPC metadata), names in lower case.
pub type Headers = Vec<(String, String)>;

/// Spans in an export request.
pub fn span_count(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

// === Inbox ===

/// What a receiver saw, shared between the receiver and the test (clones
/// share it). [`Inbox::default`] keeps every request; [`Inbox::counting`]
/// only counts, for benches sending millions of spans.
#[derive(Clone)]
pub struct Inbox(Arc<State>);

struct State {
    keep: bool,
    requests: Mutex<Vec<ExportTraceServiceRequest>>,
    headers: Mutex<Vec<Headers>>,
    script: Mutex<VecDeque<Reply>>,
    attempts: AtomicU64,
    spans: AtomicU64,
    gate: Gate,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox::new(true)
    }
}

impl Inbox {
    fn new(keep: bool) -> Self {
        Inbox(Arc::new(State {
            keep,
            requests: Mutex::default(),
            headers: Mutex::default(),
            script: Mutex::default(),
            attempts: AtomicU64::new(0),
            spans: AtomicU64::new(0),
            gate: Gate::default(),
        }))
    }

    /// An inbox that keeps no requests and no headers: only
    /// [`span_count`](Self::span_count) and [`attempts`](Self::attempts).
    pub fn counting() -> Self {
        Inbox::new(false)
    }

    /// Queues the replies to the next requests, in order; once they are
    /// used up, requests are answered [`Reply::Ok`].
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.0.script.lock().unwrap().extend(replies);
    }

    fn next_reply(&self) -> Reply {
        self.0
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::Ok)
    }

    /// Every request accepted (answered OK or partial) so far, in arrival
    /// order (empty for a counting inbox).
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.0.requests.lock().unwrap().clone()
    }

    /// The headers of every request seen, accepted or not, in arrival order
    /// (empty for a counting inbox).
    pub fn headers(&self) -> Vec<Headers> {
        self.0.headers.lock().unwrap().clone()
    }

    /// Spans in the requests accepted (answered OK or partial) so far.
    pub fn span_count(&self) -> u64 {
        self.0.spans.load(SeqCst)
    }

    /// Every request seen, answered OK or not.
    pub fn attempts(&self) -> u64 {
        self.0.attempts.load(SeqCst)
    }

    /// The door requests pass before they are answered.
    pub fn gate(&self) -> &Gate {
        &self.0.gate
    }

    fn seen(&self, headers: Headers) {
        self.0.attempts.fetch_add(1, SeqCst);
        if self.0.keep {
            self.0.headers.lock().unwrap().push(headers);
        }
    }

    fn accept(&self, request: ExportTraceServiceRequest) {
        self.0.spans.fetch_add(span_count(&request), SeqCst);
        if self.0.keep {
            self.0.requests.lock().unwrap().push(request);
        }
    }
}

// === Gate ===

/// A door every request passes before it is answered: open by default; while
/// closed, requests wait inside the receiver, so a test can see how many are
/// in flight at once.
#[derive(Default)]
pub struct Gate {
    closed: AtomicBool,
    opened: tokio::sync::Notify,
    /// Requests inside the receiver now, and the most seen at once.
    inside: AtomicU64,
    most_inside: AtomicU64,
}

impl Gate {
    pub fn close(&self) {
        self.closed.store(true, SeqCst);
    }

    pub fn open(&self) {
        self.closed.store(false, SeqCst);
        self.opened.notify_waiters();
    }

    /// Requests being handled (waiting at the gate or not) right now.
    pub fn inside(&self) -> u64 {
        self.inside.load(SeqCst)
    }

    /// The most requests handled at the same time so far.
    pub fn most_inside(&self) -> u64 {
        self.most_inside.load(SeqCst)
    }

    async fn pass<T>(&self, handle: impl std::future::Future<Output = T>) -> T {
        let now = self.inside.fetch_add(1, SeqCst) + 1;
        self.most_inside.fetch_max(now, SeqCst);
        loop {
            let opened = self.opened.notified();
            if !self.closed.load(SeqCst) {
                break;
            }
            opened.await;
        }
        let out = handle.await;
        self.inside.fetch_sub(1, SeqCst);
        out
    }
}

// === Receiver ===

/// A receiver running on the current Tokio runtime; dropping it stops the
/// server (connections already accepted may linger until the runtime ends).
pub struct Receiver {
    pub addr: SocketAddr,
    pub protocol: OtlpProtocol,
    pub inbox: Inbox,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 (any free port) with a new inbox.
    pub async fn start(protocol: OtlpProtocol) -> Receiver {
        Receiver::start_on(protocol, "127.0.0.1:0", Inbox::default()).await
    }

    /// Starts a receiver on `addr`, recording into `inbox`; panics if `addr`
    /// cannot be bound.
    pub async fn start_on(protocol: OtlpProtocol, addr: &str, inbox: Inbox) -> Receiver {
        Receiver::try_start_on(protocol, addr, inbox)
            .await
            .unwrap_or_else(|e| panic!("bind the OTLP receiver to {addr}: {e}"))
    }

    /// As [`start_on`](Self::start_on), returning the bind error.
    pub async fn try_start_on(
        protocol: OtlpProtocol,
        addr: &str,
        inbox: Inbox,
    ) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = match protocol {
            OtlpProtocol::Grpc => tokio::spawn(serve_grpc(listener, inbox.clone())),
            OtlpProtocol::HttpProtobuf => tokio::spawn(serve_http(listener, inbox.clone())),
        };
        Ok(Receiver {
            addr,
            protocol,
            inbox,
            task,
        })
    }

    /// The URL for the exporter's endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`;
    /// the HTTP exporter appends `/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A receiver on a Tokio runtime of its own (2 workers), so the test stays
/// a plain blocking function. Dropping it stops the runtime in the background;
/// [`stop`](Self::stop) waits until every connection is closed.
pub struct BlockingReceiver {
    pub addr: SocketAddr,
    pub protocol: OtlpProtocol,
    receiver: Option<Receiver>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingReceiver {
    /// Starts a receiver on 127.0.0.1 (any free port) with a new inbox.
    pub fn start(protocol: OtlpProtocol) -> BlockingReceiver {
        BlockingReceiver::start_on(protocol, "127.0.0.1:0", Inbox::default())
    }

    /// Starts a receiver on `addr`, recording into `inbox`; panics if `addr`
    /// cannot be bound.
    pub fn start_on(protocol: OtlpProtocol, addr: &str, inbox: Inbox) -> BlockingReceiver {
        BlockingReceiver::try_start_on(protocol, addr, inbox)
            .unwrap_or_else(|e| panic!("bind the OTLP receiver to {addr}: {e}"))
    }

    /// As [`start_on`](Self::start_on), returning the bind error.
    pub fn try_start_on(
        protocol: OtlpProtocol,
        addr: &str,
        inbox: Inbox,
    ) -> std::io::Result<BlockingReceiver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let receiver = runtime.block_on(Receiver::try_start_on(protocol, addr, inbox))?;
        Ok(BlockingReceiver {
            addr: receiver.addr,
            protocol,
            receiver: Some(receiver),
            runtime: Some(runtime),
        })
    }

    pub fn inbox(&self) -> &Inbox {
        &self.receiver.as_ref().expect("running").inbox
    }

    /// See [`Receiver::endpoint`].
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request accepted so far.
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.inbox().requests()
    }

    /// Stops the server and every connection it had (waits up to 5 s).
    pub fn stop(mut self) {
        drop(self.receiver.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for BlockingReceiver {
    fn drop(&mut self) {
        drop(self.receiver.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

// === gRPC ===

struct GrpcService(Inbox);

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.gate().pass(self.answer(request)).await
    }
}

impl GrpcService {
    async fn answer(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.to_string(), v.to_str().unwrap_or("").to_string()))
                }
                _ => None,
            })
            .collect();
        let reply = self.0.next_reply();
        self.0.seen(headers);
        match reply {
            Reply::Ok => {
                self.0.accept(request.into_inner());
                Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
            }
            Reply::Partial { rejected, message } => {
                self.0.accept(request.into_inner());
                Ok(tonic::Response::new(partial(rejected, message)))
            }
            Reply::Grpc { code, retry_after } => Err(match retry_after {
                Some(d) => {
                    use tonic_types::{ErrorDetails, StatusExt};
                    tonic::Status::with_error_details(
                        code,
                        "scripted",
                        ErrorDetails::with_retry_info(Some(d)),
                    )
                }
                None => tonic::Status::new(code, "scripted"),
            }),
            Reply::Http { .. } => panic!("HTTP reply scripted for the gRPC receiver"),
        }
    }
}

fn partial(rejected: i64, message: String) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: message,
        }),
    }
}

async fn serve_grpc(listener: TcpListener, inbox: Inbox) {
    let service = TraceServiceServer::new(GrpcService(inbox))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(64 << 20);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await
        .ok();
}

// === HTTP/protobuf ===

async fn serve_http(listener: TcpListener, inbox: Inbox) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        stream.set_nodelay(true).ok();
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let inbox = inbox.clone();
                async move { inbox.gate().pass(answer_http(&inbox, req)).await }
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
                .ok();
        });
    }
}

async fn answer_http(
    inbox: &Inbox,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect::<Vec<_>>();
    let wrong_place = req.method() != hyper::Method::POST || req.uri().path() != "/v1/traces";
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let body = req.into_body().collect().await?.to_bytes();
    let reply = inbox.next_reply();
    inbox.seen(headers);
    let respond = |status: u16, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    if wrong_place {
        return Ok(respond(404, Vec::new()));
    }
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
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return Ok(respond(400, Vec::new()));
    };
    Ok(match reply {
        Reply::Ok => {
            inbox.accept(request);
            respond(200, ExportTraceServiceResponse::default().encode_to_vec())
        }
        Reply::Partial { rejected, message } => {
            inbox.accept(request);
            respond(200, partial(rejected, message).encode_to_vec())
        }
        Reply::Http {
            status,
            retry_after,
        } => {
            let mut r = respond(
                status,
                tonic_types::pb::Status {
                    code: 14,
                    message: "scripted".into(),
                    details: vec![],
                }
                .encode_to_vec(),
            );
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            r
        }
        Reply::Grpc { .. } => panic!("gRPC reply scripted for the HTTP receiver"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_span_request() -> ExportTraceServiceRequest {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// A raw HTTP/1 POST over a std socket; returns the status code.
    fn post(addr: SocketAddr, path: &str, body: &[u8]) -> u16 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).ok();
        out[9..12].parse().unwrap()
    }

    #[test]
    fn http_records_scripts_and_refuses_garbage() {
        let rx = BlockingReceiver::start(OtlpProtocol::HttpProtobuf);
        let body = one_span_request().encode_to_vec();
        rx.inbox().script([Reply::Http {
            status: 503,
            retry_after: Some(1),
        }]);
        assert_eq!(post(rx.addr, "/v1/traces", &body), 503);
        assert_eq!(post(rx.addr, "/v1/traces", &body), 200);
        assert_eq!(post(rx.addr, "/elsewhere", &body), 404);
        assert_eq!(post(rx.addr, "/v1/traces", b"\xff\xff"), 400);
        let inbox = rx.inbox();
        assert_eq!(inbox.attempts(), 4);
        assert_eq!(inbox.span_count(), 1);
        assert_eq!(rx.requests(), vec![one_span_request()]);
        assert_eq!(inbox.headers().len(), 4);
        assert!(inbox.headers()[0].contains(&("host".into(), "x".into())));
    }

    #[test]
    fn counting_inbox_keeps_nothing() {
        let rx = BlockingReceiver::start_on(
            OtlpProtocol::HttpProtobuf,
            "127.0.0.1:0",
            Inbox::counting(),
        );
        let body = one_span_request().encode_to_vec();
        assert_eq!(post(rx.addr, "/v1/traces", &body), 200);
        assert_eq!(rx.inbox().span_count(), 1);
        assert!(rx.requests().is_empty() && rx.inbox().headers().is_empty());
        rx.stop();
    }
}
