//! Helpers shared by `tests/http2.rs`, `tests/grpc.rs`, `tests/tls.rs` and `tests/go_tls.rs`:
//! one agent plus OTLP receiver per test, bounded command runs, span
//! selection by port, and the expected-span templates for HTTP/2 and TLS.
//!
//! Everything here only *uses* the harness in `integration/src/`.

#![allow(dead_code, reason = "shared by several test crates, each using a part")]

use integration::agent::AgentExit;
use integration::prelude::*;
use integration::serial::SerialGuard;
use integration::spans::{show, ExpectedSpan, KIND_CLIENT, KIND_SERVER};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long spans may take to arrive after the traffic (bounded wait).
pub const SPAN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one client command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// One agent exporting to one in-process receiver, for one test.
pub struct Env {
    pub receiver: Receiver,
    pub agent: Option<Agent>,
    _serial: SerialGuard,
}

impl Env {
    /// Root check, serial guard, receiver (OTLP/gRPC), agent ready.
    pub fn start(test: &str) -> Env {
        Self::start_with(test, AgentOptions::default())
    }

    pub fn start_with(test: &str, opts: AgentOptions) -> Env {
        require_root(test);
        let serial = serial();
        let receiver = Receiver::start(OtlpProtocol::Grpc);
        let agent = Agent::run(opts.otlp(&receiver.endpoint(), receiver.protocol.as_str()));
        Env {
            receiver,
            agent: Some(agent),
            _serial: serial,
        }
    }

    /// Root check, serial guard and receiver, without the agent: for
    /// programs that must be running before it starts; then
    /// [`Env::start_agent`].
    pub fn start_later(test: &str) -> Env {
        require_root(test);
        let serial = serial();
        let receiver = Receiver::start(OtlpProtocol::Grpc);
        Env {
            receiver,
            agent: None,
            _serial: serial,
        }
    }

    /// Starts the agent (ready) exporting to this receiver.
    pub fn start_agent(&mut self, opts: AgentOptions) {
        assert!(self.agent.is_none(), "agent already running");
        let r = &self.receiver;
        self.agent = Some(Agent::run(opts.otlp(&r.endpoint(), r.protocol.as_str())));
    }

    pub fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("agent running")
    }

    pub fn diagnostics(&self) -> String {
        match &self.agent {
            Some(a) => a.diagnostics(),
            None => "(agent stopped)".into(),
        }
    }

    /// Waits (bounded) until at least `n` spans involve server port `port`;
    /// fails with every span and the agent's diagnostics otherwise.
    pub fn wait_spans(&self, port: u16, n: usize, what: &str) -> Vec<FlatSpan> {
        match self
            .receiver
            .wait_for(SPAN_TIMEOUT, |s| of_port(s, port).len() >= n)
        {
            Ok(s) => of_port(&s, port),
            Err(s) => panic!(
                "{what}: expected at least {n} spans for port {port} within {SPAN_TIMEOUT:?}, got {}:\n{}\n{}",
                of_port(&s, port).len(),
                show(&of_port(&s, port)),
                self.diagnostics()
            ),
        }
    }

    /// Stops the agent (SIGTERM flushes what it holds), then returns every
    /// span of `port` received, and the exit record (with `/metrics` read
    /// just before the stop).
    pub fn stop(&mut self, port: u16) -> (Vec<FlatSpan>, AgentExit) {
        let exit = self.agent.take().expect("agent running").stop_ok();
        // The exporter's last batch is sent during shutdown; the agent has
        // exited, so whatever was sent has been received.
        (of_port(&self.receiver.spans(), port), exit)
    }
}

/// Spans of traffic to/from server port `port` (server side: local port;
/// client side: peer port).
pub fn of_port(spans: &[FlatSpan], port: u16) -> Vec<FlatSpan> {
    spans
        .iter()
        .filter(|s| s.involves_port(port))
        .cloned()
        .collect()
}

pub fn servers(spans: &[FlatSpan]) -> Vec<FlatSpan> {
    spans.iter().filter(|s| s.is_server()).cloned().collect()
}

pub fn clients(spans: &[FlatSpan]) -> Vec<FlatSpan> {
    spans.iter().filter(|s| s.is_client()).cloned().collect()
}

/// Runs `cmd` to completion within [`COMMAND_TIMEOUT`] (killed otherwise),
/// capturing stdout and stderr; returns the output and the child's pid.
pub fn run_bounded(cmd: &mut Command) -> (Output, u32) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id();
    // A watchdog thread kills the child if it outlives the timeout.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while Instant::now() < deadline {
            if done2.load(std::sync::atomic::Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !done2.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: kill(2) on our own (not yet reaped) child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return true;
        }
        false
    });
    let out = child.wait_with_output().expect("wait for the command");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let killed = watchdog.join().unwrap_or(false);
    assert!(
        !killed,
        "{cmd:?} did not finish within {COMMAND_TIMEOUT:?} and was killed; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, pid)
}

/// [`run_bounded`], asserting exit status 0.
pub fn run_ok(cmd: &mut Command, diag: &str) -> (String, u32) {
    let (out, pid) = run_bounded(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\n{diag}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), pid)
}

/// curl's version string as it sends it in `User-Agent`.
pub fn curl_user_agent() -> String {
    let out = Command::new("curl")
        .arg("--version")
        .output()
        .expect("curl --version");
    let first = String::from_utf8_lossy(&out.stdout).to_string();
    let v = first
        .split_whitespace()
        .nth(1)
        .expect("curl version")
        .to_string();
    format!("curl/{v}")
}

/// The fixed parts of an HTTP span whose server listens on 127.0.0.1:`port`.
/// `client_port` is the client's ephemeral port; `version` is "1.1" or "2".
#[allow(
    clippy::too_many_arguments,
    reason = "a test scenario's every knob, named at the call"
)]
pub fn http_span(
    kind: i32,
    scheme: &str,
    version: &str,
    method: &str,
    path_and_query: &str,
    port: u16,
    client_port: u16,
    status: u16,
    req_body: u64,
    resp_body: u64,
) -> ExpectedSpan {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut e = ExpectedSpan::new(kind, method)
        .attr("http.request.method", method)
        .attr("url.path", path)
        .attr("url.scheme", scheme)
        .attr("network.protocol.name", "http")
        .attr("network.protocol.version", version)
        .attr("network.transport", "tcp")
        .attr("server.address", "127.0.0.1")
        .attr("server.port", port)
        .attr("http.request.body.size", req_body)
        .attr("http.response.status_code", status as i64)
        .attr("http.response.body.size", resp_body);
    if let Some(q) = query {
        e = e.attr("url.query", q);
    }
    if kind == KIND_SERVER {
        e = e
            .attr("client.address", "127.0.0.1")
            .attr("client.port", client_port)
            .attr("network.peer.address", "127.0.0.1")
            .attr("network.peer.port", client_port)
            .attr("network.local.address", "127.0.0.1")
            .attr("network.local.port", port);
        if status >= 500 {
            e = e.error(&status.to_string());
        }
    } else {
        let default = if scheme == "https" { 443 } else { 80 };
        let hostport = if port == default {
            "127.0.0.1".to_string()
        } else {
            format!("127.0.0.1:{port}")
        };
        e = e
            .attr("url.full", format!("{scheme}://{hostport}{path_and_query}"))
            .attr("network.peer.address", "127.0.0.1")
            .attr("network.peer.port", port)
            .attr("network.local.address", "127.0.0.1")
            .attr("network.local.port", client_port);
        if status >= 400 {
            e = e.error(&status.to_string());
        }
    }
    e
}

/// A client span and the matching server span (same client port). The
/// agent names the other side of a local connection after its process:
/// `service.peer.name` is `server_exe` on the client span and `client_exe`
/// on the server span.
#[allow(
    clippy::too_many_arguments,
    reason = "a test scenario's every knob, named at the call"
)]
pub fn http_pair(
    (client_exe, server_exe): (&str, &str),
    scheme: &str,
    version: &str,
    method: &str,
    path_and_query: &str,
    port: u16,
    client_port: u16,
    status: u16,
    req_body: u64,
    resp_body: u64,
) -> [ExpectedSpan; 2] {
    [
        http_span(
            KIND_CLIENT,
            scheme,
            version,
            method,
            path_and_query,
            port,
            client_port,
            status,
            req_body,
            resp_body,
        )
        .attr("service.peer.name", server_exe),
        http_span(
            KIND_SERVER,
            scheme,
            version,
            method,
            path_and_query,
            port,
            client_port,
            status,
            req_body,
            resp_body,
        )
        .attr("service.peer.name", client_exe),
    ]
}

/// The client's ephemeral port as seen on the server span(s) — the single
/// `client.port` of the server spans, asserted to be one connection.
pub fn single_client_port(spans: &[FlatSpan], diag: &str) -> u16 {
    let ports: std::collections::BTreeSet<i64> = servers(spans)
        .iter()
        .filter_map(|s| s.int("client.port"))
        .collect();
    assert_eq!(
        ports.len(),
        1,
        "expected the server spans to come from exactly one client connection, got client ports {ports:?}:\n{}\n{diag}",
        show(spans)
    );
    *ports.iter().next().unwrap() as u16
}

/// A file with a position-dependent pattern of `n` bytes.
pub fn pattern_file(path: &Path, n: usize) {
    let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(path, data).expect("write pattern file");
}

/// `openssl req -x509` for CN=127.0.0.1 (with IP SAN) in `dir`: (cert, key).
pub fn self_signed_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let (out, _) = run_bounded(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ]),
    );
    assert!(
        out.status.success(),
        "openssl req -x509 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// nginx with TLS (and HTTP/2 by ALPN) on 127.0.0.1: one worker, foreground,
/// temp prefix, static files in `<dir>/html`, a fresh self-signed certificate.
pub fn nginx_tls(files: &[(&str, &[u8])]) -> TestServer {
    nginx_tls_with(files, "")
}

/// [`nginx_tls`] with more server-block directives.
pub fn nginx_tls_with(files: &[(&str, &[u8])], directives: &str) -> TestServer {
    integration::servers::nginx_configured("nginx (tls)", files, " ssl http2", |dir| {
        let (cert, key) = self_signed_cert(dir);
        format!(
            "        ssl_certificate {};\n        ssl_certificate_key {};\n{directives}",
            cert.display(),
            key.display()
        )
    })
}

/// No span for the TLS port may claim `url.scheme = "http"`: that would be
/// HTTP parsed from ciphertext (or a plaintext span not marked as TLS).
pub fn assert_no_plaintext_spans(spans: &[FlatSpan], port: u16, exit: &AgentExit) {
    let plain: Vec<FlatSpan> = spans
        .iter()
        .filter(|s| s.str("url.scheme") != Some("https"))
        .cloned()
        .collect();
    assert!(
        plain.is_empty(),
        "spans for TLS port {port} not marked https:\n{}\n{}",
        show(&plain),
        exit.diagnostics()
    );
}

/// The span's `process.pid` resource attribute.
pub fn pid_of(s: &FlatSpan) -> Option<i64> {
    match s.resource.get("process.pid") {
        Some(AttrValue::Int(p)) => Some(*p),
        _ => None,
    }
}

/// A server process started by a test, killed when dropped.
pub type TestServer = integration::servers::Server;

pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// `nghttpd --no-tls` on 127.0.0.1 serving `<dir>/htdocs` with `files`.
pub fn nghttpd(files: &[(&str, &[u8])], extra: &[&str]) -> TestServer {
    let dir = tempdir("wirespan-nghttpd-");
    let docs = dir.path().join("htdocs");
    std::fs::create_dir(&docs).expect("htdocs");
    for (name, content) in files {
        std::fs::write(docs.join(name), content).expect("write served file");
    }
    let port = free_port();
    let mut cmd = Command::new("nghttpd");
    cmd.args(["--no-tls", "-a", "127.0.0.1", "-d"])
        .arg(&docs)
        .args(extra)
        .arg(port.to_string());
    TestServer::spawn("nghttpd", cmd, port, dir)
}

/// The name the agent gives a process that was already running when it
/// started: read from `/proc/PID/exe`, so symlinks are resolved
/// (`/usr/bin/python3` → `python3.11`). A process exec'd while the agent
/// runs is named from the exec path as invoked (`python3`) instead.
pub fn resolved_exe_name(path: &Path) -> String {
    let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
