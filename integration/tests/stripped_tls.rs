//! TLS in stripped binaries (issue 13): OpenSSL and BoringSSL linked into a
//! file that has no symbol for `SSL_read`/`SSL_write`, located by
//! `tls-locate` (proven function entries, identified by evidence in the
//! code), hooked, and checked at run time by the integrity check.
//!
//! - grpcio: its `cygrpc*.so` links BoringSSL statically, symbols hidden,
//!   no `.symtab`; gRPC does its own socket I/O (custom BIO). A server
//!   running before the agent, and a copy of the package (a file the agent
//!   has never seen) loaded with `dlopen` after it: exact gRPC spans both
//!   sides, `url.scheme = https`.
//! - a small C client (`integration/c/tls_get.c`) linked with Debian's
//!   static `libssl.a` and stripped, BIO native: exact spans against nginx.
//! - a stripped program with decoy strings and one with no TLS at all:
//!   nothing attached, counted.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common_h2;

use common_h2::*;
use integration::agent::{Agent, AgentExit};
use integration::c_program::{stripped_c_program, LinkTls};
use integration::prelude::*;
use integration::spans::{show, ExpectedSpan, STATUS_ERROR, STATUS_UNSET};
use integration::wait::wait_until;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LOCATED: &str = "TLS uprobes attached at located functions";
const VERIFIED: &str = "located TLS functions checked: their calls return plaintext";

/// The log without its terminal colours.
fn plain_log(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits (bounded) until the agent's log has a line with `what` that names
/// `path`.
fn wait_log(agent: &Agent, what: &str, path: &Path, timeout: Duration) {
    let path = path.display().to_string();
    let found = wait_until(timeout, || {
        plain_log(&agent.stderr())
            .lines()
            .any(|l| l.contains(what) && l.contains(&path))
    });
    assert!(
        found,
        "no log line {what:?} for {path} within {timeout:?}\n{}",
        agent.diagnostics()
    );
}

fn log_lines_naming(exit: &AgentExit, path: &Path) -> Vec<String> {
    let path = path.display().to_string();
    plain_log(&exit.stderr)
        .lines()
        .filter(|l| l.contains(&path))
        .map(str::to_string)
        .collect()
}

fn metric(exit: &AgentExit, name: &str, labels: &[(&str, &str)]) -> f64 {
    exit.metrics.get(name, labels)
}

// === grpcio ===

/// grpcio's package directory in the interpreter the tests run.
fn grpc_package() -> PathBuf {
    let (out, _) = run_ok(
        Command::new(python()).args([
            "-c",
            "import grpc, os; print(os.path.dirname(grpc.__file__))",
        ]),
        "grpcio is missing: run scripts/setup.sh",
    );
    PathBuf::from(out.trim())
}

/// The extension module that holds BoringSSL.
fn cygrpc_in(package: &Path) -> PathBuf {
    let dir = package.join("_cython");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cygrpc"))
        })
        .expect("grpc/_cython/cygrpc*.so")
}

/// A copy of the grpc package in a new directory (new inodes the agent has
/// never seen), as `PYTHONPATH`.
fn fresh_grpc_package() -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir("wirespan-grpc-copy-");
    let (_, _) = run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(grpc_package())
            .arg(dir.path()),
        "copying the grpc package",
    );
    let copy = dir.path().join("grpc");
    (dir, copy)
}

fn grpc_server(port: u16, cert: &Path, key: &Path, pythonpath: Option<&Path>) -> TestServer {
    let mut cmd = Command::new(python());
    cmd.arg(script("grpc_tls.py"))
        .arg("server")
        .arg(port.to_string())
        .arg(cert)
        .arg(key);
    if let Some(p) = pythonpath {
        cmd.env("PYTHONPATH", p);
    }
    TestServer::spawn(
        "grpc_tls.py server",
        cmd,
        port,
        tempdir("wirespan-grpc-tls-"),
    )
}

/// Runs the client: `n` calls on one channel; returns (method, item, code).
fn grpc_client(
    port: u16,
    cert: &Path,
    n: usize,
    pythonpath: Option<&Path>,
    diag: &str,
) -> Vec<(String, u64, String)> {
    let mut cmd = Command::new(python());
    cmd.arg(script("grpc_tls.py"))
        .arg("client")
        .arg(port.to_string())
        .arg(cert)
        .arg(n.to_string());
    if let Some(p) = pythonpath {
        cmd.env("PYTHONPATH", p);
    }
    let (out, _) = run_ok(&mut cmd, diag);
    let calls: Vec<(String, u64, String)> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("client JSON");
            (
                v["method"].as_str().expect("method").to_string(),
                v["item"].as_u64().expect("item"),
                v["code"].as_str().expect("code").to_string(),
            )
        })
        .collect();
    assert_eq!(calls.len(), n, "grpc client output:\n{out}");
    for (m, i, code) in &calls {
        let want = if m == "Remove" && i % 2 == 1 {
            "NOT_FOUND"
        } else {
            "OK"
        };
        assert_eq!(code, want, "{m} {i}");
    }
    calls
}

/// Every span of `calls` on both sides, exact: gRPC semantics over
/// HTTP/2 over TLS, one connection, client and server in one trace.
fn assert_grpc_spans(
    spans: &[FlatSpan],
    calls: &[(String, u64, String)],
    port: u16,
    names: (&str, &str),
    diag: &str,
) {
    assert_eq!(spans.len(), 2 * calls.len(), "{}\n{diag}", show(spans));
    assert_no_plaintext_spans_of(spans, diag);
    let client_port = single_client_port(spans, diag);
    for (side, mut of_side) in [("server", servers(spans)), ("client", clients(spans))] {
        of_side.sort_by_key(|s| s.start_ns);
        assert_eq!(of_side.len(), calls.len(), "{side}: {}", show(&of_side));
        for (s, (method, _, code)) in of_side.iter().zip(calls) {
            let rpc = format!("shop.Cart/{method}");
            assert_eq!(s.name, rpc, "{s}\n{diag}");
            assert_eq!(s.str("rpc.system.name"), Some("grpc"), "{s}");
            assert_eq!(s.str("rpc.method"), Some(rpc.as_str()), "{s}");
            assert_eq!(
                s.str("rpc.response.status_code"),
                Some(code.as_str()),
                "{s}"
            );
            assert_eq!(s.str("url.path"), Some(format!("/{rpc}").as_str()), "{s}");
            assert_eq!(s.str("http.request.method"), Some("POST"), "{s}");
            assert_eq!(s.int("http.response.status_code"), Some(200), "{s}");
            assert_eq!(s.str("network.protocol.version"), Some("2"), "{s}");
            assert_eq!(s.int("server.port"), Some(port as i64), "{s}");
            assert_eq!(s.attr("wirespan.capture.unknown_fields"), None, "{s}");
            let (local, peer) = if s.is_client() {
                (client_port, names.1)
            } else {
                (port, names.0)
            };
            assert_eq!(s.int("network.local.port"), Some(local as i64), "{s}");
            assert_eq!(s.str("service.peer.name"), Some(peer), "{s}");
            // NOT_FOUND is an error on the client only.
            if code == "NOT_FOUND" && s.is_client() {
                assert_eq!(s.status_code, STATUS_ERROR, "{s}");
                assert_eq!(s.str("error.type"), Some("NOT_FOUND"), "{s}");
                assert_eq!(s.status_message, "no such item", "{s}");
            } else {
                assert_eq!(s.status_code, STATUS_UNSET, "{s}");
            }
        }
    }
    // Each server span is the child of its client span (same host).
    for server in servers(spans) {
        let parent = clients(spans)
            .into_iter()
            .find(|c| c.span_id == server.parent_span_id)
            .unwrap_or_else(|| panic!("server span without its client parent:\n{server}\n{diag}"));
        assert_eq!(parent.trace_id, server.trace_id);
        assert_eq!(parent.name, server.name);
    }
}

fn assert_no_plaintext_spans_of(spans: &[FlatSpan], diag: &str) {
    for s in spans {
        assert_eq!(s.str("url.scheme"), Some("https"), "{s}\n{diag}");
    }
}

/// What every located-TLS test checks in `/metrics`: the file was located
/// by analysis, its integrity check passed, no sample broke a rule.
fn assert_located_and_verified(exit: &AgentExit) {
    let d = exit.diagnostics();
    // The located files and their checks, for the test's output.
    for line in plain_log(&exit.stderr)
        .lines()
        .filter(|l| l.contains(LOCATED) || l.contains(VERIFIED))
    {
        eprintln!("{line}");
    }
    let analysed = metric(
        exit,
        "wirespan_tls_located_files_total",
        &[("result", "analysis")],
    );
    assert!(analysed >= 1.0, "no file located by analysis\n{d}");
    let verified = metric(
        exit,
        "wirespan_tls_integrity_checks_total",
        &[("result", "verified")],
    );
    assert!(verified >= 1.0, "no integrity check passed\n{d}");
    let http = metric(
        exit,
        "wirespan_tls_integrity_samples_total",
        &[("result", "http")],
    );
    assert!(http >= 2.0, "integrity samples: {http} HTTP\n{d}");
    // A violation anywhere on the host would be a wrong hook.
    for reason in ["longer_than_buffer", "ahead_of_ciphertext"] {
        let v = metric(
            exit,
            "wirespan_tls_integrity_samples_total",
            &[("result", reason)],
        );
        assert_eq!(v, 0.0, "integrity violation {reason}\n{d}");
    }
    let failed = metric(
        exit,
        "wirespan_tls_integrity_checks_total",
        &[("result", "failed")],
    );
    assert_eq!(failed, 0.0, "an integrity check failed\n{d}");
}

/// A grpcio server over TLS already running when the agent starts (found
/// through /proc), and a client started after it (the module is hooked by
/// inode already): exact gRPC spans on both sides.
#[test]
fn grpcio_tls_server_running_before_the_agent() {
    let mut env = Env::start_later("grpcio_tls_server_running_before_the_agent");
    let dir = tempdir("wirespan-grpc-cert-");
    let (cert, key) = self_signed_cert(dir.path());
    let port = free_port();
    let _server = grpc_server(port, &cert, &key, None);
    env.start_agent(AgentOptions::default());
    let cygrpc = cygrpc_in(&grpc_package());
    wait_log(env.agent(), LOCATED, &cygrpc, Duration::from_secs(60));
    let d = env.diagnostics();
    let calls = grpc_client(port, &cert, 6, None, &d);
    env.wait_spans(port, 12, "grpcio client → grpcio server over TLS");
    wait_log(env.agent(), VERIFIED, &cygrpc, Duration::from_secs(30));
    let (spans, exit) = env.stop(port);
    let diag = exit.diagnostics();
    let server_name = resolved_exe_name(&python());
    assert_grpc_spans(&spans, &calls, port, ("python3", &server_name), &diag);
    assert_located_and_verified(&exit);
    let lines = log_lines_naming(&exit, &cygrpc);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("named_by=\"analysis\"") && l.contains("BoringSsl")),
        "the log does not say how the functions were named:\n{}",
        lines.join("\n")
    );
}

/// A copy of grpcio (a module the agent has never seen) loaded with
/// `dlopen` by a server started after the agent: the executable `mmap`
/// record makes the agent locate it; once hooked, a client on the same copy
/// gets exact spans on both sides.
#[test]
fn grpcio_tls_module_loaded_after_the_agent() {
    let mut env = Env::start("grpcio_tls_module_loaded_after_the_agent");
    let (copy_dir, copy) = fresh_grpc_package();
    let cygrpc = cygrpc_in(&copy);
    let dir = tempdir("wirespan-grpc-cert-");
    let (cert, key) = self_signed_cert(dir.path());
    let port = free_port();
    let _server = grpc_server(port, &cert, &key, Some(copy_dir.path()));
    wait_log(env.agent(), LOCATED, &cygrpc, Duration::from_secs(60));
    let d = env.diagnostics();
    let calls = grpc_client(port, &cert, 6, Some(copy_dir.path()), &d);
    env.wait_spans(port, 12, "grpcio (copy) client → server over TLS");
    wait_log(env.agent(), VERIFIED, &cygrpc, Duration::from_secs(30));
    let (spans, exit) = env.stop(port);
    let diag = exit.diagnostics();
    // Both were exec'd after the agent started: named as invoked.
    let name = python()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_grpc_spans(&spans, &calls, port, (&name, &name), &diag);
    assert_located_and_verified(&exit);
}

// === a stripped C client with static OpenSSL ===

/// One response as tls_get printed it: (status, body bytes, local port).
fn tls_get(exe: &Path, port: u16, paths: &[&str], diag: &str) -> Vec<(u16, u64, u16)> {
    let (out, _) = run_ok(Command::new(exe).arg(port.to_string()).args(paths), diag);
    let got: Vec<(u16, u64, u16)> = out
        .lines()
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .map(|w| w.parse().expect("number"))
                .collect();
            assert_eq!(f.len(), 3, "tls_get line {l:?}");
            (f[0] as u16, f[1], f[2] as u16)
        })
        .collect();
    assert_eq!(got.len(), paths.len(), "tls_get output:\n{out}");
    got
}

/// `strip`ped, static libssl.a, BIO native, a file new to the agent: its
/// first run makes the agent locate it (that run's spans may be missing,
/// never wrong, as for any binary's first run); later runs are exact.
#[test]
fn stripped_static_openssl_client() {
    let exe = stripped_c_program("tls_get", LinkTls::StaticLibssl);
    let (_copy_dir, fresh) = integration::go::fresh_copy(&exe, "tls_get-fresh");
    let body = b"stripped static client\n".repeat(40);
    let big: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let server = nginx_tls(&[("a.txt", &body), ("b.bin", &big)]);
    let port = server.port;
    let mut env = Env::start("stripped_static_openssl_client");
    let d = env.diagnostics();
    let first = tls_get(&fresh, port, &["/a.txt"], &d);
    wait_log(env.agent(), LOCATED, &fresh, Duration::from_secs(60));
    let paths = ["/a.txt", "/nope", "/b.bin", "/a.txt"];
    let got = tls_get(&fresh, port, &paths, &d);
    let want: Vec<(u16, u64)> = got.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(want[0], (200, body.len() as u64));
    assert_eq!(want[1].0, 404);
    assert_eq!(want[2], (200, big.len() as u64));
    let local = got[0].2;
    assert!(got.iter().all(|r| r.2 == local), "one connection: {got:?}");
    env.wait_spans(port, 8 + 1, "stripped tls_get → nginx");
    wait_log(env.agent(), VERIFIED, &fresh, Duration::from_secs(30));
    let (spans, exit) = env.stop(port);
    let diag = exit.diagnostics();
    let names = ("tls_get-fresh", "nginx");
    let pair = |path: &str, r: &(u16, u64, u16)| -> [ExpectedSpan; 2] {
        http_pair(names, "https", "1.1", "GET", path, port, r.2, r.0, 0, r.1)
    };
    // The first run: its server span always; its client span only if the
    // probes were in place in time.
    let first_port = first[0].2 as i64;
    let (of_first, later): (Vec<FlatSpan>, Vec<FlatSpan>) = spans.iter().cloned().partition(|s| {
        s.int("client.port") == Some(first_port) || s.int("network.local.port") == Some(first_port)
    });
    let [first_client, first_server] = pair("/a.txt", &first[0]);
    let mut expected_first = vec![first_server];
    if of_first.iter().any(|s| s.is_client()) {
        expected_first.push(first_client);
    }
    assert_spans(&expected_first, &of_first, &diag);
    assert_eq!(of_first.len(), expected_first.len(), "{}", show(&of_first));
    let expected: Vec<ExpectedSpan> = paths
        .iter()
        .zip(&got)
        .flat_map(|(p, r)| pair(p, r))
        .collect();
    assert_spans(&expected, &later, &diag);
    assert_eq!(later.len(), expected.len(), "{}", show(&later));
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_located_and_verified(&exit);
    let lines = log_lines_naming(&exit, &fresh);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(LOCATED) && l.contains("OpenSsl") && l.contains("functions=4")),
        "SSL_read, SSL_write and their _ex forms not all hooked:\n{}",
        lines.join("\n")
    );
}

// === nothing to hook ===

/// A stripped program carrying OpenSSL's and BoringSSL's file names and
/// error-call shapes but no TLS library, and a stripped program with no TLS
/// at all: nothing is attached to either, and both answers are counted.
#[test]
fn decoy_and_plain_stripped_programs_are_counted_not_hooked() {
    let decoy = stripped_c_program("decoy", LinkTls::None);
    let (_d1, decoy) = integration::go::fresh_copy(&decoy, "decoy-fresh");
    let plain_dir = tempdir("wirespan-plain-");
    let plain = plain_dir.path().join("true-stripped");
    let (_, _) = run_ok(
        Command::new("strip")
            .arg("-o")
            .arg(&plain)
            .arg("/usr/bin/true"),
        "strip /usr/bin/true",
    );
    let mut env = Env::start("decoy_and_plain_stripped_programs_are_counted_not_hooked");
    let d = env.diagnostics();
    // Both exit at once: their processes are checked from the exec records.
    let _ = run_ok(Command::new(&decoy).arg("3"), &d);
    let _ = run_ok(&mut Command::new(&plain), &d);
    let answered = wait_until(Duration::from_secs(30), || {
        let m = env.agent().metrics();
        m.get(
            "wirespan_tls_located_files_total",
            &[("result", "not_identified")],
        ) >= 1.0
            && m.get("wirespan_tls_located_files_total", &[("result", "no_tls")]) >= 1.0
    });
    assert!(
        answered,
        "the locator did not answer\n{}",
        env.diagnostics()
    );
    let agent = env.agent.take().expect("agent");
    let exit = agent.stop();
    let diag = exit.diagnostics();
    let lines = log_lines_naming(&exit, &decoy);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("reason=\"not_identified\"")),
        "the decoy's refusal is not logged:\n{}\n{diag}",
        lines.join("\n")
    );
    assert!(
        !lines.iter().any(|l| l.contains(LOCATED)),
        "probes attached to the decoy:\n{}",
        lines.join("\n")
    );
    assert!(
        log_lines_naming(&exit, &plain)
            .iter()
            .all(|l| !l.contains(LOCATED)),
        "probes attached to a program without TLS"
    );
    let skipped = metric(
        &exit,
        "wirespan_tls_processes_total",
        &[("path", "located_skipped"), ("reason", "not_identified")],
    );
    assert!(skipped >= 1.0, "the decoy's process is not counted\n{diag}");
}

// === Chromium ===

/// Debian's Chromium: BoringSSL linked in, stripped, and no unwind tables
/// for it (entries are proven by recursive descent, see tls-locate).
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

fn chromium(url: &str, profile: &Path, diag: &str) -> String {
    let (out, _) = run_ok(
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--ignore-certificate-errors",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(url),
        diag,
    );
    out
}

/// One line of nginx's `combined` access log: (method, path, protocol
/// version as the spans say it, status, body bytes).
fn access_log_entries(log: &str) -> Vec<(String, String, String, u16, u64)> {
    log.lines()
        .map(|l| {
            let request = l.split('"').nth(1).expect("request field");
            let mut r = request.split_whitespace();
            let method = r.next().expect("method").to_string();
            let path = r.next().expect("path").to_string();
            let version = match r.next().expect("protocol") {
                "HTTP/2.0" => "2",
                "HTTP/1.1" => "1.1",
                other => panic!("unexpected protocol {other} in {l}"),
            };
            let rest: Vec<&str> = l
                .split('"')
                .nth(2)
                .expect("status and bytes")
                .split_whitespace()
                .collect();
            (
                method,
                path,
                version.to_string(),
                rest[0].parse().expect("status"),
                rest[1].parse().expect("bytes"),
            )
        })
        .collect()
}

/// Headless Chromium loading an HTTPS page with a stylesheet, a script and
/// an image from nginx (HTTP/2 by ALPN): every request nginx logged is
/// exactly one Chromium CLIENT span (method, path, status, protocol, body
/// size), read from BoringSSL's plaintext in the stripped browser. The
/// first Chromium run makes the agent analyse the executable (seconds, in a
/// child process); the page is loaded by a second run.
#[test]
fn headless_chromium_https_page_with_subresources() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/setup.sh (apt-get install chromium)"
    );
    let page = b"<!doctype html><html><head><link rel=stylesheet href=/style.css>\
        <script src=/app.js></script></head><body><h1>wirespan</h1>\
        <img src=/pixel.png></body></html>";
    let css = b"h1 { color: #333; }\n".repeat(50);
    let js = b"document.title = 'loaded';\n".repeat(20);
    // A valid 1x1 PNG.
    let png: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0,
        0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44,
        0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0, 0x05, 0, 0x01, 0xff, 0x89,
        0x99, 0x3d, 0x1d, 0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    let server = integration::servers::nginx_configured(
        "nginx (tls, access log)",
        &[
            ("index.html", page),
            ("style.css", &css),
            ("app.js", &js),
            ("pixel.png", png),
        ],
        " ssl http2",
        |dir| {
            let (cert, key) = self_signed_cert(dir);
            format!(
                "        ssl_certificate {};\n        ssl_certificate_key {};\n        access_log {}/logs/access.log;",
                cert.display(),
                key.display(),
                dir.display()
            )
        },
    );
    let port = server.port;
    let access_log = server.dir.path().join("logs/access.log");
    let mut env = Env::start("headless_chromium_https_page_with_subresources");
    let d = env.diagnostics();
    let warm_profile = tempdir("wirespan-chromium-warm-");
    let _ = chromium("about:blank", warm_profile.path(), &d);
    wait_log(
        env.agent(),
        LOCATED,
        Path::new(CHROMIUM),
        Duration::from_secs(180),
    );
    let profile = tempdir("wirespan-chromium-");
    let dom = chromium(&format!("https://127.0.0.1:{port}/"), profile.path(), &d);
    assert!(dom.contains("<h1>wirespan</h1>"), "page not loaded:\n{dom}");
    let logged = access_log_entries(&std::fs::read_to_string(&access_log).unwrap_or_default());
    let paths: Vec<&str> = logged.iter().map(|e| e.1.as_str()).collect();
    for p in ["/", "/style.css", "/app.js", "/pixel.png"] {
        assert!(paths.contains(&p), "nginx did not serve {p}: {logged:?}");
    }
    env.wait_spans(port, 2 * logged.len(), "Chromium → nginx over TLS");
    let (spans, exit) = env.stop(port);
    let diag = exit.diagnostics();
    let from_chromium = clients(&spans);
    // One HTTP/2 connection; the browser's own user agent.
    let local_ports: std::collections::BTreeSet<i64> = from_chromium
        .iter()
        .filter_map(|s| s.int("network.local.port"))
        .collect();
    assert_eq!(local_ports.len(), 1, "{}\n{diag}", show(&from_chromium));
    let client_port = *local_ports.iter().next().expect("one port") as u16;
    let ua = from_chromium
        .first()
        .and_then(|s| s.str("user_agent.original"))
        .unwrap_or_default()
        .to_string();
    assert!(ua.contains("HeadlessChrome/"), "user agent {ua:?}\n{diag}");
    let expected: Vec<ExpectedSpan> = logged
        .iter()
        .map(|(method, path, version, status, bytes)| {
            http_span(
                integration::spans::KIND_CLIENT,
                "https",
                version,
                method,
                path,
                port,
                client_port,
                *status,
                0,
                *bytes,
            )
            .attr("service.peer.name", "nginx")
            .attr("user_agent.original", ua.as_str())
        })
        .collect();
    assert_spans(&expected, &from_chromium, &diag);
    assert_eq!(
        from_chromium.len(),
        logged.len(),
        "Chromium client spans:\n{}",
        show(&from_chromium)
    );
    assert_eq!(servers(&spans).len(), logged.len(), "{}", show(&spans));
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_located_and_verified(&exit);
    let lines = log_lines_naming(&exit, Path::new(CHROMIUM));
    assert!(
        lines
            .iter()
            .any(|l| l.contains(LOCATED) && l.contains("BoringSsl")),
        "{}",
        lines.join("\n")
    );
}
