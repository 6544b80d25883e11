//! No spans about the agent itself: a client on this host that scrapes the
//! agent's `/metrics` or `/readyz` (curl, a Python client, as a node-local
//! Prometheus or the kubelet's readiness probe would) makes no span at
//! either end, and is counted instead; a control request to another server
//! on the host, in the same run, is still exact.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::otlp_receiver::OtlpProtocol;
use integration::prelude::*;
use integration::servers::nginx;
use integration::spans::show;
use std::process::Command;
use std::time::Duration;

const UA: &str = "wirespan-e2e-own-traffic/1.0";

/// Python's urllib scrapes `paths` of `addr`, a new connection each, and
/// prints the status codes.
const PY_SCRAPER: &str = r#"
import sys, urllib.request
addr = sys.argv[1]
for path in sys.argv[2:]:
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=30) as r:
        r.read()
        print(r.status)
"#;

#[test]
fn scrapes_of_the_agents_own_endpoints_make_no_spans() {
    require_root("scrapes_of_the_agents_own_endpoints_make_no_spans");
    let _g = serial();
    let body = b"control request\n".repeat(9);
    let server = nginx(&[("c.txt", &body)], "");
    let port = server.port;
    let worker = server.only_child();
    // No port filter: everything on the host is traced.
    let run = SpanRun::start(OtlpProtocol::Grpc);
    let maddr = run.agent.metrics_addr.clone();
    let mport: u16 = maddr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("metrics port");

    let mut scrapes = 0;
    for path in ["/metrics", "/readyz"] {
        for _ in 0..5 {
            let c = curl(&["-o", "/dev/null", &format!("http://{maddr}{path}")], &[]);
            assert_eq!(c.transfers.len(), 1, "{c:?}");
            assert_eq!(c.transfers[0].response_code, 200, "curl {path}");
            scrapes += 1;
        }
    }
    let out = Command::new(python())
        .args(["-c", PY_SCRAPER, &maddr])
        .args(["/metrics", "/readyz"].repeat(5))
        .output()
        .expect("run the Python scraper");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let codes = String::from_utf8_lossy(&out.stdout);
    assert_eq!(codes.lines().filter(|l| *l == "200").count(), 10, "{codes}");
    scrapes += 10;

    // The control request, after the scrapes.
    let c = curl(
        &[
            "-A",
            UA,
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/c.txt"),
        ],
        &[],
    );
    assert_eq!(c.transfers.len(), 1, "{c:?}");
    let t = &c.transfers[0];
    assert_eq!(t.response_code, 200);
    let expected = Exchange::get("/c.txt", port, t.local_port, 200, body.len() as u64)
        .ua(UA)
        .spans(
            &Proc {
                service: "curl".into(),
                pid: c.pid,
                exe: "curl".into(),
            },
            &Proc {
                service: "nginx".into(),
                pid: worker,
                exe: "nginx".into(),
            },
        );

    let waited = run.receiver.wait_for(Duration::from_secs(30), |s| {
        s.iter().filter(|x| x.involves_port(port)).count() >= expected.len()
    });
    // Stopping flushes everything still held (a scrape whose response was
    // muted used to end there, as a `connection_closed` error span).
    let exit = run.agent.stop();
    assert!(exit.status.success(), "{}", exit.diagnostics());
    let all = run.receiver.spans();
    assert!(
        waited.is_ok(),
        "the control spans did not arrive:\n{}\n{}",
        show(&all),
        exit.diagnostics()
    );
    let own: Vec<_> = all
        .iter()
        .filter(|s| {
            s.involves_port(mport)
                || s.int("server.port") == Some(i64::from(mport))
                || s.str("url.path")
                    .is_some_and(|p| p == "/metrics" || p == "/readyz")
        })
        .cloned()
        .collect();
    assert!(
        own.is_empty(),
        "spans about the agent's own endpoints:\n{}\n{}",
        show(&own),
        exit.diagnostics()
    );
    let control: Vec<_> = all
        .iter()
        .filter(|s| s.involves_port(port))
        .cloned()
        .collect();
    assert_spans(&expected, &control, &exit.diagnostics());

    let m = &exit.metrics;
    // Every scrape connection was recognised at its open record (the test
    // harness's own readiness and metrics reads are more of the same).
    let ignored = m.get(
        "wirespan_own_traffic_connections_total",
        &[("via", "listen_address")],
    );
    assert!(
        ignored >= f64::from(scrapes),
        "{ignored} < {scrapes}\n{}",
        m.nonzero()
    );
    // Their bytes: dropped in user space before the mute reached the kernel,
    // or not copied by the kernel once muted.
    let bytes = m.sum("wirespan_own_traffic_bytes_total")
        + m.get(
            "wirespan_kernel_bytes_not_copied_total",
            &[("reason", "muted_connection")],
        );
    assert!(bytes > 0.0, "{}", m.nonzero());
}
