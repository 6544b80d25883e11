//! Exporter outage: the OTLP receiver is down when the agent starts, comes
//! up on that port, goes down mid-run and comes back. The agent must not
//! crash, `/readyz` stays 200, requests keep being turned into spans while
//! the receiver is down (the capture path never waits on export), failed
//! attempts are counted as `retryable_error`, and in the end every span
//! built is exported, counted as dropped, or still queued:
//! `wirespan_spans_built_total == received + wirespan_spans_dropped_total +
//! wirespan_export_queue_spans`. A second test fills `export.max_queue_bytes`
//! with long URLs while the receiver is down.
//!
//! The harness receiver binds an ephemeral port, so this file starts the same
//! receiver (`test_support::otlp`, gRPC) on a fixed port, stopping and
//! starting it with one inbox.
//! Received spans are de-duplicated by span id: a batch whose response was
//! lost when the receiver went down is legitimately sent again.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::agent::AgentOptions;
use integration::otlp_receiver::{Inbox, OtlpProtocol};
use integration::prelude::*;
use integration::servers::{http11_server, Server};
use integration::spans::{flatten, show};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;
use test_support::otlp::BlockingReceiver;

/// An OTLP/gRPC receiver on a fixed port that can be stopped and started
/// again; what it received survives restarts (one inbox for every run).
struct FixedReceiver {
    port: u16,
    inbox: Inbox,
    running: Option<BlockingReceiver>,
}

impl FixedReceiver {
    fn new(port: u16) -> Self {
        FixedReceiver {
            port,
            inbox: Inbox::default(),
            running: None,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        assert!(self.running.is_none(), "receiver already up");
        let addr = format!("127.0.0.1:{}", self.port);
        // The port was just released by the previous run (or never used):
        // bind may briefly fail; retry, bounded.
        let mut err = String::new();
        let bound = wait_until(
            Duration::from_secs(20),
            || match BlockingReceiver::try_start_on(OtlpProtocol::Grpc, &addr, self.inbox.clone()) {
                Ok(r) => {
                    self.running = Some(r);
                    true
                }
                Err(e) => {
                    err = e.to_string();
                    false
                }
            },
        );
        assert!(bound, "cannot bind the OTLP receiver to {addr}: {err}");
    }

    /// Stops the server and every connection it had; waits (bounded) until
    /// the port refuses connections.
    fn down(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
        }
        let closed = wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
        assert!(closed, "the receiver's port {} still accepts", self.port);
    }

    /// Unique spans received so far (by span id, in span id order).
    fn spans(&self) -> Vec<FlatSpan> {
        let mut unique = BTreeMap::new();
        for request in self.inbox.requests() {
            for s in flatten(&request) {
                unique.insert(s.span_id.clone(), s);
            }
        }
        unique.into_values().collect()
    }

    fn count(&self) -> usize {
        self.spans().len()
    }
}

const BUILT: &str = "wirespan_spans_built_total";
const DROPPED: &str = "wirespan_spans_dropped_total";
const QUEUE: &str = "wirespan_export_queue_spans";
const REQUESTS: &str = "wirespan_export_requests_total";

fn retryable(m: &Metrics) -> f64 {
    m.get(REQUESTS, &[("result", "retryable_error")])
}

/// `n` GETs to the server, one curl each (a new connection each); `tail`
/// ends each query.
fn requests(port: u16, phase: &str, n: usize, tail: &str) {
    for i in 0..n {
        let c = curl(
            &[
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{port}/status/200?phase={phase}&i={i}{tail}"),
            ],
            &[],
        );
        assert_eq!(c.transfers[0].response_code, 200, "{c:?}");
    }
}

struct Run {
    agent: Agent,
    receiver: FixedReceiver,
    port: u16,
    /// Kept running for the whole test.
    _server: Server,
}

impl Run {
    /// The HTTP/1.1 test server, a receiver that is down, and the agent
    /// exporting to it with `env` added. Only the server's port is traced
    /// (in-kernel filter): every span built is one of the test's, and the
    /// exporter's own traffic is not.
    fn start(env: &[(&str, &str)]) -> Run {
        let server = http11_server();
        let port = server.port;
        let receiver = FixedReceiver::new(free_port());
        let mut options = AgentOptions::default()
            .otlp(&receiver.endpoint(), "grpc")
            .env("WIRESPAN_CAPTURE__PORTS", port);
        for (k, v) in env {
            options = options.env(k, v);
        }
        Run {
            agent: Agent::run(options),
            receiver,
            port,
            _server: server,
        }
    }

    /// SIGTERM; the agent must exit cleanly.
    fn stop(self, name: &str) {
        let exit = self.agent.stop();
        assert!(
            exit.status.success(),
            "{name}: the agent exited with {} after SIGTERM\n{}",
            exit.status,
            exit.diagnostics()
        );
    }

    fn diag(&self) -> String {
        format!(
            "received {} unique span(s)\n{}",
            self.receiver.count(),
            self.agent.diagnostics()
        )
    }

    fn assert_up(&self, when: &str) {
        let r = self.agent.readyz();
        assert!(
            matches!(r, Ok(200)),
            "{when}: /readyz answered {r:?} (expected 200)\n{}",
            self.diag()
        );
    }

    /// Waits (bounded) until the spans built reach `min` (the capture path
    /// did not wait for the exporter).
    fn wait_built(&self, min: f64, when: &str) -> Metrics {
        let mut m = self.agent.metrics();
        let ok = wait_until(Duration::from_secs(30), || {
            m = self.agent.metrics();
            m.sum(BUILT) >= min
        });
        assert!(
            ok,
            "{when}: only {} span(s) built, expected at least {min}: requests made while \
             the receiver is down must still be turned into spans\n{}",
            m.sum(BUILT),
            self.diag()
        );
        m
    }

    /// Waits (bounded) until retryable export failures exceed `above`.
    fn wait_retryable(&self, above: f64, when: &str) {
        let mut m = self.agent.metrics();
        let ok = wait_until(Duration::from_secs(30), || {
            m = self.agent.metrics();
            retryable(&m) > above
        });
        assert!(
            ok,
            "{when}: wirespan_export_requests_total{{result=\"retryable_error\"}} stayed at {} \
             while the receiver was down\n{}",
            retryable(&m),
            self.diag()
        );
    }

    /// Waits (bounded) until nothing is queued and every span built is
    /// received or dropped; asserts built == received + dropped + queued.
    fn wait_accounted(&self, when: &str) -> (Metrics, usize) {
        self.wait_balanced(when, true)
    }

    /// Waits (bounded) until built == received + dropped + queued, with
    /// nothing queued if `drained`; asserts it.
    fn wait_balanced(&self, when: &str, drained: bool) -> (Metrics, usize) {
        let mut m = self.agent.metrics();
        let mut received = 0;
        let ok = wait_until(Duration::from_secs(40), || {
            m = self.agent.metrics();
            received = self.receiver.count();
            (!drained || m.get(QUEUE, &[]) == 0.0)
                && m.sum(BUILT) == received as f64 + m.sum(DROPPED) + m.get(QUEUE, &[])
        });
        assert!(
            ok,
            "{when}: spans built {} != received {received} + dropped {} + queued {}\n{}",
            m.sum(BUILT),
            m.sum(DROPPED),
            m.get(QUEUE, &[]),
            self.diag()
        );
        (m, received)
    }

    /// Every span of the phase's requests either arrived (both sides of each
    /// request) or is among the dropped ones.
    fn phase_delivered_or_dropped(&self, phase: &str, n: usize, dropped_before: f64, m: &Metrics) {
        let got = self
            .receiver
            .spans()
            .into_iter()
            .filter(|s| {
                s.involves_port(self.port)
                    && s.str("url.query")
                        .is_some_and(|q| q.starts_with(&format!("phase={phase}&")))
            })
            .count();
        let dropped = m.sum(DROPPED) - dropped_before;
        eprintln!(
            "phase {phase}: {got} of {} spans received, {dropped} dropped",
            2 * n
        );
        assert!(
            got as f64 + dropped >= (2 * n) as f64,
            "phase {phase}: {got} of the {} spans of its requests arrived and only {dropped} \
             were counted as dropped\n{}",
            2 * n,
            self.diag()
        );
    }
}

#[test]
fn receiver_down_at_start_then_up_then_down_mid_run_then_up() {
    let name = "receiver_down_at_start_then_up_then_down_mid_run_then_up";
    require_root(name);
    let _g = serial();
    let mut run = Run::start(&[]);
    let port = run.port;
    const N: usize = 5;

    // 1. Down at start: no crash, ready, requests still become spans, and
    //    the failed attempts are counted as retryable.
    run.assert_up("receiver down at start");
    requests(port, "down1", N, "");
    run.wait_built((2 * N) as f64, "receiver down at start");
    run.wait_retryable(0.0, "receiver down at start");
    run.assert_up("receiver down at start, after requests");

    // 2. The receiver comes up on that port: what was built while it was
    //    down arrives (or is counted as dropped).
    run.receiver.up();
    let (m, _) = run.wait_accounted("after the receiver came up");
    run.phase_delivered_or_dropped("down1", N, 0.0, &m);
    requests(port, "up1", N, "");
    run.wait_built(m.sum(BUILT) + (2 * N) as f64, "receiver up");
    let (m, _) = run.wait_accounted("receiver up");
    run.phase_delivered_or_dropped("up1", N, m.sum(DROPPED), &m);
    run.assert_up("receiver up");

    // 3. The receiver stops mid-run, then comes back.
    let retry_before = retryable(&run.agent.metrics());
    let dropped_before = m.sum(DROPPED);
    run.receiver.down();
    requests(port, "down2", N, "");
    run.wait_built(m.sum(BUILT) + (2 * N) as f64, "receiver stopped mid-run");
    run.wait_retryable(retry_before, "receiver stopped mid-run");
    run.assert_up("receiver stopped mid-run");
    run.receiver.up();
    let (m, _) = run.wait_accounted("after the receiver came back");
    run.phase_delivered_or_dropped("down2", N, dropped_before, &m);
    requests(port, "up2", N, "");
    run.wait_built(m.sum(BUILT) + (2 * N) as f64, "receiver back");
    let (m, received) = run.wait_accounted("receiver back");
    run.phase_delivered_or_dropped("up2", N, m.sum(DROPPED), &m);
    run.assert_up("end");
    eprintln!(
        "{name}: built {} received {received} dropped {} queued {}; export requests: {}",
        m.sum(BUILT),
        m.sum(DROPPED),
        m.get(QUEUE, &[]),
        ["ok", "retryable_error", "error"]
            .map(|r| format!("{r}={}", m.get(REQUESTS, &[("result", r)])))
            .join(" ")
    );

    // Every span received is one of the test's requests.
    let spans = run.receiver.spans();
    let foreign: Vec<FlatSpan> = spans
        .iter()
        .filter(|s| !s.involves_port(port))
        .cloned()
        .collect();
    assert!(
        foreign.is_empty(),
        "{name}: spans of other ports with only {port} traced:\n{}",
        show(&foreign)
    );
    run.stop(name);
}

const QUEUE_BYTES: &str = "wirespan_export_queue_bytes";
/// The smallest `export.max_queue_bytes` the config accepts.
const MAX_QUEUE_BYTES: f64 = 4_194_304.0;

/// While the receiver is down, spans with long URLs fill
/// `export.max_queue_bytes` before `export.queue_size`: the rest are dropped
/// and counted as `queue_bytes_full`, the bytes held stay under the bound,
/// and once the receiver is up what was held arrives and the bytes are free
/// again for new spans.
#[test]
fn long_urls_fill_the_byte_bound_while_the_receiver_is_down() {
    let name = "long_urls_fill_the_byte_bound_while_the_receiver_is_down";
    require_root(name);
    let _g = serial();
    let mut run = Run::start(&[(
        "WIRESPAN_EXPORT__MAX_QUEUE_BYTES",
        &MAX_QUEUE_BYTES.to_string(),
    )]);
    let port = run.port;
    // 300 requests, two spans each (curl's and the server's), each span
    // carrying the ~12 KiB query: ~7 MiB of spans against a 4 MiB bound,
    // and 600 spans, far under queue_size.
    const N: usize = 300;
    requests(port, "big", N, &format!("&pad={}", "x".repeat(12 * 1024)));
    run.wait_built((2 * N) as f64, "long URLs, receiver down");
    run.wait_retryable(0.0, "long URLs, receiver down");
    // Every span built is dropped or held (none can have arrived).
    let (m, received) = run.wait_balanced("long URLs, receiver down", false);
    assert_eq!(received, 0);
    let bytes_full = m.get(DROPPED, &[("reason", "queue_bytes_full")]);
    let held = m.get(QUEUE_BYTES, &[]);
    eprintln!(
        "{name}: built {} queued {} ({held} bytes) dropped queue_bytes_full {bytes_full}",
        m.sum(BUILT),
        m.get(QUEUE, &[])
    );
    assert!(
        bytes_full > 0.0 && held <= MAX_QUEUE_BYTES,
        "{bytes_full} dropped as queue_bytes_full, {held} bytes held against {MAX_QUEUE_BYTES}\n{}",
        run.diag()
    );
    // Full, not merely under, unless a batch has already run out of retry
    // time (30 s) and given its bytes back.
    let per_span = held / m.get(QUEUE, &[]).max(1.0);
    if m.get(DROPPED, &[("reason", "retry_exhausted")]) == 0.0 {
        assert!(
            held > MAX_QUEUE_BYTES - 2.0 * per_span,
            "{held} bytes held: the bound stopped spans before it was full\n{}",
            run.diag()
        );
    }
    assert_eq!(m.get(DROPPED, &[("reason", "queue_full")]), 0.0);

    // The receiver comes up: what was held arrives, and the bytes are free.
    run.receiver.up();
    let (m, received) = run.wait_accounted("after the receiver came up");
    assert!(
        received > 0 && m.get(QUEUE_BYTES, &[]) == 0.0,
        "received {received}, {} bytes still held\n{}",
        m.get(QUEUE_BYTES, &[]),
        run.diag()
    );
    let dropped_before = m.sum(DROPPED);
    requests(port, "after", 5, "");
    run.wait_built(m.sum(BUILT) + 10.0, "after the receiver came up");
    let (m, _) = run.wait_accounted("new spans after the bound was full");
    assert_eq!(m.sum(DROPPED), dropped_before, "{}", run.diag());
    run.phase_delivered_or_dropped("after", 5, dropped_before, &m);
    run.stop(name);
}
