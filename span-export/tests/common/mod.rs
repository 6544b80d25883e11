//! Real in-process OTLP receivers (gRPC and HTTP) and span builders shared by
//! the integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use span_export::{any_value, span, AnyValue, ExportSpan, KeyValue, ProcessResource, Span};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What the receiver answers to the next request.
#[derive(Clone, Debug)]
pub enum Reply {
    Ok,
    Partial {
        rejected: i64,
        message: String,
    },
    Grpc {
        code: tonic::Code,
        retry_after: Option<Duration>,
    },
    Http {
        status: u16,
        retry_after: Option<u64>,
    },
}

pub type Headers = Vec<(String, String)>;

/// State shared by a receiver and the test.
#[derive(Clone, Default)]
pub struct Inbox {
    pub requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    /// Request headers (or gRPC metadata) of every request, lower-case names.
    pub headers: Arc<Mutex<Vec<Headers>>>,
    pub script: Arc<Mutex<VecDeque<Reply>>>,
    /// Every request seen, answered OK or not.
    pub attempts: Arc<Mutex<u64>>,
    /// Bumped on every request, to wait on.
    pub notify: Arc<tokio::sync::Notify>,
    /// Holds requests before they are answered, when closed.
    pub gate: Gate,
}

/// A door every request passes before it is answered: open by default; while
/// closed, requests wait inside the receiver, so a test can see how many are
/// in flight at once.
#[derive(Clone, Default)]
pub struct Gate {
    closed: Arc<std::sync::atomic::AtomicBool>,
    opened: Arc<tokio::sync::Notify>,
    /// Requests inside the receiver now, and the most seen at once.
    inside: Arc<std::sync::atomic::AtomicU64>,
    most_inside: Arc<std::sync::atomic::AtomicU64>,
}

impl Gate {
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn open(&self) {
        self.closed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.opened.notify_waiters();
    }

    /// Requests being handled (waiting at the gate or not) right now.
    pub fn inside(&self) -> u64 {
        self.inside.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most requests handled at the same time so far.
    pub fn most_inside(&self) -> u64 {
        self.most_inside.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn pass<T>(&self, handle: impl std::future::Future<Output = T>) -> T {
        use std::sync::atomic::Ordering::SeqCst;
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

impl Inbox {
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    fn next_reply(&self) -> Reply {
        self.script.lock().unwrap().pop_front().unwrap_or(Reply::Ok)
    }

    /// Spans accepted (answered OK or partial) so far.
    pub fn span_count(&self) -> u64 {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(span_export::span_count)
            .sum()
    }

    pub fn attempts(&self) -> u64 {
        *self.attempts.lock().unwrap()
    }

    fn record(&self, headers: Vec<(String, String)>) {
        *self.attempts.lock().unwrap() += 1;
        self.headers.lock().unwrap().push(headers);
        self.notify.notify_waiters();
    }
}

/// A running receiver; dropping it (or `stop`) stops the server.
pub struct Receiver {
    pub addr: SocketAddr,
    pub inbox: Inbox,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn http_base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

struct GrpcService(Inbox);

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.gate.clone().pass(self.answer(request)).await
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
        self.0.record(headers);
        match reply {
            Reply::Ok => {
                self.0.requests.lock().unwrap().push(request.into_inner());
                Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
            }
            Reply::Partial { rejected, message } => {
                self.0.requests.lock().unwrap().push(request.into_inner());
                Ok(tonic::Response::new(ExportTraceServiceResponse {
                    partial_success: Some(ExportTracePartialSuccess {
                        rejected_spans: rejected,
                        error_message: message,
                    }),
                }))
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

/// Starts a gRPC OTLP receiver on `addr` (`127.0.0.1:0` for any port).
pub async fn grpc_receiver_on(addr: &str, inbox: Inbox) -> Receiver {
    let listener = TcpListener::bind(addr).await.expect("bind gRPC receiver");
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let service = TraceServiceServer::new(GrpcService(inbox.clone()))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
            .expect("gRPC receiver");
    });
    Receiver {
        addr,
        inbox,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

pub async fn grpc_receiver() -> Receiver {
    grpc_receiver_on("127.0.0.1:0", Inbox::default()).await
}

async fn handle_http(
    inbox: Inbox,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    inbox.gate.clone().pass(answer_http(inbox, req)).await
}

async fn answer_http(
    inbox: Inbox,
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
    inbox.record(headers);
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
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("gzip body");
        Bytes::from(out)
    } else {
        body
    };
    let request = ExportTraceServiceRequest::decode(body).expect("protobuf body");
    Ok(match reply {
        Reply::Ok => {
            inbox.requests.lock().unwrap().push(request);
            respond(200, ExportTraceServiceResponse::default().encode_to_vec())
        }
        Reply::Partial { rejected, message } => {
            inbox.requests.lock().unwrap().push(request);
            let resp = ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: message,
                }),
            };
            respond(200, resp.encode_to_vec())
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

/// Starts an OTLP/HTTP receiver (POST /v1/traces, protobuf) on `addr`.
pub async fn http_receiver_on(addr: &str, inbox: Inbox) -> Receiver {
    let listener = TcpListener::bind(addr).await.expect("bind HTTP receiver");
    let addr = listener.local_addr().unwrap();
    let inbox2 = inbox.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
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
    Receiver {
        addr,
        inbox,
        stop: None,
        task: Some(task),
    }
}

pub async fn http_receiver() -> Receiver {
    http_receiver_on("127.0.0.1:0", Inbox::default()).await
}

/// Waits (bounded) until `cond` holds, checking after every request the
/// receiver sees and every 20 ms.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub fn s(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_string()))
}

pub fn i(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

pub fn resource(id: u64, service: &str, pid: i64) -> Arc<ProcessResource> {
    Arc::new(ProcessResource {
        id,
        attributes: vec![s("service.name", service), i("process.pid", pid)],
    })
}

/// A server span with distinct ids derived from `n`.
pub fn server_span(resource: &Arc<ProcessResource>, n: u64) -> ExportSpan {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&n.to_be_bytes());
    trace_id[15] = 1;
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&(n + 1).to_be_bytes());
    let start = 1_764_099_601_123_000_000 + n * 1_000;
    ExportSpan {
        resource: resource.clone(),
        attrs: Default::default(),
        span: Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id.to_vec(),
            name: format!("GET /items/{n}"),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_200_000,
            attributes: vec![
                s("http.request.method", "GET"),
                s("url.path", &format!("/items/{n}")),
                i("http.response.status_code", 200),
            ],
            ..Default::default()
        },
    }
}

pub const METRIC_NAMES: [&str; 3] = [
    "wirespan_spans_exported_total",
    "wirespan_spans_dropped_total",
    "wirespan_export_queue_spans",
];

pub fn exported(r: &self_metrics::Registry) -> i128 {
    r.sum("wirespan_spans_exported_total")
}

pub fn dropped(r: &self_metrics::Registry, reason: &str) -> i128 {
    r.value("wirespan_spans_dropped_total", &[("reason", reason)])
        .unwrap_or(0)
}

pub fn requests(r: &self_metrics::Registry, result: &str) -> i128 {
    r.value("wirespan_export_requests_total", &[("result", result)])
        .unwrap_or(0)
}

/// The invariant: every span offered is exported, dropped, or still queued.
pub fn assert_balanced(r: &self_metrics::Registry, offered: u64) {
    let exported = exported(r);
    let dropped = r.sum("wirespan_spans_dropped_total");
    let queued = r.sum("wirespan_export_queue_spans");
    assert_eq!(
        exported + dropped + queued,
        offered as i128,
        "exported {exported} + dropped {dropped} + queued {queued} != offered {offered}\n{}",
        r.render()
    );
}

/// Settings pointing at a receiver, with fast retries for tests.
pub fn settings(
    protocol: wirespan_config::OtlpProtocol,
    endpoint: &str,
) -> span_export::ExportSettings {
    let cfg = wirespan_config::ExportConfig {
        otlp: Some(wirespan_config::OtlpConfig {
            endpoint: endpoint.to_string(),
            protocol,
            timeout: Duration::from_secs(5),
            ..Default::default()
        }),
        batch_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let mut s = span_export::ExportSettings::resolve(&cfg, &|_| None).expect("settings");
    s.initial_backoff = Duration::from_millis(10);
    s.max_backoff = Duration::from_millis(50);
    s
}
