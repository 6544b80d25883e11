//! HTTP/2 connections opened BEFORE the agent starts: the agent joins them
//! midway, with HPACK dynamic tables it never saw being built.
//!
//! - a grpcio channel (`scripts/grpc_cart.py`, h2c): 10 `Add` calls before
//!   the agent, then 10 `Add` and 10 `Remove` (a method new to the
//!   connection) after it is ready;
//! - a Node.js http2 client (`scripts/h2_stdin_client.js`) on one
//!   long-lived connection, to `nghttpd` (h2c) and to nginx over TLS (the
//!   TLS twin), `/old.txt` before the agent, `/old.txt` and `/new.txt` after
//!   (nghttp2, inside node, never indexes `:path`: the paths stay known; its
//!   `:authority` and the servers' headers are references from before).
//!
//! What is checked: what could be decoded is exact; what could not is left
//! out (never an empty or made-up value) and named in the span's
//! `wirespan.capture.unknown_fields`; gRPC is recognised from the wire (its
//! `content-type` was an unknown dynamic-table reference) and gets the RPC
//! conventions; the per-connection HPACK counters moved.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common_h2;

use common_h2::*;
use integration::prelude::*;
use integration::python::{python, script};
use integration::spans::{show, AttrValue, FlatSpan, STATUS_ERROR, STATUS_UNSET};
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

const UNKNOWN: &str = "wirespan.capture.unknown_fields";

/// A client process driven line by line over stdin/stdout.
struct LineClient {
    to: Option<ChildStdin>,
    from: BufReader<ChildStdout>,
    process: integration::process::Guarded,
}

impl LineClient {
    fn start(name: &str, cmd: &mut Command) -> LineClient {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let to = child.stdin.take();
        let from = BufReader::new(child.stdout.take().expect("stdout"));
        LineClient {
            to,
            from,
            process: integration::process::Guarded::new(name, child),
        }
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.from.read_line(&mut line).expect("client output");
        assert!(!line.is_empty(), "the client ended early");
        line.trim().to_string()
    }

    fn ask(&mut self, line: &str) -> String {
        let to = self.to.as_mut().expect("stdin open");
        writeln!(to, "{line}").expect("write to the client");
        to.flush().expect("flush");
        self.read_line()
    }

    /// Closes stdin (the client closes its connection and exits) and waits.
    fn finish(mut self) {
        self.to = None;
        let mut rest = String::new();
        // Read to the end: the client exits after closing its connection.
        std::io::Read::read_to_string(&mut self.from, &mut rest).ok();
        let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
        while self.process.exited().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// No attribute is ever an empty string.
fn assert_no_empty_attributes(spans: &[FlatSpan], diag: &str) {
    for s in spans {
        for (k, v) in &s.attrs {
            assert!(
                !matches!(v, AttrValue::Str(x) if x.is_empty()),
                "empty attribute {k}:\n{s}\n{diag}"
            );
        }
    }
}

fn unknown_fields(s: &FlatSpan) -> Vec<&str> {
    s.str(UNKNOWN)
        .map(|v| v.split(',').collect())
        .unwrap_or_default()
}

/// `key` is either exactly `want`, or absent and named as unknown.
fn exact_or_named_unknown(s: &FlatSpan, key: &str, want: &AttrValue, diag: &str) {
    match s.attr(key) {
        Some(v) => assert_eq!(v, want, "{key} of\n{s}\n{diag}"),
        None => assert!(
            unknown_fields(s).contains(&key),
            "{key} is neither {want} nor named in {UNKNOWN}:\n{s}\n{diag}"
        ),
    }
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn started_after(spans: &[FlatSpan], since_ns: u64) -> Vec<FlatSpan> {
    spans
        .iter()
        .filter(|s| s.start_ns >= since_ns)
        .cloned()
        .collect()
}

fn sorted_by_start(mut v: Vec<FlatSpan>) -> Vec<FlatSpan> {
    v.sort_by_key(|s| s.start_ns);
    v
}

/// A grpcio channel opened before the agent: the new method's spans are
/// exact with gRPC semantics (name, rpc.*, status where it is known, error
/// rule); the old method's spans are marked and never wrong.
#[test]
fn grpcio_channel_opened_before_the_agent() {
    let mut env = Env::start_later("grpcio_channel_opened_before_the_agent");
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(script("grpc_cart.py"))
        .arg("server")
        .arg(port.to_string());
    let _server = TestServer::spawn("grpc_cart.py server", cmd, port, tempdir("wirespan-grpc-"));
    let mut client = LineClient::start(
        "grpc_cart.py client",
        Command::new(python())
            .arg(script("grpc_cart.py"))
            .arg("client")
            .arg(port.to_string()),
    );
    assert_eq!(client.read_line(), "phase1 done");

    env.start_agent(AgentOptions::default().env("WIRESPAN_CAPTURE__PORTS", port));
    let mut calls = Vec::new();
    for i in 0..10 {
        calls.push(("Add", i, client.ask(&format!("add {i}"))));
    }
    for i in 0..10 {
        calls.push(("Remove", i, client.ask(&format!("remove {i}"))));
    }
    for (m, i, out) in &calls {
        let v: serde_json::Value = serde_json::from_str(out).expect("client JSON");
        let want = if *m == "Remove" && i % 2 == 1 {
            "NOT_FOUND"
        } else {
            "OK"
        };
        assert_eq!(v["code"], want, "{m} {i}: {out}");
    }
    env.wait_spans(port, 40, "gRPC calls after the agent started");
    client.finish();
    let (spans, exit) = env.stop(port);
    let diag = exit.diagnostics();
    assert_eq!(spans.len(), 40, "{}\n{diag}", show(&spans));
    assert_no_empty_attributes(&spans, &diag);

    let (remove, add): (Vec<FlatSpan>, Vec<FlatSpan>) = spans
        .into_iter()
        .partition(|s| s.str("url.path") == Some("/shop.Cart/Remove"));
    assert_eq!(remove.len(), 20, "Remove spans:\n{}\n{diag}", show(&remove));
    for kind_spans in [servers(&remove), clients(&remove)] {
        let ordered = sorted_by_start(kind_spans);
        assert_eq!(ordered.len(), 10, "{}", show(&ordered));
        for (i, s) in ordered.iter().enumerate() {
            let not_found = i % 2 == 1;
            assert_eq!(s.name, "shop.Cart/Remove", "{s}");
            assert_eq!(s.str("rpc.system.name"), Some("grpc"), "{s}\n{diag}");
            assert_eq!(s.str("rpc.method"), Some("shop.Cart/Remove"), "{s}");
            assert_eq!(s.str("http.request.method"), Some("POST"), "{s}");
            assert_eq!(s.int("http.response.status_code"), Some(200), "{s}");
            assert_eq!(s.str("network.protocol.version"), Some("2"), "{s}");
            assert_eq!(s.int("server.port"), Some(port as i64), "{s}");
            assert!(!unknown_fields(s).contains(&"url.path"), "{s}");
            let code = if not_found { "NOT_FOUND" } else { "OK" };
            if not_found {
                // grpc-status 5 is new to the connection: sent so we can read it.
                assert_eq!(s.str("rpc.response.status_code"), Some(code), "{s}\n{diag}");
            } else {
                exact_or_named_unknown(s, "rpc.response.status_code", &code.into(), &diag);
            }
            // Errors: NOT_FOUND on the client only; never made up.
            if not_found && s.is_client() {
                assert_eq!(s.status_code, STATUS_ERROR, "{s}");
                assert_eq!(s.str("error.type"), Some("NOT_FOUND"), "{s}");
                assert_eq!(s.status_message, "no such item", "{s}");
            } else {
                assert_eq!(s.status_code, STATUS_UNSET, "{s}");
                assert_eq!(s.str("error.type"), None, "{s}");
            }
        }
    }

    assert_eq!(add.len(), 20, "Add spans:\n{}\n{diag}", show(&add));
    for s in &add {
        // The old path was a dynamic-table entry from before the agent.
        assert!(
            unknown_fields(s).contains(&"url.path"),
            "Add span not marked:\n{s}\n{diag}"
        );
        assert_eq!(s.attr("url.path"), None, "{s}");
        assert_eq!(s.attr("rpc.method"), None, "{s}");
        assert_eq!(s.name, "POST", "{s}");
        // Recognised from the wire: DATA framing and trailers.
        assert_eq!(s.str("rpc.system.name"), Some("grpc"), "{s}\n{diag}");
        exact_or_named_unknown(s, "rpc.response.status_code", &"OK".into(), &diag);
        assert_eq!(s.int("http.response.status_code"), Some(200), "{s}");
        assert_eq!(s.status_code, STATUS_UNSET, "{s}");
        assert_eq!(s.str("error.type"), None, "{s}");
    }

    let m = &exit.metrics;
    let refs = |r: &str| {
        m.get(
            "wirespan_hpack_midstream_references_total",
            &[("result", r)],
        )
    };
    assert!(refs("unknown") > 0.0, "{}", m.nonzero());
    // The Remove path, inserted after the join, is referenced by later calls.
    assert!(refs("resolved") > 0.0, "{}", m.nonzero());
}

/// The Node client on one connection opened before the agent: `/new.txt`
/// spans exact, `/old.txt` spans marked with the path left out.
fn node_h2_connection_opened_before_the_agent(test: &str, tls: bool) {
    let mut env = Env::start_later(test);
    let old = b"old file\n".repeat(31);
    let new = b"the new file\n".repeat(17);
    let files: [(&str, &[u8]); 2] = [("old.txt", &old), ("new.txt", &new)];
    let server = if tls {
        nginx_tls(&files)
    } else {
        nghttpd(&files, &[])
    };
    let port = server.port;
    let scheme = if tls { "https" } else { "http" };
    let mut client = LineClient::start(
        "h2_stdin_client.js",
        Command::new("/usr/bin/node")
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/h2_stdin_client.js"),
            )
            .arg(format!("{scheme}://127.0.0.1:{port}"))
            .args(["/old.txt", "5"]),
    );
    let phase1 = client.read_line();
    assert!(phase1.starts_with("phase1 done"), "{phase1}");

    env.start_agent(AgentOptions::default().env("WIRESPAN_CAPTURE__PORTS", port));
    if tls {
        // Node does its TLS socket I/O itself (custom BIO): its socket is
        // found from the thread's last read (README, TLS), so the first
        // SSL_write after the agent attaches has no socket and is counted
        // `not_found`. One request first, whose spans are not checked.
        assert_eq!(
            client.ask("/old.txt"),
            format!("200 {}", old.len()),
            "warm-up"
        );
    }
    let since = unix_now_ns();
    let mut expected = Vec::new();
    for path in ["/old.txt", "/new.txt", "/old.txt", "/new.txt"] {
        let out = client.ask(path);
        let len = if path == "/old.txt" {
            old.len()
        } else {
            new.len()
        };
        assert_eq!(out, format!("200 {len}"), "GET {path}");
        expected.push((path, len as i64));
    }
    if let Err(got) = env.receiver.wait_for(SPAN_TIMEOUT, |s| {
        started_after(&of_port(s, port), since).len() >= 8
    }) {
        panic!(
            "expected 8 spans of the node requests within {SPAN_TIMEOUT:?}:\n{}\n{}",
            show(&of_port(&got, port)),
            env.diagnostics()
        );
    }
    client.finish();
    let (spans, exit) = env.stop(port);
    let spans = started_after(&spans, since);
    let diag = exit.diagnostics();
    assert_eq!(spans.len(), 8, "{}\n{diag}", show(&spans));
    assert_no_empty_attributes(&spans, &diag);
    for kind_spans in [servers(&spans), clients(&spans)] {
        let ordered = sorted_by_start(kind_spans);
        assert_eq!(ordered.len(), 4, "{}\n{diag}", show(&ordered));
        for (s, (path, len)) in ordered.iter().zip(&expected) {
            assert_eq!(s.name, "GET", "{s}");
            assert_eq!(s.str("http.request.method"), Some("GET"), "{s}");
            assert_eq!(s.int("http.response.status_code"), Some(200), "{s}");
            assert_eq!(s.int("http.response.body.size"), Some(*len), "{s}");
            assert_eq!(s.str("url.scheme"), Some(scheme), "{s}");
            assert_eq!(s.str("network.protocol.version"), Some("2"), "{s}");
            assert_eq!(s.str("rpc.system.name"), None, "{s}");
            assert_eq!(s.status_code, STATUS_UNSET, "{s}");
            // Joined midway: some fields are references to entries made
            // before the agent (node's :authority at least), and are named.
            assert!(!unknown_fields(s).is_empty(), "not marked:\n{s}\n{diag}");
            if *path == "/new.txt" {
                // New to the connection: sent as a literal, so known.
                assert_eq!(s.str("url.path"), Some("/new.txt"), "{s}\n{diag}");
                assert!(!unknown_fields(s).contains(&"url.path"), "{s}");
            } else {
                // nghttp2 (inside node) never indexes :path, so it is known
                // too; were it not, it would be named, never wrong.
                exact_or_named_unknown(s, "url.path", &(*path).into(), &diag);
            }
            if s.is_client() && s.attr("url.path").is_some() {
                assert_eq!(
                    s.str("url.full"),
                    Some(format!("{scheme}://127.0.0.1:{port}{path}").as_str()),
                    "{s}"
                );
            }
        }
    }
    let m = &exit.metrics;
    assert!(
        m.get(
            "wirespan_hpack_midstream_references_total",
            &[("result", "unknown")]
        ) > 0.0,
        "{}",
        m.nonzero()
    );
}

#[test]
fn node_h2c_connection_opened_before_the_agent() {
    node_h2_connection_opened_before_the_agent(
        "node_h2c_connection_opened_before_the_agent",
        false,
    );
}

#[test]
fn node_h2_tls_connection_opened_before_the_agent() {
    node_h2_connection_opened_before_the_agent(
        "node_h2_tls_connection_opened_before_the_agent",
        true,
    );
}
