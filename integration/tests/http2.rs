//! HTTP/2 end to end (issue 4): real HTTP/2 clients (curl, nghttp, h2load)
//! against `nghttpd --no-tls` on 127.0.0.1, the agent exporting to the
//! in-process OTLP receiver; the spans of both sides are compared exactly
//! (every attribute) with what the programs did.
//!
//! Client and server spans are paired through the connection: the server
//! span's `client.port` is the client span's `network.local.port`.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common_h2;

use common_h2::*;
use integration::agent::AgentExit;
use integration::prelude::*;
use integration::spans::{assert_spans, ExpectedSpan};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn curl_h2(port: u16, path: &str, extra: &[&str], diag: &str) -> u16 {
    let (out, _) = run_ok(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "-o", "/dev/null"])
            .args(["-w", "%{http_version} %{http_code} %{local_port}"])
            .args(extra)
            .arg(format!("http://127.0.0.1:{port}{path}")),
        diag,
    );
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.len(), 3, "curl -w output {out:?}");
    assert_eq!(f[0], "2", "curl did not speak HTTP/2: {out:?}");
    f[2].parse().expect("local port")
}

fn with_ua(mut pair: [ExpectedSpan; 2], ua: &str) -> [ExpectedSpan; 2] {
    for e in &mut pair {
        *e = e.clone().attr("user_agent.original", ua);
    }
    pair
}

/// The agent for one HTTP/2 test: traces only `port` (in-kernel port
/// filter), so the counters only move for this test's traffic and the
/// receiver's own OTLP connection is not traced.
fn start(test: &str, port: u16) -> Env {
    Env::start_with(
        test,
        AgentOptions::default().env("WIRESPAN_CAPTURE__PORTS", port),
    )
}

const NGHTTP2_UA: &str = "nghttp2/1.52.0";

/// `nghttp2/<version>`, as nghttp sends in `user-agent`.
fn nghttp2_version() -> String {
    let out = Command::new("nghttp")
        .arg("--version")
        .output()
        .expect("nghttp");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("nghttp2/"))
        .unwrap_or(NGHTTP2_UA)
        .to_string()
}

/// curl --http2-prior-knowledge → nghttpd: GET 200 and GET 404, one
/// connection each; exactly one client and one server span per request.
#[test]
fn curl_prior_knowledge_get_200_and_404() {
    let body = b"hello over h2c\n".repeat(3);
    let server = nghttpd(&[("index.html", &body)], &[]);
    let port = server.port;
    // nghttpd's 404 page is generated HTML: measure it before tracing.
    let not_found_len = curl_size(port, "/missing?x=1");
    let mut env = start("curl_prior_knowledge_get_200_and_404", port);
    let ua = curl_user_agent();
    let pk = ["--http2-prior-knowledge"];
    let p1 = curl_h2(port, "/index.html", &pk, &env.diagnostics());
    let p2 = curl_h2(port, "/missing?x=1", &pk, &env.diagnostics());
    env.wait_spans(port, 4, "curl h2c prior knowledge");
    let (spans, exit) = env.stop(port);
    let names = ("curl", "nghttpd");
    let mut expected = Vec::new();
    expected.extend(with_ua(
        http_pair(
            names,
            "http",
            "2",
            "GET",
            "/index.html",
            port,
            p1,
            200,
            0,
            body.len() as u64,
        ),
        &ua,
    ));
    expected.extend(with_ua(
        http_pair(
            names,
            "http",
            "2",
            "GET",
            "/missing?x=1",
            port,
            p2,
            404,
            0,
            not_found_len,
        ),
        &ua,
    ));
    assert_spans(&expected, &spans, &exit.diagnostics());
}

/// `curl --http2-prior-knowledge -o /dev/null -w %{size_download}`.
fn curl_size(port: u16, path: &str) -> u64 {
    let (out, _) = run_ok(
        Command::new("curl")
            .args(["-sS", "--http2-prior-knowledge", "-o", "/dev/null"])
            .args(["-w", "%{size_download}"])
            .arg(format!("http://127.0.0.1:{port}{path}")),
        "",
    );
    out.trim().parse().expect("size_download")
}

/// Stream ids of the requests nghttp sent (`-v`: "send HEADERS frame <...,
/// stream_id=N>").
fn nghttp_request_streams(verbose: &str) -> Vec<u32> {
    verbose
        .lines()
        .filter(|l| l.contains("send HEADERS frame"))
        .filter_map(|l| l.split("stream_id=").nth(1))
        .filter_map(|r| r.trim_end_matches('>').parse().ok())
        .collect()
}

/// `nghttp -n -m 5`: the same GET five times as five parallel streams of one
/// connection → five client spans (nghttp) and five server spans (nghttpd),
/// all on that connection, every attribute exact.
#[test]
fn nghttp_five_parallel_streams_same_uri() {
    let body = b"0123456789abcdef".repeat(40);
    let server = nghttpd(&[("index.html", &body)], &[]);
    let port = server.port;
    let mut env = start("nghttp_five_parallel_streams_same_uri", port);
    let (out, _) = run_ok(
        Command::new("nghttp")
            .args(["-n", "-v", "-m", "5", "-t", "60"])
            .arg(format!("http://127.0.0.1:{port}/index.html")),
        &env.diagnostics(),
    );
    let streams = nghttp_request_streams(&out);
    let distinct: BTreeSet<u32> = streams.iter().copied().collect();
    assert_eq!(
        (streams.len(), distinct.len()),
        (5, 5),
        "nghttp should send 5 requests on 5 distinct streams, sent on {streams:?}"
    );
    env.wait_spans(port, 10, "nghttp -m 5");
    let (spans, exit) = env.stop(port);
    let cport = single_client_port(&spans, &exit.diagnostics());
    let ua = nghttp2_version();
    let mut expected = Vec::new();
    for _ in 0..5 {
        expected.extend(with_ua(
            http_pair(
                ("nghttp", "nghttpd"),
                "http",
                "2",
                "GET",
                "/index.html",
                port,
                cport,
                200,
                0,
                body.len() as u64,
            ),
            &ua,
        ));
    }
    assert_spans(&expected, &spans, &exit.diagnostics());
}

/// `nghttp -n` with five different URIs (five response sizes, from 5 bytes
/// to 70 000 bytes, so DATA frames of several streams interleave): one
/// connection, each stream's request paired with its own response: every
/// path carries its own body size on both sides.
#[test]
fn nghttp_five_parallel_streams_distinct_uris() {
    let sizes = [5usize, 100, 2_000, 30_000, 70_000];
    let files: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .map(|n| {
            (
                format!("f{n}.bin"),
                (0..*n).map(|i| (i % 253) as u8).collect(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let server = nghttpd(&refs, &[]);
    let port = server.port;
    let mut env = start("nghttp_five_parallel_streams_distinct_uris", port);
    let urls: Vec<String> = files
        .iter()
        .map(|(n, _)| format!("http://127.0.0.1:{port}/{n}"))
        .collect();
    let (out, _) = run_ok(
        Command::new("nghttp")
            .args(["-n", "-v", "-t", "60"])
            .args(&urls),
        &env.diagnostics(),
    );
    let streams = nghttp_request_streams(&out);
    let distinct: BTreeSet<u32> = streams.iter().copied().collect();
    assert_eq!(
        (streams.len(), distinct.len()),
        (5, 5),
        "nghttp should send 5 requests on 5 distinct streams, sent on {streams:?}"
    );
    env.wait_spans(port, 10, "nghttp five URIs");
    let (spans, exit) = env.stop(port);
    let cport = single_client_port(&spans, &exit.diagnostics());
    let ua = nghttp2_version();
    let mut expected = Vec::new();
    for (name, b) in &files {
        expected.extend(with_ua(
            http_pair(
                ("nghttp", "nghttpd"),
                "http",
                "2",
                "GET",
                &format!("/{name}"),
                port,
                cport,
                200,
                0,
                b.len() as u64,
            ),
            &ua,
        ));
    }
    assert_spans(&expected, &spans, &exit.diagnostics());
}

/// Why spans may be missing, from the agent's counters.
fn loss_counters(exit: &AgentExit) -> String {
    let m = &exit.metrics;
    let mut out = String::new();
    for name in [
        "wirespan_kernel_records_lost_total",
        "wirespan_kernel_bytes_not_copied_total",
        "wirespan_parse_issues_total",
        "wirespan_spans_dropped_total",
        "wirespan_export_dropped_spans_total",
        "wirespan_connections_evicted_total",
    ] {
        for (k, v) in &m.samples {
            if (k == name || k.starts_with(&format!("{name}{{"))) && *v != 0.0 {
                out += &format!("  {k} {v}\n");
            }
        }
    }
    if out.is_empty() {
        out = "  (no loss counter moved: the missing spans are unexplained)\n".into();
    }
    out
}

/// `h2load -n 200 -c 2 -m 10`: 200 requests over 2 connections with 10
/// concurrent streams each → exactly 200 server spans (nghttpd) and 200
/// client spans (h2load), 100 per connection on each side, all exact.
#[test]
fn h2load_200_requests_2_connections_10_streams() {
    let body = b"h2load body\n".repeat(10);
    let server = nghttpd(&[("index.html", &body)], &[]);
    let port = server.port;
    let mut env = start("h2load_200_requests_2_connections_10_streams", port);
    let (out, _) = run_ok(
        Command::new("h2load")
            .args(["-n", "200", "-c", "2", "-m", "10", "-T", "60"])
            .arg(format!("http://127.0.0.1:{port}/index.html")),
        &env.diagnostics(),
    );
    assert!(
        out.contains("200 succeeded"),
        "h2load did not complete 200 requests:\n{out}"
    );
    // Bounded wait for all 400; missing ones are judged after the stop.
    env.receiver
        .wait_for(SPAN_TIMEOUT, |s| of_port(s, port).len() >= 400)
        .ok();
    let (spans, exit) = env.stop(port);
    let (srv, cli) = (servers(&spans), clients(&spans));
    let per_conn = |v: &[FlatSpan], key: &str| {
        let mut m: BTreeMap<i64, usize> = BTreeMap::new();
        for s in v {
            *m.entry(s.int(key).unwrap_or(-1)).or_default() += 1;
        }
        m
    };
    let srv_conns = per_conn(&srv, "client.port");
    let cli_conns = per_conn(&cli, "network.local.port");
    assert!(
        srv.len() == 200 && cli.len() == 200,
        "expected 200 server and 200 client spans, got {} server and {} client \
         (server spans per client port {srv_conns:?}, client spans per local port {cli_conns:?});\n\
         loss counters:\n{}\n{}",
        srv.len(),
        cli.len(),
        loss_counters(&exit),
        exit.diagnostics()
    );
    assert_eq!(
        srv_conns.values().copied().collect::<Vec<_>>(),
        vec![100, 100],
        "server spans per connection"
    );
    assert_eq!(
        srv_conns.keys().collect::<Vec<_>>(),
        cli_conns.keys().collect::<Vec<_>>()
    );
    let ua = format!("h2load {}", nghttp2_version());
    let mut expected = Vec::new();
    for cport in srv_conns.keys() {
        for _ in 0..100 {
            expected.extend(with_ua(
                http_pair(
                    ("h2load", "nghttpd"),
                    "http",
                    "2",
                    "GET",
                    "/index.html",
                    port,
                    *cport as u16,
                    200,
                    0,
                    body.len() as u64,
                ),
                &ua,
            ));
        }
    }
    assert_spans(&expected, &spans, &exit.diagnostics());
}

/// A large body each way over one h2c connection: GET of a 3 MiB + 7 byte
/// file, and POST of 1 MiB + 3 bytes that `nghttpd --echo-upload` sends
/// back. Body sizes are DATA payload bytes, exact on both sides.
#[test]
fn large_data_bodies_have_exact_sizes() {
    let dir = tempdir("wirespan-h2-large-");
    let big = 3 * 1024 * 1024 + 7;
    let upload = 1024 * 1024 + 3;
    let upload_path = dir.path().join("upload.bin");
    pattern_file(&upload_path, upload);
    let big_body: Vec<u8> = (0..big).map(|i| (i % 241) as u8).collect();
    let server = nghttpd(&[("big.bin", &big_body)], &["--echo-upload"]);
    let port = server.port;
    let mut env = start("large_data_bodies_have_exact_sizes", port);
    let pk = ["--http2-prior-knowledge"];
    let p1 = curl_h2(port, "/big.bin", &pk, &env.diagnostics());
    let upload_arg = format!("@{}", upload_path.display());
    let p2 = curl_h2(
        port,
        "/echo",
        &[
            "--http2-prior-knowledge",
            "--data-binary",
            upload_arg.as_str(),
            "-H",
            "content-type: application/octet-stream",
        ],
        &env.diagnostics(),
    );
    env.wait_spans(port, 4, "large bodies");
    let (spans, exit) = env.stop(port);
    let ua = curl_user_agent();
    let names = ("curl", "nghttpd");
    let mut expected = Vec::new();
    expected.extend(with_ua(
        http_pair(
            names, "http", "2", "GET", "/big.bin", port, p1, 200, 0, big as u64,
        ),
        &ua,
    ));
    expected.extend(with_ua(
        http_pair(
            names,
            "http",
            "2",
            "POST",
            "/echo",
            port,
            p2,
            200,
            upload as u64,
            upload as u64,
        ),
        &ua,
    ));
    assert_spans(&expected, &spans, &exit.diagnostics());
}

/// An HTTP/2 server that accepts the HTTP/1.1 `Upgrade: h2c` (RFC 7540
/// §3.2), which nghttpd does not: Python standard library only. It answers
/// the upgraded request on stream 1 and every later HEADERS frame on its own
/// stream with 200 and BODY (argv[2]); it never decodes HPACK.
const H2C_UPGRADE_SERVER: &str = r#"
import socket, struct, sys, threading
port = int(sys.argv[1]); body = open(sys.argv[2], 'rb').read()
assert len(body) < 16384
def frame(t, flags, sid, payload):
    return struct.pack('>I', len(payload))[1:] + bytes([t, flags]) + struct.pack('>I', sid) + payload
def respond(c, sid):
    cl = str(len(body)).encode()
    hdrs = b'\x88' + b'\x0f\x0d' + bytes([len(cl)]) + cl   # :status 200, content-length
    c.sendall(frame(1, 4, sid, hdrs) + frame(0, 1, sid, body))
def serve(c):
    f = c.makefile('rb')
    head = b''
    while not head.endswith(b'\r\n\r\n'):
        b = f.read(1)
        if not b:
            return
        head += b
    if b'upgrade: h2c' not in head.lower():
        c.sendall(b'HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n')
        return
    c.sendall(b'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n')
    c.sendall(frame(4, 0, 0, b''))
    if f.read(24) != b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n':
        return
    respond(c, 1)
    while True:
        h = f.read(9)
        if len(h) < 9:
            return
        n = int.from_bytes(h[:3], 'big'); t = h[3]; fl = h[4]
        sid = int.from_bytes(h[5:9], 'big') & 0x7fffffff
        p = f.read(n)
        if t == 4 and not fl & 1:
            c.sendall(frame(4, 1, 0, b''))
        elif t == 6 and not fl & 1:
            c.sendall(frame(6, 1, 0, p))
        elif t == 1:
            respond(c, sid)
        elif t == 7:
            return
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', port)); s.listen(16)
while True:
    c, _ = s.accept()
    def run(c=c):
        try:
            serve(c)
        finally:
            c.close()
    threading.Thread(target=run, daemon=True).start()
"#;

/// `curl --http2 http://…` (h2c upgrade: the first request is HTTP/1.1 with
/// `Upgrade: h2c`, answered with 101 and then as HTTP/2 stream 1; the second
/// URL goes on stream 3): exactly one client and one server span per
/// request, never one for the HTTP/1.1 leg and another for stream 1.
#[test]
fn curl_h2c_upgrade_one_span_per_request() {
    let dir = tempdir("wirespan-h2c-upgrade-");
    let script = dir.path().join("h2c_upgrade_server.py");
    std::fs::write(&script, H2C_UPGRADE_SERVER).expect("write server script");
    let body = b"upgraded!\n".repeat(7);
    let body_path = dir.path().join("body.bin");
    std::fs::write(&body_path, &body).expect("write body");
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(&script).arg(port.to_string()).arg(&body_path);
    let server = TestServer::spawn("h2c upgrade server", cmd, port, dir);
    // wait_port's probe connection closes at once; the server ignores it.
    let mut env = start("curl_h2c_upgrade_one_span_per_request", port);
    let (out, _) = run_ok(
        Command::new("curl")
            .args(["-sS", "--http2", "--max-time", "60"])
            .args(["-o", "/dev/null", "-o", "/dev/null"])
            .args(["-w", "%{http_version} %{http_code} %{local_port}\n"])
            .arg(format!("http://127.0.0.1:{port}/first"))
            .arg(format!("http://127.0.0.1:{port}/second")),
        &format!("{}\nserver log:\n{}", env.diagnostics(), server.log()),
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 2, "curl -w output {out:?}");
    for l in &lines {
        assert_eq!(
            &l[..2],
            &["2", "200"],
            "curl did not upgrade to h2c: {out:?}"
        );
    }
    let cport: u16 = lines[0][2].parse().unwrap();
    assert_eq!(lines[1][2], lines[0][2], "one connection for both URLs");
    // Bounded wait; a shortfall is reported by the exact comparison below.
    env.receiver
        .wait_for(SPAN_TIMEOUT, |s| of_port(s, port).len() >= 4)
        .ok();
    let (spans, exit) = env.stop(port);
    let ua = curl_user_agent();
    // The server was started before the agent: named from /proc/PID/exe.
    let exe = resolved_exe_name(&python());
    let mut expected = Vec::new();
    // The upgraded request was sent as HTTP/1.1 (its answer came as HTTP/2
    // stream 1): its span says "1.1"; the second request is plain HTTP/2.
    for (path, version) in [("/first", "1.1"), ("/second", "2")] {
        expected.extend(with_ua(
            http_pair(
                ("curl", exe.as_str()),
                "http",
                version,
                "GET",
                path,
                port,
                cport,
                200,
                0,
                body.len() as u64,
            ),
            &ua,
        ));
    }
    assert_spans(&expected, &spans, &exit.diagnostics());
}
