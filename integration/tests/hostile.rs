//! Hardening (issue "Hardening"): hostile traffic on live connections, with
//! the real probes attached. Every test checks that
//!
//! * the agent stays up and `/readyz` stays 200;
//! * its RSS (`VmRSS` of `/proc/<agent pid>/status`, sampled every 20 ms
//!   while the hostile traffic flows, and again after it) stays under
//!   [`rss_bound`], a bound derived from the agent's configuration;
//! * the rejection is counted in `/metrics` with the right reason;
//! * a normal request sent afterwards, on a new connection, is still
//!   reconstructed exactly (both spans, every attribute).
//!
//! Each agent traces only the test's own server ports (`capture.ports`, the
//! in-kernel filter), so the counters move only for the test's traffic (the
//! host runs other programs; the receiver's OTLP connection is not traced).
//!
//! Hostile bytes are written by the test process itself on plain
//! `TcpStream`s; the servers are Python (`scripts/http11_server.py`, and an
//! asyncio sink written below) started BEFORE the agent (their ports go into
//! its config), so they are named from `/proc/PID/exe`.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::agent::AgentOptions;
use integration::prelude::*;
use integration::servers::{http11_server, Server};
use integration::span_run::SPAN_TIMEOUT;
use integration::spans::show;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use test_support::http2::FrameType;
use test_support::{hpack, http2};

const UA: &str = "wirespan-hostile/1.0";

// ---- the agent's configuration, and the RSS bound derived from it ----

/// `capture.ring_buffer_bytes`: the ring buffer is mapped into the agent and
/// its pages count in VmRSS as records flow through it.
const RING_BUFFER_BYTES: u64 = 16 << 20;
/// `connections.memory_limit_bytes`: the hard bound on what all parsers buffer.
const MEMORY_LIMIT_BYTES: u64 = 8 << 20;
/// `connections.max_connections`.
const MAX_CONNECTIONS: u64 = 32_768;
/// `http.max_header_bytes` (the default, written out).
const MAX_HEADER_BYTES: u64 = 16_384;
/// `capture.per_call_cap_bytes` (the default, written out).
const PER_CALL_CAP_BYTES: u64 = 256 << 10;
/// Per connection open at once, outside `memory_limit_bytes` (table slot,
/// LRU and index entries, the per-connection session, allocator slack).
/// Measured: 20,000 tracked idle connections (10,000 each side) added about
/// 5 MiB to the debug build's RSS, i.e. ~0.25 KiB each; 2 KiB leaves room
/// for allocator fragmentation.
const PER_CONNECTION_ALLOWANCE: u64 = 2 << 10;
/// Fixed allowance on top of the RSS measured at readiness: the span queue,
/// the exporter's buffers, Tokio and allocator growth. Measured: apart from
/// the 10,000 connections, the hostile traffic below grows the debug build's
/// RSS by under 2 MiB.
const FIXED_ALLOWANCE: u64 = 32 << 20;
/// Connections a test holds open at once unless it says otherwise.
const DEFAULT_OPEN_CONNECTIONS: u64 = 256;

/// The bound on VmRSS: the RSS at readiness (code, BPF maps' user mappings,
/// start-up allocations) plus what the configuration lets the agent hold
/// (ring buffer pages, every parser buffer together, a few records of up to
/// `per_call_cap_bytes` being decoded) plus the bookkeeping of the
/// `open_connections` connections (both ends counted) the test holds open.
fn rss_bound(baseline: u64, open_connections: u64) -> u64 {
    baseline
        + RING_BUFFER_BYTES
        + MEMORY_LIMIT_BYTES
        + 4 * PER_CALL_CAP_BYTES
        + open_connections.min(MAX_CONNECTIONS) * PER_CONNECTION_ALLOWANCE
        + FIXED_ALLOWANCE
}

fn config_yaml(ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    format!(
        "capture:\n  ports: [{}]\n  ring_buffer_bytes: {RING_BUFFER_BYTES}\n  per_call_cap_bytes: {PER_CALL_CAP_BYTES}\n\
         connections:\n  memory_limit_bytes: {MEMORY_LIMIT_BYTES}\n  max_connections: {MAX_CONNECTIONS}\n\
         http:\n  max_header_bytes: {MAX_HEADER_BYTES}\n",
        ports.join(", ")
    )
}

/// VmRSS of `pid` in bytes (0 if the process is gone).
fn vm_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Samples VmRSS every 20 ms in a thread; `finish` returns the maximum.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(vm_rss(pid)));
        let (s, m) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(vm_rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
            m.fetch_max(vm_rss(pid), Ordering::Relaxed);
        });
        RssSampler {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---- processes ----

fn resolved_exe_name(path: &Path) -> String {
    let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A Python server started before the agent: named from /proc/PID/exe.
fn server_proc(server: &Server) -> Proc {
    let exe = resolved_exe_name(&python());
    Proc {
        service: exe.clone(),
        pid: server.pid(),
        exe,
    }
}

/// Raises this process's RLIMIT_NOFILE to at least `want` (root may raise
/// the hard limit too), for tests that hold many sockets themselves.
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want;
            lim.rlim_max = lim.rlim_max.max(want);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Raises RLIMIT_NOFILE for the 10,000-connection test (root may raise the
/// hard limit too).
const RAISE_NOFILE: &str = r#"
import resource
def raise_nofile(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
raise_nofile()
"#;

/// `sink_server.py PORT`: an asyncio TCP server that reads every connection
/// to its end and never answers (HTTP/2 garbage goes here, so any HTTP/2
/// issue counted comes from the test's bytes alone; it also holds the
/// 10,000 idle connections).
const SINK_SERVER: &str = r#"
import asyncio, sys

async def handle(reader, writer):
    try:
        while await reader.read(65536):
            pass
    except Exception:
        pass
    writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"#;

/// `idle_client.py PORT N`: opens N connections (500 at a time), prints
/// `open N`, holds them until a line arrives on stdin, closes them all and
/// prints `closed`.
const IDLE_CLIENT: &str = r#"
import asyncio, sys

async def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    conns = []
    while len(conns) < n:
        k = min(500, n - len(conns))
        conns += await asyncio.gather(*[asyncio.open_connection("127.0.0.1", port) for _ in range(k)])
    print("open %d" % len(conns), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for _, w in conns:
        w.close()
    await asyncio.gather(*[w.wait_closed() for _, w in conns], return_exceptions=True)
    print("closed", flush=True)

asyncio.run(main())
"#;

fn write_script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{RAISE_NOFILE}\n{body}")).expect("write python script");
    p
}

/// The asyncio sink server on a free port.
fn sink_server() -> Server {
    let dir = tempfile::Builder::new()
        .prefix("wirespan-sink-")
        .tempdir()
        .expect("temp dir");
    let script = write_script(dir.path(), "sink_server.py", SINK_SERVER);
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
    let child = Command::new(python())
        .arg(&script)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("start sink_server.py");
    let mut process = Guarded::new("sink_server.py", child);
    let up = wait_port(port, Duration::from_secs(30));
    assert!(
        up && process.exited().is_none(),
        "sink_server.py did not listen on {port}: {}",
        std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
    );
    Server { port, process, dir }
}

// ---- the agent and its receiver ----

struct Env {
    name: &'static str,
    receiver: Receiver,
    agent: Agent,
    baseline_rss: u64,
    /// Connections (both ends) the test holds open at once at most.
    open_connections: u64,
}

impl Env {
    fn start(name: &'static str, ports: &[u16]) -> Env {
        require_root(name);
        let receiver = Receiver::start(OtlpProtocol::Grpc);
        let agent = Agent::run(
            AgentOptions::default()
                .config(&config_yaml(ports))
                .otlp(&receiver.endpoint(), "grpc"),
        );
        let baseline_rss = vm_rss(agent.pid());
        assert!(baseline_rss > 0, "{name}: cannot read the agent's VmRSS");
        eprintln!(
            "{name}: agent pid {} VmRSS at readiness {} KiB, bound {} KiB",
            agent.pid(),
            baseline_rss >> 10,
            rss_bound(baseline_rss, DEFAULT_OPEN_CONNECTIONS) >> 10
        );
        Env {
            name,
            receiver,
            agent,
            baseline_rss,
            open_connections: DEFAULT_OPEN_CONNECTIONS,
        }
    }

    fn bound(&self) -> u64 {
        rss_bound(self.baseline_rss, self.open_connections)
    }

    /// The agent is up, `/readyz` is 200, and `rss` (a maximum sampled while
    /// `what` ran) and the current RSS are under the bound.
    fn check(&mut self, what: &str, sampled_max_rss: u64) {
        let rss_now = vm_rss(self.agent.pid());
        assert!(
            rss_now > 0,
            "{}: after {what}: the agent process is gone\n{}",
            self.name,
            self.agent.diagnostics()
        );
        let ready = self.agent.readyz();
        assert!(
            matches!(ready, Ok(200)),
            "{}: after {what}: /readyz answered {ready:?}, expected 200\n{}",
            self.name,
            self.agent.diagnostics()
        );
        let max = sampled_max_rss.max(rss_now);
        eprintln!(
            "{}: {what}: max VmRSS {} KiB (baseline {} KiB, bound {} KiB)",
            self.name,
            max >> 10,
            self.baseline_rss >> 10,
            self.bound() >> 10
        );
        assert!(
            max <= self.bound(),
            "{}: during {what} the agent's VmRSS reached {} KiB, above the bound {} KiB \
             (baseline {} KiB + ring buffer {} + memory_limit_bytes {} + {} connections x {} \
             + 4 x per_call_cap {} + fixed {})\n{}",
            self.name,
            max >> 10,
            self.bound() >> 10,
            self.baseline_rss >> 10,
            RING_BUFFER_BYTES,
            MEMORY_LIMIT_BYTES,
            self.open_connections,
            PER_CONNECTION_ALLOWANCE,
            PER_CALL_CAP_BYTES,
            FIXED_ALLOWANCE,
            self.agent.diagnostics()
        );
    }

    /// Runs `f` while sampling RSS, then checks the agent (see [`Env::check`]).
    fn hostile<T>(&mut self, what: &str, f: impl FnOnce() -> T) -> T {
        let sampler = RssSampler::start(self.agent.pid());
        let out = f();
        let max = sampler.finish();
        self.check(what, max);
        out
    }

    /// Waits (bounded) until `sum of series - before >= min` and returns the
    /// metrics; fails with the non-zero metrics otherwise.
    fn wait_counter(&self, before: &Metrics, series: &[(&str, &str)], min: f64) -> Metrics {
        let delta = |m: &Metrics| -> f64 {
            series
                .iter()
                .map(|(name, reason)| {
                    let l = [("reason", *reason)];
                    m.get(name, &l) - before.get(name, &l)
                })
                .sum()
        };
        let mut last = self.agent.metrics();
        let ok = wait_until(Duration::from_secs(20), || {
            last = self.agent.metrics();
            delta(&last) >= min
        });
        assert!(
            ok,
            "{}: expected {series:?} to grow by at least {min}, grew by {}\n\
             --- before (non-zero) ---\n{}\n{}",
            self.name,
            delta(&last),
            before.nonzero(),
            self.agent.diagnostics()
        );
        last
    }

    /// A normal GET on a new connection: see [`exact_request`].
    fn exact_request(&self, server: &Server, status: u16, tag: &str) {
        exact_request(self.name, &self.receiver, &self.agent, server, status, tag);
    }

    /// One normal request before the hostile traffic, waited for (both
    /// spans) but not compared: it shows the set-up works, so a failure of
    /// the exact request after the hostile traffic is the hostile traffic's.
    fn warm_up(&self, server: &Server) {
        let port = server.port;
        let c = curl(
            &[
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{port}/status/200?warm=up"),
            ],
            &[],
        );
        let client_port = c.transfers[0].local_port;
        let got = self.receiver.wait_for(SPAN_TIMEOUT, |spans| {
            spans
                .iter()
                .filter(|s| s.involves_port(port) && from_client_port(s, client_port))
                .count()
                >= 2
        });
        assert!(
            got.is_ok(),
            "{}: the warm-up request before the hostile traffic was not reported\n{}",
            self.name,
            self.agent.diagnostics()
        );
    }

    /// No span at all for connections from these client ports.
    fn assert_no_spans_from(&self, port: u16, client_ports: &[u16], what: &str) {
        let bad: Vec<FlatSpan> = self
            .receiver
            .spans()
            .into_iter()
            .filter(|s| {
                s.involves_port(port)
                    && client_ports.iter().any(|p| {
                        s.int("client.port") == Some(*p as i64)
                            || (s.is_client() && s.int("network.local.port") == Some(*p as i64))
                    })
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{}: {what} produced span(s):\n{}",
            self.name,
            show(&bad)
        );
    }

    fn finish(self) {
        let exit = self.agent.stop();
        assert!(
            exit.status.success(),
            "{}: the agent exited with {} after SIGTERM\n{}",
            self.name,
            exit.status,
            exit.diagnostics()
        );
    }
}

/// Whether `s` belongs to the connection from client port `client_port`.
fn from_client_port(s: &FlatSpan, client_port: u16) -> bool {
    let p = Some(client_port as i64);
    (s.is_server() && s.int("client.port") == p)
        || (s.is_client() && s.int("network.local.port") == p)
}

/// A normal GET (curl, a new connection) to `server`: both its spans arrive
/// with every attribute exact.
fn exact_request(
    name: &str,
    receiver: &Receiver,
    agent: &Agent,
    server: &Server,
    status: u16,
    tag: &str,
) {
    let port = server.port;
    let target = format!("/status/{status}?after={tag}");
    let c = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}{target}"),
        ],
        &[],
    );
    let t = &c.transfers[0];
    assert_eq!(t.response_code, status, "{name}: curl {target}: {c:?}");
    let client_port = t.local_port;
    let of_request = |s: &FlatSpan| s.involves_port(port) && from_client_port(s, client_port);
    let got = receiver
        .wait_for(SPAN_TIMEOUT, |spans| {
            spans.iter().filter(|s| of_request(s)).count() >= 2
        })
        .unwrap_or_else(|spans| {
            let of_port: Vec<FlatSpan> = spans
                .into_iter()
                .filter(|s| s.involves_port(port))
                .collect();
            panic!(
                "{name}: the spans of the normal request {target} (client port {client_port}) \
                 did not arrive within {SPAN_TIMEOUT:?}; spans of port {port}:\n{}\n{}",
                show(&of_port),
                agent.diagnostics()
            )
        });
    let got: Vec<FlatSpan> = got.into_iter().filter(of_request).collect();
    let curl_p = Proc {
        service: "curl".into(),
        pid: c.pid,
        exe: "curl".into(),
    };
    let e = Exchange::get(&target, port, client_port, status, t.size_download).ua(UA);
    assert_spans(
        &e.spans(&curl_p, &server_proc(server)),
        &got,
        &format!(
            "{name}: the normal request after the hostile traffic\n{}",
            agent.diagnostics()
        ),
    );
}

// ---- raw bytes ----

/// Connects to `port`, writes `bytes` (write errors are ignored: the server
/// may reject the input and close), half-closes, and reads until EOF
/// (bounded by a read timeout). Returns the client's local port.
fn send_raw(port: u16, bytes: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let local = s.local_addr().expect("local addr").port();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).ok();
    s.shutdown(Shutdown::Write).ok();
    let mut sink = Vec::new();
    s.read_to_end(&mut sink).ok();
    local
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

fn delta(before: &Metrics, after: &Metrics, name: &str, reason: &str) -> f64 {
    let l = [("reason", reason)];
    after.get(name, &l) - before.get(name, &l)
}

const PARSE: &str = "wirespan_parse_issues_total";
const NOT_PARSED: &str = "wirespan_stream_bytes_not_parsed_total";
const NOT_COPIED: &str = "wirespan_kernel_bytes_not_copied_total";

// ---- the tests ----

/// 1. Random bytes to an HTTP port: not detected as any protocol, so the
///    connection is muted and every byte is counted (undetected in user
///    space, or muted in the kernel), never parsed.
#[test]
fn random_bytes_on_http_port_are_muted_and_counted() {
    let name = "random_bytes_on_http_port_are_muted_and_counted";
    require_root(name);
    let _g = serial();
    let server = http11_server();
    let port = server.port;
    let mut env = Env::start(name, &[port]);
    env.warm_up(&server);
    let before = env.agent.settled_metrics();
    const CONNS: u64 = 8;
    const BYTES: usize = 64 << 10;
    let client_ports = env.hostile("random bytes", || {
        (0..CONNS)
            .map(|i| {
                let mut b = random_bytes(BYTES, 0x9e37_79b9_7f4a_7c15 ^ i);
                // Not the first byte of a method, "HTTP/1." or the HTTP/2 preface.
                b[0] = 0;
                send_raw(port, &b)
            })
            .collect::<Vec<u16>>()
    });
    // Each client wrote BYTES: all of them are counted on the client side
    // alone (the server's side counts what it read on top).
    let after = env.wait_counter(
        &before,
        &[
            (NOT_PARSED, "undetected_bytes"),
            (NOT_COPIED, "muted_connection"),
        ],
        (CONNS * BYTES as u64) as f64,
    );
    assert!(
        delta(&before, &after, NOT_PARSED, "undetected_bytes") > 0.0,
        "random bytes: undetected_bytes did not move\n{}",
        env.agent.diagnostics()
    );
    let parse_issues = after.sum(PARSE) - before.sum(PARSE);
    assert_eq!(
        parse_issues,
        0.0,
        "random bytes were parsed as HTTP (parse issues counted)\n{}",
        env.agent.diagnostics()
    );
    env.exact_request(&server, 200, "random");
    env.assert_no_spans_from(port, &client_ports, "random bytes");
    env.finish();
}

/// 2. Malformed HTTP/1. A request line with an invalid version and one with
///    a control character in the target: malformed_head, at each end of
///    each connection. A header line without a colon
///    (`GET / HTTP/1.1\r\nBad Header\r\n\r\n`) is *ignored* by the agent's
///    parser on purpose (`ignore_invalid_headers_in_requests`, as the
///    Python server does too): that exchange must then be reconstructed
///    as what the server answered (GET / → 404), or counted as
///    malformed_head; never anything else. Then a chunk size that is not
///    hex and one that overflows 64 bits: malformed_chunk.
#[test]
fn malformed_http1_heads_and_chunks_are_counted() {
    let name = "malformed_http1_heads_and_chunks_are_counted";
    require_root(name);
    let _g = serial();
    let server = http11_server();
    let port = server.port;
    let mut env = Env::start(name, &[port]);
    env.warm_up(&server);
    let before = env.agent.settled_metrics();
    env.hostile("malformed request lines", || {
        send_raw(port, b"GET / HTTP/1.9x\r\nHost: x\r\n\r\n");
        send_raw(port, b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n");
    });
    let m = env.wait_counter(&before, &[(PARSE, "malformed_head")], 4.0);
    let bad_header_port = env.hostile("a header line without a colon", || {
        send_raw(port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    });
    // Counted, or both spans are exactly what happened on the wire.
    let mut spans = Vec::new();
    let mut now = env.agent.metrics();
    let settled = wait_until(SPAN_TIMEOUT, || {
        now = env.agent.metrics();
        spans = env
            .receiver
            .spans()
            .into_iter()
            .filter(|s| s.involves_port(port) && from_client_port(s, bad_header_port))
            .collect();
        delta(&m, &now, PARSE, "malformed_head") >= 2.0 || spans.len() >= 2
    });
    assert!(
        settled,
        "{name}: `Bad Header` was neither counted as malformed_head nor reconstructed\n{}",
        env.agent.diagnostics()
    );
    for s in &spans {
        assert_eq!(
            (
                s.str("http.request.method"),
                s.str("url.path"),
                s.int("http.response.status_code")
            ),
            (Some("GET"), Some("/"), Some(404)),
            "{name}: `GET / HTTP/1.1\\r\\nBad Header` gave a span that is not the \
             exchange that happened (the server answered 404):\n{}",
            show(&spans)
        );
    }
    let before_chunks = env.agent.metrics();
    env.hostile("invalid chunk sizes", || {
        send_raw(
            port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n",
        );
        let mut overflow =
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        overflow.extend_from_slice(&[b'f'; 40]);
        overflow.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        send_raw(port, &overflow);
    });
    env.wait_counter(&before_chunks, &[(PARSE, "malformed_chunk")], 4.0);
    env.exact_request(&server, 200, "malformed");
    env.finish();
}

/// 3. A 1 MiB request line and a 1 MiB header: head_too_large, skipped
///    without being buffered (RSS bound), whatever the server answers.
#[test]
fn one_mib_request_line_and_header_are_skipped_not_buffered() {
    let name = "one_mib_request_line_and_header_are_skipped_not_buffered";
    require_root(name);
    let _g = serial();
    let server = http11_server();
    let sink = sink_server();
    let port = server.port;
    let mut env = Env::start(name, &[port, sink.port]);
    env.warm_up(&server);
    let before = env.agent.settled_metrics();
    const MIB: usize = 1 << 20;
    const ROUNDS: usize = 4;
    env.hostile("1 MiB request lines and headers", || {
        for _ in 0..ROUNDS {
            let mut line = b"GET /".to_vec();
            line.extend(std::iter::repeat_n(b'a', MIB));
            line.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            send_raw(port, &line);
            let mut header = b"GET /big-header HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
            header.extend(std::iter::repeat_n(b'b', MIB));
            header.extend_from_slice(b"\r\n\r\n");
            send_raw(port, &header);
        }
    });
    // Both ends of each connection see more than max_header_bytes of head.
    let m = env.wait_counter(&before, &[(PARSE, "head_too_large")], (4 * ROUNDS) as f64);
    // HELD connections each with a 1 MiB header that never ends, all open at
    // once, to a server that reads everything: an agent that buffered heads
    // would hold 2 x HELD MiB (both ends), far above the bound. Written in
    // groups of GROUP, each group counted before the next is sent, so the
    // ring buffer (16 MiB) never overflows and every head is seen whole.
    const HELD: usize = 64;
    const GROUP: usize = 8;
    let sampler = RssSampler::start(env.agent.pid());
    let mut held = Vec::new();
    let mut m = m;
    for _ in 0..HELD / GROUP {
        for _ in 0..GROUP {
            let mut s = TcpStream::connect(("127.0.0.1", sink.port)).expect("connect");
            s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(b"GET /held HTTP/1.1\r\nHost: x\r\nX-Big: ")
                .expect("write head start");
            s.write_all(&vec![b'c'; MIB]).expect("write 1 MiB header");
            held.push(s);
        }
        m = env.wait_counter(&m, &[(PARSE, "head_too_large")], (2 * GROUP) as f64);
    }
    let max = sampler.finish();
    env.check("64 unterminated 1 MiB headers held open", max);
    drop(held);
    env.exact_request(&server, 200, "oversized");
    env.finish();
}

/// 4. HTTP/2: the preface then garbage, a frame above
///    SETTINGS_MAX_FRAME_SIZE (16,385 with the default 16,384) and one of
///    the largest length a frame header can say (16 MiB - 1), both
///    http2_frame_error; a dynamic table size update to 2^31 (far above
///    SETTINGS_HEADER_TABLE_SIZE): hpack_error. To a server that never
///    answers, so both ends count only the test's bytes.
#[test]
fn http2_garbage_oversized_frames_and_hpack_bomb_are_counted() {
    let name = "http2_garbage_oversized_frames_and_hpack_bomb_are_counted";
    require_root(name);
    let _g = serial();
    let server = http11_server();
    let sink = sink_server();
    let mut env = Env::start(name, &[server.port, sink.port]);
    env.warm_up(&server);
    let before = env.agent.settled_metrics();
    let settings = http2::settings(&[]);
    env.hostile("HTTP/2 preface then garbage", || {
        let mut b = http2::preface();
        b.extend_from_slice(b"this is not an HTTP/2 frame, only garbage bytes\r\n");
        send_raw(sink.port, &b);
    });
    let m = env.wait_counter(&before, &[(PARSE, "http2_frame_error")], 2.0);
    env.hostile("oversized HTTP/2 frames", || {
        let mut b = http2::preface();
        b.extend_from_slice(&settings);
        b.extend(http2::frame(FrameType::Data, 0, 1, &[0u8; 16_385]));
        send_raw(sink.port, &b);
        let mut b = http2::preface();
        b.extend_from_slice(&settings);
        b.extend(http2::frame_claiming(0xff_ffff, FrameType::Data, 0, 1, &[]));
        send_raw(sink.port, &b);
    });
    let m = env.wait_counter(&m, &[(PARSE, "http2_frame_error")], 4.0);
    env.hostile("HPACK table size update to 2^31", || {
        let mut block = Vec::new();
        hpack::int(&mut block, 5, 0x20, 1 << 31);
        // A real field after it (:method GET, static index 2).
        block.push(0x82);
        let mut b = http2::preface();
        b.extend_from_slice(&settings);
        // HEADERS, END_STREAM | END_HEADERS, stream 1.
        b.extend(http2::headers(1, &block, true));
        send_raw(sink.port, &b);
    });
    env.wait_counter(&m, &[(PARSE, "hpack_error")], 2.0);
    env.exact_request(&server, 200, "http2");
    env.finish();
}

/// 4b. What a connection holds while it waits counts against
///    `memory_limit_bytes` (8 MiB here), not only its partial input: `n`
///    connections to a server that never answers each send `bytes` and stay
///    open, both ends traced. The largest holders are evicted (counted
///    `evicted_memory`), RSS stays within the bound, and a normal request
///    after is exact.
fn held_while_waiting_is_bounded(name: &'static str, n: u64, bytes: &[u8], what: &str) {
    require_root(name);
    let _g = serial();
    raise_nofile(4096);
    let server = http11_server();
    let sink = sink_server();
    let mut env = Env::start(name, &[server.port, sink.port]);
    env.warm_up(&server);
    env.open_connections = 2 * n + DEFAULT_OPEN_CONNECTIONS;
    let before = env.agent.settled_metrics();
    let sampler = RssSampler::start(env.agent.pid());
    let mut held = Vec::new();
    for _ in 0..n {
        let mut c = TcpStream::connect(("127.0.0.1", sink.port)).expect("connect");
        c.write_all(bytes).expect("send");
        held.push(c);
    }
    let evicted = [("wirespan_connection_events_total", "evicted_memory")];
    let m = env.wait_counter(&before, &evicted, 1.0);
    let max = sampler.finish();
    env.check(what, max);
    let l = [("reason", "evicted_memory")];
    eprintln!(
        "{name}: {} connection ends evicted for memory, {n} connections open",
        m.get(evicted[0].0, &l) - before.get(evicted[0].0, &l)
    );
    drop(held);
    // Closing them ends each waiting request as a span with no response:
    // let those be exported (or dropped and counted) before the normal
    // request, which must not wait behind them in a full export queue.
    let gauge = |m: &Metrics, name: &str| m.get(name, &[]);
    let mut now = env.agent.metrics();
    let drained = wait_until(Duration::from_secs(60), || {
        now = env.agent.metrics();
        gauge(&now, "wirespan_export_queue_spans") == 0.0
            && gauge(&now, "wirespan_connections") <= gauge(&before, "wirespan_connections")
    });
    assert!(
        drained,
        "{name}: after the connections closed: {} connections, {} spans queued\n{}",
        gauge(&now, "wirespan_connections"),
        gauge(&now, "wirespan_export_queue_spans"),
        env.agent.diagnostics()
    );
    env.exact_request(&server, 200, "held-while-waiting");
    env.finish();
}

/// HTTP/2: 1,500 connections, each sending one header block whose literal
/// fields fill the 4,096-byte HPACK table the connection starts with: ~6,000
/// decoder tables' worth (~12 MiB) if the agent kept them all.
#[test]
fn http2_hpack_tables_count_against_the_memory_limit() {
    let fill: Vec<String> = (0..4).map(|k| format!("{k}{}", "v".repeat(999))).collect();
    let mut reps = vec![
        hpack::Rep::Indexed(2),
        hpack::Rep::Indexed(6),
        hpack::Rep::Indexed(4),
    ];
    reps.extend(
        fill.iter()
            .map(|v| hpack::Rep::Inc(hpack::Name::Lit("x-fill"), v)),
    );
    let mut bytes = http2::preface();
    bytes.extend(http2::settings(&[]));
    // Not END_STREAM: the stream stays open, the connection too.
    bytes.extend(http2::headers(1, &hpack::block(&reps), false));
    held_while_waiting_is_bounded(
        "http2_hpack_tables_count_against_the_memory_limit",
        1_500,
        &bytes,
        "1,500 HTTP/2 connections with full HPACK tables",
    );
}

/// HTTP/1.1 pipelining: 40 connections, each sending 64 requests
/// (`max_pending_requests`) with 8 KiB targets and getting no answer: ~40
/// MiB of waiting heads, counted at both ends.
#[test]
fn pipelined_heads_count_against_the_memory_limit() {
    let target = format!("/{}", "q".repeat(8 * 1024));
    let one = format!("GET {target} HTTP/1.1\r\nHost: x\r\nUser-Agent: {UA}\r\n\r\n");
    held_while_waiting_is_bounded(
        "pipelined_heads_count_against_the_memory_limit",
        40,
        one.repeat(64).as_bytes(),
        "40 connections with 64 pipelined 8 KiB requests each",
    );
}

/// 5. 10,000 concurrent idle connections (an asyncio client to an asyncio
///    server): the `wirespan_connections` gauge counts both ends, RSS stays
///    bounded, the gauge falls back once they close, and a normal request
///    after is exact.
#[test]
fn ten_thousand_idle_connections() {
    let name = "ten_thousand_idle_connections";
    require_root(name);
    let _g = serial();
    let server = http11_server();
    let sink = sink_server();
    let mut env = Env::start(name, &[server.port, sink.port]);
    env.warm_up(&server);
    const N: u64 = 10_000;
    env.open_connections = 2 * N + DEFAULT_OPEN_CONNECTIONS;
    let gauge = |m: &Metrics| m.get("wirespan_connections", &[]);
    let before = env.agent.settled_metrics();
    let dir = tempfile::tempdir().expect("temp dir");
    let script = write_script(dir.path(), "idle_client.py", IDLE_CLIENT);
    let mut child = Command::new(python())
        .arg(&script)
        .arg(sink.port.to_string())
        .arg(N.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("idle_client.py");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let client = Guarded::new("idle_client.py", child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let sampler = RssSampler::start(env.agent.pid());
    let opened = rx.recv_timeout(Duration::from_secs(120));
    assert_eq!(
        opened.as_deref(),
        Ok(format!("open {N}").as_str()),
        "{name}: the idle client did not open {N} connections"
    );
    let mut seen = 0.0;
    let all_tracked = wait_until(Duration::from_secs(60), || {
        seen = gauge(&env.agent.metrics());
        seen - gauge(&before) >= (2 * N) as f64
    });
    eprintln!("{name}: wirespan_connections {seen} with {N} idle connections open");
    assert!(
        all_tracked,
        "{name}: with {N} idle connections open (both ends traced) wirespan_connections \
         reached only {seen} (before: {})\n{}",
        gauge(&before),
        env.agent.diagnostics()
    );
    let max = sampler.finish();
    env.check("10,000 idle connections open", max);
    let sampler = RssSampler::start(env.agent.pid());
    writeln!(stdin, "close").expect("tell the idle client to close");
    let closed = rx.recv_timeout(Duration::from_secs(120));
    assert_eq!(closed.as_deref(), Ok("closed"), "{name}: idle client");
    drop(client);
    let mut now = 0.0;
    let released = wait_until(Duration::from_secs(60), || {
        now = gauge(&env.agent.metrics());
        now <= gauge(&before)
    });
    assert!(
        released,
        "{name}: after the {N} connections closed wirespan_connections is {now} \
         (before they opened: {})\n{}",
        gauge(&before),
        env.agent.diagnostics()
    );
    let max = sampler.finish();
    env.check("closing 10,000 connections", max);
    env.exact_request(&server, 200, "idle");
    env.finish();
}

/// One request on a keep-alive connection; returns the response's status
/// (the server always sends Content-Length here). `write!` on the unbuffered
/// stream sends the request in several small writes: a server `recv` that
/// was already waiting when the agent started may return only a prefix of
/// it, so the new agent can join the connection in the middle of a request.
fn roundtrip(conn: &mut TcpStream, target: &str) -> u16 {
    write!(
        conn,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {UA}\r\n\r\n"
    )
    .expect("write request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).expect("read response");
        assert!(
            n > 0,
            "the server closed the keep-alive connection ({target})"
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response head {head:?}"));
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).expect("read body");
        assert!(n > 0, "the server closed mid-body ({target})");
        buf.extend_from_slice(&chunk[..n]);
    }
    status
}

/// 6. Restart: a keep-alive connection stays open while the agent is
///    stopped and started again. Requests on it after the restart give
///    correct spans or none, never garbage (no span whose method, path,
///    query or status is not one the connection carried while an agent
///    ran); if some are missing, the new agent's counters say why. The
///    request sent while no agent ran must never appear.
///
///    Then a normal request on a new connection must be exact. Seen to fail
///    intermittently (1 run in ~17): the curl client span lacked
///    `service.peer.name` while the server span named "curl" (cause not
///    determined; the server process was in the agent's table).
#[test]
fn restart_with_open_keep_alive_connection() {
    let name = "restart_with_open_keep_alive_connection";
    require_root(name);
    let _g = serial();
    let server = http11_server();
    let port = server.port;
    let receiver = Receiver::start(OtlpProtocol::Grpc);
    let opts = || {
        AgentOptions::default()
            .config(&config_yaml(&[port]))
            .otlp(&receiver.endpoint(), "grpc")
    };
    let agent = Agent::run(opts());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let client_port = conn.local_addr().unwrap().port();
    let of_conn = |s: &FlatSpan| s.involves_port(port) && from_client_port(s, client_port);
    assert_eq!(roundtrip(&mut conn, "/status/200?phase=before"), 200);
    let first = receiver.wait_for(SPAN_TIMEOUT, |spans| {
        spans.iter().filter(|s| of_conn(s)).count() >= 2
    });
    assert!(
        first.is_ok(),
        "{name}: the first agent did not report the request before the restart\n{}",
        agent.diagnostics()
    );
    let exit_a = agent.stop();
    assert!(
        exit_a.status.success(),
        "{name}: first agent exit {}\n{}",
        exit_a.status,
        exit_a.diagnostics()
    );
    // No agent: this exchange is never seen.
    assert_eq!(roundtrip(&mut conn, "/status/201?phase=during"), 201);
    let agent = Agent::run(opts());
    let rss_base = vm_rss(agent.pid());
    let bound = rss_bound(rss_base, DEFAULT_OPEN_CONNECTIONS);
    assert_eq!(roundtrip(&mut conn, "/status/202?phase=after1"), 202);
    assert_eq!(roundtrip(&mut conn, "/status/203?phase=after2"), 203);
    exact_request(name, &receiver, &agent, &server, 200, "restart");
    let rss = vm_rss(agent.pid());
    assert!(
        agent.readyz().ok() == Some(200) && rss <= bound,
        "{name}: second agent: /readyz {:?}, VmRSS {} KiB (bound {} KiB)\n{}",
        agent.readyz(),
        rss >> 10,
        bound >> 10,
        agent.diagnostics()
    );
    let exit_b = agent.stop();
    assert!(
        exit_b.status.success(),
        "{name}: second agent exit {}\n{}",
        exit_b.status,
        exit_b.diagnostics()
    );
    drop(conn);
    let spans: Vec<FlatSpan> = receiver.spans().into_iter().filter(of_conn).collect();
    let allowed = [
        ("/status/200", "phase=before", 200),
        ("/status/202", "phase=after1", 202),
        ("/status/203", "phase=after2", 203),
    ];
    let context = format!(
        "spans of the keep-alive connection:\n{}\n--- second agent ---\n{}",
        show(&spans),
        exit_b.diagnostics()
    );
    let mut seen = std::collections::BTreeMap::<(i32, &str), usize>::new();
    for s in &spans {
        let key = allowed.iter().find(|(path, query, status)| {
            s.str("http.request.method") == Some("GET")
                && s.name == "GET"
                && s.str("url.path") == Some(*path)
                && s.str("url.query") == Some(*query)
                && s.int("http.response.status_code") == Some(*status)
        });
        let Some((path, _, _)) = key else {
            panic!("{name}: a span that no request on the connection matches (garbage):\n{s}\n{context}");
        };
        *seen.entry((s.kind, path)).or_default() += 1;
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "{name}: an exchange was reported more than once: {seen:?}\n{context}"
    );
    let before = seen.keys().filter(|(_, p)| *p == "/status/200").count();
    assert_eq!(
        before, 2,
        "{name}: the request before the restart\n{context}"
    );
    let after = spans.len() - before;
    eprintln!(
        "{name}: {after} of 4 spans after the restart reported: {seen:?}; second agent:\n{}",
        exit_b.metrics.nonzero()
    );
    if after < 4 {
        let m = &exit_b.metrics;
        let explained = m.get(
            "wirespan_connection_events_total",
            &[("reason", "data_for_unknown_connection")],
        ) + m.sum(NOT_PARSED)
            + [
                "resync_after_gap",
                "resync_skipped_bytes",
                "unpaired_response",
            ]
            .iter()
            .map(|r| m.get(PARSE, &[("reason", r)]))
            .sum::<f64>();
        assert!(
            explained > 0.0,
            "{name}: {} span(s) of the requests after the restart are missing and no \
             counter of the second agent explains it\n{context}",
            4 - after
        );
    }
}
