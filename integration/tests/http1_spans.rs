//! HTTP/1 spans end to end: real clients and servers, `wirespan run`
//! exporting over OTLP (gRPC and HTTP/protobuf) to an in-process receiver,
//! exact spans asserted from what the test sent and the programs reported.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::otlp_receiver::OtlpProtocol;
use integration::prelude::*;
use integration::python::python_exe_name;
use integration::servers::{http11_server, python_http_server};
use std::process::Command;

fn curl_proc(run: &CurlRun) -> Proc {
    Proc {
        service: "curl".into(),
        pid: run.pid,
        exe: "curl".into(),
    }
}

fn python_proc(pid: u32) -> Proc {
    Proc {
        service: python_exe_name(),
        pid,
        exe: python_exe_name(),
    }
}

const UA: &str = "wirespan-e2e/1.0";

/// curl → `python3 -m http.server`: GET 200 of a file, GET 404 with a query.
/// Exported over gRPC.
#[test]
fn curl_to_python_http_server_grpc() {
    require_root("curl_to_python_http_server_grpc");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::Grpc);
    let body = b"0123456789abcdef".repeat(64);
    let server = python_http_server(&[("data.bin", &body)]);
    let port = server.port;
    let ok = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/data.bin"),
        ],
        &[],
    );
    let missing = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/missing/page?x=1&y=two"),
        ],
        &[],
    );
    let (t_ok, t_404) = (&ok.transfers[0], &missing.transfers[0]);
    assert_eq!(
        (t_ok.response_code, t_ok.size_download),
        (200, body.len() as u64)
    );
    assert_eq!(t_404.response_code, 404);
    let python = python_proc(server.pid());
    let e_ok = Exchange::get("/data.bin", port, t_ok.local_port, 200, t_ok.size_download).ua(UA);
    let e_404 = Exchange::get(
        "/missing/page?x=1&y=two",
        port,
        t_404.local_port,
        404,
        t_404.size_download,
    )
    .ua(UA);
    run.assert(
        port,
        &[
            e_ok.spans(&curl_proc(&ok), &python),
            e_404.spans(&curl_proc(&missing), &python),
        ]
        .concat(),
    );
}

/// The agent's default attribute set, end to end: what the HTTP conventions
/// require or recommend, and none of what they mark Opt-In
/// (`http.opt_in_attributes`).
#[test]
fn default_attributes_leave_out_opt_in() {
    require_root("default_attributes_leave_out_opt_in");
    let _g = serial();
    let run = SpanRun::start_with(
        OtlpProtocol::Grpc,
        AgentOptions::default().default_attributes(),
    );
    let server = http11_server();
    let port = server.port;
    let c = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/status/200?q=1"),
        ],
        &[],
    );
    let t = &c.transfers[0];
    assert_eq!(t.response_code, 200);
    let (spans, _) = run.finish(port, 2);
    let keys = |server: bool| -> Vec<&str> {
        let s: Vec<&FlatSpan> = spans.iter().filter(|s| s.is_server() == server).collect();
        assert_eq!(s.len(), 1, "{spans:?}");
        s[0].attrs.keys().map(String::as_str).collect()
    };
    // BTreeMap keys: sorted.
    assert_eq!(
        keys(true),
        [
            "client.address",
            "http.request.method",
            "http.response.status_code",
            "network.peer.address",
            "network.peer.port",
            "network.protocol.version",
            "server.address",
            "server.port",
            "service.peer.name",
            "url.path",
            "url.query",
            "url.scheme",
            "user_agent.original",
        ]
    );
    assert_eq!(
        keys(false),
        [
            "http.request.method",
            "http.response.status_code",
            "network.peer.address",
            "network.peer.port",
            "network.protocol.version",
            "server.address",
            "server.port",
            "service.peer.name",
            "url.full",
            "url.path",
            "url.query",
        ]
    );
    let client = spans.iter().find(|s| s.is_client()).expect("client span");
    assert_eq!(
        client.str("url.full"),
        Some(format!("http://127.0.0.1:{port}/status/200?q=1").as_str())
    );
    assert_eq!(client.int("network.peer.port"), Some(port as i64));
    assert_eq!(
        client.str("service.peer.name"),
        Some(python_exe_name().as_str())
    );
}

/// A short-lived curl with OTEL_SERVICE_NAME=checkout is named checkout;
/// exported over HTTP/protobuf.
#[test]
fn otel_service_name_of_short_process_http_protobuf() {
    require_root("otel_service_name_of_short_process_http_protobuf");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::HttpProtobuf);
    let server = http11_server();
    let port = server.port;
    let c = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/status/200"),
        ],
        &[("OTEL_SERVICE_NAME", "checkout")],
    );
    let t = &c.transfers[0];
    let e = Exchange::get("/status/200", port, t.local_port, 200, t.size_download).ua(UA);
    let checkout = Proc {
        service: "checkout".into(),
        pid: c.pid,
        exe: "curl".into(),
    };
    run.assert(port, &e.spans(&checkout, &python_proc(server.pid())));
}

/// Two URLs in one curl: one keep-alive connection, two exchanges.
#[test]
fn keep_alive_two_requests_one_connection() {
    require_root("keep_alive_two_requests_one_connection");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::Grpc);
    let server = http11_server();
    let port = server.port;
    let c = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/bytes/1000"),
            &format!("http://127.0.0.1:{port}/status/201?second=yes"),
        ],
        &[],
    );
    assert_eq!(c.transfers.len(), 2, "{c:?}");
    assert_eq!(
        c.transfers[0].local_port, c.transfers[1].local_port,
        "curl did not reuse the connection: {c:?}"
    );
    let (a, b) = (&c.transfers[0], &c.transfers[1]);
    assert_eq!((a.response_code, a.size_download), (200, 1000));
    let python = python_proc(server.pid());
    let e1 = Exchange::get("/bytes/1000", port, a.local_port, 200, 1000).ua(UA);
    let e2 = Exchange::get(
        "/status/201?second=yes",
        port,
        b.local_port,
        201,
        b.size_download,
    )
    .ua(UA);
    run.assert(
        port,
        &[
            e1.spans(&curl_proc(&c), &python),
            e2.spans(&curl_proc(&c), &python),
        ]
        .concat(),
    );
}

/// Three requests in ONE write on a raw socket; three responses read back.
#[test]
fn pipelined_requests_on_raw_socket() {
    require_root("pipelined_requests_on_raw_socket");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::Grpc);
    let server = http11_server();
    let port = server.port;
    let paths = ["/bytes/10", "/status/404?p=2", "/bytes/3000"];
    let child = Command::new(python())
        .arg(script("pipelined_client.py"))
        .arg(port.to_string())
        .args(paths)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("pipelined client");
    let client_pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "pipelined client failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let local_port: u16 = lines.next().unwrap().parse().unwrap();
    let results: Vec<(u16, u64)> = lines
        .map(|l| {
            let (s, n) = l.split_once(' ').unwrap();
            (s.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0], (200, 10));
    assert_eq!(results[2], (200, 3000));
    let client = python_proc(client_pid);
    let server_p = python_proc(server.pid());
    let mut expected = Vec::new();
    for (path, (status, size)) in paths.iter().zip(&results) {
        let e = Exchange::get(path, port, local_port, *status, *size).ua("pipeline-test/1");
        expected.extend(e.spans(&client, &server_p));
    }
    run.assert(port, &expected);
}

/// curl uploads a file with Transfer-Encoding: chunked; the request body size
/// is the decoded payload's.
#[test]
fn chunked_upload() {
    require_root("chunked_upload");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::HttpProtobuf);
    let server = http11_server();
    let port = server.port;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &payload).unwrap();
    let c = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("http://127.0.0.1:{port}/echo"),
        ],
        &[],
    );
    let t = &c.transfers[0];
    assert_eq!(t.response_code, 200);
    // The server's answer says how many body bytes it decoded.
    assert_eq!(
        t.size_download,
        format!("got {} bytes\n", payload.len()).len() as u64
    );
    let e = Exchange::get("/echo", port, t.local_port, 200, t.size_download)
        .method("POST")
        .ua(UA)
        .request_body(payload.len() as u64);
    run.assert(port, &e.spans(&curl_proc(&c), &python_proc(server.pid())));
}

/// HEAD (Content-Length but no body), 204, 500 and 503: body sizes 0 where
/// no body is sent; server spans ERROR from 500, client spans from 400.
#[test]
fn head_204_and_5xx() {
    require_root("head_204_and_5xx");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::Grpc);
    let server = http11_server();
    let port = server.port;
    let head = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            "-I",
            &format!("http://127.0.0.1:{port}/bytes/5000"),
        ],
        &[],
    );
    let no_content = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/status/204"),
        ],
        &[],
    );
    let e500 = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/status/500"),
        ],
        &[],
    );
    let e503 = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/status/503?retry=1"),
        ],
        &[],
    );
    let python = python_proc(server.pid());
    let mut expected = Vec::new();
    for (run_, path, method, status) in [
        (&head, "/bytes/5000", "HEAD", 200u16),
        (&no_content, "/status/204", "GET", 204),
        (&e500, "/status/500", "GET", 500),
        (&e503, "/status/503?retry=1", "GET", 503),
    ] {
        let t = &run_.transfers[0];
        assert_eq!(t.response_code, status);
        let body = if method == "HEAD" || status == 204 {
            0
        } else {
            t.size_download
        };
        let e = Exchange::get(path, port, t.local_port, status, body)
            .method(method)
            .ua(UA);
        expected.extend(e.spans(&curl_proc(run_), &python));
    }
    run.assert(port, &expected);
}

/// A 6 MB response with the default per-call cap (256 KiB): most of the body
/// is not copied, yet its size must be exact.
#[test]
fn multi_megabyte_response_size_is_exact() {
    require_root("multi_megabyte_response_size_is_exact");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::Grpc);
    let server = http11_server();
    let port = server.port;
    const N: u64 = 6_000_000;
    let c = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/bytes/{N}"),
        ],
        &[],
    );
    let t = &c.transfers[0];
    assert_eq!((t.response_code, t.size_download), (200, N));
    let e = Exchange::get(&format!("/bytes/{N}"), port, t.local_port, 200, N).ua(UA);
    run.assert(port, &e.spans(&curl_proc(&c), &python_proc(server.pid())));
}
