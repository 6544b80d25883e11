//! Connected traces end to end: real programs on this host calling each
//! other, `wirespan run` exporting over OTLP, and the exact trace tree and
//! peer names asserted from what arrives at the receiver.
//!
//! curl → frontend (Python, thread per request) → backend (Python): the
//! frontend's worker thread calls the backend while it serves curl's request,
//! so in-process causality makes those calls children of the frontend's
//! server span, and same-host linking makes each server span the child of the
//! client span that called it.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::otlp_receiver::OtlpProtocol;
use integration::prelude::*;
use integration::servers::python_script_server_env;
use integration::span_run::SPAN_TIMEOUT;
use integration::spans::{show, KIND_CLIENT, KIND_SERVER};

/// One expected span of the tree: who, what, and its parent.
struct Node {
    service: &'static str,
    kind: i32,
    path: &'static str,
    peer: &'static str,
    parent: Parent,
}

enum Parent {
    Root,
    /// The span of this index in the same list.
    Span(usize),
    /// A span outside what the agent sees (hex id, from a traceparent).
    Outside(&'static str),
}
use Parent::{Outside, Root, Span as P};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Waits for `expected.len()` spans touching `ports`, stops the agent, and
/// checks that the spans are exactly `expected`: same count, every node found
/// once, one trace id for all, and each span's parent the expected span.
fn assert_tree(run: SpanRun, ports: &[u16], expected: &[Node]) -> (Vec<FlatSpan>, AgentExit) {
    let touches = |s: &FlatSpan| ports.iter().any(|p| s.involves_port(*p));
    let waited = run.receiver.wait_for(SPAN_TIMEOUT, |s| {
        s.iter().filter(|x| touches(x)).count() >= expected.len()
    });
    let diagnostics = run.agent.diagnostics();
    let exit = run.agent.stop();
    assert!(exit.status.success(), "agent: {}", exit.diagnostics());
    let spans: Vec<FlatSpan> = run
        .receiver
        .spans()
        .into_iter()
        .filter(|s| touches(s))
        .collect();
    assert!(
        waited.is_ok() && spans.len() == expected.len(),
        "expected {} spans, got {}:\n{}\n{diagnostics}",
        expected.len(),
        spans.len(),
        show(&spans)
    );
    // Match each expected node to a distinct span.
    let mut taken = vec![false; spans.len()];
    let mut found = Vec::new();
    for n in expected {
        let i = spans
            .iter()
            .enumerate()
            .position(|(i, s)| {
                !taken[i]
                    && s.kind == n.kind
                    && s.res_str("service.name") == Some(n.service)
                    && s.str("url.path") == Some(n.path)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no {} span of {} for {}:\n{}",
                    if n.kind == KIND_SERVER {
                        "SERVER"
                    } else {
                        "CLIENT"
                    },
                    n.service,
                    n.path,
                    show(&spans)
                )
            });
        taken[i] = true;
        found.push(spans[i].clone());
    }
    let trace = &found[0].trace_id;
    for (n, s) in expected.iter().zip(&found) {
        let what = format!("{} {} {}", n.service, s.kind_name(), n.path);
        assert_eq!(
            &s.trace_id,
            trace,
            "{what}: not in the tree's trace\n{}",
            show(&found)
        );
        assert_eq!(
            s.str("service.peer.name"),
            Some(n.peer),
            "{what}: service.peer.name"
        );
        assert_eq!(s.int("http.response.status_code"), Some(200), "{what}");
        match n.parent {
            P(p) => assert_eq!(
                s.parent_span_id,
                found[p].span_id,
                "{what}: its parent should be the span of {} {}\n{}",
                expected[p].service,
                expected[p].path,
                show(&found)
            ),
            Outside(id) => assert_eq!(hex(&s.parent_span_id), id, "{what}: parent"),
            Root => assert!(s.parent_span_id.is_empty(), "{what}: should be a root"),
        }
    }
    (found, exit)
}

fn chain_services() -> (integration::servers::Server, integration::servers::Server) {
    let backend_port = free_port();
    let backend = python_script_server_env(
        "chain_service.py",
        backend_port,
        &[],
        &[("OTEL_SERVICE_NAME", "backend")],
    );
    let frontend = python_script_server_env(
        "chain_service.py",
        free_port(),
        &[
            &format!("http://127.0.0.1:{backend_port}/inventory/7"),
            &format!("http://127.0.0.1:{backend_port}/prices/7"),
        ],
        &[("OTEL_SERVICE_NAME", "frontend")],
    );
    (frontend, backend)
}

/// curl → frontend → backend twice: six spans, one trace, exact parents.
#[test]
fn a_request_through_two_services_is_one_trace_tree() {
    require_root("a_request_through_two_services_is_one_trace_tree");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::Grpc);
    let (frontend, backend) = chain_services();
    let c = curl(
        &[
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{}/checkout", frontend.port),
        ],
        &[("OTEL_SERVICE_NAME", "shopper")],
    );
    assert_eq!(c.transfers[0].response_code, 200);
    let tree = [
        Node {
            service: "shopper",
            kind: KIND_CLIENT,
            path: "/checkout",
            peer: "frontend",
            parent: Root,
        },
        Node {
            service: "frontend",
            kind: KIND_SERVER,
            path: "/checkout",
            peer: "shopper",
            parent: P(0),
        },
        Node {
            service: "frontend",
            kind: KIND_CLIENT,
            path: "/inventory/7",
            peer: "backend",
            parent: P(1),
        },
        Node {
            service: "backend",
            kind: KIND_SERVER,
            path: "/inventory/7",
            peer: "frontend",
            parent: P(2),
        },
        Node {
            service: "frontend",
            kind: KIND_CLIENT,
            path: "/prices/7",
            peer: "backend",
            parent: P(1),
        },
        Node {
            service: "backend",
            kind: KIND_SERVER,
            path: "/prices/7",
            peer: "frontend",
            parent: P(4),
        },
    ];
    let (spans, exit) = assert_tree(run, &[frontend.port, backend.port], &tree);
    // Both calls were linked in process, and counted as such.
    assert_eq!(
        exit.metrics
            .get("wirespan_in_process_parents_total", &[("result", "linked")]),
        2.0,
        "{}",
        exit.diagnostics()
    );
    // The children lie within their parents' time.
    let within = |child: &FlatSpan, parent: &FlatSpan| {
        child.start_ns >= parent.start_ns && child.end_ns <= parent.end_ns
    };
    assert!(
        within(&spans[2], &spans[1]) && within(&spans[4], &spans[1]),
        "{}",
        show(&spans)
    );
}

/// A traceparent sent by the first caller roots the whole tree in its trace.
#[test]
fn a_callers_traceparent_roots_the_tree() {
    require_root("a_callers_traceparent_roots_the_tree");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::HttpProtobuf);
    let (frontend, backend) = chain_services();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let c = curl(
        &[
            "-o",
            "/dev/null",
            "-H",
            &format!("traceparent: 00-{trace}-{parent}-01"),
            &format!("http://127.0.0.1:{}/checkout", frontend.port),
        ],
        &[("OTEL_SERVICE_NAME", "shopper")],
    );
    assert_eq!(c.transfers[0].response_code, 200);
    // curl's own span and the frontend's are both children of the caller's
    // span (the header names it); the rest hang below the frontend.
    let tree = [
        Node {
            service: "shopper",
            kind: KIND_CLIENT,
            path: "/checkout",
            peer: "frontend",
            parent: Outside(parent),
        },
        Node {
            service: "frontend",
            kind: KIND_SERVER,
            path: "/checkout",
            peer: "shopper",
            parent: Outside(parent),
        },
        Node {
            service: "frontend",
            kind: KIND_CLIENT,
            path: "/inventory/7",
            peer: "backend",
            parent: P(1),
        },
        Node {
            service: "backend",
            kind: KIND_SERVER,
            path: "/inventory/7",
            peer: "frontend",
            parent: P(2),
        },
        Node {
            service: "frontend",
            kind: KIND_CLIENT,
            path: "/prices/7",
            peer: "backend",
            parent: P(1),
        },
        Node {
            service: "backend",
            kind: KIND_SERVER,
            path: "/prices/7",
            peer: "frontend",
            parent: P(4),
        },
    ];
    let (spans, _) = assert_tree(run, &[frontend.port, backend.port], &tree);
    assert_eq!(hex(&spans[0].trace_id), trace);
}
