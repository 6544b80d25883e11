//! Replays of real HTTP/1 traffic recorded with `wirespan record` (see
//! fixtures/README.md for the commands). Every expected value below comes from
//! the traffic the commands made (request lines, server bodies, the clients'
//! environment), and pids, ports and timestamps from `wirespan dump` of the
//! fixture, not from the pipeline's output.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

#[path = "fixtures/support.rs"]
mod support;

use support::{check, clock_offset, describe, of_pid, replay, sorted, Want, ALL_FIXTURES};

const CURL_UA: Option<&str> = Some("curl/7.88.1");

#[test]
fn http_server_200_and_404_with_query() {
    let name = "http1_simple";
    let (summary, spans, registry) = replay(name);
    let clock = clock_offset(name);
    assert_eq!(summary.records, 32);
    // Two curls, each one request on its own connection, both ends traced; the
    // readiness probe's connection (pid 22993) carries no bytes: no span.
    assert_eq!(spans.len(), 4, "{}", describe(&spans));
    let server = Want {
        server: true,
        pid: 22979,
        service: "python3",
        exe: "python3",
        server_port: 18081,
        user_agent: CURL_UA,
        ..Want::default()
    };
    let client = Want {
        server: false,
        exe: "curl",
        server_port: 18081,
        user_agent: CURL_UA,
        peer_service: Some("python3"),
        ..Want::default()
    };
    // curl 1: OTEL_SERVICE_NAME=checkout-cli, GET /hello.txt -> 200, 15 bytes.
    let hello = Want {
        path: "/hello.txt",
        status: 200,
        resp_body: 15,
        client_port: 52436,
        ..client.clone()
    };
    let c1 = of_pid(&spans, 22994);
    assert_eq!(c1.len(), 1, "{}", describe(&spans));
    check(
        &c1[0],
        &Want {
            pid: 22994,
            service: "checkout-cli",
            start_mono: Some(1535658492951),
            end_mono: Some(1535661683546),
            ..hello.clone()
        },
        clock,
    );
    // curl 2: GET /missing.txt?x=1&y=two -> 404 with python's 335-byte error page
    // (curl -w size_download printed 335). A 4xx is an error for the client only.
    let c2 = of_pid(&spans, 22999);
    assert_eq!(c2.len(), 1, "{}", describe(&spans));
    let missing = Want {
        path: "/missing.txt",
        query: Some("x=1&y=two"),
        status: 404,
        resp_body: 335,
        client_port: 52448,
        ..client.clone()
    };
    check(
        &c2[0],
        &Want {
            pid: 22999,
            service: "curl",
            error: Some("404"),
            ..missing.clone()
        },
        clock,
    );
    let srv = of_pid(&spans, 22979);
    assert_eq!(srv.len(), 2, "{}", describe(&spans));
    check(
        &srv[0],
        &Want {
            path: "/hello.txt",
            resp_body: 15,
            client_port: 52436,
            peer_service: Some("checkout-cli"),
            start_mono: Some(1535658532105),
            end_mono: Some(1535661666674),
            ..server.clone()
        },
        clock,
    );
    check(
        &srv[1],
        &Want {
            path: "/missing.txt",
            query: Some("x=1&y=two"),
            status: 404,
            resp_body: 335,
            client_port: 52448,
            peer_service: Some("curl"),
            ..server.clone()
        },
        clock,
    );
    // Nothing lost, nothing unparsed.
    for reason in ["gap_bytes", "undetected_bytes", "closed_with_missing_tail"] {
        assert_eq!(
            registry.value(
                "wirespan_stream_bytes_not_parsed_total",
                &[("reason", reason)]
            ),
            Some(0),
            "{reason}"
        );
    }
    assert_eq!(
        registry.sum("wirespan_parse_issues_total"),
        0,
        "{}",
        registry.render()
    );
    // The resource: the exec record named the process.
    assert_eq!(
        c1[0].res_str("process.executable.path"),
        Some("/usr/bin/curl")
    );
    assert_eq!(
        srv[0].res_str("process.executable.path"),
        Some("/usr/bin/python3")
    );
    assert_eq!(srv[0].res_int("process.parent_pid"), Some(22881));
}

#[test]
fn keep_alive_two_requests_on_one_connection() {
    let name = "http1_keepalive";
    let (_, spans, _) = replay(name);
    let clock = clock_offset(name);
    assert_eq!(spans.len(), 4, "{}", describe(&spans));
    let client = Want {
        pid: 23472,
        service: "curl",
        exe: "curl",
        server_port: 18082,
        client_port: 35414,
        user_agent: CURL_UA,
        peer_service: Some("tiny-http"),
        ..Want::default()
    };
    let server = Want {
        server: true,
        pid: 23465,
        service: "tiny-http", // OTEL_SERVICE_NAME=tiny-http
        exe: "python3",
        peer_service: Some("curl"),
        ..client.clone()
    };
    let a = Want {
        path: "/a",
        resp_body: 6, // "alpha\n"
        ..Want::default()
    };
    let b = Want {
        path: "/b",
        query: Some("v=2"),
        resp_body: 12, // "bravo-bravo\n"
        ..Want::default()
    };
    let merge = |base: &Want<'static>, m: &Want<'static>| Want {
        path: m.path,
        query: m.query,
        resp_body: m.resp_body,
        ..base.clone()
    };
    let c = of_pid(&spans, 23472);
    assert_eq!(c.len(), 2, "{}", describe(&spans));
    check(&c[0], &merge(&client, &a), clock);
    // curl read the second body 42 ms after the head (the server wrote it with
    // a second send); the client span ends at that read.
    check(
        &c[1],
        &Want {
            start_mono: Some(1543926082208),
            end_mono: Some(1543968097423),
            ..merge(&client, &b)
        },
        clock,
    );
    let s = of_pid(&spans, 23465);
    assert_eq!(s.len(), 2, "{}", describe(&spans));
    check(&s[0], &merge(&server, &a), clock);
    check(
        &s[1],
        &Want {
            start_mono: Some(1543926089572),
            end_mono: Some(1543926250163),
            ..merge(&server, &b)
        },
        clock,
    );
    // Both requests of each side share one resource (one process).
    assert_eq!(c[0].0.resource.id, c[1].0.resource.id);
    assert_ne!(c[0].0.resource.id, s[0].0.resource.id);
}

#[test]
fn pipelined_requests_in_one_write() {
    let name = "http1_pipelined";
    let (_, spans, registry) = replay(name);
    let clock = clock_offset(name);
    assert_eq!(spans.len(), 4, "{}", describe(&spans));
    let client = Want {
        pid: 23574,
        // OTEL_RESOURCE_ATTRIBUTES=service.name=pipeliner,team=edge
        service: "pipeliner",
        exe: "python3",
        server_port: 18083,
        client_port: 38736,
        user_agent: Some("pipeliner/1"),
        peer_service: Some("python3"),
        ..Want::default()
    };
    let server = Want {
        server: true,
        pid: 23565,
        service: "python3",
        peer_service: Some("pipeliner"),
        ..client.clone()
    };
    let c = of_pid(&spans, 23574);
    let s = of_pid(&spans, 23565);
    assert_eq!((c.len(), s.len()), (2, 2), "{}", describe(&spans));
    // Both requests left in one write and arrived in one read: same start.
    let p1 = |w: &Want<'static>, start, end| Want {
        path: "/p1",
        query: Some("n=1"),
        resp_body: 4, // "one\n"
        start_mono: Some(start),
        end_mono: Some(end),
        ..w.clone()
    };
    let p2 = |w: &Want<'static>, start, end| Want {
        path: "/p2",
        resp_body: 5, // "two!\n"
        start_mono: Some(start),
        end_mono: Some(end),
        ..w.clone()
    };
    let (c1, c2) = if c[0].str("url.path") == Some("/p1") {
        (&c[0], &c[1])
    } else {
        (&c[1], &c[0])
    };
    check(c1, &p1(&client, 1548196280451, 1548196671494), clock);
    check(c2, &p2(&client, 1548196280451, 1548196833007), clock);
    let (s1, s2) = if s[0].str("url.path") == Some("/p1") {
        (&s[0], &s[1])
    } else {
        (&s[1], &s[0])
    };
    check(s1, &p1(&server, 1548196352065, 1548196671534), clock);
    check(s2, &p2(&server, 1548196352065, 1548196833418), clock);
    assert_eq!(c1.res_str("team"), Some("edge"));
    assert_eq!(
        registry.sum("wirespan_parse_issues_total"),
        0,
        "{}",
        registry.render()
    );
}

#[test]
fn chunked_upload() {
    let name = "http1_chunked_upload";
    let (_, spans, registry) = replay(name);
    let clock = clock_offset(name);
    assert_eq!(spans.len(), 2, "{}", describe(&spans));
    // curl -H 'Transfer-Encoding: chunked' --data-binary @upload.bin (3000 'x')
    // POST /upload?name=x.bin -> 201 "got 3000\n" (9 bytes).
    let upload = Want {
        method: "POST",
        path: "/upload",
        query: Some("name=x.bin"),
        status: 201,
        req_body: 3000,
        resp_body: 9,
        server_port: 18084,
        client_port: 36140,
        user_agent: CURL_UA,
        ..Want::default()
    };
    let c = of_pid(&spans, 23633);
    let s = of_pid(&spans, 23625);
    assert_eq!((c.len(), s.len()), (1, 1), "{}", describe(&spans));
    check(
        &c[0],
        &Want {
            pid: 23633,
            service: "curl",
            exe: "curl",
            peer_service: Some("python3"),
            ..upload.clone()
        },
        clock,
    );
    check(
        &s[0],
        &Want {
            server: true,
            pid: 23625,
            service: "python3",
            exe: "python3",
            peer_service: Some("curl"),
            ..upload.clone()
        },
        clock,
    );
    assert_eq!(
        registry.value(
            "wirespan_parse_issues_total",
            &[("reason", "malformed_chunk")]
        ),
        None
    );
}

#[test]
fn head_204_and_500() {
    let name = "http1_head_204_500";
    let (_, spans, _) = replay(name);
    let clock = clock_offset(name);
    // Three curls, one request each; plus the readiness probe (no bytes, no span).
    assert_eq!(spans.len(), 6, "{}", describe(&spans));
    let base = Want {
        exe: "curl",
        service: "curl",
        server_port: 18085,
        user_agent: CURL_UA,
        peer_service: Some("python3"),
        ..Want::default()
    };
    let srv = |w: &Want<'static>| Want {
        server: true,
        pid: 23791,
        service: "python3",
        exe: "python3",
        peer_service: Some("curl"),
        ..w.clone()
    };
    // curl -I /a: HEAD -> 200 with Content-Length: 6 but no body.
    let head = Want {
        pid: 23796,
        method: "HEAD",
        path: "/a",
        resp_body: 0,
        client_port: 32792,
        ..base.clone()
    };
    // GET /empty -> 204, no body.
    let empty = Want {
        pid: 23797,
        path: "/empty",
        status: 204,
        client_port: 32808,
        ..base.clone()
    };
    // GET /fail -> 500 "boom\n": an error on both sides.
    let fail = Want {
        pid: 23798,
        path: "/fail",
        status: 500,
        resp_body: 5,
        client_port: 32824,
        error: Some("500"),
        ..base.clone()
    };
    for w in [&head, &empty, &fail] {
        let c = of_pid(&spans, w.pid);
        assert_eq!(c.len(), 1, "{}", describe(&spans));
        check(&c[0], w, clock);
    }
    let s = of_pid(&spans, 23791);
    assert_eq!(s.len(), 3, "{}", describe(&spans));
    check(&s[0], &srv(&head), clock);
    check(&s[1], &srv(&empty), clock);
    check(&s[2], &srv(&fail), clock);
    // Client and server spans of one exchange: the client's starts first
    // (it wrote before the server read) and ends last (it read after the
    // server wrote).
    for (w, srv_span) in [&head, &empty, &fail].into_iter().zip(&s) {
        let c = &of_pid(&spans, w.pid)[0];
        assert!(c.start() < srv_span.start(), "{}", describe(&spans));
        assert!(c.end() > srv_span.end(), "{}", describe(&spans));
    }
    let all = sorted(&spans);
    assert!(all[0].is_client() && all[1].is_server());
}

/// Where both ends are traced here, each server span is the child of its
/// client span, in the client span's trace; and every client span is a root.
#[test]
fn same_host_spans_are_linked() {
    let mut linked = 0;
    for name in ALL_FIXTURES {
        let (_, spans, _) = replay(name);
        for s in &spans {
            let kind = s.span.kind;
            if kind == 3 {
                assert!(
                    s.span.parent_span_id.is_none(),
                    "{name}: client span with a parent"
                );
                continue;
            }
            if s.span.parent_span_id.is_none() {
                continue;
            }
            let parent = spans
                .iter()
                .find(|c| Some(c.span.span_id) == s.span.parent_span_id)
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: server span {} has a parent that was not built",
                        s.span.name
                    )
                });
            assert_eq!(parent.span.kind, 3, "{name}: the parent is a client span");
            assert_eq!(parent.span.trace_id, s.span.trace_id, "{name}: one trace");
            assert_eq!(parent.span.name, s.span.name, "{name}: the same request");
            linked += 1;
        }
    }
    assert!(
        linked >= 10,
        "only {linked} linked server spans across the fixtures"
    );
}
