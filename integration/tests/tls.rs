//! TLS end to end (issue 5): real TLS clients and servers on 127.0.0.1 with
//! a self-signed certificate made by `openssl req -x509` in the test; the
//! agent reads plaintext through its uprobes on SSL_read/SSL_write(_ex)
//! (libssl.so.3 for curl, nginx and python3; the statically linked OpenSSL
//! of /usr/bin/node) and must produce exactly one `url.scheme = "https"`
//! span per request on each traced side, and no span parsed from the
//! ciphertext.
//!
//! These tests run the agent with its default capture settings (no port
//! filter): TLS attribution is tested as deployed.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common_h2;

use common_h2::*;
use integration::agent::AgentExit;
use integration::prelude::*;
use integration::servers::LARGE_BODY_PACE;
use integration::spans::{assert_spans, show, ExpectedSpan, KIND_CLIENT};
use std::path::Path;
use std::process::Command;

/// A Python 3 HTTPS server (`http.server` behind `ssl` → libssl.so.3),
/// serving `dir`'s files, HTTP/1.0 (one request per connection).
const PY_TLS_SERVER: &str = r#"
import http.server, ssl, sys, functools
port, root, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
handler = functools.partial(H, directory=root)
httpd = http.server.HTTPServer(('127.0.0.1', port), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
"#;

fn python_tls_server(files: &[(&str, &[u8])]) -> TestServer {
    let dir = tempdir("wirespan-py-tls-");
    let root = dir.path().join("www");
    std::fs::create_dir(&root).expect("www");
    for (name, content) in files {
        std::fs::write(root.join(name), content).expect("write served file");
    }
    let (cert, key) = self_signed_cert(dir.path());
    let script = dir.path().join("tls_server.py");
    std::fs::write(&script, PY_TLS_SERVER).expect("write script");
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .arg(port.to_string())
        .arg(&root)
        .arg(&cert)
        .arg(&key);
    // The TLS handshake of wait_port's probe connection never happens: the
    // probe connects and closes; the server logs an error and goes on.
    TestServer::spawn("python tls server", cmd, port, dir)
}

fn source(m: &Metrics, s: &str) -> f64 {
    m.get(
        "wirespan_tls_calls_by_socket_source_total",
        &[("source", s)],
    )
}

fn assert_counter_positive(exit: &AgentExit, what: &str, value: f64) {
    assert!(
        value > 0.0,
        "expected {what} > 0, got {value}\n{}",
        exit.diagnostics()
    );
}

/// Sets `user_agent.original` on both spans of a pair.
fn with_ua(mut pair: [ExpectedSpan; 2], ua: &str) -> [ExpectedSpan; 2] {
    for e in &mut pair {
        *e = e.clone().attr("user_agent.original", ua);
    }
    pair
}

/// `curl -k https://…` with `-w` → (http_version, status, local port).
fn curl_https(port: u16, path: &str, version_flag: &str, diag: &str) -> (String, u16, u16) {
    let (out, _) = run_ok(
        Command::new("curl")
            .args(["-sS", "-k", "--max-time", "60", "-o", "/dev/null"])
            .arg(version_flag)
            .args(["-w", "%{http_version} %{http_code} %{local_port}"])
            .arg(format!("https://127.0.0.1:{port}{path}")),
        diag,
    );
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.len(), 3, "curl -w output {out:?}");
    (
        f[0].to_string(),
        f[1].parse().expect("status"),
        f[2].parse().expect("port"),
    )
}

/// curl (libssl.so.3) → nginx (libssl.so.3) over TLS: HTTP/1.1, HTTP/2 by
/// ALPN, and a 404 over HTTP/2: exact https spans on both sides.
#[test]
fn curl_to_nginx_tls_http11_and_http2() {
    let body = b"<h1>hello over TLS</h1>\n".repeat(20);
    let server = nginx_tls(&[("index.html", &body)]);
    let port = server.port;
    // nginx's 404 page: measure it before tracing.
    let (_, s404, _) = curl_https(port, "/nope", "--http2", "");
    assert_eq!(s404, 404);
    let (out, _) = run_ok(
        Command::new("curl")
            .args([
                "-sS",
                "-k",
                "--http2",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
            ])
            .arg(format!("https://127.0.0.1:{port}/nope")),
        "",
    );
    let not_found_len: u64 = out.trim().parse().expect("size");
    let mut env = Env::start("curl_to_nginx_tls_http11_and_http2");
    let d = env.diagnostics();
    let (v1, s1, p1) = curl_https(port, "/index.html", "--http1.1", &d);
    let (v2, s2, p2) = curl_https(port, "/index.html", "--http2", &d);
    let (v3, s3, p3) = curl_https(port, "/nope", "--http2", &d);
    assert_eq!(
        (v1.as_str(), s1, v2.as_str(), s2, v3.as_str(), s3),
        ("1.1", 200, "2", 200, "2", 404)
    );
    env.wait_spans(port, 6, "curl → nginx over TLS");
    let (spans, exit) = env.stop(port);
    let ua = curl_user_agent();
    let names = ("curl", "nginx");
    let len = body.len() as u64;
    let mut expected = Vec::new();
    expected.extend(with_ua(
        http_pair(
            names,
            "https",
            "1.1",
            "GET",
            "/index.html",
            port,
            p1,
            200,
            0,
            len,
        ),
        &ua,
    ));
    expected.extend(with_ua(
        http_pair(
            names,
            "https",
            "2",
            "GET",
            "/index.html",
            port,
            p2,
            200,
            0,
            len,
        ),
        &ua,
    ));
    expected.extend(with_ua(
        http_pair(
            names,
            "https",
            "2",
            "GET",
            "/nope",
            port,
            p3,
            404,
            0,
            not_found_len,
        ),
        &ua,
    ));
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_spans(&expected, &spans, &exit.diagnostics());
    assert_counter_positive(
        &exit,
        "tls calls attributed by nested_syscall",
        source(&exit.metrics, "nested_syscall"),
    );
}

/// curl → a Python `ssl` HTTPS server (SSLContext.wrap_socket over
/// libssl.so.3): exact https spans on both sides.
#[test]
fn curl_to_python_ssl_server() {
    let body = b"python tls body\n".repeat(9);
    let server = python_tls_server(&[("data.txt", &body)]);
    let port = server.port;
    let mut env = Env::start("curl_to_python_ssl_server");
    let (v, s, p) = curl_https(port, "/data.txt", "--http1.1", &env.diagnostics());
    // python's http.server answers HTTP/1.0 (curl's -w prints "1").
    assert_eq!((v.as_str(), s), ("1", 200), "curl → python ssl server");
    env.wait_spans(port, 2, "curl → python ssl server");
    let (spans, exit) = env.stop(port);
    // The server was started before the agent: named from /proc/PID/exe.
    let exe = resolved_exe_name(&python());
    let expected = with_ua(
        http_pair(
            ("curl", exe.as_str()),
            "https",
            "1.1",
            "GET",
            "/data.txt",
            port,
            p,
            200,
            0,
            body.len() as u64,
        ),
        &curl_user_agent(),
    );
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_spans(&expected, &spans, &exit.diagnostics());
    assert_counter_positive(
        &exit,
        "tls calls attributed by nested_syscall",
        source(&exit.metrics, "nested_syscall"),
    );
}

/// Python `urllib.request` over `ssl` as the client → nginx: exact https
/// spans on both sides. urllib sends `Connection: close` and its own
/// user agent.
#[test]
fn python_urllib_client_to_nginx_tls() {
    let body = b"urllib reads this\n".repeat(11);
    let server = nginx_tls(&[("u.txt", &body)]);
    let port = server.port;
    let mut env = Env::start("python_urllib_client_to_nginx_tls");
    let client = "import ssl, sys, urllib.request\n\
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
r = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=60)\n\
data = r.read(); print(r.status, len(data))\n";
    let (out, _) = run_ok(
        Command::new(python())
            .args(["-c", client])
            .arg(format!("https://127.0.0.1:{port}/u.txt")),
        &env.diagnostics(),
    );
    assert_eq!(out.trim(), format!("200 {}", body.len()));
    env.wait_spans(port, 2, "python urllib → nginx over TLS");
    let (spans, exit) = env.stop(port);
    let cport = single_client_port(&spans, &exit.diagnostics());
    let exe = integration::python::python_exe_name();
    let pyver = python_minor_version();
    let expected = with_ua(
        http_pair(
            (exe.as_str(), "nginx"),
            "https",
            "1.1",
            "GET",
            "/u.txt",
            port,
            cport,
            200,
            0,
            body.len() as u64,
        ),
        &format!("Python-urllib/{pyver}"),
    );
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_spans(&expected, &spans, &exit.diagnostics());
    assert_counter_positive(
        &exit,
        "tls calls attributed by nested_syscall",
        source(&exit.metrics, "nested_syscall"),
    );
}

/// A process that has sat idle (the agent's drain timer has backed off)
/// loads its own copy of libssl with `import ssl`: a `dlopen` of a file
/// nobody hooked at start, then a request ~100 ms later (a 50 ms pause,
/// then urllib's import and the connection). The executable
/// `mmap` must wake the agent at once (every record does while it backs
/// off), and discovery must hook the new file before the first `SSL_write`:
/// the client's https span can only come from the probes on that copy.
#[test]
fn late_dlopen_of_a_private_libssl_after_idle() {
    let body = b"loaded late\n".repeat(7);
    let server = nginx_tls(&[("late.txt", &body)]);
    let port = server.port;
    let libs = tempdir("wirespan-private-libssl-");
    for lib in ["libssl.so.3", "libcrypto.so.3"] {
        std::fs::copy(
            Path::new("/usr/lib/x86_64-linux-gnu").join(lib),
            libs.path().join(lib),
        )
        .expect("copy libssl/libcrypto");
    }
    let mut env = Env::start("late_dlopen_of_a_private_libssl_after_idle");
    // Idle first, then `import ssl` (urllib.request imports it too, so it
    // comes after). The idle spell is 2 s plus up to 0.5 s at random: the
    // agent's timer backs off to 0.5 s, so the `dlopen` lands anywhere in its
    // period, and a record left to wait for the timer would miss the request
    // most runs.
    let client = "import random, sys, time\n\
time.sleep(float(sys.argv[2]) + random.uniform(0, 0.5))\n\
import ssl\n\
maps = open('/proc/self/maps').read().splitlines()\n\
libssl = sorted({l.split()[-1] for l in maps if 'libssl.so' in l})\n\
time.sleep(0.05)\n\
import urllib.request\n\
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
r = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=60)\n\
data = r.read(); print(r.status, len(data), ','.join(libssl))\n";
    let (out, _) = run_ok(
        Command::new(python())
            .env("LD_LIBRARY_PATH", libs.path())
            .args(["-c", client])
            .arg(format!("https://127.0.0.1:{port}/late.txt"))
            .arg("2"),
        &env.diagnostics(),
    );
    let copy = libs.path().join("libssl.so.3");
    assert_eq!(
        out.trim(),
        format!("200 {} {}", body.len(), copy.display()),
        "the client must have loaded the private copy, and only it"
    );
    env.wait_spans(
        port,
        2,
        "python (private libssl, loaded late) → nginx over TLS",
    );
    let (spans, exit) = env.stop(port);
    let cport = single_client_port(&spans, &exit.diagnostics());
    let exe = integration::python::python_exe_name();
    let expected = with_ua(
        http_pair(
            (exe.as_str(), "nginx"),
            "https",
            "1.1",
            "GET",
            "/late.txt",
            port,
            cport,
            200,
            0,
            body.len() as u64,
        ),
        &format!("Python-urllib/{}", python_minor_version()),
    );
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_spans(&expected, &spans, &exit.diagnostics());
}

/// A large download over TLS: the plaintext the TLS probes would copy is
/// skipped once the agent has parsed the head, as on a plain socket
/// (`nginx.rs`), under the key of the socket's plaintext stream. Spans stay
/// exact and the bytes not copied are counted as skipped. nginx paces the
/// response ([`LARGE_BODY_PACE`]) so that the transfer outlasts the agent's
/// first drain.
#[test]
fn large_tls_body_is_skipped_by_the_probes_and_counted() {
    let body: Vec<u8> = (0..8u32 << 20).map(|i| (i * 31 % 253) as u8).collect();
    let server = nginx_tls_with(&[("large.bin", &body)], LARGE_BODY_PACE);
    let port = server.port;
    let mut env = Env::start("large_tls_body_is_skipped_by_the_probes_and_counted");
    let (out, _) = run_ok(
        Command::new("curl")
            .args(["-sS", "-k", "--http1.1", "-o", "/dev/null"])
            .args(["-w", "%{http_code} %{size_download} %{local_port}"])
            .arg(format!("https://127.0.0.1:{port}/large.bin")),
        &env.diagnostics(),
    );
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.len(), 3, "curl -w output {out:?}");
    assert_eq!((f[0], f[1]), ("200", body.len().to_string().as_str()));
    let cport: u16 = f[2].parse().expect("port");
    env.wait_spans(port, 2, "curl → nginx, 8 MiB over TLS");
    let (spans, exit) = env.stop(port);
    let expected = with_ua(
        http_pair(
            ("curl", "nginx"),
            "https",
            "1.1",
            "GET",
            "/large.bin",
            port,
            cport,
            200,
            0,
            body.len() as u64,
        ),
        &curl_user_agent(),
    );
    assert_no_plaintext_spans(&spans, port, &exit);
    assert_spans(&expected, &spans, &exit.diagnostics());
    integration::metrics::assert_body_mostly_skipped(
        &exit.metrics,
        body.len(),
        &exit.diagnostics(),
    );
}

fn python_minor_version() -> String {
    let out = Command::new(python())
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .expect("python version");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A node https client: GET, prints "<status> <bytes> <local port>".
const NODE_CLIENT: &str = r#"
const https = require('https');
const [host, port, path] = [process.argv[1], Number(process.argv[2]), process.argv[3]];
const req = https.get({ host, port, path, rejectUnauthorized: false, agent: false }, (res) => {
  let n = 0;
  res.on('data', (c) => { n += c.length; });
  res.on('end', () => { console.log(`${res.statusCode} ${n} ${res.socket.localPort}`); });
});
req.setTimeout(60000, () => { req.destroy(new Error('timeout')); });
req.on('error', (e) => { console.error(e); process.exit(1); });
"#;

fn node_get(port: u16, path: &str, diag: &str) -> (u16, u64, u16, u32) {
    let (out, pid) = run_ok(
        Command::new("/usr/bin/node")
            .args(["-e", NODE_CLIENT, "127.0.0.1"])
            .arg(port.to_string())
            .arg(path),
        diag,
    );
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.len(), 3, "node output {out:?}");
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        pid,
    )
}

/// node (/usr/bin/node: OpenSSL linked statically, sockets behind a custom
/// BIO, so SSL_read/SSL_write never nest a socket syscall) → nginx.
///
/// WARM-UP, documented honestly: the agent hooks a static-TLS executable
/// when it sees the exec, which races with the process's first TLS calls,
/// so the FIRST node run after the agent starts may produce no client span.
/// The test runs node once (its spans are not asserted), then asserts the
/// second run's client span exactly (and the server spans of both runs'
/// connections, which nginx produces regardless).
#[test]
fn node_static_openssl_client_after_warm_up() {
    let body = b"node static openssl\n".repeat(13);
    let server = nginx_tls(&[("n.txt", &body)]);
    let port = server.port;
    let mut env = Env::start("node_static_openssl_client_after_warm_up");
    let (ws, wn, wport, _) = node_get(port, "/n.txt", &env.diagnostics());
    assert_eq!((ws, wn), (200, body.len() as u64), "warm-up node run");
    let (st, n, cport, node_pid) = node_get(port, "/n.txt", &env.diagnostics());
    assert_eq!((st, n), (200, body.len() as u64), "node run");
    // Wait for the second run's client span and its server span.
    let ok = env.receiver.wait_for(SPAN_TIMEOUT, |s| {
        let s = of_port(s, port);
        let c = s
            .iter()
            .any(|x| x.is_client() && x.int("network.local.port") == Some(cport as i64));
        let v = s
            .iter()
            .any(|x| x.is_server() && x.int("client.port") == Some(cport as i64));
        c && v
    });
    let waited = ok.is_ok();
    let (spans, exit) = env.stop(port);
    // The warm-up run's spans (if any) are set aside: only its server span
    // is required.
    let second: Vec<FlatSpan> = spans
        .iter()
        .filter(|s| {
            (s.is_client() && s.int("network.local.port") == Some(cport as i64))
                || (s.is_server() && s.int("client.port") == Some(cport as i64))
        })
        .cloned()
        .collect();
    assert!(
        waited,
        "the second node run's spans (client port {cport}) did not all arrive within {SPAN_TIMEOUT:?}:\n{}\n{}",
        show(&spans),
        exit.diagnostics()
    );
    let expected: Vec<ExpectedSpan> = http_pair(
        ("node", "nginx"),
        "https",
        "1.1",
        "GET",
        "/n.txt",
        port,
        cport,
        200,
        0,
        body.len() as u64,
    )
    .into_iter()
    .collect();
    assert_spans(&expected, &second, &exit.diagnostics());
    let client = second.iter().find(|s| s.kind == KIND_CLIENT).unwrap();
    assert_eq!(
        pid_of(client),
        Some(node_pid as i64),
        "client span's process"
    );
    let warm_server: Vec<&FlatSpan> = spans
        .iter()
        .filter(|s| s.is_server() && s.int("client.port") == Some(wport as i64))
        .collect();
    assert_eq!(
        warm_server.len(),
        1,
        "nginx's span for the warm-up connection:\n{}",
        show(&spans)
    );
    assert_no_plaintext_spans(&spans, port, &exit);
    let m = &exit.metrics;
    assert_counter_positive(
        &exit,
        "tls calls attributed by thread_last_read + remembered_ssl",
        source(m, "thread_last_read") + source(m, "remembered_ssl"),
    );
}
