//! gRPC end to end: a tonic server and a tonic client, both in this test
//! process (h2c on 127.0.0.1), the agent exporting to the in-process OTLP
//! receiver. The service is written by hand (no protoc): a prost message
//! derived in this file, `tonic::server::Grpc` behind a hand-written tower
//! `Service`, and `tonic::client::Grpc` with `tonic_prost::ProstCodec`.
//!
//! Both spans of a call come from this process (the agent traces every
//! process but itself). The agent only traces the gRPC port (in-kernel port
//! filter), so the receiver's own OTLP connection is not traced.
//!
//! RPC conventions checked: span name `package.Service/Method`,
//! `rpc.system.name`, `rpc.method`, `rpc.response.status_code` (the code's
//! name); server spans are errors only for UNKNOWN, DEADLINE_EXCEEDED,
//! UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS; client spans for any
//! non-OK code.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common_h2;

use common_h2::*;
use integration::prelude::*;
use integration::spans::{assert_spans, ExpectedSpan, KIND_CLIENT, KIND_SERVER};
use prost::Message;
use tonic::codegen::{http, BoxFuture, Context, Poll, Service, StdError};

const SERVICE: &str = "wirespan.test.Echo";

#[derive(Clone, PartialEq, prost::Message)]
struct EchoRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EchoReply {
    #[prost(string, tag = "1")]
    message: String,
}

/// `Say`: "ok…" → OK with a greeting; "missing…" → NOT_FOUND;
/// "boom…" → INTERNAL. Any other method → UNIMPLEMENTED (Trailers-Only,
/// after reading the request).
#[derive(Clone, Default)]
struct EchoServer;

struct SaySvc;

impl tonic::server::UnaryService<EchoRequest> for SaySvc {
    type Response = EchoReply;
    type Future = BoxFuture<tonic::Response<EchoReply>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            let name = request.into_inner().name;
            if name.starts_with("missing") {
                Err(tonic::Status::not_found("no such greeting"))
            } else if name.starts_with("boom") {
                Err(tonic::Status::internal("the greeter exploded"))
            } else {
                Ok(tonic::Response::new(reply_for(&name)))
            }
        })
    }
}

fn reply_for(name: &str) -> EchoReply {
    EchoReply {
        message: format!("hello, {name}!"),
    }
}

impl<B> Service<http::Request<B>> for EchoServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
    B::Data: Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == format!("/{SERVICE}/Say") {
            Box::pin(async move {
                let codec = tonic_prost::ProstCodec::<EchoReply, EchoRequest>::default();
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.unary(SaySvc, req).await)
            })
        } else {
            Box::pin(async move {
                // Read the request to its end first, so the client has sent
                // its DATA frame before the Trailers-Only answer and the
                // request body size is deterministic.
                http_body_util::BodyExt::collect(req.into_body()).await.ok();
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    tonic::Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            })
        }
    }
}

impl tonic::server::NamedService for EchoServer {
    const NAME: &'static str = SERVICE;
}

/// One call's outcome as the client saw it.
#[derive(Debug)]
struct CallResult {
    method: &'static str,
    name: String,
    code: tonic::Code,
    message: String,
}

/// Serves [`EchoServer`] on `port` and runs `calls` (method, request name)
/// one after the other over ONE channel (one HTTP/2 connection).
fn run_calls(port: u16, calls: &[(&'static str, &str)]) -> Vec<CallResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .expect("bind the gRPC server");
    rt.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(EchoServer)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .ok();
    });
    let calls: Vec<(&'static str, String)> =
        calls.iter().map(|(m, n)| (*m, n.to_string())).collect();
    let out = rt.block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .connect()
            .await
            .expect("connect to the gRPC server");
        let mut grpc = tonic::client::Grpc::new(channel);
        let mut results = Vec::new();
        for (method, name) in calls {
            grpc.ready().await.expect("channel ready");
            let codec = tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default();
            let path =
                http::uri::PathAndQuery::try_from(format!("/{SERVICE}/{method}")).expect("path");
            let res = grpc
                .unary(
                    tonic::Request::new(EchoRequest { name: name.clone() }),
                    path,
                    codec,
                )
                .await;
            let (code, message) = match res {
                Ok(r) => {
                    assert_eq!(r.into_inner(), reply_for(&name));
                    (tonic::Code::Ok, String::new())
                }
                Err(s) => (s.code(), s.message().to_string()),
            };
            results.push(CallResult {
                method,
                name,
                code,
                message,
            });
        }
        results
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    out
}

fn code_name(c: tonic::Code) -> &'static str {
    match c {
        tonic::Code::Ok => "OK",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        other => panic!("unexpected code {other:?}"),
    }
}

/// The user agent tonic's channel sends.
fn tonic_user_agent() -> String {
    // tonic's `Endpoint` sends "tonic/<version>"; the version is the locked one.
    let lock = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"),
    )
    .expect("Cargo.lock");
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"tonic\"" {
            let v = lines.next().expect("version line");
            return format!(
                "tonic/{}",
                v.trim_start_matches("version = \"").trim_end_matches('"')
            );
        }
    }
    panic!("tonic not in Cargo.lock")
}

/// The spans of one call: client and server, all HTTP and RPC attributes.
fn expected_pair(
    port: u16,
    client_port: u16,
    call: &CallResult,
    exe: &str,
    ua: &str,
) -> [ExpectedSpan; 2] {
    let method_path = format!("{SERVICE}/{}", call.method);
    let req_body = 5 + EchoRequest {
        name: call.name.clone(),
    }
    .encoded_len() as u64;
    let ok = call.code == tonic::Code::Ok;
    // tonic answers errors as Trailers-Only: no DATA at all.
    let resp_body = if ok {
        5 + reply_for(&call.name).encoded_len() as u64
    } else {
        0
    };
    let code = code_name(call.code);
    let server_error = matches!(
        call.code,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    );
    let mut pair = http_pair(
        (exe, exe),
        "http",
        "2",
        "POST",
        &format!("/{method_path}"),
        port,
        client_port,
        200,
        req_body,
        resp_body,
    );
    for e in &mut pair {
        let mut x = e.clone();
        x.name = method_path.clone();
        x = x
            .attr("user_agent.original", ua)
            .attr("rpc.system.name", "grpc")
            .attr("rpc.method", method_path.as_str())
            .attr("rpc.response.status_code", code);
        let is_error = if x.kind == KIND_SERVER {
            server_error
        } else {
            !ok
        };
        if is_error {
            x = x.error(code);
        }
        *e = x;
    }
    pair
}

/// OK, NOT_FOUND, INTERNAL and UNIMPLEMENTED calls over one connection:
/// one client and one server span each; NOT_FOUND is an error on the client
/// span only, INTERNAL and UNIMPLEMENTED on both; error spans carry the
/// `grpc-message` as their status message.
#[test]
fn grpc_ok_not_found_internal_unimplemented() {
    let port = free_port();
    let mut env = Env::start_with(
        "grpc_ok_not_found_internal_unimplemented",
        AgentOptions::default().env("WIRESPAN_CAPTURE__PORTS", port),
    );
    let calls = run_calls(
        port,
        &[
            ("Say", "ok-alice"),
            ("Say", "missing-bob"),
            ("Say", "boom-carol"),
            ("Nope", "dave"),
        ],
    );
    let codes: Vec<tonic::Code> = calls.iter().map(|c| c.code).collect();
    assert_eq!(
        codes,
        vec![
            tonic::Code::Ok,
            tonic::Code::NotFound,
            tonic::Code::Internal,
            tonic::Code::Unimplemented
        ],
        "the calls themselves: {calls:?}"
    );
    env.wait_spans(port, 8, "gRPC calls");
    let (spans, exit) = env.stop(port);
    let me = std::process::id() as i64;
    for s in &spans {
        assert_eq!(
            pid_of(s),
            Some(me),
            "every gRPC span should come from this test process ({me}):\n{s}"
        );
    }
    let exe = spans
        .first()
        .and_then(|s| s.res_str("service.name"))
        .unwrap_or_default()
        .to_string();
    let cport = single_client_port(&spans, &exit.diagnostics());
    let ua = tonic_user_agent();
    let mut expected = Vec::new();
    for c in &calls {
        expected.extend(expected_pair(port, cport, c, &exe, &ua));
    }
    assert_spans(&expected, &spans, &exit.diagnostics());
    // The grpc-message is the status message of error spans only, decoded:
    // on the wire it is percent-encoded (gRPC over HTTP/2 spec), so
    // "no such greeting" travels as "no%20such%20greeting".
    for c in &calls {
        let name = format!("{SERVICE}/{}", c.method);
        for s in spans.iter().filter(|s| s.name == name) {
            let is_err = s.status_code == integration::spans::STATUS_ERROR;
            let want = if is_err { c.message.as_str() } else { "" };
            if s.kind == KIND_CLIENT || s.kind == KIND_SERVER {
                let code = s.str("rpc.response.status_code").unwrap_or_default();
                if code == code_name(c.code) {
                    assert_eq!(
                        s.status_message,
                        want,
                        "status message of {} span for {name} {code}",
                        s.kind_name()
                    );
                }
            }
        }
    }
}
