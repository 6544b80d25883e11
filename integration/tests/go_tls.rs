//! Go crypto/tls end to end (issue 12): a Go `net/http` HTTPS server and
//! client (`integration/go/gotls`, built here with Debian's Go 1.19 in three
//! forms: with symbols, `-ldflags=-s -w` and `-trimpath`), over HTTP/1.1 and
//! HTTP/2 (ALPN). The agent reads the plaintext through its uprobes on
//! `crypto/tls.(*Conn).Write`/`Read` (entry and every RET, no uretprobe) and
//! must give exactly one `url.scheme = "https"` span per request on each
//! side; a Go client and an OpenSSL server (and the reverse) link into one
//! trace.
//!
//! The agent runs with its default capture settings, as deployed.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common_h2;

use common_h2::*;
use integration::agent::AgentExit;
use integration::go::{fresh_copy, go_program, GoBuild};
use integration::prelude::*;
use integration::spans::{show, ExpectedSpan, KIND_CLIENT, KIND_SERVER};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const HELLO_LEN: u64 = 14; // "hello from go\n"
const NOT_FOUND_LEN: u64 = 19; // "404 page not found\n"
const BIG_LEN: u64 = 1 << 20;

/// The Go HTTPS server (`gotls server`) on a free port; `protos` "h1" turns
/// HTTP/2 off, "h2" offers it by ALPN.
fn go_server(exe: &Path, protos: &str) -> TestServer {
    let dir = tempdir("wirespan-go-server-");
    let (cert, key) = self_signed_cert(dir.path());
    let port = free_port();
    let mut cmd = Command::new(exe);
    cmd.arg("server")
        .arg(format!("127.0.0.1:{port}"))
        .arg(&cert)
        .arg(&key)
        .arg(protos);
    TestServer::spawn("go tls server", cmd, port, dir)
}

/// One response as the Go client printed it.
#[derive(Debug)]
struct GoResponse {
    version: &'static str,
    status: u16,
    bytes: u64,
    local_port: u16,
}

/// Runs `gotls client` (one keep-alive connection, requests in order).
fn go_client(exe: &Path, proto: &str, port: u16, paths: &[&str], diag: &str) -> Vec<GoResponse> {
    let (out, _) = run_ok(
        Command::new(exe)
            .arg("client")
            .arg(proto)
            .arg(format!("https://127.0.0.1:{port}"))
            .args(paths),
        diag,
    );
    let responses: Vec<GoResponse> = out
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 4, "go client line {line:?}");
            GoResponse {
                version: match f[0] {
                    "HTTP/1.1" => "1.1",
                    "HTTP/2.0" => "2",
                    other => panic!("unexpected protocol {other:?}"),
                },
                status: f[1].parse().expect("status"),
                bytes: f[2].parse().expect("bytes"),
                local_port: f[3].parse().expect("port"),
            }
        })
        .collect();
    assert_eq!(responses.len(), paths.len(), "go client output:\n{out}");
    responses
}

fn user_agent(version: &str) -> &'static str {
    if version == "2" {
        "Go-http-client/2.0"
    } else {
        "Go-http-client/1.1"
    }
}

/// The expected client and server spans of `responses` to `paths`.
fn go_pairs(
    names: (&str, &str),
    port: u16,
    paths: &[&str],
    responses: &[GoResponse],
    client_ua: &str,
) -> Vec<ExpectedSpan> {
    let mut expected = Vec::new();
    for (path, r) in paths.iter().zip(responses) {
        let ua = if client_ua.is_empty() {
            user_agent(r.version)
        } else {
            client_ua
        };
        for e in http_pair(
            names,
            "https",
            r.version,
            "GET",
            path,
            port,
            r.local_port,
            r.status,
            0,
            r.bytes,
        ) {
            expected.push(e.attr("user_agent.original", ua));
        }
    }
    expected
}

/// The Go client's requests: small, 404 and 1 MiB, on one connection.
const PATHS: [&str; 3] = ["/hello", "/nope", "/big"];

fn assert_go_responses(responses: &[GoResponse], version: &str) {
    let got: Vec<(&str, u16, u64)> = responses
        .iter()
        .map(|r| (r.version, r.status, r.bytes))
        .collect();
    assert_eq!(
        got,
        vec![
            (version, 200, HELLO_LEN),
            (version, 404, NOT_FOUND_LEN),
            (version, 200, BIG_LEN)
        ]
    );
}

fn metric(exit: &AgentExit, name: &str, labels: &[(&str, &str)]) -> f64 {
    exit.metrics.get(name, labels)
}

/// What every Go test checks in `/metrics`: Go processes hooked, Go calls
/// counted, their sockets found in the `tls.Conn`, and no disagreement with
/// the nested syscall.
fn assert_go_metrics(exit: &AgentExit) {
    let d = exit.diagnostics();
    let hooked = metric(exit, "wirespan_tls_processes_total", &[("path", "go")]);
    assert!(hooked >= 1.0, "no Go process hooked\n{d}");
    let calls = metric(exit, "wirespan_tls_calls_total", &[("library", "go")]);
    assert!(calls > 0.0, "no Go TLS call counted\n{d}");
    let from_conn = metric(
        exit,
        "wirespan_tls_calls_by_socket_source_total",
        &[("source", "go_conn_struct")],
    );
    assert!(
        from_conn > 0.0,
        "no Go TLS call found its socket in the tls.Conn\n{d}"
    );
    let agreed = metric(
        exit,
        "wirespan_tls_go_fd_cross_checks_total",
        &[("result", "agreed")],
    );
    assert!(
        agreed > 0.0,
        "the tls.Conn's socket was never cross-checked\n{d}"
    );
    let disagreed = metric(
        exit,
        "wirespan_tls_go_fd_cross_checks_total",
        &[("result", "disagreed")],
    );
    assert_eq!(disagreed, 0.0, "tls.Conn and syscall disagreed\n{d}");
    // No assertion on `not_found`: it counts every TLS library on the host
    // (a cargo fetching crates over OpenSSL moves it); the exact spans above
    // already show that this test's plaintext found its sockets.
}

/// Waits (bounded) until /metrics shows the Go calls, their sockets found in
/// the `tls.Conn` and cross-checked: the agent copies the kernel counters into
/// /metrics once a second, later when it is busy (every process on the host
/// is traced).
fn wait_go_counted(env: &Env) {
    let counted = integration::wait::wait_until(std::time::Duration::from_secs(30), || {
        let m = env.agent().metrics();
        m.get("wirespan_tls_calls_total", &[("library", "go")]) > 0.0
            && m.get(
                "wirespan_tls_calls_by_socket_source_total",
                &[("source", "go_conn_struct")],
            ) > 0.0
            && m.get(
                "wirespan_tls_go_fd_cross_checks_total",
                &[("result", "agreed")],
            ) > 0.0
    });
    assert!(
        counted,
        "the Go TLS counters did not move within 30 s\n{}",
        env.diagnostics()
    );
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// A stripped (`-s -w`) Go server already running when the agent starts,
/// and the same stripped binary as the client: HTTP/1.1 and HTTP/2, 200,
/// 404 and a 1 MiB body on keep-alive connections; exact spans both sides.
#[test]
fn stripped_go_server_started_before_agent() {
    let exe = go_program("gotls", GoBuild::Stripped);
    let server = go_server(&exe, "h2");
    let port = server.port;
    let mut env = Env::start("stripped_go_server_started_before_agent");
    let d = env.diagnostics();
    let h1 = go_client(&exe, "h1", port, &PATHS, &d);
    let h2 = go_client(&exe, "h2", port, &PATHS, &d);
    assert_go_responses(&h1, "1.1");
    assert_go_responses(&h2, "2");
    env.wait_spans(port, 12, "stripped Go client → stripped Go server");
    wait_go_counted(&env);
    let (spans, exit) = env.stop(port);
    let name = file_name(&exe);
    let mut expected = go_pairs((&name, &name), port, &PATHS, &h1, "");
    expected.extend(go_pairs((&name, &name), port, &PATHS, &h2, ""));
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_spans(&expected, &spans, &exit.diagnostics());
    assert_go_metrics(&exit);
}

/// A Go server with symbols and a `-trimpath` client, both started after the
/// agent, from files it has never seen. The server is hooked at its exec,
/// long before its first request: its spans are exact from the first one.
/// The client's first run is hooked at its exec too, but it makes its TLS
/// calls within milliseconds, while the kernel is still registering the
/// uprobes: its spans may be missing, never wrong. Runs after the first are
/// covered from their first instruction: exact spans, HTTP/1.1 and HTTP/2.
#[test]
fn go_server_and_client_started_after_agent() {
    let server_exe = go_program("gotls", GoBuild::Symbols);
    let client_exe = go_program("gotls", GoBuild::Trimpath);
    let mut env = Env::start("go_server_and_client_started_after_agent");
    let server = go_server(&server_exe, "h2");
    let port = server.port;
    let (_dir, client) = fresh_copy(&client_exe, "gotls-fresh-client");
    let d = env.diagnostics();
    let first = go_client(&client, "h1", port, &["/hello"], &d);
    let h1 = go_client(&client, "h1", port, &PATHS, &d);
    let h2 = go_client(&client, "h2", port, &PATHS, &d);
    assert_go_responses(&h1, "1.1");
    assert_go_responses(&h2, "2");
    env.wait_spans(port, 13, "trimpath Go client → Go server with symbols");
    wait_go_counted(&env);
    let (spans, exit) = env.stop(port);
    let names = ("gotls-fresh-client", "gotls-symbols");

    // The first run: its server span always, its client span if it came in time.
    let first_port = first[0].local_port as i64;
    let (of_first, later): (Vec<FlatSpan>, Vec<FlatSpan>) = spans.iter().cloned().partition(|s| {
        s.int("client.port") == Some(first_port) || s.int("network.local.port") == Some(first_port)
    });
    let [client_span, server_span] = go_pairs(names, port, &["/hello"], &first, "")
        .try_into()
        .expect("one pair");
    let first_client_seen = of_first.iter().any(|s| s.is_client());
    let mut expected_first = vec![server_span];
    if first_client_seen {
        expected_first.push(client_span);
    }
    eprintln!(
        "the first run of the new client binary was {} from its first request",
        if first_client_seen {
            "traced"
        } else {
            "not yet hooked"
        }
    );
    assert_spans(&expected_first, &of_first, &exit.diagnostics());

    let mut expected = go_pairs(names, port, &PATHS, &h1, "");
    expected.extend(go_pairs(names, port, &PATHS, &h2, ""));
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_spans(&expected, &later, &exit.diagnostics());
    assert_go_metrics(&exit);
    // The server's DWARF was read after it was hooked, and agreed.
    let confirmed = metric(
        &exit,
        "wirespan_tls_go_dwarf_checks_total",
        &[("result", "confirmed")],
    );
    assert!(
        confirmed >= 2.0,
        "the DWARF of the two unstripped binaries was not checked\n{}",
        exit.diagnostics()
    );
}

/// A Go client process that lives a few milliseconds, of a binary already
/// hooked (the server runs it): its request is traced on both sides, and
/// the client span carries the short process's own name.
#[test]
fn short_lived_go_client() {
    let exe = go_program("gotls", GoBuild::Stripped);
    let (_dir, short) = fresh_copy(&exe, "gotls-short");
    // The server runs the client's own file: the file is hooked at start.
    let server = go_server(&short, "h1");
    let port = server.port;
    let mut env = Env::start("short_lived_go_client");
    // Run directly (no watchdog thread) to measure how long the client lives;
    // it bounds itself (60 s HTTP timeout).
    let started = Instant::now();
    let out = Command::new(&short)
        .args(["client", "h1"])
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("/hello")
        .output()
        .expect("run the Go client");
    let lived = started.elapsed();
    eprintln!("the short-lived Go client ran for {lived:?}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &f[..3],
        &["HTTP/1.1", "200", "14"],
        "client output {line:?}"
    );
    let r = [GoResponse {
        version: "1.1",
        status: 200,
        bytes: HELLO_LEN,
        local_port: f[3].parse().expect("port"),
    }];
    env.wait_spans(port, 2, "short-lived Go client");
    let (spans, exit) = env.stop(port);
    let expected = go_pairs(("gotls-short", "gotls-short"), port, &["/hello"], &r, "");
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_spans(&expected, &spans, &exit.diagnostics());
}

/// The client and server spans of one request share a trace, the server's
/// parent being the client's span.
fn assert_linked(spans: &[FlatSpan], diag: &str) {
    let clients: Vec<&FlatSpan> = spans.iter().filter(|s| s.kind == KIND_CLIENT).collect();
    let servers: Vec<&FlatSpan> = spans.iter().filter(|s| s.kind == KIND_SERVER).collect();
    assert_eq!(clients.len(), servers.len(), "{}\n{diag}", show(spans));
    for c in &clients {
        let port = c.int("network.local.port");
        let path = c.str("url.path");
        let version = c.str("network.protocol.version");
        let s = servers
            .iter()
            .find(|s| {
                s.int("client.port") == port
                    && s.str("url.path") == path
                    && s.str("network.protocol.version") == version
            })
            .unwrap_or_else(|| panic!("no server span for {port:?} {path:?}\n{}", show(spans)));
        assert_eq!(
            (&s.trace_id, &s.parent_span_id),
            (&c.trace_id, &c.span_id),
            "server span not the child of its client span:\n{}\n{diag}",
            show(&[(*c).clone(), (*s).clone()])
        );
    }
}

/// A Go client calling nginx (OpenSSL), and curl (OpenSSL) calling a Go
/// server: exact spans, and each pair links into one trace.
#[test]
fn go_and_openssl_ends_link_into_one_trace() {
    let body = b"<p>nginx answers go</p>\n".repeat(10);
    let nginx = integration_nginx(&body);
    let nginx_port = nginx.port;
    let exe = go_program("gotls", GoBuild::Trimpath);
    let go = go_server(&exe, "h2");
    let go_port = go.port;
    let mut env = Env::start("go_and_openssl_ends_link_into_one_trace");
    let d = env.diagnostics();
    let name = file_name(&exe);
    // Started after the agent from a file already hooked (the Go server runs it).
    let client = exe.clone();
    let to_nginx_h1 = go_client(&client, "h1", nginx_port, &["/index.html"], &d);
    let to_nginx_h2 = go_client(&client, "h2", nginx_port, &["/index.html"], &d);
    let mut curl_ports = Vec::new();
    for flag in ["--http1.1", "--http2"] {
        let (out, _) = run_ok(
            Command::new("curl")
                .args(["-sS", "-k", "--max-time", "60", "-o", "/dev/null", flag])
                .args(["-w", "%{http_version} %{http_code} %{local_port}"])
                .arg(format!("https://127.0.0.1:{go_port}/hello")),
            &d,
        );
        let f: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(f.len(), 3, "curl -w output {out:?}");
        assert_eq!(f[1], "200", "curl → go server");
        let version = if f[0] == "2" { "2" } else { "1.1" };
        curl_ports.push(GoResponse {
            version,
            status: 200,
            bytes: HELLO_LEN,
            local_port: f[2].parse().expect("port"),
        });
    }
    env.wait_spans(nginx_port, 4, "Go client → nginx");
    env.wait_spans(go_port, 4, "curl → Go server");
    wait_go_counted(&env);
    let exit = env.agent.take().expect("agent running").stop_ok();
    let all = env.receiver.spans();
    let to_nginx = of_port(&all, nginx_port);
    let to_go = of_port(&all, go_port);

    let mut expected = go_pairs(
        (name.as_str(), "nginx"),
        nginx_port,
        &["/index.html"],
        &to_nginx_h1,
        "",
    );
    expected.extend(go_pairs(
        (name.as_str(), "nginx"),
        nginx_port,
        &["/index.html"],
        &to_nginx_h2,
        "",
    ));
    assert_no_plaintext_spans(&to_nginx, nginx_port, &exit);
    assert_spans(&expected, &to_nginx, &exit.diagnostics());
    assert_linked(&to_nginx, &exit.diagnostics());

    let ua = curl_user_agent();
    let expected = go_pairs(
        ("curl", &file_name(&exe)),
        go_port,
        &["/hello", "/hello"],
        &curl_ports,
        &ua,
    );
    assert_no_plaintext_spans(&to_go, go_port, &exit);
    assert_spans(&expected, &to_go, &exit.diagnostics());
    assert_linked(&to_go, &exit.diagnostics());
    assert_go_metrics(&exit);
}

fn integration_nginx(body: &[u8]) -> TestServer {
    nginx_tls(&[("index.html", body)])
}

/// A Go executable whose function table is damaged is skipped with a
/// reason, counted, and the agent keeps running and tracing; a Go program
/// without crypto/tls is simply not a TLS process.
#[test]
fn unreadable_go_binary_is_skipped_and_counted() {
    let exe = go_program("gotls", GoBuild::Stripped);
    let (_dir, damaged) = fresh_copy(&exe, "gotls-damaged");
    damage_pclntab(&damaged);
    let mut env = Env::start("unreadable_go_binary_is_skipped_and_counted");
    // The Go runtime refuses the damaged table too: the process exits at
    // once, but its exec has been seen and its file checked.
    let _ = Command::new(&damaged)
        .arg("client")
        .output()
        .expect("run the damaged binary");
    // The agent still traces Go TLS afterwards.
    let server = go_server(&exe, "h1");
    let port = server.port;
    let d = env.diagnostics();
    let r = go_client(&exe, "h1", port, &["/hello"], &d);
    env.wait_spans(port, 2, "Go TLS after a damaged Go binary");
    let (spans, exit) = env.stop(port);
    let name = file_name(&exe);
    let expected = go_pairs((&name, &name), port, &["/hello"], &r, "");
    assert_spans(&expected, &spans, &exit.diagnostics());
    let skipped = metric(
        &exit,
        "wirespan_tls_processes_total",
        &[("path", "go_skipped"), ("reason", "bad_pclntab")],
    );
    assert_eq!(
        skipped,
        1.0,
        "the damaged Go binary was not counted as skipped (bad_pclntab)\n{}",
        exit.diagnostics()
    );
    assert!(
        exit.stderr.contains("gotls-damaged") && exit.stderr.contains("bad_pclntab"),
        "no log line naming the damaged binary and its reason:\n{}",
        exit.stderr
    );
}

/// Overwrites the magic number of `.gopclntab` in `path`.
fn damage_pclntab(path: &Path) {
    let mut data = std::fs::read(path).expect("read binary");
    let (offset, _) = section_range(&data, ".gopclntab").expect(".gopclntab section");
    data[offset..offset + 4].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    std::fs::write(path, data).expect("write damaged binary");
}

/// (file offset, size) of an ELF64 little-endian section by name.
fn section_range(data: &[u8], name: &str) -> Option<(usize, usize)> {
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    let shoff = u64_at(0x28);
    let shentsize = u16_at(0x3a);
    let shnum = u16_at(0x3c);
    let shstrndx = u16_at(0x3e);
    let strtab = u64_at(shoff + shstrndx * shentsize + 0x18);
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        let name_off = strtab + u32_at(sh);
        let end = data[name_off..].iter().position(|&b| b == 0)?;
        if &data[name_off..name_off + end] == name.as_bytes() {
            return Some((u64_at(sh + 0x18), u64_at(sh + 0x20)));
        }
    }
    None
}
